"""Accounts: API login and logout, limits on password guessing, cleanup, the demo account."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in, user_logged_out
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import F
from django.utils import timezone
from knox.models import AuthToken

from tokens.exceptions import TokenServiceError
from tokens.joinpath import statements
from tokens.models import Counter
from tokens.services.identities import get_or_create_identity

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiLogin:
    key: str  # shown to the client once; only its SHA-512 digest is stored
    expires_at: datetime | None
    user: AbstractBaseUser


def log_in(*, request, username: str, password: str) -> ApiLogin:
    """Check a username and password (within the guessing limits) and open an expiring API
    token for that user."""
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


# --- password guessing ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoginAttempt:
    """One login attempt, counted against its account and client IP before the password is
    checked; `succeeded()` gives the count back."""

    keys: tuple[str, ...]

    def succeeded(self) -> None:
        """A right password is not a guess: return the attempt to the counters it took from."""
        Counter.objects.filter(key__in=self.keys, count__gt=0).update(count=F("count") - 1)


def _account_key(username: str) -> str:
    # Hashed: a username field sometimes receives a password typed in the wrong box.
    return "account:" + hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()


def _locked(what: str, resets_at: datetime, now: datetime) -> TokenServiceError:
    wait = max(1, int((resets_at - now).total_seconds() + 0.999))
    minutes = (wait + 59) // 60
    later = f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
    return TokenServiceError(
        "login_locked",
        f"Too many failed logins for this {what}; try again in {later}.",
        status=429,
        headers={"Retry-After": str(wait)},
    )


def start_login_attempt(*, username: str, client_ip: str | None, now: datetime | None = None) -> LoginAttempt:
    """Count a login attempt against its client IP, then its account, before the password is
    checked; TokenServiceError `login_locked` (429, Retry-After) once either is over its
    limit, until its window ends. Counting first is what keeps concurrent guesses, in any
    process or host, from all passing a check that saw the same count."""
    now = now or timezone.now()
    window = settings.LOGIN_LOCKOUT_SECONDS
    limits = []
    if client_ip:
        limits.append(("ip:" + client_ip, settings.LOGIN_FAILURE_LIMIT_PER_IP, "address"))
    limits.append((_account_key(username), settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT, "account"))
    counted = []
    for key, limit, what in limits:
        attempts, resets_at = statements.count(key, now=now, seconds=window)
        counted.append(key)
        if attempts > limit:
            logger.warning(
                "login locked: %s %s has %d attempts (limit %d) until %s",
                what, username if what == "account" else client_ip, attempts, limit, resets_at.isoformat(),
            )  # fmt: skip
            raise _locked(what, resets_at, now)
    return LoginAttempt(keys=tuple(counted))


def purge_expired(*, now: datetime | None = None) -> dict[str, int]:
    """Delete API tokens past their expiry and login counters past their window."""
    now = now or timezone.now()
    api_tokens, _ = AuthToken.objects.filter(expiry__lt=now).delete()
    counters, _ = Counter.objects.filter(resets_at__lte=now).delete()
    return {"api_tokens": api_tokens, "login_counters": counters}


# --- development --------------------------------------------------------------------------------


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
