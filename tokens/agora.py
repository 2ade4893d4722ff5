"""The token engine: build, decode and verify Agora 006 and 007 tokens.

Pure functions, deterministic given their inputs (pass `now` and `salt`; without a salt, the
library's own random one); no ORM, no settings.
This is the only module that imports agora_token_builder (006, AccessToken) and agoraiotools
(007, AccessToken2, Agora's own Python port), and the one place that knows the formats.

Times are unix seconds. 007 carries the issue time and lifetimes relative to it; 006 carries
absolute expiry times and a `ts` that Agora's builders set to issue time + 24 h, after which
Agora rejects the token (so a 006 token lives at most 24 h, and RTM 006 exactly 24 h: Agora
ignores the RTM login privilege's own expiry).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from agora_token_builder.AccessToken import AccessToken as AccessToken006
from agoraiotools.AccessToken2 import AccessToken as AccessToken007
from agoraiotools.AccessToken2 import ServiceChat as ServiceChat007
from agoraiotools.AccessToken2 import ServiceRtc as ServiceRtc007
from agoraiotools.AccessToken2 import ServiceRtm as ServiceRtm007

VERSION_006 = "006"
VERSION_007 = "007"
VERSIONS = (VERSION_006, VERSION_007)

UID_MIN = 1  # uid 0 is Agora's wildcard (any uid may use the token): never issued
UID_MAX = 2**32 - 1
MAX_LIFETIME = 86400  # Agora caps a token's life at 24 h
TS_006_OFFSET = 86400  # 006 builders stamp ts = issue time + 24 h

# 007 service types, as AgoraIO/Tools' AccessToken2 ports define them (ConvoAI and STT: in
# Agora's npm package agora-token 2.0.6).
SERVICE_RTC = 1
SERVICE_RTM = 2
SERVICE_STREAMING = 3  # publish a mixed or a raw stream
SERVICE_FPA = 4  # Full-path Accelerator: login
SERVICE_CHAT = 5  # Agora Chat: a user's or the app server's token
SERVICE_FCDN = 6  # Fusion CDN: publish, play
SERVICE_APAAS = 7  # APaaS (its builder was "education" before): room user, user, app
SERVICE_RTM2 = 8  # RTM login with per-resource read/write permissions
SERVICE_CONVOAI = 9  # Conversational AI agents: no privilege of its own
SERVICE_STT = 10  # real-time speech to text: no privilege of its own
PRIVILEGE_JOIN_CHANNEL = 1
PRIVILEGE_PUBLISH_AUDIO = 2
PRIVILEGE_PUBLISH_VIDEO = 3
PRIVILEGE_PUBLISH_DATA = 4
PRIVILEGE_RTM_LOGIN_007 = 1
PRIVILEGE_RTM_LOGIN_006 = 1000
PRIVILEGE_CHAT_USER = 1  # a chat user's token
PRIVILEGE_CHAT_APP = 2  # the app server's token for Chat's REST API

PUBLISHER_PRIVILEGES = (
    PRIVILEGE_JOIN_CHANNEL,
    PRIVILEGE_PUBLISH_AUDIO,
    PRIVILEGE_PUBLISH_VIDEO,
    PRIVILEGE_PUBLISH_DATA,
)
SUBSCRIBER_PRIVILEGES = (PRIVILEGE_JOIN_CHANNEL,)

# The publish rights a caller grants by name, each an RTC privilege with its own expiry (007).
PUBLISH_AUDIO = "audio"
PUBLISH_VIDEO = "video"
PUBLISH_DATA = "data"
PUBLISH_RIGHTS = {
    PUBLISH_AUDIO: PRIVILEGE_PUBLISH_AUDIO,
    PUBLISH_VIDEO: PRIVILEGE_PUBLISH_VIDEO,
    PUBLISH_DATA: PRIVILEGE_PUBLISH_DATA,
}

# Names as Agora's sources spell them (AgoraIO/Tools, AccessToken2 in every language port).
SERVICE_NAMES = {
    SERVICE_RTC: "rtc",
    SERVICE_RTM: "rtm",
    SERVICE_STREAMING: "streaming",
    SERVICE_FPA: "fpa",
    SERVICE_CHAT: "chat",
    SERVICE_FCDN: "fcdn",
    SERVICE_APAAS: "apaas",
    SERVICE_RTM2: "rtm2",
    SERVICE_CONVOAI: "convoai",
    SERVICE_STT: "stt",
}
PRIVILEGE_NAMES: dict[int, dict[int, str]] = {
    SERVICE_RTC: {
        PRIVILEGE_JOIN_CHANNEL: "join_channel",
        PRIVILEGE_PUBLISH_AUDIO: "publish_audio_stream",
        PRIVILEGE_PUBLISH_VIDEO: "publish_video_stream",
        PRIVILEGE_PUBLISH_DATA: "publish_data_stream",
    },
    SERVICE_RTM: {PRIVILEGE_RTM_LOGIN_007: "login"},
    SERVICE_STREAMING: {1: "publish_mix_stream", 2: "publish_raw_stream"},
    SERVICE_FPA: {1: "login"},
    SERVICE_CHAT: {PRIVILEGE_CHAT_USER: "user", PRIVILEGE_CHAT_APP: "app"},
    SERVICE_FCDN: {1: "publish", 2: "play"},
    SERVICE_APAAS: {1: "room_user", 2: "user", 3: "app"},
    SERVICE_RTM2: {1: "login"},
    SERVICE_CONVOAI: {},  # Agora's builder grants the service with no privilege
    SERVICE_STT: {},  # likewise
}
PRIVILEGE_NAMES_006 = {
    SERVICE_RTC: PRIVILEGE_NAMES[SERVICE_RTC],
    SERVICE_RTM: {PRIVILEGE_RTM_LOGIN_006: "login"},
}
# RTM2's permissions: resource type -> permission type -> resource names.
RTM2_RESOURCE_NAMES = {
    0: "message_channels",
    1: "stream_channels",
    2: "group_channels",
    3: "server_groups",
    4: "users",
}
RTM2_PERMISSION_NAMES = {0: "read", 1: "write"}

# Agora's builders draw salts from 1..99999999 (secrets.SystemRandom, when each token object is
# made); a salt given to the builders below must be in that range too.
SALT_MAX = 99_999_999

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_APP_ID_LENGTH = 32


class InvalidTokenError(ValueError):
    """The string is not a well-formed 006 or 007 token."""


@dataclass(frozen=True)
class BuiltToken:
    """A freshly built token and the true moments it was issued and stops working.

    `privilege_expires_at`: service name -> privilege name -> unix time it ends, for example
    {"rtc": {"join_channel": t1, "publish_audio_stream": t2}}; a privilege not granted is absent.
    """

    token: str
    version: str
    issued_at: int
    expires_at: int
    privilege_expires_at: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def expires_in(self) -> int:
        return self.expires_at - self.issued_at


@dataclass(frozen=True)
class DecodedService:
    """One service inside a token: its privileges and whom it names.

    A service type this engine does not know keeps its bytes in `raw` (see decode()).
    """

    type: int
    privileges: dict[int, int]
    channel: str | None = None  # RTC, Streaming, FCDN (007); APaaS: the room uuid
    account: str | None = None  # RTC uid as signed ("" = wildcard), Streaming, FCDN (007)
    user_id: str | None = None  # RTM, Chat, RTM2 (007); APaaS: the user uuid
    role: int | None = None  # APaaS
    permissions: dict[int, dict[int, tuple[str, ...]]] | None = None  # RTM2
    raw: bytes | None = None  # unknown type: every byte after its type number

    @property
    def name(self) -> str:
        return SERVICE_NAMES.get(self.type, "unknown")


@dataclass(frozen=True)
class PrivilegeExpiry:
    """When one privilege of a decoded token ends; None: it has no expiry of its own."""

    privilege: int
    name: str
    seconds: int | None  # after the token's issue time
    expires_at: int | None  # unix time


@dataclass(frozen=True)
class DecodedToken:
    """Every field of a 006 or 007 token.

    007: privileges are seconds after `issued_at`. 006: privileges are absolute unix times,
    the channel and uid are carried only as CRC32s, and `issued_at` is inferred from `ts`.
    """

    version: str
    app_id: str
    issued_at: int
    expires_at: int
    salt: int
    services: tuple[DecodedService, ...]
    signature: bytes
    signed_content: bytes  # the bytes the signature covers (006: without channel and uid)
    ts: int | None = None  # 006
    channel_crc: int | None = None  # 006
    account_crc: int | None = None  # 006
    declared_services: int = 1  # how many services the token says it carries

    def service(self, service_type: int) -> DecodedService | None:
        return next((s for s in self.services if s.type == service_type), None)

    @property
    def complete(self) -> bool:
        """False when an unknown service type stopped the decoding (see decode())."""
        return all(s.raw is None for s in self.services)


def is_hex32(value: object) -> bool:
    """True when value is a 32-character hex string (the form of an App ID and certificate)."""
    return isinstance(value, str) and _HEX32.fullmatch(value) is not None


# --- building ---------------------------------------------------------------------------------


def _check_credentials(app_id: str, app_certificate: str) -> None:
    if not is_hex32(app_id):
        raise ValueError("app_id must be 32 hex characters")
    if not is_hex32(app_certificate):
        raise ValueError("app_certificate must be 32 hex characters")


def _check_uint32(name: str, value: int, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= UID_MAX:
        raise ValueError(f"{name} must be an integer in {low}..{UID_MAX}")


def build_007(
    *,
    app_id: str,
    app_certificate: str,
    issue_ts: int,
    expire: int,
    salt: int | None = None,
    rtc: tuple[str, int, Mapping[int, int]] | None = None,
    rtm: tuple[str, Mapping[int, int]] | None = None,
    chat: tuple[str, Mapping[int, int]] | None = None,
) -> str:
    """Sign a 007 token: rtc=(channel, uid, privileges), rtm=(user_id, privileges),
    chat=(user_id, privileges; "" for an app token).

    Privilege values are seconds after issue_ts, as Agora's format wants.
    """
    _check_credentials(app_id, app_certificate)
    _check_uint32("issue_ts", issue_ts, 1)
    _check_uint32("expire", expire)
    token = AccessToken007(app_id, app_certificate, issue_ts=issue_ts, expire=expire)
    if salt is not None:
        # The library has drawn its own salt (kept private); the caller decides it instead.
        _check_uint32("salt", salt, 1)
        token._AccessToken__salt = salt
    services = []
    if rtc is not None:
        channel, uid, privileges = rtc
        _check_uint32("uid", uid, UID_MIN)
        services.append((ServiceRtc007(channel, uid), privileges))
    if rtm is not None:
        services.append((ServiceRtm007(rtm[0]), rtm[1]))
    if chat is not None:
        services.append((ServiceChat007(chat[0]), chat[1]))
    for service, privileges in services:
        for privilege, value in privileges.items():
            service.add_privilege(privilege, value)
        token.add_service(service)
    result = token.build()
    # build() answers '' instead of raising when the credentials or services are unusable.
    if not result:
        raise ValueError("agoraiotools refused to build the token (no service?)")
    return result


def build_006(
    *,
    app_id: str,
    app_certificate: str,
    channel: str,
    account: str,
    privileges: Mapping[int, int],
    ts: int,
    salt: int | None = None,
) -> str:
    """Sign a 006 token. Privilege values are absolute unix times; RTM puts the user id in
    `channel` and leaves `account` empty (Agora's design)."""
    _check_credentials(app_id, app_certificate)
    _check_uint32("ts", ts, 1)
    if salt is not None:
        _check_uint32("salt", salt, 1)
    if not privileges:
        raise ValueError("a 006 token needs at least one privilege")
    token = AccessToken006(app_id, app_certificate, channel, "")  # draws its own salt
    token.uidStr = account  # set directly: the constructor turns uid 0 into "" but keeps "0"
    token.ts = ts
    if salt is not None:
        token.salt = salt
    for privilege, value in privileges.items():
        _check_uint32("privilege expiry", value)
        token.addPrivilege(privilege, value)
    return token.build()


def _check_lifetime(lifetime: int, name: str = "lifetime") -> None:
    if isinstance(lifetime, bool) or not isinstance(lifetime, int):
        raise ValueError(f"{name} must be an integer")
    if not 1 <= lifetime <= MAX_LIFETIME:
        raise ValueError(f"{name} must be within 1..{MAX_LIFETIME} seconds")


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}")


