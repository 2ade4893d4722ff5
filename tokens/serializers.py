"""Request and response shapes. Inputs are strict: JSON types as documented, unknown fields
rejected by name, Agora's rules applied by the shared validators."""

from collections.abc import Mapping
from datetime import datetime

from rest_framework import serializers

from tokens import agora, validators
from tokens.models import MAIN_SLOT, IssuedToken


class SchemaExtraMixin:
    """`schema_extra`: JSON Schema keywords (or a callable giving them) that tokens.schema adds
    to the field's OpenAPI description, for rules DRF cannot describe itself."""

    def __init__(self, *, schema_extra=None, **kwargs):
        self.schema_extra = schema_extra
        super().__init__(**kwargs)


class StrictCharField(SchemaExtraMixin, serializers.CharField):
    """A JSON string, never a number or boolean coerced to one; whitespace kept as sent
    (a space is a legal, significant character in an Agora channel name)."""

    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault("schema_extra", validators.TEXT_SCHEMA)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(SchemaExtraMixin, serializers.IntegerField):
    """A JSON integer: not a string, float or boolean."""

    default_error_messages = {"invalid": "Must be an integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false, not "false" (which the tutorial's JavaScript took as true)."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictChoiceField(serializers.ChoiceField):
    """One of the listed strings, exactly. The error lists the choices rather than echoing
    the input (which may be megabytes)."""

    default_error_messages = {"invalid_choice": "Must be one of {choices}."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or data not in self.choice_strings_to_values:
            self.fail("invalid_choice", choices=", ".join(self.choice_strings_to_values))
        return self.choice_strings_to_values[data]


def _shown(name: object, limit: int = 64) -> str:
    text = str(name)
    return text if len(text) <= limit else text[:limit] + "…"


MAX_UNKNOWN_FIELDS_NAMED = 5


def _unknown_fields(data: object, known) -> dict[str, list[str]]:
    """The first few unknown field names, each with its error, and a count of the rest: a body
    of thousands of unknown keys gets an answer of a few hundred bytes."""
    if not isinstance(data, Mapping):
        return {}
    unknown = [name for name in data if name not in known]
    errors = {_shown(name): ["Unknown field."] for name in unknown[:MAX_UNKNOWN_FIELDS_NAMED]}
    if len(unknown) > MAX_UNKNOWN_FIELDS_NAMED:
        errors["body"] = [f"{len(unknown) - MAX_UNKNOWN_FIELDS_NAMED} more unknown fields."]
    return errors


class StrictSerializer(serializers.Serializer):
    """Rejects every field it does not define, naming them (up to a few), beside the other
    field errors."""

    rejects_unknown_fields = True  # the schema says additionalProperties: false

    def to_internal_value(self, data):
        unknown = _unknown_fields(data, self.fields)
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not unknown:
                raise
            detail = exc.detail if isinstance(exc.detail, dict) else {"body": exc.detail}
            merged = {**detail, **unknown}
            if "body" in detail and "body" in unknown:
                merged["body"] = [*detail["body"], *unknown["body"]]
            raise serializers.ValidationError(merged) from None
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


def _version_field(help_text: str) -> StrictChoiceField:
    return StrictChoiceField(choices=agora.VERSIONS, required=False, help_text=help_text)


# --- inputs -----------------------------------------------------------------------------------


class LoginInput(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, style={"input_type": "password"})


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
        choices=IssuedToken.Role.choices, default=IssuedToken.Role.SUBSCRIBER, required=False
    )


class RtcTokenInput(StrictSerializer):
    channel = _channel_field()
    role = _role_field()
    expires_in = _expires_in_field()
    version = _version_field("006 or 007; default AGORA_TOKEN_VERSION.")
    slot = _slot_field()


class RtmTokenInput(StrictSerializer):
    expires_in = _expires_in_field(" 006 RTM tokens are always valid 24 h, and the response says so.")
    version = _version_field("006 or 007; default AGORA_TOKEN_VERSION.")
    slot = _slot_field()


class RtcRtmTokenInput(StrictSerializer):
    """One token for RTC and RTM: 007 only."""

    channel = _channel_field()
    role = _role_field()
    expires_in = _expires_in_field()
    version = StrictChoiceField(
        choices=[agora.VERSION_007],
        required=False,
        error_messages={
            "invalid_choice": "RTC and RTM in one token needs 007; a 006 token carries one service."
        },
        help_text="007, the default and only choice: a 006 token carries one service.",
    )
    slot = _slot_field()


class CompatRtcInput(StrictSerializer):
    """The tutorial's POST /rtctoken body."""

    channel = StrictCharField(
        validators=[validators.validate_channel_name], schema_extra=validators.NAME_SCHEMA
    )
    isPublisher = StrictBooleanField(required=False, default=False)  # noqa: N815 (tutorial's key)

    def validate(self, attrs):
        publisher = attrs["isPublisher"]
        role = IssuedToken.Role.PUBLISHER if publisher else IssuedToken.Role.SUBSCRIBER
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


# --- outputs ----------------------------------------------------------------------------------


class LoginOutput(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`. Shown once.")
    expires_at = serializers.DateTimeField(allow_null=True)
    username = serializers.CharField()


class MeOutput(serializers.Serializer):
    username = serializers.CharField()
    uid = serializers.IntegerField(help_text="The main slot's uid.")
    rtm_user_id = serializers.CharField(help_text="The main slot's RTM user id: str(uid).")
    slots = serializers.DictField(
        child=serializers.IntegerField(), help_text="Every slot's uid: {slot: uid}."
    )


class RtcTokenOutput(serializers.Serializer):
    token = serializers.CharField()
    app_id = serializers.CharField()
    channel = serializers.CharField()
    uid = serializers.IntegerField()
    role = serializers.CharField()
    version = serializers.CharField()
    issued_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    expires_in = serializers.IntegerField()


class RtcRtmTokenOutput(serializers.Serializer):
    token = serializers.CharField()
    app_id = serializers.CharField()
    channel = serializers.CharField()
    uid = serializers.IntegerField()
    rtm_user_id = serializers.CharField()
    role = serializers.CharField()
    version = serializers.CharField()
    issued_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    expires_in = serializers.IntegerField()


class RtmTokenOutput(serializers.Serializer):
    token = serializers.CharField()
    app_id = serializers.CharField()
    user_id = serializers.CharField()
    version = serializers.CharField()
    issued_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    expires_in = serializers.IntegerField()


class CompatRtcOutput(serializers.Serializer):
    uid = serializers.IntegerField()
    token = serializers.CharField()


class CompatRtmOutput(serializers.Serializer):
    token = serializers.CharField()


# The bodies themselves, built directly from what issuance returns (both API paths use these;
# the serializers above describe them in the schema, and a test holds the two to each other).


def _iso(moment: datetime) -> str:
    # DRF's ISO 8601 rendering of a UTC datetime.
    return moment.isoformat().replace("+00:00", "Z")


def rtc_body(issued) -> dict:
    return {
        "token": issued.token,
        "app_id": issued.app_id,
        "channel": issued.channel,
        "uid": issued.uid,
        "role": issued.role,
        "version": issued.version,
        "issued_at": _iso(issued.issued_at),
        "expires_at": _iso(issued.expires_at),
        "expires_in": issued.expires_in,
    }


def rtc_rtm_body(issued) -> dict:
    return {
        "token": issued.token,
        "app_id": issued.app_id,
        "channel": issued.channel,
        "uid": issued.uid,
        "rtm_user_id": issued.rtm_user_id,
        "role": issued.role,
        "version": issued.version,
        "issued_at": _iso(issued.issued_at),
        "expires_at": _iso(issued.expires_at),
        "expires_in": issued.expires_in,
    }


def rtm_body(issued) -> dict:
    return {
        "token": issued.token,
        "app_id": issued.app_id,
        "user_id": issued.rtm_user_id,
        "version": issued.version,
        "issued_at": _iso(issued.issued_at),
        "expires_at": _iso(issued.expires_at),
        "expires_in": issued.expires_in,
    }


def compat_rtc_body(issued) -> dict:
    return {"uid": issued.uid, "token": issued.token}


def compat_rtm_body(issued) -> dict:
    return {"token": issued.token}


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorOutput(serializers.Serializer):
    error = ErrorDetail()


class HealthOutput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])
    database = serializers.ChoiceField(choices=["ok", "unavailable"])
    cache = serializers.ChoiceField(choices=["ok", "unavailable"])
    agora = serializers.ChoiceField(choices=["ok", "not_configured"])


class HealthErrorOutput(HealthOutput):
    """A 503 from /healthz: the error shape plus each part's state."""

    error = ErrorDetail()
    status = serializers.ChoiceField(choices=["unhealthy"])
