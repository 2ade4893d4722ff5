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

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.utils import timezone

from tokens import agora, metrics, validators
from tokens.choices import MAIN_SLOT, Role, Service, Source
from tokens.credentials import signing_credentials
from tokens.exceptions import TokenServiceError, authentication_failed, throttled
from tokens.joinpath import statements
from tokens.models import IssuedToken, token_sha256
from tokens.policies import check_channel_allowed, check_chat_app_allowed, check_publisher_allowed
from tokens.services.identities import get_or_create_identity

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
    expires_at: datetime
    record_id: int  # the audit row

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


def _build(
    service: str, *, app_id: str, certificate: str, channel: str, uid: int, role: str, lifetime: int,
    now: int, version: str,
) -> agora.BuiltToken:  # fmt: skip
    common = {"app_id": app_id, "app_certificate": certificate, "lifetime": lifetime, "now": now}
    publisher = role == Role.PUBLISHER
    if service == Service.RTC:
        return agora.build_rtc_token(**common, channel=channel, uid=uid, publisher=publisher, version=version)
    if service == Service.RTC_RTM:
        return agora.build_rtc_rtm_token(**common, channel=channel, uid=uid, publisher=publisher)
    if service == Service.CHAT:
        return agora.build_chat_user_token(**common, user_id=str(uid))
    if service == Service.CHAT_APP:
        return agora.build_chat_app_token(**common)
    return agora.build_rtm_token(**common, user_id=str(uid), version=version)


def _refused(guard: Guard | None, outcome: statements.Outcome, *, now: datetime) -> TokenServiceError:
    """Why the audit row's statement wrote nothing: the caller is gone or inactive, or the
    budget is spent."""
    if guard is None or guard.digest is None:
        return TokenServiceError("permission_denied", "An active user account is required.", status=403)
    if outcome.found and outcome.active and outcome.resets_at is not None:  # counted, over the limit
        return throttled(max(1, int((outcome.resets_at - now).total_seconds() + 0.999)))
    if not outcome.found and guard.window is None:
        # The INSERT's own condition hides which: ask (an error path; one more query).
        caller = statements.find_caller(guard.digest, now=now)
        outcome = statements.Outcome(found=caller is not None)
    return authentication_failed("User inactive or deleted." if outcome.found else "Invalid token.")


def issue_token(
    *,
    user: AbstractBaseUser,
    service: str,
    channel: str = "",
    role: str = Role.SUBSCRIBER,
    expires_in: int | None = None,
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
        _validated("role", validators.validate_role, role)
    else:
        channel, role = "", ""
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
        version = _validated("version", validators.validate_version, version or _default_version(source))
    _check_user(user)
    signing = signing_credentials()
    if role == Role.PUBLISHER:
        check_publisher_allowed(user)
    if service == Service.CHAT_APP:
        check_chat_app_allowed(user)
    if joins_channel:
        check_channel_allowed(user, channel, role)
    # identity
    if uid is None:
        uid = get_or_create_identity(user=user, slot=slot).uid
    own_rtm_user_id = "" if service in (Service.RTC, Service.CHAT_APP) else str(uid)
    if service == Service.RTM:
        _check_own_rtm_user_id(rtm_user_id, own_rtm_user_id)
    # build
    now = now or timezone.now()
    unix_now = int(now.timestamp())  # Agora's tokens count whole seconds
    built = _build(
        service, app_id=signing.app_id, certificate=signing.certificate, channel=channel, uid=uid,
        role=role, lifetime=lifetime, now=unix_now, version=version,
    )  # fmt: skip
    issued_at = datetime.fromtimestamp(built.issued_at, tz=UTC)
    expires_at = datetime.fromtimestamp(built.expires_at, tz=UTC)
    # record: committed before the token is returned (no row, no token)
    fingerprint = token_sha256(built.token)
    values = {
        "issued_at": issued_at, "expires_at": expires_at, "service": service, "version": built.version,
        "channel": channel, "uid": uid, "slot": slot, "rtm_user_id": own_rtm_user_id, "role": role,
        "source": source, "client_ip": client_ip or None,
        "user_agent": _printable(user_agent)[:USER_AGENT_MAX],
        "token_sha256": fingerprint, "issued_by_id": issued_by.pk if issued_by is not None else None,
        "certificate": signing.fingerprint,
    }  # fmt: skip
    outcome = statements.record(
        values, digest=guard and guard.digest, user_id=user.pk, window=guard and guard.window, now=now
    )
    if outcome.record_id is None:
        raise _refused(guard, outcome, now=now)
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
        expires_at=expires_at, record_id=record_id,
    )  # fmt: skip