def _check_channel(channel: str) -> None:
    if not channel:
        raise ValueError("channel must not be empty")


def _rtc_privileges(join_lifetime: int, publish: Mapping[str, int | None]) -> dict[int, int]:
    """The RTC privileges, in seconds after issue, that a join lifetime and publish rights grant."""
    _check_lifetime(join_lifetime, "join lifetime")
    unknown = sorted(str(right) for right in publish if right not in PUBLISH_RIGHTS)
    if unknown:
        raise ValueError(f"publish rights are {', '.join(PUBLISH_RIGHTS)}, not {', '.join(unknown)}")
    privileges = {PRIVILEGE_JOIN_CHANNEL: join_lifetime}
    for right, lifetime in publish.items():
        if lifetime is None:
            continue  # not granted
        _check_lifetime(lifetime, f"publish {right} lifetime")
        if lifetime > join_lifetime:
            # Agora removes the user when the join privilege ends, whatever else is left.
            raise ValueError(
                f"publish {right} lifetime ({lifetime} s) must not exceed the join lifetime "
                f"({join_lifetime} s): the user is removed when the join privilege expires"
            )
        privileges[PUBLISH_RIGHTS[right]] = lifetime
    return dict(sorted(privileges.items()))


def _expiries(service_type: int, privileges: Mapping[int, int], now: int) -> dict[str, int]:
    """Privilege name -> unix time it ends, from privileges in seconds after `now`."""
    names = PRIVILEGE_NAMES[service_type]
    return {names[privilege]: now + seconds for privilege, seconds in sorted(privileges.items())}


