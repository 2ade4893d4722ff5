"""What each token endpoint answers: one field list per endpoint, which yields both the body
(built straight from what issuance returns) and the serializer the OpenAPI schema describes
it with, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache

from rest_framework import serializers

from tokens.services.issuance import IssuedAgoraToken


def _iso(moment: datetime) -> str:
    # DRF's ISO 8601 rendering of a UTC datetime.
    if moment.microsecond == 0 and moment.tzinfo is UTC:
        return _iso_second(moment)
    return moment.isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=256)
def _iso_second(moment: datetime) -> str:
    # A token's times are whole seconds in UTC, each the same for every token issued within a
    # second: rendered once. UTC only, as equal instants in other zones render differently.
    return moment.isoformat().replace("+00:00", "Z")


# name -> (its value in the body, the schema field describing it)
_FIELDS: dict[str, tuple[Callable[[IssuedAgoraToken], object], Callable[[], serializers.Field]]] = {
    "token": (lambda issued: issued.token, serializers.CharField),
    "app_id": (lambda issued: issued.app_id, serializers.CharField),
    "channel": (lambda issued: issued.channel, serializers.CharField),
    "uid": (lambda issued: issued.uid, serializers.IntegerField),
    "rtm_user_id": (lambda issued: issued.rtm_user_id, serializers.CharField),
    "user_id": (lambda issued: issued.rtm_user_id, serializers.CharField),  # RTM's and Chat's name for it
    "role": (lambda issued: issued.role, serializers.CharField),
    "version": (lambda issued: issued.version, serializers.CharField),
    "issued_at": (lambda issued: _iso(issued.issued_at), serializers.DateTimeField),
    "expires_at": (
        lambda issued: _iso(issued.expires_at),
        lambda: serializers.DateTimeField(
            help_text="When the token ends; for RTC, at a meeting window's end at the latest, whatever "
            "expires_in asked."
        ),
    ),
    "expires_in": (lambda issued: issued.expires_in, serializers.IntegerField),
    "publish_expires_at": (
        lambda issued: None if issued.publish_expires_at is None else _iso(issued.publish_expires_at),
        lambda: serializers.DateTimeField(
            allow_null=True,
            help_text="When publishing ends (expires_at, or earlier with publish_expires_in or a meeting "
            "window's publish rule); null for a token that publishes nothing.",
        ),
    ),
}


@dataclass(frozen=True)
class Output:
    """A token endpoint's answer: `body(issued)` and `serializer` (the schema's), both from
    `fields`."""

    name: str  # the schema component's name
    fields: tuple[str, ...]

    def body(self, issued: IssuedAgoraToken) -> dict:
        return {name: _FIELDS[name][0](issued) for name in self.fields}

    @cached_property
    def serializer(self) -> type[serializers.Serializer]:
        declared = {name: _FIELDS[name][1]() for name in self.fields}
        return type(self.name, (serializers.Serializer,), declared)


_TIMES = ("version", "issued_at", "expires_at", "expires_in")
RTC = Output("RtcTokenOutput", ("token", "app_id", "channel", "uid", "role", *_TIMES, "publish_expires_at"))
RTC_RTM = Output(
    "RtcRtmTokenOutput",
    ("token", "app_id", "channel", "uid", "rtm_user_id", "role", *_TIMES, "publish_expires_at"),
)
RECORDER = Output("RecorderTokenOutput", ("token", "app_id", "channel", "uid", "role", *_TIMES))
RTM = Output("RtmTokenOutput", ("token", "app_id", "user_id", *_TIMES))
CHAT = Output("ChatTokenOutput", ("token", "app_id", "user_id", "issued_at", "expires_at", "expires_in"))
CHAT_APP = Output("ChatAppTokenOutput", ("token", "app_id", "issued_at", "expires_at", "expires_in"))
COMPAT_RTC = Output("CompatRtcOutput", ("uid", "token"))
COMPAT_RTM = Output("CompatRtmOutput", ("token",))
