"""Agora's input rules. They raise Django's ValidationError, which DRF serializers understand
and services turn into TokenServiceError, so the API, admin and CLI share one rulebook."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from tokens import agora

# Agora's documented character set for channel names and RTM user ids.
_ALLOWED = r"a-zA-Z0-9 !#$%&()+\-:;<=.>?@\[\]^_{}|~,"
_NAME = re.compile(f"[{_ALLOWED}]+")
MAX_NAME_BYTES = 63
MIN_LIFETIME = 60

ALLOWED_CHARACTERS_TEXT = "a-z A-Z 0-9 space and !#$%&()+-:;<=.>?@[]^_{}|~,"


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or value == "":
        raise ValidationError(f"{what} must not be empty.", code="blank")
    # The set is ASCII, so once it matches, characters and bytes count the same.
    if not _NAME.fullmatch(value):
        raise ValidationError(
            f"{what} may contain only {ALLOWED_CHARACTERS_TEXT}.", code="invalid_characters"
        )
    if len(value) > MAX_NAME_BYTES:
        raise ValidationError(
            f"{what} must be at most {MAX_NAME_BYTES} bytes (got {len(value)}).", code="too_long"
        )


def validate_channel_name(value: str) -> None:
    """Channel: 1..63 bytes of Agora's character set."""
    _check_name(value, "Channel name")


def validate_rtm_user_id(value: str) -> None:
    """RTM user id: like a channel name, and neither "null" nor starting with a space."""
    _check_name(value, "RTM user id")
    if value == "null":
        raise ValidationError('RTM user id must not be "null".', code="reserved")
    if value.startswith(" "):
        raise ValidationError("RTM user id must not start with a space.", code="leading_space")


def validate_uid(value: int) -> None:
    """Agora uid: 1..2^32-1 (0 is the wildcard and is never issued)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("uid must be an integer.", code="invalid")
    if not agora.UID_MIN <= value <= agora.UID_MAX:
        raise ValidationError(f"uid must be within {agora.UID_MIN}..{agora.UID_MAX}.", code="range")


def max_lifetime() -> int:
    """The longest token lifetime this server grants (never above Agora's 24 h)."""
    return min(settings.AGORA_TOKEN_MAX_TTL, agora.MAX_LIFETIME)


def validate_lifetime(value: int) -> None:
    """Token lifetime in seconds: MIN_LIFETIME..AGORA_TOKEN_MAX_TTL (at most 86400)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("expires_in must be an integer number of seconds.", code="invalid")
    high = max_lifetime()
    if not MIN_LIFETIME <= value <= high:
        raise ValidationError(
            f"expires_in must be within {MIN_LIFETIME}..{high} seconds (got {value}).", code="range"
        )


def validate_version(value: str) -> None:
    """Token version: 006 or 007."""
    if value not in agora.VERSIONS:
        raise ValidationError(
            f"version must be one of {', '.join(agora.VERSIONS)} (got {value!r}).", code="invalid_choice"
        )