def build_rtc_token_with_privileges(
    *,
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int,
    join_lifetime: int,
    publish: Mapping[str, int | None],
    now: int,
    version: str = VERSION_007,
    salt: int | None = None,
) -> BuiltToken:
    """An RTC token whose privileges end each on its own: join after `join_lifetime` seconds,
    and `publish` maps "audio", "video", "data" to a lifetime (None or absent: not granted),
    none longer than the join's. The token expires with the join privilege. 006 has no
    per-media rights: there, all three for the join lifetime or none."""
    _check_version(version)
    privileges = _rtc_privileges(join_lifetime, publish)
    _check_uint32("uid", uid, UID_MIN)
    _check_channel(channel)
    if version == VERSION_007:
        token = build_007(
            app_id=app_id,
            app_certificate=app_certificate,
            issue_ts=now,
            expire=join_lifetime,
            salt=salt,
            rtc=(channel, uid, privileges),
        )
    else:
        granted = tuple(privileges)
        if granted not in (PUBLISHER_PRIVILEGES, SUBSCRIBER_PRIVILEGES) or len(set(privileges.values())) > 1:
            raise ValueError(
                "version 006 cannot grant publish audio, video or data apart or for less than the "
                "join lifetime (its rights are all or nothing): grant all three for the join "
                "lifetime, or none, or use version 007"
            )
        token = build_006(
            app_id=app_id,
            app_certificate=app_certificate,
            channel=channel,
            account=str(uid),
            privileges={privilege: now + seconds for privilege, seconds in privileges.items()},
            ts=now + TS_006_OFFSET,
            salt=salt,
        )
    return BuiltToken(
        token=token,
        version=version,
        issued_at=now,
        expires_at=now + join_lifetime,
        privilege_expires_at={SERVICE_NAMES[SERVICE_RTC]: _expiries(SERVICE_RTC, privileges, now)},
    )


