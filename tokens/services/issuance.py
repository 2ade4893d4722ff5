"""Token issuance, one straight line: validate -> identity -> build -> record -> answer.

Keyword-only, typed, and callable from the API, the admin and management commands. Errors are
TokenServiceError. Settings are read at call time. The audit row is one statement in
autocommit that re-reads its caller (tokens/statements.py): committed before the token leaves
this function, and never written for an API key revoked or a user deactivated meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.utils import timezone

from tokens import agora, metrics, validators
from tokens.choices import (
    MAIN_SLOT,
    NO_RIGHTS,
    RECORDER_SLOT,
    ROLE_RIGHTS,
    Role,
    Service,
    Source,
    rights_text,
)
from tokens.credentials import signing_credentials
from tokens.exceptions import TokenServiceError, authentication_failed, throttled
from tokens.joinpath import statements
from tokens.models import IssuedToken, token_sha256
from tokens.policies import admit, check_chat_app_allowed, check_recorder_allowed
from tokens.services.identities import get_or_create_identity, reserved_identity
from tokens.services.moderation import ban_refusal

logger = logging.getLogger(__name__)

USER_AGENT_MAX = IssuedToken._meta.get_field("user_agent").max_length


@dataclass(frozen=True)
class IssuedAgoraToken:
    """What every issuance returns, whatever the service: the token and what it says."""

    token: str
    app_id: str
    service: str
    channel: str  # "" for RTM and Chat
    uid: int
    slot: str
    rtm_user_id: str  # RTM's or Chat's user id; "" for RTC and the Chat app token
    role: str  # "" for RTM and Chat
    version: str
    issued_at: datetime
    expires_at: datetime  # when the token (its join privilege) ends: a meeting window's end at the latest
    record_id: int  # the audit row
    publish_rights: str = ""  # what it may publish, as stored ("audio,video,data"; "": nothing)
    publish_expires_at: datetime | None = None  # when publishing ends (None: nothing published)

    @property
    def expires_in(self) -> int:
        return int((self.expires_at - self.issued_at).total_seconds())


@dataclass(frozen=True)
class Guard:
    """What the audit row's statement re-reads as it is written: the API key the request came
    with (`digest`; otherwise the user, by id), and on PostgreSQL the budget it counts in the
    same statement (`window`, see tokens/statements.py)."""

    digest: str | None = None
    window: statements.Window | None = None


def _validated(field: str, validator, value):
    try:
        validator(value)
    except ValidationError as exc:
        raise TokenServiceError.from_validation_error(field, exc) from None
    return value


def _default_version(source: str) -> str:
    # The tutorial's clients get the version the tutorial gave them unless configured otherwise.
    return settings.AGORA_COMPAT_TOKEN_VERSION if source == Source.COMPAT else settings.AGORA_TOKEN_VERSION


def _check_user(user: AbstractBaseUser) -> None:
    if user is None or not user.is_authenticated or not user.is_active:
        raise TokenServiceError("permission_denied", "An active user account is required.", status=403)


def _check_own_rtm_user_id(asked: str | None, own: str) -> None:
    # The tutorial's /rtmtoken names a user id; it can only be the caller's own.
    if asked is not None and asked != own:
        raise TokenServiceError(
            "rtm_user_mismatch",
            "user: an RTM token can only be issued for your own RTM user id.",
            status=403,
            fields={"user": [f"Your RTM user id is {own}."]},
        )


def _printable(text: str | None) -> str:
    # Headers may carry NUL and control bytes; PostgreSQL refuses NUL in text.
    return "".join(c for c in text or "" if c.isprintable())


# The screen slot's default role when a request names none (007; see _asked).
SLOT_DEFAULT_ROLES = {"screen": Role.VIDEO}


@dataclass(frozen=True)
class _Grant:
    """An RTC token's role and what it grants: the rights, the join privilege's lifetime (the
    token's) and the publish privileges', in seconds; `optional`: the rights are the slot's
    default, not asked for."""

    role: str
    rights: frozenset[str]
    lifetime: int
    publish_lifetime: int
    optional: bool = False


def _asked(
    *, service: str, role: str | None, slot: str, version: str, lifetime: int, publish_expires_in: int | None
) -> _Grant:
    """What the request asks for, its rules checked (400). A role named is asked for; none is
    the slot's default: `video` for `screen` on 007 (subscriber instead where the policies
    refuse it), else subscriber. publish_expires_in needs a role named that publishes."""
    optional, named = False, role
    if service not in (Service.RTC, Service.RTC_RTM):  # no channel, no role
        role = named = ""
    elif role is None:
        default = SLOT_DEFAULT_ROLES.get(slot) if version == agora.VERSION_007 else None
        role, optional = default or Role.SUBSCRIBER, default is not None
    else:
        _validated("role", partial(validators.validate_role, service=service), role)
    rights = ROLE_RIGHTS.get(role, NO_RIGHTS)
    publish_lifetime = lifetime
    if publish_expires_in is not None:
        check = partial(validators.validate_publish_lifetime, role=named)
        # Longer than the token: publishing ends with it (the join privilege bounds every other).
        publish_lifetime = min(lifetime, _validated("publish_expires_in", check, publish_expires_in))
    grants = partial(validators.validate_version_grants, rights=rights, publish_expires_in=publish_expires_in)
    _validated("version", grants, version)
    return _Grant(role, rights, lifetime, publish_lifetime, optional)


def _seconds_until(moment: datetime | None, now: int, lifetime: int) -> int:
    # A lifetime cut short at `moment` (the policies made sure at least a second is left).
    return lifetime if moment is None else min(lifetime, int(moment.timestamp()) - now)


def _granted(grant: _Grant, *, user: AbstractBaseUser, channel: str, version: str, now: datetime) -> _Grant:
    """What the policies grant of it at `now` (403 otherwise): a meeting window's end cuts the
    join privilege, publishing ends first or with it (006: every privilege together). The
    recorder's permission admits it to any channel, whatever the channel policy."""
    if grant.role == Role.RECORDER:
        check_recorder_allowed(user)
        return grant
    admission = admit(user, channel, grant.rights, now=now, optional=grant.optional)
    role, rights = grant.role, admission.publish_rights
    if rights != grant.rights:
        role = Role.SUBSCRIBER  # the slot's default, refused: a listener
    unix_now = int(now.timestamp())
    lifetime = _seconds_until(admission.join_ends_at, unix_now, grant.lifetime)
    publish_lifetime = min(grant.publish_lifetime, lifetime)
    publish_lifetime = _seconds_until(admission.publish_ends_at, unix_now, publish_lifetime)
    if version == agora.VERSION_006 and rights:
        lifetime = publish_lifetime
    return _Grant(role, rights, lifetime, publish_lifetime)


