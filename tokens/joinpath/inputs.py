"""What each token endpoint accepts: one strict DRF serializer per endpoint, the one definition
of its input that validates every request and that the OpenAPI schema is generated from.

A serializer is built once per endpoint and reused (`validate`): DRF deep-copies every declared
field into each new serializer instance (~90% of a request's validation cost), while
`run_validation` on a built one keeps no state between calls.
"""

from __future__ import annotations

from functools import cache

from rest_framework import serializers

from tokens import agora, validators
from tokens.choices import MAIN_SLOT, USER_ROLE_CHOICES, Role
from tokens.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    StrictSerializer,
)


@cache
def _built(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    serializer = serializer_class()
    serializer.fields  # noqa: B018 (binds the fields once)
    return serializer


def validate(serializer_class: type[serializers.Serializer], data: object) -> dict:
    """`data` as the serializer validates it (DRF's ValidationError, naming every bad field,
    otherwise)."""
    return _built(serializer_class).run_validation(data)


def _version_field(help_text: str) -> StrictChoiceField:
    return StrictChoiceField(choices=agora.VERSIONS, required=False, help_text=help_text)


def _slot_field() -> StrictCharField:
    return StrictCharField(
        required=False,
        default=MAIN_SLOT,
        validators=[validators.validate_slot],
        schema_extra=validators.SLOT_SCHEMA,
        help_text="Which of your uids: main (default) or a name of 1..32 characters a-z 0-9 - "
        "(screen, phone...), each its own uid, drawn on first use; at most AGORA_MAX_SLOTS.",
    )


def _expires_in_field(help_text: str = "") -> StrictIntegerField:
    return StrictIntegerField(
        required=False,
        validators=[validators.validate_lifetime],
        schema_extra=validators.lifetime_schema,
        help_text="Seconds, 60..AGORA_TOKEN_MAX_TTL; default AGORA_TOKEN_TTL." + help_text,
    )


def _channel_field() -> StrictCharField:
    return StrictCharField(
        validators=[validators.validate_channel_name],
        schema_extra=validators.NAME_SCHEMA,
        help_text=f"1..63 bytes of {validators.ALLOWED_CHARACTERS_TEXT}",
    )


def _role_field() -> StrictChoiceField:
    return StrictChoiceField(
        choices=USER_ROLE_CHOICES,
        required=False,
        help_text="What the token may publish: publisher (audio, video and data), audio, video or data "
        "alone (007 only), subscriber (nothing: join only). Default subscriber; for the screen slot "
        "on 007, video where the policies let you publish video (subscriber otherwise).",
    )


def _publish_expires_in_field() -> StrictIntegerField:
    return StrictIntegerField(
        required=False,
        validators=[validators.validate_lifetime],
        schema_extra=validators.lifetime_schema,
        help_text="Seconds until publishing ends (then the uid only listens); default, and at the latest: "
        "with the token. Needs a role named that publishes (publisher, audio, video, data); 007 only. "
        "A renewal starts a new window.",
    )


class RtcTokenInput(StrictSerializer):
    refused_combinations = (*validators.PUBLISH_LIFETIME_REFUSALS, *validators.VERSION_006_REFUSALS)

    channel = _channel_field()
    role = _role_field()
    expires_in = _expires_in_field()
    publish_expires_in = _publish_expires_in_field()
    version = _version_field("006 or 007; default AGORA_TOKEN_VERSION.")
    slot = _slot_field()


class RtmTokenInput(StrictSerializer):
    expires_in = _expires_in_field(" 006 RTM tokens are always valid 24 h, and the response says so.")
    version = _version_field("006 or 007; default AGORA_TOKEN_VERSION.")
    slot = _slot_field()


class RtcRtmTokenInput(StrictSerializer):
    """One token for RTC and RTM: 007 only."""

    refused_combinations = tuple(validators.PUBLISH_LIFETIME_REFUSALS)

    channel = _channel_field()
    role = _role_field()
    expires_in = _expires_in_field()
    publish_expires_in = _publish_expires_in_field()
    version = StrictChoiceField(
        choices=[agora.VERSION_007],
        required=False,
        error_messages={
            "invalid_choice": "RTC and RTM in one token needs 007; a 006 token carries one service."
        },
        help_text="007, the default and only choice: a 006 token carries one service.",
    )
    slot = _slot_field()


def _chat_version_field() -> StrictChoiceField:
    return StrictChoiceField(
        choices=[agora.VERSION_007],
        required=False,
        error_messages={"invalid_choice": "Agora Chat tokens are 007 only; 006 has no Chat service."},
        help_text="007, the default and only choice: 006 has no Chat service.",
    )


class ChatTokenInput(StrictSerializer):
    """An Agora Chat user token for your own Chat user id (str of your slot's uid): 007 only."""

    expires_in = _expires_in_field()
    version = _chat_version_field()
    slot = _slot_field()


class ChatAppTokenInput(StrictSerializer):
    """Agora Chat's app token, the app server's credential for Chat's REST API: 007 only."""

    expires_in = _expires_in_field()
    version = _chat_version_field()


class RecorderTokenInput(StrictSerializer):
    """A join-only 007 token for the channel's reserved recorder uid (Cloud Recording's)."""

    channel = _channel_field()
    expires_in = _expires_in_field()

    def validate(self, attrs):
        return {**attrs, "role": Role.RECORDER}


class CompatRtcInput(StrictSerializer):
    """The tutorial's POST /rtctoken body."""

    channel = StrictCharField(
        validators=[validators.validate_channel_name], schema_extra=validators.NAME_SCHEMA
    )
    isPublisher = StrictBooleanField(required=False, default=False)  # noqa: N815 (tutorial's key)

    def validate(self, attrs):
        publisher = attrs["isPublisher"]
        role = Role.PUBLISHER if publisher else Role.SUBSCRIBER
        return {"channel": attrs["channel"], "role": role}


class CompatRtmInput(StrictSerializer):
    """The tutorial's POST /rtmtoken body; `user`, if sent, must be the caller's RTM id."""

    user = StrictCharField(
        required=False,
        validators=[validators.validate_rtm_user_id],
        schema_extra=validators.RTM_USER_ID_SCHEMA,
        help_text="Your own RTM user id (str of your uid); any other is 403.",
    )

    def validate(self, attrs):
        return {"rtm_user_id": attrs.get("user")}