def _role_rights(publisher: bool, lifetime: int) -> dict[str, int]:
    # Publisher: every publish right for the whole lifetime; subscriber: none.
    return dict.fromkeys(PUBLISH_RIGHTS, lifetime) if publisher else {}


def build_rtc_token(
    *,
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int,
    publisher: bool,
    lifetime: int,
    now: int,
    version: str = VERSION_007,
    salt: int | None = None,
) -> BuiltToken:
    """An RTC token for one uid in one channel: publisher gets join + publish audio, video and
    data; subscriber gets join only. Every privilege lasts `lifetime` seconds from `now`."""
    _check_version(version)
    _check_lifetime(lifetime)
    return build_rtc_token_with_privileges(
        app_id=app_id,
        app_certificate=app_certificate,
        channel=channel,
        uid=uid,
        join_lifetime=lifetime,
        publish=_role_rights(publisher, lifetime),
        now=now,
        version=version,
        salt=salt,
    )


def build_rtc_rtm_token_with_privileges(
    *,
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int,
    join_lifetime: int,
    publish: Mapping[str, int | None],
    now: int,
    salt: int | None = None,
) -> BuiltToken:
    """One 007 token carrying the RTC service with per-privilege expiries (as
    build_rtc_token_with_privileges) and the RTM service (user id str(uid), login for the join
    lifetime), as Agora's RtcTokenBuilder2.build_token_with_rtm2 makes it. 006 cannot carry two
    services."""
    privileges = _rtc_privileges(join_lifetime, publish)
    _check_uint32("uid", uid, UID_MIN)
    _check_channel(channel)
    rtm_privileges = {PRIVILEGE_RTM_LOGIN_007: join_lifetime}
    token = build_007(
        app_id=app_id,
        app_certificate=app_certificate,
        issue_ts=now,
        expire=join_lifetime,
        salt=salt,
        rtc=(channel, uid, privileges),
        rtm=(str(uid), rtm_privileges),
    )
    return BuiltToken(
        token=token,
        version=VERSION_007,
        issued_at=now,
        expires_at=now + join_lifetime,
        privilege_expires_at={
            SERVICE_NAMES[SERVICE_RTC]: _expiries(SERVICE_RTC, privileges, now),
            SERVICE_NAMES[SERVICE_RTM]: _expiries(SERVICE_RTM, rtm_privileges, now),
        },
    )


