"""Request budgets: a fixed-window counter per (scope, caller), one atomic operation each.

DRF's own throttles read, append to and rewrite a pickled list of every request time in the
window, per request; two processes doing that at once can both let through the request that
goes over the limit. Here each request is one atomic increment of the window's counter, so N
are allowed in a window and never N+1, across every process that shares the counter:

- in the cache (`ScopedThrottle`): a Lua INCR+EXPIRE on Redis, one round trip; a locked
  increment in local memory. Logins, and on SQLite the token endpoints (`TokenBudget`).
- on PostgreSQL, the token endpoints' budget is a database counter (tokens.models.Counter)
  counted by the very statement that writes the token's audit row (tokens/joinpath/
  statements.py), so the budget costs no round trip of its own, and it is counted only for a
  caller whose key and account still hold: a revoked key cannot spend its former owner's
  budget. A request that ends without a token (refused, invalid) is counted by `settle`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import suppress
from functools import lru_cache

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from redis.exceptions import NoScriptError
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from tokens.clients import client_ip
from tokens.exceptions import TokenServiceError, authentication_failed, throttled
from tokens.joinpath import statements
from tokens.joinpath.authentication import INACTIVE, INVALID, ApiCaller, forget

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Increment the window's counter and start its expiry with the first hit, atomically.
_INCR_LUA = (
    "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n"
)
_SKIP_LOG_INTERVAL = 10.0  # seconds between "budget skipped" log lines while the cache is down


class CacheUnavailableError(Exception):
    """The shared cache could not be reached."""


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> tuple[int, int]:
    """'120/min' -> (120, 60): DRF's rate syntax (N/s, N/sec, N/m, N/min, N/h, N/hour, N/d, N/day)."""
    try:
        count, period = rate.split("/")
        return int(count), _PERIODS[period.strip()[0].lower()]
    except (ValueError, KeyError, IndexError):
        raise ImproperlyConfigured(
            f"Bad throttle rate {rate!r}; use N/sec, N/min, N/hour or N/day."
        ) from None


def rate_for(scope: str) -> tuple[int, int]:
    """The (limit, window seconds) configured for a scope, read when asked (settings may change)."""
    try:
        return parse_rate(api_settings.DEFAULT_THROTTLE_RATES[scope])
    except KeyError:
        raise ImproperlyConfigured(f"No throttle rate set for scope {scope!r}.") from None


_INCR_SHA = hashlib.sha1(_INCR_LUA.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)


def _redis_incr(backend: RedisCache, key: str, ttl: int) -> int:
    full_key = backend.make_and_validate_key(key)
    # Django's RedisCache has no atomic increment-with-expiry, so the command goes to a pooled
    # connection of its own pool directly: redis-py's client object (built anew by Django on
    # every call) and its command machinery cost ~0.3 ms a request, the command itself 0.05.
    pool = backend._cache._get_connection_pool(write=True)
    connection = pool.get_connection()
    try:
        try:
            connection.send_command("EVALSHA", _INCR_SHA, 1, full_key, ttl)
            return int(connection.read_response())
        except NoScriptError:  # first call on this Redis server: EVAL also caches the script there
            connection.send_command("EVAL", _INCR_LUA, 1, full_key, ttl)
            return int(connection.read_response())
    except Exception:
        connection.disconnect()  # a broken or confused connection is not handed out again
        raise
    finally:
        pool.release(connection)


def increment(key: str, ttl: int) -> int:
    """Atomically add one to the counter at `key` (created with a `ttl`-second life) and return it."""
    cache = caches["default"]
    try:
        if isinstance(cache, RedisCache):
            return _redis_incr(cache, key, ttl)
        try:
            return cache.incr(key)
        except ValueError:  # no counter yet in this window
            if cache.add(key, 1, ttl):
                return 1
            return cache.incr(key)
    except Exception as exc:  # the backend's own error types (redis, memcached, ...) differ
        raise CacheUnavailableError(type(exc).__name__) from exc


