"""Request and response shapes. Inputs are strict: JSON types as documented, unknown fields
rejected by name, Agora's rules applied by the shared validators."""

from collections.abc import Mapping

from rest_framework import serializers

from tokens import agora, validators
from tokens.models import IssuedToken


class StrictCharField(serializers.CharField):
    """A JSON string, never a number or boolean coerced to one; whitespace kept as sent
    (a space is a legal, significant character in an Agora channel name)."""

    default_error_messages = {"invalid": "Must be a string."}

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
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


class StrictSerializer(serializers.Serializer):
    """Rejects every field it does not define, naming each, beside the other field errors."""

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, Mapping):
            unknown = {_shown(name): ["Unknown field."] for name in data if name not in self.fields}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not unknown:
                raise
            detail = exc.detail if isinstance(exc.detail, dict) else {"body": exc.detail}
            raise serializers.ValidationError({**detail, **unknown}) from None
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


def _version_field(help_text: str) -> StrictChoiceField:
    return StrictChoiceField(choices=agora.VERSIONS, required=False, help_text=help_text)


# --- inputs -----------------------------------------------------------------------------------


class LoginInput(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, style={"input_type": "password"})


class RtcTokenInput(StrictSerializer):
    channel = StrictCharField(
        validators=[validators.validate_channel_name],
        help_text=f"1..63 bytes of {validators.ALLOWED_CHARACTERS_TEXT}",
    )
    role = StrictChoiceField(
        choices=IssuedToken.Role.choices, default=IssuedToken.Role.SUBSCRIBER, required=False
    )
    expires_in = StrictIntegerField(
        required=False,
        validators=[validators.validate_lifetime],
        help_text="Seconds, 60..AGORA_TOKEN_MAX_TTL; default AGORA_TOKEN_TTL.",
    )
    version = _version_field("006 or 007; default AGORA_TOKEN_VERSION.")


class RtmTokenInput(StrictSerializer):
    expires_in = StrictIntegerField(
        required=False,
        validators=[validators.validate_lifetime],
        help_text="Seconds, 60..AGORA_TOKEN_MAX_TTL; default AGORA_TOKEN_TTL. "
        "006 RTM tokens are always valid 24 h, and the response says so.",
    )
    version = _version_field("006 or 007; default AGORA_TOKEN_VERSION.")


class CompatRtcInput(StrictSerializer):
    """The tutorial's POST /rtctoken body."""

    channel = StrictCharField(validators=[validators.validate_channel_name])
    isPublisher = StrictBooleanField(required=False, default=False)  # noqa: N815 (tutorial's key)

    def validate(self, attrs):
        publisher = attrs["isPublisher"]
        role = IssuedToken.Role.PUBLISHER if publisher else IssuedToken.Role.SUBSCRIBER
        return {"channel": attrs["channel"], "role": role}


class CompatRtmInput(StrictSerializer):
    """The tutorial's POST /rtmtoken body; `user`, if sent, must be the caller's RTM id."""

    user = StrictCharField(required=False, validators=[validators.validate_rtm_user_id])

    def validate(self, attrs):
        return {"user_id": attrs.get("user")}


# --- outputs ----------------------------------------------------------------------------------


class LoginOutput(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`. Shown once.")
    expires_at = serializers.DateTimeField(allow_null=True)
    username = serializers.CharField()


class MeOutput(serializers.Serializer):
    username = serializers.CharField()
    uid = serializers.IntegerField()
    rtm_user_id = serializers.CharField()


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


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorOutput(serializers.Serializer):
    error = ErrorDetail()