def build_rtc_rtm_token(
    *,
    app_id: str,
    app_certificate: str,
    channel: str,
    uid: int,
    publisher: bool,
    lifetime: int,
    now: int,
    salt: int | None = None,
) -> BuiltToken:
    """One 007 token carrying the RTC service (channel, uid, the role's privileges) and the RTM
    service (user id str(uid)), as Agora's RtcTokenBuilder2.build_token_with_rtm makes it;
    every privilege lasts `lifetime` seconds from `now`. 006 cannot carry two services."""
    _check_lifetime(lifetime)
    return build_rtc_rtm_token_with_privileges(
        app_id=app_id,
        app_certificate=app_certificate,
        channel=channel,
        uid=uid,
        join_lifetime=lifetime,
        publish=_role_rights(publisher, lifetime),
        now=now,
        salt=salt,
    )


def build_rtm_token(
    *,
    app_id: str,
    app_certificate: str,
    user_id: str,
    lifetime: int,
    now: int,
    version: str = VERSION_007,
    salt: int | None = None,
) -> BuiltToken:
    """An RTM login token for one user id. 007 honours `lifetime`; 006 is always valid 24 h
    (Agora ignores the privilege's expiry), and the result says so."""
    _check_version(version)
    _check_lifetime(lifetime)
    if not user_id:
        raise ValueError("user_id must not be empty")
    if version == VERSION_007:
        token = build_007(
            app_id=app_id,
            app_certificate=app_certificate,
            issue_ts=now,
            expire=lifetime,
            salt=salt,
            rtm=(user_id, {PRIVILEGE_RTM_LOGIN_007: lifetime}),
        )
        return BuiltToken(
            token=token,
            version=version,
            issued_at=now,
            expires_at=now + lifetime,
            privilege_expires_at={SERVICE_NAMES[SERVICE_RTM]: {"login": now + lifetime}},
        )
    ts = now + TS_006_OFFSET
    token = build_006(
        app_id=app_id,
        app_certificate=app_certificate,
        channel=user_id,
        account="",
        # Stamp the privilege with the expiry that really applies, so the token reads true.
        privileges={PRIVILEGE_RTM_LOGIN_006: ts},
        ts=ts,
        salt=salt,
    )
    return BuiltToken(
        token=token,
        version=version,
        issued_at=now,
        expires_at=ts,
        privilege_expires_at={SERVICE_NAMES[SERVICE_RTM]: {"login": ts}},
    )


def _build_chat_token(
    *,
    app_id: str,
    app_certificate: str,
    user_id: str,
    privilege: int,
    lifetime: int,
    now: int,
    salt: int | None,
) -> BuiltToken:
    _check_lifetime(lifetime)
    privileges = {privilege: lifetime}
    token = build_007(
        app_id=app_id,
        app_certificate=app_certificate,
        issue_ts=now,
        expire=lifetime,
        salt=salt,
        chat=(user_id, privileges),
    )
    return BuiltToken(
        token=token,
        version=VERSION_007,
        issued_at=now,
        expires_at=now + lifetime,
        privilege_expires_at={SERVICE_NAMES[SERVICE_CHAT]: _expiries(SERVICE_CHAT, privileges, now)},
    )


