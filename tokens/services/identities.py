"""Agora identities: the uids a user is given, one per slot (main, screen, phone...), once each."""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tokens import agora, metrics, validators
from tokens.exceptions import TokenServiceError
from tokens.models import MAIN_SLOT, AgoraIdentity

logger = logging.getLogger(__name__)

UID_ALLOCATION_ATTEMPTS = 8


def draw_uid() -> int:
    """A random uid in 1..AGORA_UID_MAX (never 0, Agora's wildcard), from the OS's CSPRNG."""
    return secrets.randbelow(settings.AGORA_UID_MAX) + agora.UID_MIN


def _check_room_for_a_slot(user: AbstractBaseUser) -> None:
    # Runs inside the new slot's transaction with the user's row locked (SQLite: the
    # IMMEDIATE transaction holds the write lock), so two new slots cannot both fit.
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
    taken = list(AgoraIdentity.objects.filter(user=user).values_list("slot", flat=True))
    limit = settings.AGORA_MAX_SLOTS
    if len([s for s in taken if s != MAIN_SLOT]) + 1 >= limit:
        raise TokenServiceError(
            "too_many_slots",
            f"slot: this account already has {limit} slots, main included.",
            status=403,
            fields={
                "slot": [f"At most {limit} slots per account, main included; yours: {', '.join(taken)}."]
            },
        )


def get_or_create_identity(*, user: AbstractBaseUser, slot: str = MAIN_SLOT) -> AgoraIdentity:
    """The user's uid for `slot`, created on first need: random from `secrets`, retried on a
    unique clash, so concurrent processes and hosts can never hand out the same uid. A slot
    other than main must fit within AGORA_MAX_SLOTS (403 `too_many_slots`)."""
    try:
        validators.validate_slot(slot)
    except ValidationError as exc:
        raise TokenServiceError.from_validation_error("slot", exc) from None
    existing = AgoraIdentity.objects.filter(user=user, slot=slot).first()
    if existing is not None:
        return existing
    for _ in range(UID_ALLOCATION_ATTEMPTS):
        try:
            with transaction.atomic():
                if slot != MAIN_SLOT:
                    _check_room_for_a_slot(user)
                identity = AgoraIdentity.objects.create(user=user, slot=slot, uid=draw_uid())
            metrics.count_uid(main=slot == MAIN_SLOT)
            logger.info("agora uid allocated user=%s slot=%s uid=%s", user.get_username(), slot, identity.uid)
            return identity
        except IntegrityError:
            # Either the uid is taken (draw again) or a concurrent request just gave this
            # user this slot (use it).
            existing = AgoraIdentity.objects.filter(user=user, slot=slot).first()
            if existing is not None:
                return existing
    logger.error("could not allocate an Agora uid after %d attempts", UID_ALLOCATION_ATTEMPTS)
    raise TokenServiceError(
        "uid_allocation_failed", "Could not allocate an Agora uid; try again.", status=503
    )


def slots_of(user: AbstractBaseUser) -> dict[str, int]:
    """Every slot of the user and its uid, main first."""
    identities = AgoraIdentity.objects.filter(user=user).values_list("slot", "uid")
    slots = dict(identities)
    return dict(sorted(slots.items(), key=lambda item: (item[0] != MAIN_SLOT, item[0])))
