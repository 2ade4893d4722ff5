"""Request and response shapes, and the strict fields every input is made of: JSON types as
documented, unknown fields rejected by name, Agora's rules applied by the shared validators.
The token endpoints' own shapes are in tokens/joinpath/inputs.py and outputs.py."""

from collections.abc import Mapping

from rest_framework import serializers

from tokens import agora, ncs, validators


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
    # Combinations of fields refused together (JSON Schema, from tokens.validators): the
    # schema says each is refused (allOf: not).
    refused_combinations: tuple[dict, ...] = ()

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


class LoginInput(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, style={"input_type": "password"})


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


class ParticipantOutput(serializers.Serializer):
    uid = serializers.IntegerField()
    you = serializers.BooleanField(help_text="Whether this uid is one of yours (any of your slots).")
    username = serializers.CharField(
        allow_null=True, help_text="The owner's username: shown for your own uids (staff see everyone's)."
    )
    slot = serializers.CharField(
        allow_null=True, help_text="The owner's slot: shown for your own uids (staff see everyone's)."
    )
    role = serializers.ChoiceField(choices=ncs.ROLES)
    joined_at = serializers.DateTimeField(help_text="When Agora reported the join (its ts).")
    platform = serializers.ChoiceField(choices=sorted(set(ncs.PLATFORMS.values())), allow_null=True)


class ParticipantsOutput(serializers.Serializer):
    channel = serializers.CharField()
    participants = ParticipantOutput(many=True, help_text="By time of joining.")
    as_of = serializers.DateTimeField(help_text="Computed from the channel events received until then.")


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


# --- moderation ---------------------------------------------------------------------------------


def _uid_field(help_text: str) -> StrictIntegerField:
    return StrictIntegerField(
        required=False, min_value=agora.UID_MIN, max_value=agora.UID_MAX, help_text=help_text
    )


class _ModerationTarget(StrictSerializer):
    """Whom an action is about: a username or one of the user's uids (exactly one)."""

    refused_combinations = tuple(validators.MODERATION_TARGET_REFUSALS)

    username = StrictCharField(required=False, max_length=150, help_text="The user to moderate.")
    uid = _uid_field("Or one of the user's uids (any slot): the action covers all of them.")
    reason = StrictCharField(required=False, default="", max_length=200, help_text="Kept with the action.")

    def validate(self, attrs):
        if ("username" in attrs) == ("uid" in attrs):
            message = "Give a username or a uid (exactly one)."
            raise serializers.ValidationError({"username": [message], "uid": [message]})
        return attrs


class ModerationInput(_ModerationTarget):
    refused_combinations = (*validators.MODERATION_TARGET_REFUSALS, *validators.MODERATION_DURATION_REFUSALS)
    action = StrictChoiceField(
        choices=["kick", "ban", "mute_audio", "mute_video"],
        help_text="kick: out once (they may rejoin with a new token); ban: kept out; mute_audio, "
        "mute_video: kept from publishing it (subscriber tokens still issue).",
    )
    minutes = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=1440,
        help_text="How long a ban or mute lasts, 1..1440; not with a kick.",
    )


class LiftInput(_ModerationTarget):
    action = StrictChoiceField(
        choices=["ban", "mute_audio", "mute_video"],
        required=False,
        help_text="Lift only bans (or only audio or video mutes); default: every active one.",
    )


class ModerationActionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField(source="kind")
    channel = serializers.CharField()
    username = serializers.CharField(help_text="Whom it is about; empty for a uid no user owns.")
    uids = serializers.ListField(child=serializers.IntegerField(), help_text="Every uid it applies to.")
    seconds = serializers.IntegerField(allow_null=True, help_text="A ban's or mute's length; 0: a kick.")
    ends_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=["pending", "applied", "failed", "lifted"])
    failure = serializers.CharField(help_text="Why it failed, or the last error while it is retried.")
    reason = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by_name")
    requested_at = serializers.DateTimeField()
    applied_at = serializers.DateTimeField(allow_null=True)
    lifts = serializers.IntegerField(
        source="lifts_id", allow_null=True, help_text="A lift: the ban it lifts."
    )


class ActiveBansOutput(serializers.Serializer):
    channel = serializers.CharField()
    bans = ModerationActionOutput(many=True)


class LiftOutput(serializers.Serializer):
    lifted = ModerationActionOutput(many=True, help_text="The lift actions, one per ban or mute.")