def _build(
    service: str, *, app_id: str, certificate: str, channel: str, uid: int, publish: dict[str, int],
    lifetime: int, now: int, version: str,
) -> agora.BuiltToken:  # fmt: skip
    common = {"app_id": app_id, "app_certificate": certificate, "now": now}
    rtc = {**common, "channel": channel, "uid": uid, "join_lifetime": lifetime, "publish": publish}
    if service == Service.RTC:
        return agora.build_rtc_token_with_privileges(**rtc, version=version)
    if service == Service.RTC_RTM:
        return agora.build_rtc_rtm_token_with_privileges(**rtc)
    if service == Service.CHAT:
        return agora.build_chat_user_token(**common, lifetime=lifetime, user_id=str(uid))
    if service == Service.CHAT_APP:
        return agora.build_chat_app_token(**common, lifetime=lifetime)
    return agora.build_rtm_token(**common, lifetime=lifetime, user_id=str(uid), version=version)


_RTC = agora.SERVICE_NAMES[agora.SERVICE_RTC]
_JOIN = agora.PRIVILEGE_NAMES[agora.SERVICE_RTC][agora.PRIVILEGE_JOIN_CHANNEL]


def _publish_expires_at(built: agora.BuiltToken) -> datetime | None:
    """When the token's first publish privilege ends, as the engine built it; None: none granted."""
    ends = [end for name, end in built.privilege_expires_at.get(_RTC, {}).items() if name != _JOIN]
    return datetime.fromtimestamp(min(ends), tz=UTC) if ends else None


