"""Request budgets: a fixed-window counter per (scope, caller), one atomic cache operation each.

DRF's own throttles read, append to and rewrite a pickled list of every request time in the
window, per request; two processes doing that at once can both let through the request that
goes over the limit. Here each request is one atomic increment of the window's counter
(a Lua INCR+EXPIRE on Redis, one round trip; a locked increment in local memory), so N are
allowed in a window and never N+1, across every process that shares the cache.
"""

from __future__ import annotations

import hashlib
import logging
import time
from functools import lru_cache

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import NoScriptError
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from tokens.clients import client_ip
from tokens.exceptions import TokenServiceError

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


def hit(scope: str, ident: str, *, now: float | None = None) -> int | None:
    """Count one request of `ident` against `scope`'s budget: None when allowed, else the whole
    seconds until the window ends. Raises CacheUnavailableError when the cache cannot count."""
    limit, window = rate_for(scope)
    now = time.time() if now is None else now
    window_index = int(now // window)
    count = increment(f"throttle:{scope}:{ident}:{window_index}", window + 1)
    if count <= limit:
        return None
    return max(1, int((window_index + 1) * window - now + 0.999))


def throttled(wait: int) -> TokenServiceError:
    """The 429 every throttled request gets, with Retry-After."""
    unit = "second" if wait == 1 else "seconds"
    return TokenServiceError(
        "throttled",
        f"Request was throttled. Expected available in {wait} {unit}.",
        status=429,
        headers={"Retry-After": str(wait)},
    )


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

    def allow_request(self, request, view):
        scope = view.throttle_scope
        user = request.user
        ident = (
            f"user:{user.pk}" if user and user.is_authenticated else f"ip:{client_ip(request) or 'unknown'}"
        )
        try:
            wait = hit(scope, ident)
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
