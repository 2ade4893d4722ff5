"""Request and response shapes, and the strict fields every input is made of: JSON types as
documented, unknown fields rejected by name, Agora's rules applied by the shared validators.
The token endpoints' own shapes are in tokens/joinpath/inputs.py and outputs.py."""

from collections.abc import Mapping
from typing import NamedTuple

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import Field, SkipField, empty, get_error_detail

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


class _Step(NamedTuple):
    """One writable field, as DRF's `Serializer.to_internal_value` visits it, with what does
    not change between calls looked up once: its validate_<name> method, whether it reads the
    data as `dict.get` does, and what its absence yields."""

    name: str
    field: Field
    source_attrs: list[str]
    validate_method: object
    plain_get: bool  # Field.get_value on a dict: data.get(name, empty)
    absent: object  # _RUN (validate `empty` each time), _SKIP, or the constant default itself


_RUN, _SKIP = object(), object()


def _absent_outcome(field: Field, validate_method) -> object:
    """What `field.run_validation(empty)` gives when that never changes (an optional field
    with no default, or a constant one, and no validate_<name> to run on it): DRF's own
    answer, taken once."""
    called = field.default is not empty and callable(field.default)  # `empty` is a class
    if field.required or called or validate_method is not None:
        return _RUN
    try:
        return field.run_validation(empty)
    except SkipField:
        return _SKIP


class _Plan(NamedTuple):
    steps: tuple[_Step, ...]
    names: frozenset[str]  # every declared field, writable or not: the rest are unknown
    validators: bool  # serializer-level validators or read-only defaults to run them with


def _merged(data: object, known, validate):
    """`validate(data)`, with the unknown fields of `data` named beside its other errors."""
    unknown = _unknown_fields(data, known)
    try:
        value = validate(data)
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


class StrictSerializer(serializers.Serializer):
    """Rejects every field it does not define, naming them (up to a few), beside the other
    field errors.

    A top-level JSON object is validated by DRF's own steps with what is the same on every
    call worked out once per instance (`_plan`): each field's run_validation and validators,
    validate_<name> and validate run on every call, in DRF's order, with DRF's error
    handling; an absent optional field's outcome (skipped, or its constant default) is DRF's
    answer for it, taken on the first call. Anything else (partial, nested, not an object)
    takes DRF's steps unchanged. A token endpoint's serializer is built once and validates
    every request (tokens/joinpath/inputs.py), so this is part of every token request's cost.
    """

    rejects_unknown_fields = True  # the schema says additionalProperties: false
    # Combinations of fields refused together (JSON Schema, from tokens.validators): the
    # schema says each is refused (allOf: not).
    refused_combinations: tuple[dict, ...] = ()

    def to_internal_value(self, data):
        return _merged(data, self.fields, super().to_internal_value)

    def run_validation(self, data=empty):
        if type(data) is not dict or self.parent is not None or self.partial:
            return super().run_validation(data)
        plan = self.__dict__.get("_plan") or self._make_plan()
        value = _merged(data, plan.names, lambda data: self._fields_of(plan.steps, data))
        try:
            if plan.validators:
                self.run_validators(value)
            value = self.validate(value)
            assert value is not None, ".validate() should return the validated data"
        except (serializers.ValidationError, DjangoValidationError) as exc:
            raise serializers.ValidationError(detail=serializers.as_serializer_error(exc)) from exc
        return value

    def _make_plan(self) -> _Plan:
        steps = []
        for field in self._writable_fields:
            validate_method = getattr(self, "validate_" + field.field_name, None)
            steps.append(
                _Step(
                    name=field.field_name,
                    field=field,
                    source_attrs=field.source_attrs,
                    validate_method=validate_method,
                    plain_get=type(field).get_value is Field.get_value,
                    absent=_absent_outcome(field, validate_method),
                )
            )
        # DRF's run_validators: the serializer's validators, given read-only fields' defaults.
        defaults = any(field.read_only and field.default is not empty for field in self.fields.values())
        validators = bool(self.validators) or defaults
        self.__dict__["_plan"] = plan = _Plan(tuple(steps), frozenset(self.fields), validators)
        return plan

    def _fields_of(self, steps: tuple[_Step, ...], data: dict) -> dict:
        """DRF's Serializer.to_internal_value for a dict, step by step."""
        ret, errors = {}, {}
        for step in steps:
            primitive = data.get(step.name, empty) if step.plain_get else step.field.get_value(data)
            if primitive is empty and step.absent is not _RUN:
                if step.absent is not _SKIP:
                    self._set(ret, step, step.absent)
                continue
            try:
                value = step.field.run_validation(primitive)
                if step.validate_method is not None:
                    value = step.validate_method(value)
            except serializers.ValidationError as exc:
                errors[step.name] = exc.detail
            except DjangoValidationError as exc:
                errors[step.name] = get_error_detail(exc)
            except SkipField:
                pass
            else:
                self._set(ret, step, value)
        if errors:
            raise serializers.ValidationError(errors)
        return ret

    def _set(self, ret: dict, step: _Step, value) -> None:
        if step.source_attrs == [step.name]:
            ret[step.name] = value
        else:
            self.set_value(ret, step.source_attrs, value)


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