def _refused(
    guard: Guard | None,
    outcome: statements.Outcome,
    *,
    user,
    channel: str,
    rights: frozenset[str],
    now: datetime,
) -> TokenServiceError:
    """Why the audit row's statement wrote nothing: the caller is gone or inactive, the budget
    is spent, or a ban refuses the channel's token (403 `banned`, the ban looked up here)."""
    window = guard and guard.window
    if (
        window is not None
        and outcome.active
        and outcome.counted is not None
        and outcome.counted > window.limit
    ):
        return throttled(max(1, int((outcome.resets_at - now).total_seconds() + 0.999)))  # DRF's order
    if guard is not None and guard.digest is not None and not outcome.found and guard.window is None:
        # The INSERT's own condition hides which: ask (an error path; one more query).
        caller = statements.find_caller(guard.digest, now=now)
        active = caller is not None and caller.user_fields["is_active"]
        outcome = statements.Outcome(found=caller is not None, active=active)
    elif guard is None or guard.digest is None:
        outcome = statements.Outcome(found=True, active=True)  # by user id: checked active above
    if outcome.found and outcome.active and channel:
        return ban_refusal(user=user, channel=channel, rights=rights, now=now)
    if guard is None or guard.digest is None:
        return TokenServiceError("permission_denied", "An active user account is required.", status=403)
    return authentication_failed("User inactive or deleted." if outcome.found else "Invalid token.")


