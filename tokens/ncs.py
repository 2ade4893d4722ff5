"""Agora Notifications (NCS): the RTC channel event format and its signature.

Pure functions over bytes, like tokens/agora.py for tokens: no ORM, no settings. What Agora
documents (docs.agora.io, "Channel event types"; AgoraIO/agora_doc_source):

- Agora POSTs JSON, signed with the secret shown in Agora Console: `Agora-Signature-V2` is
  the hex HMAC-SHA256 of the raw body (`Agora-Signature` the older HMAC-SHA1).
- The body: `{"noticeId": str, "productId": 1, "eventType": int, "notifyMs": int (ms, updated
  on every resend), "sid": str, "payload": {...}}`; RTC channel events are productId 1.
- The payload: `channelName` and `ts` (s, when the event happened) always; user events add
  `uid`, `clientSeq` (per-user order), `platform`, leaves `reason` and `duration`.
- Unless answered 200 within a few seconds Agora sends the same noticeId again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

# Agora's product id for RTC channel events; other products (recording, STT...) number their
# events from 1 or 101 too, with other meanings.
RTC_PRODUCT_ID = 1

CHANNEL_CREATE = 101
CHANNEL_DESTROY = 102
BROADCASTER_JOIN = 103
BROADCASTER_LEAVE = 104
AUDIENCE_JOIN = 105
AUDIENCE_LEAVE = 106
COMMUNICATION_JOIN = 107
COMMUNICATION_LEAVE = 108
ROLE_TO_BROADCASTER = 111
ROLE_TO_AUDIENCE = 112

# Events about one user in a channel: their payload names the uid.
USER_EVENT_TYPES = frozenset(
    {
        BROADCASTER_JOIN,
        BROADCASTER_LEAVE,
        AUDIENCE_JOIN,
        AUDIENCE_LEAVE,
        COMMUNICATION_JOIN,
        COMMUNICATION_LEAVE,
        ROLE_TO_BROADCASTER,
        ROLE_TO_AUDIENCE,
    }
)
KNOWN_EVENT_TYPES = USER_EVENT_TYPES | {CHANNEL_CREATE, CHANNEL_DESTROY}
# Events that start or end a channel's session: everyone's presence ends there.
SESSION_EVENT_TYPES = frozenset({CHANNEL_CREATE, CHANNEL_DESTROY})
JOIN_EVENT_TYPES = frozenset({BROADCASTER_JOIN, AUDIENCE_JOIN, COMMUNICATION_JOIN})
LEAVE_EVENT_TYPES = frozenset({BROADCASTER_LEAVE, AUDIENCE_LEAVE, COMMUNICATION_LEAVE})
ROLE_CHANGE_EVENT_TYPES = frozenset({ROLE_TO_BROADCASTER, ROLE_TO_AUDIENCE})

# The role each join or role change gives its uid (live broadcasting's two, communication's one).
BROADCASTER, AUDIENCE, COMMUNICATION = ROLES = ("broadcaster", "audience", "communication")
ROLE_OF = {
    BROADCASTER_JOIN: BROADCASTER,
    AUDIENCE_JOIN: AUDIENCE,
    COMMUNICATION_JOIN: COMMUNICATION,
    ROLE_TO_BROADCASTER: BROADCASTER,
    ROLE_TO_AUDIENCE: AUDIENCE,
}

# A leave's payload `reason` 5: the uid joined from another device, which forced this one out;
# the uid itself is still in the channel.
LEAVE_REASON_NEW_DEVICE = 5

# The payload's `platform`.
PLATFORMS = {0: "other", 1: "android", 2: "ios", 5: "windows", 6: "linux", 7: "web", 8: "macos"}

# The health-test event Agora sends when the Notifications callback is saved in its Console.
HEALTH_TEST_CHANNEL = "test_webhook"
HEALTH_TEST_UID = 12121212

MAX_NOTICE_ID = 128
MAX_CHANNEL = 64  # Agora: channel names are at most 64 bytes
MAX_EVENT_TYPE = 2**31 - 1
UID_MAX = 2**32 - 1  # Agora uids are unsigned 32-bit
CLIENT_SEQ_STORED_MAX = 2**63 - 1  # Agora: UInt64; a database bigint holds up to here
MAX_UNIX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


class InvalidNotificationError(ValueError):
    """The body is not an Agora event; `field` names the part that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotJsonError(InvalidNotificationError):
    """The body is not JSON at all."""


