"""Token issuance: policy + identity + engine + audit row, in one transaction.

Keyword-only, typed, and callable from views, the admin and management commands. Errors are
TokenServiceError. Settings are read at call time.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in, user_logged_out
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from knox.models import AuthToken

from tokens import agora, validators
from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity, IssuedToken

logger = logging.getLogger(__name__)

UID_ALLOCATION_ATTEMPTS = 8
USER_AGENT_MAX = IssuedToken._meta.get_field("user_agent").max_length
POLICY_OPEN, POLICY_PERMISSION = PUBLISHER_POLICIES = ("open", "permission")


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


@dataclass(frozen=True)
class ApiLogin:
    key: str  # shown to the client once; only its SHA-512 digest is stored
    expires_at: datetime | None
    user: AbstractBaseUser


def log_in(*, request, username: str, password: str) -> ApiLogin:
    """Check a username and password and open an expiring API token for that user."""
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise TokenServiceError(
            "invalid_credentials",
            "Unable to log in with the provided username and password.",
            status=401,
        )
    instance, key = AuthToken.objects.create(user=user)
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    logger.info("api token opened user=%s", user.get_username())
    return ApiLogin(key=key, expires_at=instance.expiry, user=user)


def log_out(*, request, api_token: AuthToken) -> None:
    """Revoke the API token the request was made with."""
    user = api_token.user
    api_token.delete()
    user_logged_out.send(sender=user.__class__, request=request, user=user)
    logger.info("api token revoked user=%s", user.get_username())


def purge_expired_api_tokens(*, now: datetime | None = None) -> int:
    """Delete API tokens past their expiry; returns how many."""
    deleted, _ = AuthToken.objects.filter(expiry__lt=now or timezone.now()).delete()
    return deleted


@dataclass(frozen=True)
class DemoAccount:
    user: AbstractBaseUser
    created: bool
    password_matches: bool
    api_token: str
    uid: int


def ensure_demo_account(*, username: str, password: str) -> DemoAccount:
    """Development only: the demo user (created once, never reset) and a fresh API token."""
    if not username or not password:
        raise TokenServiceError("demo_not_configured", "Set DEMO_USERNAME and DEMO_PASSWORD.")
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(**{user_model.USERNAME_FIELD: username})
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    _, key = AuthToken.objects.create(user=user)
    identity = get_or_create_identity(user=user)
    return DemoAccount(
        user=user,
        created=created,
        password_matches=user.check_password(password),
        api_token=key,
        uid=identity.uid,
    )


def inspect_token(*, token: str) -> dict:
    """Decode a token, find its audit row by SHA-256, and verify its signature under the
    configured certificate (006 tokens carry only CRCs of channel and uid: the row supplies
    them)."""
    try:
        agora.decode(token)
    except agora.InvalidTokenError as exc:
        raise TokenServiceError("invalid_token", f"token: {exc}", fields={"token": [str(exc)]}) from None
    _, certificate = _credentials()
    record = IssuedToken.objects.filter(token_sha256=token_sha256(token)).first()
    channel = account = None
    if record is not None:
        if record.service == IssuedToken.Service.RTC:
            channel, account = record.channel, str(record.uid)
        else:
            channel, account = record.rtm_user_id, ""
    summary = agora.inspect(token, certificate, channel=channel, account=account)
    summary["audit_row"] = None if record is None else record.pk
    return summary


def token_sha256(token: str) -> str:
    """The audit log's fingerprint of a token (the token itself is never stored)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def get_or_create_identity(*, user: AbstractBaseUser) -> AgoraIdentity:
    """The user's one Agora uid, created on first need: random from `secrets`, retried on a
    unique clash, so concurrent processes and hosts can never hand out the same uid."""
    try:
        return AgoraIdentity.objects.get(user=user)
    except AgoraIdentity.DoesNotExist:
        pass
    for _ in range(UID_ALLOCATION_ATTEMPTS):
        uid = secrets.randbelow(agora.UID_MAX) + agora.UID_MIN
        try:
            with transaction.atomic():
                return AgoraIdentity.objects.create(user=user, uid=uid)
        except IntegrityError:
            # Either the uid is taken (draw again) or a concurrent request just gave this
            # user an identity (use it).
            existing = AgoraIdentity.objects.filter(user=user).first()
            if existing is not None:
                return existing
    logger.error("could not allocate an Agora uid after %d attempts", UID_ALLOCATION_ATTEMPTS)
    raise TokenServiceError(
        "uid_allocation_failed", "Could not allocate an Agora uid; try again.", status=503
    )


def _credentials() -> tuple[str, str]:
    app_id, certificate = settings.AGORA_APP_ID, settings.AGORA_APP_CERTIFICATE
    if not agora.is_hex32(app_id) or not agora.is_hex32(certificate):
        logger.error("Agora credentials are missing or malformed; run `manage.py check`")
        raise TokenServiceError(
            "agora_not_configured",
            "The token server has no valid Agora App ID and certificate configured.",
            status=503,
        )
    return app_id, certificate


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


def _check_publisher_allowed(user: AbstractBaseUser) -> None:
    policy = settings.AGORA_PUBLISHER_POLICY
    if policy == POLICY_OPEN:
        return
    if policy == POLICY_PERMISSION and user.has_perm("tokens.publish"):
        return
    raise TokenServiceError(
        "publisher_not_allowed",
        "role: this account may not request publisher tokens.",
        status=403,
        fields={"role": ["Publisher tokens need the tokens.publish permission."]},
    )


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
    app_id, certificate = _credentials()
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
        _check_publisher_allowed(user)
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