def issue_token(
    *,
    user: AbstractBaseUser,
    service: str,
    channel: str = "",
    role: str | None = None,
    expires_in: int | None = None,
    publish_expires_in: int | None = None,
    version: str | None = None,
    slot: str = MAIN_SLOT,
    rtm_user_id: str | None = None,
    source: str = Source.API,
    client_ip: str | None = None,
    user_agent: str = "",
    uid: int | None = None,
    issued_by: AbstractBaseUser | None = None,
    guard: Guard | None = None,
    now: datetime | None = None,
) -> IssuedAgoraToken:
    """Issue an Agora token of `service` (rtc, rtm, rtc+rtm, chat, chat-app) for the user's own
    uid in `slot` and record it, signed with the certificate AGORA_SIGNING_CERTIFICATE names.

    chat: the user's Agora Chat token, user id str(uid) as RTM's. chat-app: Chat's app token
    (the app server's REST API credential), for staff with tokens.chat_app only; its row
    names the staff user's uid and no user id.

    `role`: what the RTC token may publish (publisher, audio, video, data; subscriber: nothing;
    None: the slot's default), `publish_expires_in`: seconds until publishing ends, if before
    the token does. Role `recorder`: a join-only token for the channel's reserved recorder uid
    (staff or tokens.record), not the user's. The channel policy may shorten the token (a
    meeting window's end) and refuse it (`not_started`, `ended`); `now` is the clock.

    `uid`: the user's uid for `slot` when the caller already has it (the API reads it with
    the API token, in the same query); otherwise it is looked up, or drawn on first need.
    `rtm_user_id`: what the tutorial's /rtmtoken asked for; it must be the caller's own.
    `issued_by`: the admin issuing it for `user` (the admin's temporary-token page).
    `guard`: the API key the request came with, re-read as the audit row is written (401 if
    it was revoked meanwhile), and the budget that statement counts (429 when spent).
    """
    # validate
    _validated("service", validators.validate_service, service)
    _validated("slot", validators.validate_slot, slot)
    joins_channel = service in (Service.RTC, Service.RTC_RTM)
    if joins_channel:
        _validated("channel", validators.validate_channel_name, channel)
    else:
        channel = ""
    lifetime = _validated(
        "expires_in",
        validators.validate_lifetime,
        settings.AGORA_TOKEN_TTL if expires_in is None else expires_in,
    )
    if service == Service.RTC_RTM:
        version = _validated("version", validators.validate_rtc_rtm_version, version or agora.VERSION_007)
    elif service in (Service.CHAT, Service.CHAT_APP):
        version = _validated("version", validators.validate_chat_version, version or agora.VERSION_007)
    else:
        default = agora.VERSION_007 if role == Role.RECORDER else _default_version(source)
        version = _validated("version", validators.validate_version, version or default)
    grant = _asked(
        service=service, role=role, slot=slot, version=version, lifetime=lifetime,
        publish_expires_in=publish_expires_in,
    )  # fmt: skip
    _check_user(user)
    signing = signing_credentials()
    if service == Service.CHAT_APP:
        check_chat_app_allowed(user)
    now = now or timezone.now()
    if joins_channel:
        grant = _granted(grant, user=user, channel=channel, version=version, now=now)
    role = grant.role
    # identity
    if role == Role.RECORDER:
        slot, uid = RECORDER_SLOT, reserved_identity(channel=channel).uid
    elif uid is None:
        uid = get_or_create_identity(user=user, slot=slot).uid
    own_rtm_user_id = "" if service in (Service.RTC, Service.CHAT_APP) else str(uid)
    if service == Service.RTM:
        _check_own_rtm_user_id(rtm_user_id, own_rtm_user_id)
    # build
    unix_now = int(now.timestamp())  # Agora's tokens count whole seconds
    built = _build(
        service, app_id=signing.app_id, certificate=signing.certificate, channel=channel, uid=uid,
        publish=dict.fromkeys(grant.rights, grant.publish_lifetime), lifetime=grant.lifetime, now=unix_now,
        version=version,
    )  # fmt: skip
    issued_at = datetime.fromtimestamp(built.issued_at, tz=UTC)
    expires_at = datetime.fromtimestamp(built.expires_at, tz=UTC)
    publish_rights, publish_expires_at = rights_text(grant.rights), _publish_expires_at(built)
    # record: committed before the token is returned (no row, no token)
    fingerprint = token_sha256(built.token)
    values = {
        "issued_at": issued_at, "expires_at": expires_at, "service": service, "version": built.version,
        "channel": channel, "uid": uid, "slot": slot, "rtm_user_id": own_rtm_user_id, "role": role,
        "publish_rights": publish_rights, "publish_expires_at": publish_expires_at,
        "source": source, "client_ip": client_ip or None,
        "user_agent": _printable(user_agent)[:USER_AGENT_MAX],
        "token_sha256": fingerprint, "issued_by_id": issued_by.pk if issued_by is not None else None,
        "certificate": signing.fingerprint,
    }  # fmt: skip
    outcome = statements.record(
        values, digest=guard and guard.digest, user_id=user.pk, window=guard and guard.window, now=now
    )
    if outcome.record_id is None:
        raise _refused(guard, outcome, user=user, channel=channel, rights=grant.rights, now=now)
    record_id = outcome.record_id
    metrics.count_token(service=service, version=built.version, source=source, role=role)

    logger.info(
        "issued %s token id=%s user=%s uid=%s slot=%s channel=%r role=%s version=%s source=%s sha256=%.12s "
        "certificate=%s",
        service, record_id, outcome.username, uid, slot, channel, role, built.version, source, fingerprint,
        signing.fingerprint,
    )  # fmt: skip
    # answer
    return IssuedAgoraToken(
        token=built.token, app_id=signing.app_id, service=service, channel=channel, uid=uid, slot=slot,
        rtm_user_id=own_rtm_user_id, role=role, version=built.version, issued_at=issued_at,
        expires_at=expires_at, record_id=record_id, publish_rights=publish_rights,
        publish_expires_at=publish_expires_at,
    )  # fmt: skip
