"""What the token endpoints do once instead of on every request, held to what Django and DRF do
every time.

StrictSerializer validates a JSON object with DRF's own steps, what does not change between
calls worked out once per instance: these hold it to DRF's stock `Serializer.run_validation`
(same values, same errors with their codes) over bodies made of every field's good and bad
values, absent, unknown and odd, on one instance reused as the token endpoints reuse theirs.
A token's times (whole seconds in UTC) are rendered once per second, for the body and for
SQLite."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from django.db.utils import ConnectionHandler
from django.utils.timezone import override
from rest_framework import serializers

from tokens import serializers as strict
from tokens.joinpath import inputs, outputs

CLASSES = [
    inputs.RtcTokenInput,
    inputs.RtmTokenInput,
    inputs.RtcRtmTokenInput,
    inputs.ChatTokenInput,
    inputs.ChatAppTokenInput,
    inputs.RecorderTokenInput,
    inputs.CompatRtcInput,
    inputs.CompatRtmInput,
    strict.LoginInput,
    strict.ModerationInput,
    strict.LiftInput,
]

VALUES = [
    None, True, False, 0, 1, 59, 60, 600, 86_400, 10**12, -1, 1.5, "", " ", "room-1", "a" * 70,
    "x\x00y", "publisher", "subscriber", "audio", "video", "data", "006", "007", "main",
    "screen", "Bad Slot", "ban", "kick", "10", [], {}, ["room-1"],
]  # fmt: skip


def _outcome(run, data):
    try:
        return "ok", run(data)
    except serializers.ValidationError as exc:
        return "error", exc.get_full_details()


def _stock(instance):
    # DRF's Serializer.run_validation, on the same instance: its own steps, no plan.
    return lambda data: serializers.Serializer.run_validation(instance, data)


def _bodies(serializer_class):
    names = list(serializer_class().fields)
    base = {"channel": "room-1"} if "channel" in names else {}
    yield {}
    yield dict(base)
    for name, value in itertools.product(names, VALUES):
        yield {**base, name: value}
    for first, second in itertools.combinations(names, 2):
        yield {**base, first: VALUES[5], second: VALUES[14]}
    yield {**base, "unknown": 1}
    yield {**base, **{f"extra{n}": n for n in range(8)}, names[0]: None}
    yield [1, 2]
    yield "text"
    yield None


@pytest.mark.parametrize("serializer_class", CLASSES, ids=lambda cls: cls.__name__)
def test_a_reused_instance_validates_every_body_as_drfs_own_steps_do(serializer_class):
    reused = serializer_class()
    reference = serializer_class()
    compared = 0
    for data in _bodies(serializer_class):
        expected = _outcome(_stock(reference), data)
        assert _outcome(reused.run_validation, data) == expected, data
        assert _outcome(serializer_class().run_validation, data) == expected, data  # a fresh one too
        compared += 1
    assert compared > len(VALUES)
    assert "_plan" in reused.__dict__  # the plan was taken, not DRF's steps every time


class _Hooked(strict.StrictSerializer):
    calls: list
    counter: itertools.count

    slot = strict.StrictCharField(required=False, default="main")
    at = strict.StrictIntegerField(required=False, default=lambda: next(_Hooked.counter))
    note = strict.StrictCharField(required=False, source="remark")

    def validate_slot(self, value):
        self.calls.append(value)
        if value == "main":
            return "MAIN"
        raise serializers.ValidationError("Not that slot.")


def test_a_default_goes_through_its_validate_method_a_callable_one_is_called_each_time_and_source_holds():
    _Hooked.calls, _Hooked.counter = [], itertools.count()
    hooked = _Hooked()
    assert hooked.run_validation({}) == {"slot": "MAIN", "at": 0}
    assert hooked.run_validation({}) == {"slot": "MAIN", "at": 1}
    assert hooked.run_validation({"note": "n"}) == {"slot": "MAIN", "at": 2, "remark": "n"}
    with pytest.raises(serializers.ValidationError) as refused:
        hooked.run_validation({"slot": "other", "note": "n"})
    assert refused.value.detail == {"slot": ["Not that slot."]}
    assert _Hooked.calls == ["main", "main", "main", "other"]


def test_partial_and_nested_serializers_take_drfs_steps():
    partial = inputs.RtcTokenInput(partial=True)
    assert partial.run_validation({"role": "publisher"}) == {"role": "publisher"}  # channel not required
    assert "_plan" not in partial.__dict__


# --- the token endpoints' times: rendered once per second, as Django and DRF render them ---------

MOMENTS = [
    datetime(2026, 12, 7, 11, 0, 0, tzinfo=UTC),
    datetime(2026, 12, 7, 11, 0, 0, 250_000, tzinfo=UTC),
    datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
    datetime(2026, 12, 7, 12, 0, 0, tzinfo=timezone(timedelta(hours=1))),  # the same instant as the first
    datetime(2026, 12, 7, 11, 0, 0, tzinfo=ZoneInfo("Europe/Paris")),
]


def test_a_token_time_renders_as_drfs_datetime_field_renders_it_whatever_came_before():
    field = serializers.DateTimeField()
    for moment in [*MOMENTS, *reversed(MOMENTS)]:  # an equal instant in another zone is not reused
        assert outputs._iso(moment) == moment.isoformat().replace("+00:00", "Z"), moment
        if moment.tzinfo is UTC:
            with override("UTC"):
                assert outputs._iso(moment) == field.to_representation(moment), moment


def test_the_sqlite_backend_stores_a_time_as_djangos_own_backend_does():
    # Both backends' operations, on any test database (neither connects to compute these).
    handler = ConnectionHandler(
        {
            "default": {"ENGINE": "tokenserver.databases.sqlite3", "NAME": ":memory:"},
            "djangos": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        }
    )
    ours, djangos = handler["default"].ops, handler["djangos"].ops
    assert type(ours) is not type(djangos)
    for moment in [*MOMENTS, *reversed(MOMENTS), MOMENTS[0].replace(tzinfo=None)]:
        assert ours.adapt_datetimefield_value(moment) == djangos.adapt_datetimefield_value(moment), moment
