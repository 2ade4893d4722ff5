"""Agora identities: the uid each user is given once and keeps."""

from __future__ import annotations

import logging
import secrets

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction

from tokens import agora
from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity

logger = logging.getLogger(__name__)

UID_ALLOCATION_ATTEMPTS = 8


def get_or_create_identity(*, user: AbstractBaseUser) -> AgoraIdentity:
    """The user's one Agora uid, created on first need: random from `secrets`, retried on a
    unique clash, so concurrent processes and hosts can never hand out the same uid."""
    try:
        return AgoraIdentity.objects.get(user=user)
    except AgoraIdentity.DoesNotExist:
        pass
    for _ in range(UID_ALLOCATION_ATTEMPTS):
        uid = secrets.randbelow(agora.UID_MAX) + agora.UID_MIN
        try:
            with transaction.atomic():
                return AgoraIdentity.objects.create(user=user, uid=uid)
        except IntegrityError:
            # Either the uid is taken (draw again) or a concurrent request just gave this
            # user an identity (use it).
            existing = AgoraIdentity.objects.filter(user=user).first()
            if existing is not None:
                return existing
    logger.error("could not allocate an Agora uid after %d attempts", UID_ALLOCATION_ATTEMPTS)
    raise TokenServiceError(
        "uid_allocation_failed", "Could not allocate an Agora uid; try again.", status=503
    )
