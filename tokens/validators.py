"""Agora's input rules. They raise Django's ValidationError, which DRF serializers understand
and services turn into TokenServiceError, so the API, admin and CLI share one rulebook."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError

from tokens import agora
from tokens.choices import ALL_RIGHTS, ROLE_RIGHTS, ROLES, SERVICES, Role, Service

# Agora's documented character set for channel names and RTM user ids.
_ALLOWED = r"a-zA-Z0-9 !#$%&()+\-:;<=.>?@\[\]^_{}|~,"
_NAME = re.compile(f"[{_ALLOWED}]+")
MAX_NAME_BYTES = 63
MIN_LIFETIME = 60

ALLOWED_CHARACTERS_TEXT = "a-z A-Z 0-9 space and !#$%&()+-:;<=.>?@[]^_{}|~,"

# The same rules as JSON Schema, for the OpenAPI document (tokens.schema).
NAME_SCHEMA = {"minLength": 1, "maxLength": MAX_NAME_BYTES, "pattern": f"^[{_ALLOWED}]+$"}
RTM_USER_ID_SCHEMA = {
    "minLength": 1,
    "maxLength": MAX_NAME_BYTES,
    "pattern": f"^[{_ALLOWED.replace(' ', '')}][{_ALLOWED}]*$",
    "not": {"enum": ["null"]},
}
# Free text (usernames, passwords): DRF refuses NUL in any string (and unpaired surrogates,
# which JSON Schema cannot express and valid JSON text does not carry).
TEXT_SCHEMA = {"pattern": "^[^\\u0000]*$"}


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or value == "":
        raise ValidationError(f"{what} must not be empty.", code="blank")
    # The set is ASCII, so once it matches, characters and bytes count the same.
    if not _NAME.fullmatch(value):
        bad = next(c for c in value if not _NAME.fullmatch(c))
        raise ValidationError(
            f"{what} contains {bad!r}, which Agora does not allow (allowed: {ALLOWED_CHARACTERS_TEXT}).",
            code="invalid_characters",
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


SLOT_SCHEMA = {"minLength": 1, "maxLength": 32, "pattern": "^[a-z0-9-]+$"}
_SLOT = re.compile(r"[a-z0-9-]{1,32}")


def validate_slot(value: str) -> None:
    """Slot: `main` or a name of 1..32 characters a-z 0-9 - (screen, phone, laptop)."""
    if not isinstance(value, str) or not _SLOT.fullmatch(value):
        raise ValidationError(
            "Must be main or 1..32 characters of a-z, 0-9 and - (e.g. screen, phone).", code="invalid"
        )


PATTERN_PLACEHOLDERS = ("{uid}", "{username}")


def validate_channel_pattern(value: str) -> None:
    """Channel rule pattern: a channel name, or a prefix ending in *, with {uid} and {username}
    standing for the caller's own."""
    name = value[:-1] if value.endswith("*") else value
    for placeholder in PATTERN_PLACEHOLDERS:
        name = name.replace(placeholder, "x")
    if "*" in name:
        raise ValidationError("Only a final * is allowed (a prefix: team-*).", code="invalid")
    if name:
        _check_name(name, "Pattern")
    elif not value.endswith("*"):
        raise ValidationError("Pattern must not be empty.", code="blank")


def validate_rtc_rtm_version(value: str) -> None:
    """An RTC+RTM token is 007: a 006 token carries one service."""
    if value != agora.VERSION_007:
        raise ValidationError(
            "RTC and RTM in one token needs 007; a 006 token carries one service.", code="invalid_choice"
        )


def validate_chat_version(value: str) -> None:
    """An Agora Chat token is 007: 006 has no Chat service."""
    if value != agora.VERSION_007:
        raise ValidationError(
            "Agora Chat tokens are 007 only; 006 has no Chat service.", code="invalid_choice"
        )


def max_lifetime() -> int:
    """The longest token lifetime this server grants (never above Agora's 24 h)."""
    return min(settings.AGORA_TOKEN_MAX_TTL, agora.MAX_LIFETIME)


def lifetime_schema() -> dict:
    """JSON Schema bounds of a token lifetime, as configured now."""
    return {"minimum": MIN_LIFETIME, "maximum": max_lifetime()}


