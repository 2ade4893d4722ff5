"""Token issuance: policy + identity + engine + audit row, in one transaction.

Keyword-only, typed, and callable from views, the admin and management commands. Errors are
TokenServiceError. Settings are read at call time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tokens import agora, validators
from tokens.credentials import agora_credentials
from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity, IssuedToken, token_sha256
from tokens.policies import check_publisher_allowed
from tokens.services.identities import get_or_create_identity

logger = logging.getLogger(__name__)

USER_AGENT_MAX = IssuedToken._meta.get_field("user_agent").max_length


@dataclass(frozen=True)
class IssuedRtcToken:
    token: str
    app_id: str
    channel: str
    uid: int
    role: str
    version: str
    issued_at: datetime
    expires_at: datetime
    expires_in: int
    record: IssuedToken


@dataclass(frozen=True)
class IssuedRtmToken:
    token: str
    app_id: str
    user_id: str
    version: str
    issued_at: datetime
    expires_at: datetime
    expires_in: int
    record: IssuedToken


def _validated(field: str, validator, value):
    try:
        validator(value)
    except ValidationError as exc:
        raise TokenServiceError.from_validation_error(field, exc) from None
    return value


def _lifetime(expires_in: int | None) -> int:
    if expires_in is None:
        expires_in = settings.AGORA_TOKEN_TTL
    return _validated("expires_in", validators.validate_lifetime, expires_in)


def _version(version: str | None, source: str) -> str:
    # The tutorial's clients get the version the tutorial gave them unless configured otherwise.
    if not version:
        compat = source == IssuedToken.Source.COMPAT
        version = settings.AGORA_COMPAT_TOKEN_VERSION if compat else settings.AGORA_TOKEN_VERSION
    return _validated("version", validators.validate_version, version)


def _check_user(user: AbstractBaseUser) -> None:
    if user is None or not user.is_authenticated or not user.is_active:
        raise TokenServiceError("permission_denied", "An active user account is required.", status=403)


def _unix(now: datetime | None) -> int:
    # Agora's tokens count whole seconds.
    return int((now or timezone.now()).timestamp())


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _without_control_chars(text: str | None) -> str:
    # Headers may carry NUL and control bytes; PostgreSQL refuses NUL in text.
    return "".join(c for c in text or "" if c.isprintable())


@dataclass(frozen=True)
class _Issue:
    """What every issuance settles before it signs: who, for how long, which format."""

    user: AbstractBaseUser
    identity: AgoraIdentity
    app_id: str
    certificate: str
    lifetime: int
    version: str
    now: int

    def engine_args(self) -> dict:
        """What the engine's builders take from every issuance."""
        return {
            "app_id": self.app_id,
            "app_certificate": self.certificate,
            "lifetime": self.lifetime,
            "now": self.now,
            "version": self.version,
        }


def _prepare(
    *, user: AbstractBaseUser, expires_in: int | None, version: str | None, source: str, now: datetime | None
) -> _Issue:
    _check_user(user)
    lifetime = _lifetime(expires_in)
    version = _version(version, source)
    app_id, certificate = agora_credentials()
    identity = get_or_create_identity(user=user)
    return _Issue(user, identity, app_id, certificate, lifetime, version, _unix(now))


def _sign_and_record(
    issue: _Issue,
    build: Callable[[], agora.BuiltToken],
    *,
    service: str,
    channel: str = "",
    rtm_user_id: str = "",
    role: str = "",
    source: str,
    client_ip: str | None,
    user_agent: str,
) -> tuple[agora.BuiltToken, IssuedToken]:
    """Sign the token and write its audit row in one transaction: no row, no token."""
    with transaction.atomic():
        built = build()
        record = IssuedToken.objects.create(
            issued_at=_at(built.issued_at),
            expires_at=_at(built.expires_at),
            user=issue.user,
            username=issue.user.get_username(),
            service=service,
            version=built.version,
            channel=channel,
            uid=issue.identity.uid,
            rtm_user_id=rtm_user_id,
            role=role,
            source=source,
            client_ip=client_ip or None,
            user_agent=_without_control_chars(user_agent)[:USER_AGENT_MAX],
            token_sha256=token_sha256(built.token),
        )
    logger.info(
        "issued %s token id=%s user=%s uid=%s channel=%r role=%s version=%s source=%s sha256=%.12s",
        service, record.pk, record.username, record.uid, channel, role, built.version, source,
        record.token_sha256,
    )  # fmt: skip
    return built, record


def issue_rtc_token(
    *,
    user: AbstractBaseUser,
    channel: str,
    role: str = IssuedToken.Role.SUBSCRIBER,
    expires_in: int | None = None,
    version: str | None = None,
    source: str = IssuedToken.Source.API,
    client_ip: str | None = None,
    user_agent: str = "",
    now: datetime | None = None,
) -> IssuedRtcToken:
    """Issue an RTC token for the user's own uid in `channel` and record it."""
    _validated("channel", validators.validate_channel_name, channel)
    if role not in IssuedToken.Role.values:
        choices = ", ".join(IssuedToken.Role.values)
        raise TokenServiceError(
            "invalid", f"role: Must be one of {choices}.", fields={"role": [f"Must be one of {choices}."]}
        )
    issue = _prepare(user=user, expires_in=expires_in, version=version, source=source, now=now)
    publisher = role == IssuedToken.Role.PUBLISHER
    if publisher:
        check_publisher_allowed(user)
    built, record = _sign_and_record(
        issue,
        lambda: agora.build_rtc_token(
            **issue.engine_args(), channel=channel, uid=issue.identity.uid, publisher=publisher
        ),
        service=IssuedToken.Service.RTC,
        channel=channel,
        role=role,
        source=source,
        client_ip=client_ip,
        user_agent=user_agent,
    )
    return IssuedRtcToken(
        token=built.token,
        app_id=issue.app_id,
        channel=channel,
        uid=issue.identity.uid,
        role=role,
        version=built.version,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        expires_in=built.expires_in,
        record=record,
    )


def issue_rtm_token(
    *,
    user: AbstractBaseUser,
    expires_in: int | None = None,
    version: str | None = None,
    user_id: str | None = None,
    source: str = IssuedToken.Source.API,
    client_ip: str | None = None,
    user_agent: str = "",
    now: datetime | None = None,
) -> IssuedRtmToken:
    """Issue an RTM login token for the user's own RTM id (str(uid)) and record it.

    `user_id`, if given (the tutorial's /rtmtoken sends one), must be the caller's own id.
    """
    issue = _prepare(user=user, expires_in=expires_in, version=version, source=source, now=now)
    own_id = issue.identity.rtm_user_id
    if user_id is not None and user_id != own_id:
        raise TokenServiceError(
            "rtm_user_mismatch",
            "user: an RTM token can only be issued for your own RTM user id.",
            status=403,
            fields={"user": [f"Your RTM user id is {own_id}."]},
        )
    built, record = _sign_and_record(
        issue,
        lambda: agora.build_rtm_token(**issue.engine_args(), user_id=own_id),
        service=IssuedToken.Service.RTM,
        rtm_user_id=own_id,
        source=source,
        client_ip=client_ip,
        user_agent=user_agent,
    )
    return IssuedRtmToken(
        token=built.token,
        app_id=issue.app_id,
        user_id=own_id,
        version=built.version,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        expires_in=built.expires_in,
        record=record,
    )