def build_chat_user_token(
    *,
    app_id: str,
    app_certificate: str,
    user_id: str,
    lifetime: int,
    now: int,
    salt: int | None = None,
) -> BuiltToken:
    """An Agora Chat user token (007 only) for one chat user id, valid `lifetime` seconds from
    `now`, as Agora's ChatTokenBuilder2.build_user_token makes it."""
    if not user_id:
        raise ValueError("user_id must not be empty")
    return _build_chat_token(
        app_id=app_id,
        app_certificate=app_certificate,
        user_id=user_id,
        privilege=PRIVILEGE_CHAT_USER,
        lifetime=lifetime,
        now=now,
        salt=salt,
    )


def build_chat_app_token(
    *,
    app_id: str,
    app_certificate: str,
    lifetime: int,
    now: int,
    salt: int | None = None,
) -> BuiltToken:
    """An Agora Chat app token (007 only): the app server's credential for Chat's REST API,
    never a client's; as Agora's ChatTokenBuilder2.build_app_token makes it."""
    return _build_chat_token(
        app_id=app_id,
        app_certificate=app_certificate,
        user_id="",
        privilege=PRIVILEGE_CHAT_APP,
        lifetime=lifetime,
        now=now,
        salt=salt,
    )


# --- decoding ---------------------------------------------------------------------------------