@dataclass(frozen=True)
class Notification:
    """One channel event, as Agora sent it (`body`) and as it is filed."""

    notice_id: str
    product_id: int
    event_type: int
    channel: str
    uid: int | None
    client_seq: int | None
    occurred_at: datetime | None  # payload ts, else notifyMs; None when Agora sent neither
    body: dict


def signature(body: bytes, secret: str) -> str:
    """The `Agora-Signature-V2` Agora sends with `body`: hex HMAC-SHA256 under the secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, header: str, secret: str) -> bool:
    """Does `header` carry the body's signature? Compared in constant time."""
    expected = signature(body, secret).encode("ascii")
    # Bytes, not str: compare_digest refuses non-ASCII text, and a header may hold any.
    return hmac.compare_digest(expected, header.strip().lower().encode("utf-8", "backslashreplace"))


def _reject_constant(name: str):
    raise NotJsonError("body", f"body: not JSON ({name} is not a JSON number).")


def _check_text(data: object) -> None:
    # The database cannot store NUL in text or JSON (PostgreSQL), nor a lone surrogate in
    # UTF-8; valid JSON from Agora carries neither. Iterative: nesting depth is the client's.
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise InvalidNotificationError("body", "body: a string contains a NUL character.")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidNotificationError("body", "body: a string is not valid Unicode.") from None


def _integer(data: dict, key: str, where: str, low: int, high: int | None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    name = f"{where}{key}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidNotificationError(name, f"{name}: must be an integer.")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise InvalidNotificationError(name, f"{name}: must be {bound}.")
    return value


def _rtc_payload(payload: dict, event_type: int) -> tuple[str, int | None, int | None, int | None]:
    """An RTC channel event's channel, uid, clientSeq and ts, each checked when present; a
    known event type must name its channel, and a user event its uid."""
    channel = payload.get("channelName", "")
    if not isinstance(channel, str) or len(channel) > MAX_CHANNEL:
        raise InvalidNotificationError(
            "payload.channelName",
            f"payload.channelName: must be a string of at most {MAX_CHANNEL} characters.",
        )
    uid = _integer(payload, "uid", "payload.", 0, UID_MAX)
    client_seq = _integer(payload, "clientSeq", "payload.", 0, None)
    ts = _integer(payload, "ts", "payload.", 0, MAX_UNIX_SECONDS)
    if event_type in KNOWN_EVENT_TYPES and not channel:
        raise InvalidNotificationError("payload.channelName", "payload.channelName: required.")
    if event_type in USER_EVENT_TYPES and uid is None:
        raise InvalidNotificationError("payload.uid", "payload.uid: required.")
    if client_seq is not None and client_seq > CLIENT_SEQ_STORED_MAX:
        client_seq = None  # beyond a bigint: kept in the body only
    return channel, uid, client_seq, ts


def parse(body: bytes) -> Notification:
    """Read one notification; InvalidNotificationError (NotJsonError) says what is not Agora's shape."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except InvalidNotificationError:
        raise
    except RecursionError:
        raise NotJsonError("body", "body: JSON nested too deeply.") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise NotJsonError("body", f"body: not JSON ({type(exc).__name__}).") from None
    if not isinstance(data, dict):
        raise InvalidNotificationError("body", "body: must be a JSON object (an Agora notification).")
    _check_text(data)

    notice_id = data.get("noticeId")
    if not isinstance(notice_id, str) or not 1 <= len(notice_id) <= MAX_NOTICE_ID:
        raise InvalidNotificationError(
            "noticeId", f"noticeId: required, a string of 1..{MAX_NOTICE_ID} characters."
        )
    for key in ("productId", "eventType"):
        if data.get(key) is None:
            raise InvalidNotificationError(key, f"{key}: required.")
    product_id = _integer(data, "productId", "", 0, None)
    event_type = _integer(data, "eventType", "", 0, MAX_EVENT_TYPE)
    notify_ms = _integer(data, "notifyMs", "", 0, MAX_UNIX_SECONDS * 1000)
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise InvalidNotificationError("payload", "payload: must be a JSON object.")

    if product_id != RTC_PRODUCT_ID:
        # Another product's notification (recording, STT...): its payload has other fields.
        channel, uid, client_seq, ts = "", None, None, None
    else:
        channel, uid, client_seq, ts = _rtc_payload(payload, event_type)

    # When it happened; notifyMs (when Agora sent it, updated on every resend) only without ts.
    seconds = ts if ts is not None else None if notify_ms is None else notify_ms / 1000
    return Notification(
        notice_id=notice_id,
        product_id=product_id,
        event_type=event_type,
        channel=channel,
        uid=uid,
        client_seq=client_seq,
        occurred_at=None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC),
        body=data,
    )