def validate_lifetime(value: int) -> None:
    """Token lifetime in seconds: MIN_LIFETIME..AGORA_TOKEN_MAX_TTL (at most 86400)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("Must be an integer number of seconds.", code="invalid")
    high = max_lifetime()
    if not MIN_LIFETIME <= value <= high:
        raise ValidationError(f"Must be within {MIN_LIFETIME}..{high} seconds (got {value}).", code="range")


def validate_role(value: str, *, service: str = "rtc") -> None:
    """RTC role: publisher, subscriber, audio, video, data; recorder (a channel's recorder uid,
    join only) for an RTC token alone."""
    if value not in ROLES:
        raise ValidationError(f"Must be one of {', '.join(ROLES)}.", code="invalid_choice")
    if value == Role.RECORDER and service != Service.RTC:
        raise ValidationError("A recorder's token is RTC only.", code="recorder_rtc_only")


def validate_publish_lifetime(value: int, *, role: str | None) -> None:
    """When publishing ends, in seconds after issue: MIN_LIFETIME..AGORA_TOKEN_MAX_TTL (the
    token's own lifetime bounds it: a publish privilege never outlives the join privilege), and
    only with a role named that publishes something."""
    if role is None or not ROLE_RIGHTS.get(role):
        raise ValidationError(
            "Needs a role that publishes (publisher, audio, video or data) named with it.",
            code="nothing_to_publish",
        )
    validate_lifetime(value)


def validate_version_grants(version: str, *, rights: frozenset[str], publish_expires_in: int | None) -> None:
    """006 publishes all or nothing for the token's whole life: per-media roles and
    publish_expires_in need 007."""
    if version != agora.VERSION_006:
        return
    if rights and rights != ALL_RIGHTS:
        raise ValidationError(
            "006 grants publishing all or nothing: the roles audio, video and data need 007.",
            code="needs_007",
        )
    if publish_expires_in is not None:
        raise ValidationError(
            "006 cannot end publishing before the token: publish_expires_in needs 007.", code="needs_007"
        )


# The combinations of RTC request fields that the rules above refuse, as JSON Schema (each one
# refused), for the OpenAPI document: the schema says what the server enforces, together.
PER_MEDIA_ROLES = [role for role in ROLES if ROLE_RIGHTS[role] and ROLE_RIGHTS[role] != ALL_RIGHTS]
PUBLISH_LIFETIME_REFUSALS = [
    {"required": ["publish_expires_in"], "not": {"required": ["role"]}},
    {"required": ["publish_expires_in", "role"], "properties": {"role": {"enum": [Role.SUBSCRIBER.value]}}},
]
VERSION_006_REFUSALS = [
    {
        "required": ["role", "version"],
        "properties": {"role": {"enum": PER_MEDIA_ROLES}, "version": {"enum": [agora.VERSION_006]}},
    },
    {"required": ["publish_expires_in", "version"], "properties": {"version": {"enum": [agora.VERSION_006]}}},
]


def validate_window(starts_at, ends_at, early_join_seconds: int) -> None:
    """A channel rule's meeting window: it ends after it starts; an early-join margin needs a
    start (and stays within a day)."""
    errors = {}
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        errors["ends_at"] = ValidationError("Must be after the start.", code="ends_before_start")
    if early_join_seconds and starts_at is None:
        errors["early_join_seconds"] = ValidationError("An early-join margin needs a start.", code="no_start")
    if errors:
        raise ValidationError(errors)


def validate_service(value: str) -> None:
    """Token service: rtc, rtm, rtc+rtm, chat or chat-app."""
    if value not in SERVICES:
        raise ValidationError(f"Must be one of {', '.join(SERVICES)}.", code="invalid_choice")


def validate_version(value: str) -> None:
    """Token version: 006 or 007."""
    if value not in agora.VERSIONS:
        raise ValidationError(
            f"Must be one of {', '.join(agora.VERSIONS)} (got {value!r}).", code="invalid_choice"
        )


# The moderation API's rules across fields, as the combinations it refuses (tokens.schema):
# a username or a uid, exactly one; minutes for a ban or mute, none for a kick.
MODERATION_TARGET_REFUSALS = [
    {"required": ["username", "uid"]},
    {"not": {"anyOf": [{"required": ["username"]}, {"required": ["uid"]}]}},
]
MODERATION_DURATION_REFUSALS = [
    {"required": ["action", "minutes"], "properties": {"action": {"enum": ["kick"]}}},
    {
        "required": ["action"],
        "properties": {"action": {"enum": ["ban", "mute_audio", "mute_video"]}},
        "not": {"required": ["minutes"]},
    },
]