class _Reader:
    """Little-endian reader over Agora's packed bytes that refuses to read past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise InvalidTokenError("token content is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def uint32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def int16(self) -> int:
        return struct.unpack("<h", self.take(2))[0]

    def bytes_(self) -> bytes:
        return self.take(self.uint16())

    def text(self) -> str:
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidTokenError("token carries a string that is not UTF-8") from exc

    def uint32_map(self) -> dict[int, int]:
        return {self.uint16(): self.uint32() for _ in range(self.uint16())}

    def rest(self) -> bytes:
        return self.data[self.pos :]

    def end(self) -> None:
        if self.pos != len(self.data):
            raise InvalidTokenError("token has trailing bytes")


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidTokenError("token is not valid base64") from exc


def _decode_007(body: str) -> DecodedToken:
    try:
        # Bound the output: a real token inflates to well under 64 KiB.
        inflater = zlib.decompressobj()
        raw = inflater.decompress(_b64(body), 65536)
        if inflater.unconsumed_tail or not inflater.eof:
            raise InvalidTokenError("token content is not a complete zlib stream")
    except zlib.error as exc:
        raise InvalidTokenError("token content is not zlib-compressed") from exc
    reader = _Reader(raw)
    signature = reader.bytes_()
    signed = reader.rest()
    app_id = reader.text()
    issue_ts = reader.uint32()
    expire = reader.uint32()
    salt = reader.uint32()
    declared = reader.uint16()
    services = []
    for _ in range(declared):
        service_type = reader.uint16()
        if service_type not in SERVICE_NAMES:
            # A service's payload carries no length, so nothing past an unknown type can be
            # located: keep its bytes and stop, as Agora's own parsers do.
            services.append(DecodedService(service_type, {}, raw=reader.rest()))
            break
        services.append(_read_service(reader, service_type))
    else:
        reader.end()
    return DecodedToken(
        version=VERSION_007,
        app_id=app_id,
        issued_at=issue_ts,
        expires_at=issue_ts + expire,
        salt=salt,
        services=tuple(services),
        signature=signature,
        signed_content=signed,
        declared_services=declared,
    )


def _read_service(reader: _Reader, service_type: int) -> DecodedService:
    """One known 007 service after its type number: privileges, then its own fields."""
    privileges = reader.uint32_map()
    if service_type in (SERVICE_RTC, SERVICE_STREAMING, SERVICE_FCDN):
        channel = reader.text()
        account = reader.text()
        return DecodedService(service_type, privileges, channel=channel, account=account)
    if service_type in (SERVICE_RTM, SERVICE_CHAT):
        return DecodedService(service_type, privileges, user_id=reader.text())
    if service_type == SERVICE_APAAS:
        room, user = reader.text(), reader.text()
        return DecodedService(service_type, privileges, channel=room, user_id=user, role=reader.int16())
    if service_type == SERVICE_RTM2:
        user = reader.text()
        permissions: dict[int, dict[int, tuple[str, ...]]] = {}
        for _ in range(reader.uint16()):
            by_permission = permissions.setdefault(reader.uint16(), {})
            for _ in range(reader.uint16()):
                permission = reader.uint16()
                by_permission[permission] = tuple(reader.text() for _ in range(reader.uint16()))
        return DecodedService(service_type, privileges, user_id=user, permissions=permissions)
    return DecodedService(service_type, privileges)  # FPA, ConvoAI, STT: privileges only


def _decode_006(body: str) -> DecodedToken:
    app_id, content = body[:_APP_ID_LENGTH], body[_APP_ID_LENGTH:]
    if not is_hex32(app_id):
        raise InvalidTokenError("006 token does not start with a 32-hex App ID")
    reader = _Reader(_b64(content))
    signature = reader.bytes_()
    channel_crc = reader.uint32()
    account_crc = reader.uint32()
    message = reader.bytes_()
    reader.end()
    inner = _Reader(message)
    salt = inner.uint32()
    ts = inner.uint32()
    privileges = inner.uint32_map()
    inner.end()
    if set(privileges) == {PRIVILEGE_RTM_LOGIN_006}:
        service = DecodedService(SERVICE_RTM, privileges)
        expires_at = ts  # Agora ignores the RTM privilege's own expiry
    else:
        service = DecodedService(SERVICE_RTC, privileges)
        expires_at = min([ts, *(value for value in privileges.values() if value)])
    return DecodedToken(
        version=VERSION_006,
        app_id=app_id,
        issued_at=ts - TS_006_OFFSET,
        expires_at=expires_at,
        salt=salt,
        services=(service,),
        signature=signature,
        signed_content=message,
        ts=ts,
        channel_crc=channel_crc,
        account_crc=account_crc,
    )


def decode(token: str) -> DecodedToken:
    """Every field of a 006 or 007 token; InvalidTokenError if it is neither.

    A 007 service of a type this engine does not know ends the decoding there: the format gives
    a service's payload no length, so its fields and any service after it cannot be located. It
    is kept as a DecodedService with `raw` set (and `complete` is False); the signature still
    covers every byte, so verify() answers for it as for any token.
    """
    if not isinstance(token, str) or not token.isascii():
        raise InvalidTokenError("token must be an ASCII string")
    version, body = token[:3], token[3:]
    try:
        if version == VERSION_007:
            return _decode_007(body)
        if version == VERSION_006:
            return _decode_006(body)
    except struct.error as exc:  # pragma: no cover - _Reader checks lengths first
        raise InvalidTokenError("token content is malformed") from exc
    raise InvalidTokenError("token version must be 006 or 007")


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF


def verify(
    token: str | DecodedToken,
    app_certificate: str,
    *,
    channel: str | None = None,
    account: str | None = None,
) -> bool:
    """True when the token's signature verifies under app_certificate.

    007 carries everything it signs. 006 signs the channel and uid but carries only their
    CRC32s, so pass the `channel` and `account` (str(uid); RTM: channel=user id, account="")
    you expect, for example from the audit row.
    """
    decoded = decode(token) if isinstance(token, str) else token
    if not is_hex32(app_certificate):
        return False
    cert = app_certificate.encode("utf-8")
    if decoded.version == VERSION_007:
        key = hmac.new(struct.pack("<I", decoded.issued_at), cert, hashlib.sha256).digest()
        key = hmac.new(struct.pack("<I", decoded.salt), key, hashlib.sha256).digest()
        expected = hmac.new(key, decoded.signed_content, hashlib.sha256).digest()
        return hmac.compare_digest(expected, decoded.signature)
    if channel is None or account is None:
        raise ValueError("a 006 token is verified against the channel and account it names")
    if _crc(channel) != decoded.channel_crc or _crc(account) != decoded.account_crc:
        return False
    message = decoded.app_id.encode("utf-8") + channel.encode("utf-8") + account.encode("utf-8")
    expected = hmac.new(cert, message + decoded.signed_content, hashlib.sha256).digest()
    return hmac.compare_digest(expected, decoded.signature)


def identify_certificate(
    token: str | DecodedToken,
    certificates: Mapping[str, str],
    *,
    channel: str | None = None,
    account: str | None = None,
) -> str | None:
    """Which of several certificates signed a token, for rotation: the label of the first in
    `certificates` (label -> certificate, e.g. {"primary": ..., "secondary": ...}) under which
    it verifies, or None. A 006 token needs its channel and account, as for verify()."""
    decoded = decode(token) if isinstance(token, str) else token
    if decoded.version == VERSION_006 and (channel is None or account is None):
        raise ValueError("a 006 token is verified against the channel and account it names")
    for label, certificate in certificates.items():
        if verify(decoded, certificate, channel=channel, account=account):
            return label
    return None


def certificate_fingerprint(app_certificate: str) -> str:
    """A short label that tells certificates apart in audit rows and logs without revealing
    them: "sha256:" and the first 8 hex digits of the SHA-256 of the certificate as given (its
    spelling is what signs, so two spellings are two keys)."""
    if not is_hex32(app_certificate):
        raise ValueError("app_certificate must be 32 hex characters")
    return "sha256:" + hashlib.sha256(app_certificate.encode("ascii")).hexdigest()[:8]


def privilege_name(version: str, service_type: int, privilege: int) -> str:
    """A privilege's name as Agora's sources spell it, or "privilege_<id>" if they name none."""
    names = PRIVILEGE_NAMES_006 if version == VERSION_006 else PRIVILEGE_NAMES
    return names.get(service_type, {}).get(privilege, f"privilege_{privilege}")


def privilege_expiries(decoded: DecodedToken, service: DecodedService) -> tuple[PrivilegeExpiry, ...]:
    """When each privilege of one decoded service ends, by privilege id.

    007 stores seconds after issue, 006 absolute unix times; 0 in either means no expiry of the
    privilege's own. RTM 006 ends with the token (Agora ignores the privilege's expiry).
    """
    expiries = []
    for privilege, value in sorted(service.privileges.items()):
        if decoded.version == VERSION_006 and service.type == SERVICE_RTM:
            expires_at: int | None = decoded.expires_at
        elif decoded.version == VERSION_006:
            expires_at = value or None
        else:
            expires_at = decoded.issued_at + value if value else None
        seconds = None if expires_at is None else expires_at - decoded.issued_at
        name = privilege_name(decoded.version, service.type, privilege)
        expiries.append(PrivilegeExpiry(privilege, name, seconds, expires_at))
    return tuple(expiries)


def _service_summary(decoded: DecodedToken, index: int, service: DecodedService) -> dict:
    summary: dict = {"type": service.name, "type_id": service.type}
    if service.raw is not None:
        after = decoded.declared_services - index - 1
        return {
            **summary,
            "raw": service.raw.hex(),
            "services_after": after,
            "note": (
                f"service type {service.type} is none that Agora's builders define here; a 007 "
                "service carries no length, so its fields and the services after it cannot be "
                "read (raw: every byte after its type number); the signature covers them all"
            ),
        }
    summary["privileges"] = {str(k): v for k, v in sorted(service.privileges.items())}
    summary["expiries"] = {
        e.name: {"id": e.privilege, "seconds": e.seconds, "expires_at": e.expires_at}
        for e in privilege_expiries(decoded, service)
    }
    if service.type == SERVICE_APAAS:
        summary.update(room_uuid=service.channel, user_uuid=service.user_id, role=service.role)
        return summary
    for key in ("channel", "account", "user_id"):
        if (value := getattr(service, key)) is not None:
            summary[key] = value
    if service.permissions is not None:
        summary["permissions"] = {
            RTM2_RESOURCE_NAMES.get(resource, f"resource_{resource}"): {
                RTM2_PERMISSION_NAMES.get(permission, f"permission_{permission}"): list(names)
                for permission, names in by_permission.items()
            }
            for resource, by_permission in service.permissions.items()
        }
    return summary


def inspect(
    token: str,
    app_certificate: str,
    *,
    channel: str | None = None,
    account: str | None = None,
) -> dict:
    """A JSON-ready summary of a token and whether its signature verifies.

    Each service: its type (name and `type_id`), raw `privileges` (id -> stored value), their
    `expiries` (name -> seconds after issue and unix time), and whom it names. For 006, pass
    the channel and account (see verify); without them `signature_valid` is None.
    """
    decoded = decode(token)
    if decoded.version == VERSION_006 and (channel is None or account is None):
        valid = None
    else:
        valid = verify(decoded, app_certificate, channel=channel, account=account)
    return {
        "version": decoded.version,
        "app_id": decoded.app_id,
        "issued_at": decoded.issued_at,
        "expires_at": decoded.expires_at,
        "salt": decoded.salt,
        "services": [_service_summary(decoded, i, s) for i, s in enumerate(decoded.services)],
        "signature_valid": valid,
    }
