"""Building 006 and 007 tokens: the only module that imports agora_token_builder (006,
AccessToken) and agoraiotools (007, AccessToken2, Agora's own Python port). Deterministic given
its inputs: pass `now` and `salt`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agora_token_builder.AccessToken import AccessToken as AccessToken006
from agoraiotools.AccessToken2 import AccessToken as AccessToken007
from agoraiotools.AccessToken2 import ServiceChat as ServiceChat007
from agoraiotools.AccessToken2 import ServiceRtc as ServiceRtc007
from agoraiotools.AccessToken2 import ServiceRtm as ServiceRtm007

from tokens.agora.formats import (
    MAX_LIFETIME,
    PRIVILEGE_CHAT_APP,
    PRIVILEGE_CHAT_USER,
    PRIVILEGE_JOIN_CHANNEL,
    PRIVILEGE_NAMES,
    PRIVILEGE_RTM_LOGIN_006,
    PRIVILEGE_RTM_LOGIN_007,
    PUBLISH_RIGHTS,
    PUBLISHER_PRIVILEGES,
    SERVICE_CHAT,
    SERVICE_NAMES,
    SERVICE_RTC,
    SERVICE_RTM,
    SUBSCRIBER_PRIVILEGES,
    TS_006_OFFSET,
    UID_MAX,
    UID_MIN,
    VERSION_007,
    VERSIONS,
    is_hex32,
    new_salt,
)


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
    salt: int,
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
    _check_uint32("salt", salt, 1)
    token = AccessToken007(app_id, app_certificate, issue_ts=issue_ts, expire=expire)
    # The library draws its own salt and keeps it private; the engine decides it instead.
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
    salt: int,
) -> str:
    """Sign a 006 token. Privilege values are absolute unix times; RTM puts the user id in
    `channel` and leaves `account` empty (Agora's design)."""
    _check_credentials(app_id, app_certificate)
    _check_uint32("ts", ts, 1)
    _check_uint32("salt", salt, 1)
    if not privileges:
        raise ValueError("a 006 token needs at least one privilege")
    token = AccessToken006(app_id, app_certificate, channel, "")
    token.uidStr = account  # set directly: the constructor turns uid 0 into "" but keeps "0"
    token.ts = ts
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
    salt = new_salt() if salt is None else salt
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
        salt=new_salt() if salt is None else salt,
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
    salt = new_salt() if salt is None else salt
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
        salt=new_salt() if salt is None else salt,
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