def _window_key(scope: str, ident: str, now: float, window: int) -> tuple[str, int]:
    window_index = int(now // window)
    return f"throttle:{scope}:{ident}:{window_index}", window_index


def hit(scope: str, ident: str, *, now: float | None = None) -> int | None:
    """Count one request of `ident` against `scope`'s budget: None when allowed, else the whole
    seconds until the window ends. Raises CacheUnavailableError when the cache cannot count."""
    limit, window = rate_for(scope)
    now = time.time() if now is None else now
    key, window_index = _window_key(scope, ident, now, window)
    count = increment(key, window + 1)
    if count <= limit:
        return None
    return max(1, int((window_index + 1) * window - now + 0.999))


def give_back(scope: str, ident: str, *, at: float) -> None:
    """Take back the request counted at `at` (a revoked key found out later must not have spent
    its former owner's budget); nothing if the cache cannot."""
    key, _ = _window_key(scope, ident, at, rate_for(scope)[1])
    with suppress(Exception):  # gone, expired, or the cache is down: nothing to give back
        caches["default"].decr(key)


_last_skip_log = 0.0


def log_skipped_budget(scope: str) -> None:
    """Say, at most every few seconds per process, that a budget was not enforced."""
    global _last_skip_log
    now = time.monotonic()
    if now - _last_skip_log >= _SKIP_LOG_INTERVAL:
        _last_skip_log = now
        logger.warning("cache unavailable: the %r request budget is not enforced until it is back", scope)


class ScopedThrottle(BaseThrottle):
    """The view's `throttle_scope` budget per user (per client IP when anonymous, the same IP
    the audit log records, so a client-sent X-Forwarded-For opens no new budget).

    When the cache is down the view's `throttle_fails_open` decides: token requests go on
    unbudgeted (the skip is logged), login answers 503, because guessing must never go
    unthrottled.
    """

    @staticmethod
    def ident(request) -> str:
        user = request.user
        return (
            f"user:{user.pk}" if user and user.is_authenticated else f"ip:{client_ip(request) or 'unknown'}"
        )

    def allow_request(self, request, view):
        return self.charge(view.throttle_scope, self.ident(request), view, now=time.time())

    def charge(self, scope: str, ident: str, view, *, now: float) -> bool:
        try:
            wait = hit(scope, ident, now=now)
        except CacheUnavailableError:
            if getattr(view, "throttle_fails_open", False):
                log_skipped_budget(scope)
                return True
            raise TokenServiceError(
                "cache_unavailable", "The cache is unavailable; try again shortly.", status=503
            ) from None
        if wait is not None:
            raise throttled(wait)
        return True


def window_for(scope: str, user) -> statements.Window:
    """The database counter of `user`'s budget in `scope` (PostgreSQL)."""
    limit, seconds = rate_for(scope)
    # The window length in the key: a new period starts a new count, as the cache's keys do.
    return statements.Window(key=f"budget:{scope}:{seconds}:{user.pk}", limit=limit, seconds=seconds)


class TokenBudget(ScopedThrottle):
    """The token endpoints' budget per user (THROTTLE_TOKENS_RATE). On PostgreSQL it is handed
    to the view as `view.budget_window` for the audit row's statement to count; elsewhere it is
    counted here, in the cache, before the request is read, and remembered as
    `view.budget_charged` so that it can be given back (`give_back`) if the key turns out to
    have been revoked."""

    def allow_request(self, request, view):
        return self.count(request.user, view, client=request)

    def count(self, user, view, *, client) -> bool:
        """Count one request of `user` (`client`: the request, for an anonymous caller's IP)."""
        if statements.budget_in_statement() and user.is_authenticated:
            view.budget_window = window_for(view.throttle_scope, user)
            return True
        scope, now = view.throttle_scope, time.time()
        ident = f"user:{user.pk}" if user.is_authenticated else f"ip:{client_ip(client) or 'unknown'}"
        allowed = self.charge(scope, ident, view, now=now)
        view.budget_charged = (scope, ident, now)
        return allowed


def settle(view, exc: Exception) -> Exception:
    """What a token request that ends without a token answers. The 401 of a key revoked
    meanwhile outranks any other error, as it would in DRF's order (a key taken from memory is
    read again here); on PostgreSQL the request is counted against its budget in the same
    statement, whose 429 outranks the request's own error too; a revoked key's budget charged
    in the cache is given back."""
    caller = view.auth if isinstance(view.auth, ApiCaller) else None
    window, view.budget_window = view.budget_window, None
    now = timezone.now()
    if isinstance(exc, TokenServiceError) and exc.code == "authentication_failed":
        revoked = exc  # the audit row's statement found the key gone
    elif window is not None:  # PostgreSQL: count it, re-reading the caller
        outcome = statements.charge(
            window=window, digest=caller and caller.digest, user_id=view.user.pk, now=now
        )
        if caller is not None and not (outcome.found and outcome.active):
            revoked = authentication_failed(INACTIVE if outcome.found else INVALID)
        elif outcome.counted is not None and outcome.counted > window.limit:
            return throttled(max(1, int((outcome.resets_at - now).total_seconds() + 0.999)))
        else:
            return exc
    elif caller is not None and not caller.fresh:
        row = statements.find_caller(caller.digest, now=now)
        active = row is not None and row.user_fields["is_active"]
        if active:
            return exc
        revoked = authentication_failed(INACTIVE if row is not None else INVALID)
    else:
        return exc
    if caller is not None:
        forget(caller.digest)
    charged = getattr(view, "budget_charged", None)
    if charged is not None:
        scope, ident, at = charged
        give_back(scope, ident, at=at)
    return revoked
