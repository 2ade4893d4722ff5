"""Agora identities: the uids a user is given, one per slot (main, screen, phone...), once each,
and the uids reserved for a channel (its recorder's), drawn from the same unique column."""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tokens import agora, metrics, validators
from tokens.choices import RECORDER_SLOT
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


def _drawn(owner: dict, *, room_of: AbstractBaseUser | None = None) -> tuple[AgoraIdentity, bool]:
    """The identity of `owner` (its user or channel, and slot), drawn on first need: random from
    `secrets`, retried on a unique clash, so concurrent processes and hosts can never hand out
    the same uid. `room_of`: the user whose AGORA_MAX_SLOTS a new slot must fit within. True
    when this call drew it."""
    existing = AgoraIdentity.objects.filter(**owner).first()
    if existing is not None:
        return existing, False
    for _ in range(UID_ALLOCATION_ATTEMPTS):
        try:
            with transaction.atomic():
                if room_of is not None:
                    _check_room_for_a_slot(room_of)
                return AgoraIdentity.objects.create(**owner, uid=draw_uid()), True
        except IntegrityError:
            # Either the uid is taken (draw again) or a concurrent request just gave this
            # owner this slot (use it).
            existing = AgoraIdentity.objects.filter(**owner).first()
            if existing is not None:
                return existing, False
    logger.error("could not allocate an Agora uid after %d attempts", UID_ALLOCATION_ATTEMPTS)
    raise TokenServiceError(
        "uid_allocation_failed", "Could not allocate an Agora uid; try again.", status=503
    )


def get_or_create_identity(*, user: AbstractBaseUser, slot: str = MAIN_SLOT) -> AgoraIdentity:
    """The user's uid for `slot`, created on first need (see _drawn). A slot other than main
    must fit within AGORA_MAX_SLOTS (403 `too_many_slots`)."""
    try:
        validators.validate_slot(slot)
    except ValidationError as exc:
        raise TokenServiceError.from_validation_error("slot", exc) from None
    identity, drawn = _drawn({"user": user, "slot": slot}, room_of=user if slot != MAIN_SLOT else None)
    if drawn:
        metrics.count_uid(main=slot == MAIN_SLOT)
        logger.info("agora uid allocated user=%s slot=%s uid=%s", user.get_username(), slot, identity.uid)
    return identity


def reserved_identity(*, channel: str, slot: str = RECORDER_SLOT) -> AgoraIdentity:
    """The uid reserved in `channel` for `slot` (its recorder's), created on first need: an
    identity without a user, drawn like a user's from the same unique column, so it is never a
    user's uid; one per channel and slot (a unique constraint), whoever asks first."""
    identity, drawn = _drawn({"user": None, "channel": channel, "slot": slot})
    if drawn:
        logger.info("agora uid reserved channel=%r slot=%s uid=%s", channel, slot, identity.uid)
    return identity


def slots_of(user: AbstractBaseUser) -> dict[str, int]:
    """Every slot of the user and its uid, main first."""
    identities = AgoraIdentity.objects.filter(user=user).values_list("slot", "uid")
    slots = dict(identities)
    return dict(sorted(slots.items(), key=lambda item: (item[0] != MAIN_SLOT, item[0])))
