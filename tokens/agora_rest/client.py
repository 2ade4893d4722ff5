"""Agora's Channel Management REST API: ban rules (kick, ban from joining or publishing) and
who is in a channel.

What Agora documents (docs.agora.io, API reference > RTC > Channel management), and what this
module does with it:

- `https://api.agora.io`, JSON both ways, HTTP Basic auth with a RESTful API key's Customer
  ID and Customer Secret (Agora Console, Developer Toolkit > RESTful API), not the App
  Certificate. 401: unknown App ID or a key that does not match; 429: too many requests
  (10 per second per account, 20 for the online-statistics queries); errors carry `message`.
- `POST /dev/v1/kicking-rule {appid, cname?, uid?, ip?, time | time_in_seconds, privileges}`
  -> `{status: "success", id}`. `time` is minutes in 1..1440, `time_in_seconds` 10..86430;
  Agora clamps other values to the nearest bound (this client refuses them instead, so a ban
  never lasts other than asked), 0 only kicks (the user may rejoin at once), neither means
  60 minutes (this client always sends one). `GET ?appid=` lists the rules, `PUT {appid, id,
  time | time_in_seconds}` changes a rule's duration, `DELETE {appid, id}` removes it.
- Agora's advice for rules: keep the id the POST answers, wait at least 20 s for it, and after
  a timeout or a 504 look the rule up in the list before trying again. This client does so
  before it repeats a POST whose answer was lost, so a retried ban does not leave a second
  rule behind that an unban would not lift.
- `GET /dev/v1/channel/user/{appid}/{channel}` (`.../hosts_only`: the hosts alone) and
  `GET /dev/v1/channel/user/property/{appid}/{uid}/{channel}` say who is in a channel.

Every call reads its settings when it runs (AGORA_CUSTOMER_ID, AGORA_CUSTOMER_SECRET,
AGORA_APP_ID, AGORA_REST_*), checks its input before anything is sent, retries 5xx, 429 and
lost connections or timeouts with capped, jittered exponential backoff, and raises one error
type, `AgoraRestError`, whose `kind` and `retryable` tell a task queue what to do next. No log
line, error message or repr carries the customer secret or the Authorization header.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError

from tokens import agora
from tokens.validators import validate_channel_name

logger = logging.getLogger(__name__)

MINUTES_RANGE = (1, 1440)  # `time`; 0 only kicks
SECONDS_RANGE = (10, 86430)  # `time_in_seconds`; 0 only kicks
# How much of Agora's error message an AgoraRestError keeps.
MAX_REASON_LENGTH = 200
# Slack when a lost POST's rule is looked for by its expiry: clocks and Agora's rounding.
_EXPIRY_SLACK = timedelta(seconds=60)
_USER_AGENT = f"agora-token-server httpx/{httpx.__version__}"


class Privilege(enum.StrEnum):
    """What a ban rule takes away."""

    JOIN_CHANNEL = "join_channel"  # joining (and staying in) the channel
    PUBLISH_AUDIO = "publish_audio"
    PUBLISH_VIDEO = "publish_video"


class ChannelMode(enum.IntEnum):
    """Agora's channel profile, as the user list reports it."""

    COMMUNICATION = 1
    LIVE_BROADCASTING = 2


class UserRole(enum.IntEnum):
    """A user's role in a channel, as the user status reports it."""

    UNKNOWN = 0
    COMMUNICATION_USER = 1
    HOST = 2
    AUDIENCE = 3


class ErrorKind(enum.StrEnum):
    """Why a call failed; a task queue retries `unavailable` and `timeout` only."""

    NOT_CONFIGURED = "not_configured"  # credentials or settings missing or malformed: nothing sent
    INVALID = "invalid"  # the input breaks Agora's documented rules: nothing sent
    AUTH = "auth"  # 401/403: wrong customer id or secret, or an App ID the key does not cover
    REJECTED = "rejected"  # any other 4xx: Agora refused the request as sent
    UNAVAILABLE = "unavailable"  # 5xx, 429, a lost connection or an answer that makes no sense
    TIMEOUT = "timeout"  # no answer in time (connect or read)


_RETRYABLE = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT})


class AgoraRestError(Exception):
    """A call to Agora's REST API that did not succeed; the reason is safe to show and log."""

    def __init__(
        self,
        kind: ErrorKind,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(kind, reason, status, retry_after)
        self.kind = ErrorKind(kind)
        self.reason = reason
        self.status = status  # the HTTP status Agora answered, None when there was no answer
        self.retry_after = retry_after  # seconds Agora asked to wait (429), when it said so

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later unchanged."""
        return self.kind in _RETRYABLE

    def __reduce__(self):  # task queues pickle errors; the keyword arguments must survive
        return (_rebuild_error, (self.kind.value, self.reason, self.status, self.retry_after))

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"Agora REST {self.kind}{status}: {self.reason}"

    def __repr__(self) -> str:
        return (
            f"AgoraRestError(kind={self.kind.value!r}, status={self.status!r}, reason={self.reason!r}, "
            f"retry_after={self.retry_after!r})"
        )


def _rebuild_error(kind: str, reason: str, status: int | None, retry_after: float | None) -> AgoraRestError:
    return AgoraRestError(ErrorKind(kind), reason, status=status, retry_after=retry_after)


@dataclass(frozen=True)
class BanRule:
    """One of the project's ban rules, as Agora lists it."""

    id: int
    channel: str | None  # None: every channel
    uid: int | None  # None: every user (of the channel, or of the IP)
    ip: str | None
    privileges: tuple[str, ...]  # Privilege values
    expires_at: datetime | None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    operation_id: int | None = None  # Agora's `opid`, for its support


@dataclass(frozen=True)
class ChannelUsers:
    """Who is in a channel: everyone (communication profile), or hosts and audience (live)."""

    channel: str
    exists: bool
    mode: int | None = None  # ChannelMode; None when the channel does not exist
    users: tuple[int, ...] = ()  # communication profile: every user
    broadcasters: tuple[int, ...] = ()  # live broadcasting: the hosts
    audience: tuple[int, ...] = ()  # live broadcasting: the first 10,000 (none with hosts_only)
    audience_total: int = 0  # live broadcasting: the whole audience
    total: int = 0  # everyone in the channel

    @property
    def uids(self) -> frozenset[int]:
        """Every uid listed, whatever its role."""
        return frozenset(self.users + self.broadcasters + self.audience)


@dataclass(frozen=True)
class UserStatus:
    """Whether one uid is in a channel, since when, as what, from which platform."""

    uid: int
    channel: str
    in_channel: bool
    joined_at: datetime | None = None
    role: int | None = None  # UserRole
    platform: int | None = None  # Agora's number: 1 Android, 2 iOS, 5 Windows, 6 Linux, 7 Web, 8 macOS


# --- configuration ---------------------------------------------------------------------------


def rest_configuration_problems() -> dict[str, str]:
    """Each setting the client cannot work with, by name, and what is wrong with it."""
    problems: dict[str, str] = {}
    for name in ("AGORA_CUSTOMER_ID", "AGORA_CUSTOMER_SECRET"):
        if not getattr(settings, name):
            problems[name] = "is not set"
    if ":" in settings.AGORA_CUSTOMER_ID:
        problems["AGORA_CUSTOMER_ID"] = "contains ':', which HTTP Basic auth cannot carry in a user name"
    if not agora.is_hex32(settings.AGORA_APP_ID):
        problems["AGORA_APP_ID"] = "is not 32 hexadecimal characters"
    url_problem = _url_problem(settings.AGORA_REST_URL)
    if url_problem:
        problems["AGORA_REST_URL"] = url_problem
    for name in ("AGORA_REST_TIMEOUT", "AGORA_REST_CONNECT_TIMEOUT"):
        if not _positive_number(getattr(settings, name)):
            problems[name] = f"is {getattr(settings, name)!r}; it must be a positive number of seconds"
    retries = settings.AGORA_REST_RETRIES
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 1:
        problems["AGORA_REST_RETRIES"] = f"is {retries!r}; it must be 1 or more attempts"
    for name in ("AGORA_REST_BACKOFF", "AGORA_REST_BACKOFF_MAX"):
        value = getattr(settings, name)
        if not _number(value) or value < 0:
            problems[name] = f"is {value!r}; it must be 0 or more seconds"
    return problems


def rest_configured() -> bool:
    """True when every call can be made: credentials, App ID and every AGORA_REST_* knob."""
    return not rest_configuration_problems()


def rest_not_configured_reason() -> str:
    """Why calls cannot be made ("" when they can), naming each setting."""
    return "; ".join(f"{name} {problem}" for name, problem in rest_configuration_problems().items())


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_number(value: object) -> bool:
    return _number(value) and value > 0


def _url_problem(url: object) -> str | None:
    if not isinstance(url, str) or not url:
        return "is not set"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return f"{url!r} is not a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{url!r} is not an https:// (or http://) URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials (set AGORA_CUSTOMER_ID and AGORA_CUSTOMER_SECRET)"
    if parts.query or parts.fragment:
        return f"{url!r} must not have a query or fragment"
    return None


@dataclass(frozen=True)
class _Config:
    url: str
    app_id: str
    auth: httpx.BasicAuth = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)  # scrubbed from any text Agora sends back
    timeout: httpx.Timeout
    attempts: int
    backoff: float
    backoff_max: float


def _config() -> _Config:
    problems = rest_configuration_problems()
    if problems:
        raise AgoraRestError(ErrorKind.NOT_CONFIGURED, rest_not_configured_reason())
    customer_id, secret = settings.AGORA_CUSTOMER_ID, settings.AGORA_CUSTOMER_SECRET
    credential = base64.b64encode(f"{customer_id}:{secret}".encode()).decode()
    return _Config(
        url=settings.AGORA_REST_URL.rstrip("/"),
        app_id=settings.AGORA_APP_ID,
        auth=httpx.BasicAuth(customer_id, secret),
        secrets=(secret, credential),
        timeout=httpx.Timeout(
            settings.AGORA_REST_TIMEOUT,
            connect=settings.AGORA_REST_CONNECT_TIMEOUT,
            pool=settings.AGORA_REST_CONNECT_TIMEOUT,
        ),
        attempts=settings.AGORA_REST_RETRIES,
        backoff=float(settings.AGORA_REST_BACKOFF),
        backoff_max=float(settings.AGORA_REST_BACKOFF_MAX),
    )


# --- the kept HTTP client ----------------------------------------------------------------------

_lock = threading.Lock()
_kept: httpx.Client | None = None
_kept_pid: int | None = None


def _client() -> httpx.Client:
    """The process's one httpx.Client (connection pool), made on first use; a forked worker
    makes its own rather than share its parent's sockets."""
    global _kept, _kept_pid
    client, pid = _kept, os.getpid()
    if client is not None and _kept_pid == pid:
        return client
    with _lock:
        if _kept is None or _kept_pid != pid:
            # URL, auth and timeouts are passed per request: settings are read at call time.
            _kept = httpx.Client(
                headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
                follow_redirects=False,
            )
            _kept_pid = pid
        return _kept


def close() -> None:
    """Close the kept client's connections; the next call opens new ones."""
    global _kept, _kept_pid
    with _lock:
        client, _kept, _kept_pid = _kept, None, None
    if client is not None:
        client.close()


def _sleep(seconds: float) -> None:  # one name for the tests to replace
    time.sleep(seconds)


_jitter = secrets.SystemRandom()


# --- one request, with its retries -----------------------------------------------------------------


@dataclass
class _Failure:
    error: AgoraRestError
    maybe_done: bool  # Agora may have carried the request out: its answer was lost, or a 5xx


def _request(
    method: str,
    path: str,
    *,
    config: _Config,
    query: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    recover: Callable[[datetime], dict | None] | None = None,
) -> dict:
    """Send one request until it succeeds or the attempts run out; Agora's JSON answer.

    `recover`, for a request that must not be carried out twice, is asked after a failure that
    may hide a success (the answer lost, a 5xx) whether Agora did it after all: it gets the
    time of the first attempt and returns the answer to use, or None to go on retrying."""
    first_sent_at = datetime.now(UTC)
    for attempt in range(1, config.attempts + 1):
        started = time.monotonic()
        outcome = _attempt(method, path, config=config, query=query, body=body)
        elapsed_ms = (time.monotonic() - started) * 1000
        if not isinstance(outcome, _Failure):
            logger.info(
                "Agora REST %s %s: %s (attempt %d/%d, %.0f ms)",
                method, path, outcome[0], attempt, config.attempts, elapsed_ms,
            )  # fmt: skip
            return outcome[1]
        error = outcome.error
        final = not error.retryable or attempt == config.attempts
        if outcome.maybe_done and recover is not None:
            found = recover(first_sent_at)
            if found is not None:
                logger.warning(
                    "Agora REST %s %s: %s (attempt %d/%d, %.0f ms), but Agora had carried it out",
                    method, path, _said(error), attempt, config.attempts, elapsed_ms,
                )  # fmt: skip
                return found
        delay = None if final else _delay(attempt, error, config)
        if delay is None:
            log = logger.error if not error.retryable else logger.warning
            log(
                "Agora REST %s %s: %s (attempt %d/%d, %.0f ms); giving up",
                method, path, _said(error), attempt, config.attempts, elapsed_ms,
            )  # fmt: skip
            raise error
        logger.warning(
            "Agora REST %s %s: %s (attempt %d/%d, %.0f ms); retrying in %.2f s",
            method, path, _said(error), attempt, config.attempts, elapsed_ms, delay,
        )  # fmt: skip
        _sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


def _said(error: AgoraRestError) -> str:
    return f"{error.status} {error.reason}" if error.status is not None else f"{error.kind}: {error.reason}"


def _attempt(
    method: str, path: str, *, config: _Config, query: dict | None, body: dict | None
) -> tuple[int, dict] | _Failure:
    try:
        response = _client().request(
            method, config.url + path, params=query, json=body, auth=config.auth, timeout=config.timeout
        )
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        return _Failure(_transport_error(ErrorKind.TIMEOUT, exc), maybe_done=False)
    except httpx.TimeoutException as exc:
        return _Failure(_transport_error(ErrorKind.TIMEOUT, exc), maybe_done=True)
    except (httpx.ConnectError, httpx.ProxyError) as exc:
        return _Failure(_transport_error(ErrorKind.UNAVAILABLE, exc), maybe_done=False)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return _Failure(_transport_error(ErrorKind.NOT_CONFIGURED, exc), maybe_done=False)
    except httpx.HTTPError as exc:  # the connection dropped, a broken answer
        return _Failure(_transport_error(ErrorKind.UNAVAILABLE, exc), maybe_done=True)
    return _answer(response, config)


def _transport_error(kind: ErrorKind, exc: Exception) -> AgoraRestError:
    # httpx's messages name the host or the failure, never a header.
    detail = str(exc) or type(exc).__name__
    return AgoraRestError(kind, f"{type(exc).__name__}: {detail}"[:MAX_REASON_LENGTH])


def _answer(response: httpx.Response, config: _Config) -> tuple[int, dict] | _Failure:
    status = response.status_code
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if 200 <= status < 300:
        if isinstance(parsed, dict):
            return status, parsed
        error = AgoraRestError(ErrorKind.UNAVAILABLE, "answer is not a JSON object", status=status)
        return _Failure(error, maybe_done=True)
    reason = _reason(parsed, status, config)
    if status == 429 or status >= 500:
        # A 429 was refused unprocessed; a 5xx may have been carried out before it failed.
        retry_after = _retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
        error = AgoraRestError(ErrorKind.UNAVAILABLE, reason, status=status, retry_after=retry_after)
        return _Failure(error, maybe_done=status != 429)
    kind = ErrorKind.AUTH if status in (401, 403) else ErrorKind.REJECTED
    return _Failure(AgoraRestError(kind, reason, status=status), maybe_done=False)  # refused


def _reason(parsed: object, status: int, config: _Config) -> str:
    message = None
    if isinstance(parsed, dict):
        message = parsed.get("message") or parsed.get("reason")
    text = str(message) if message else httpx.codes.get_reason_phrase(status) or f"HTTP {status}"
    for secret in config.secrets:  # should Agora ever echo a credential back
        text = text.replace(secret, "********")
    return text[:MAX_REASON_LENGTH]


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _delay(attempt: int, error: AgoraRestError, config: _Config) -> float | None:
    """Seconds to wait before the next attempt; None to give up now (a Retry-After longer
    than AGORA_REST_BACKOFF_MAX: the caller reschedules rather than hold a worker)."""
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= config.backoff_max else None
    ceiling = min(config.backoff_max, config.backoff * 2 ** (attempt - 1))
    # Half fixed, half random: clients that failed together do not all come back together.
    return ceiling / 2 + _jitter.uniform(0, ceiling / 2)


# --- input rules ---------------------------------------------------------------------------------


def _invalid(reason: str) -> AgoraRestError:
    return AgoraRestError(ErrorKind.INVALID, reason)


def _check_channel(channel: object) -> str:
    try:
        validate_channel_name(channel)
    except ValidationError as exc:
        raise _invalid(" ".join(exc.messages)) from None
    return channel


def _check_uid(uid: object) -> int:
    if not isinstance(uid, int) or isinstance(uid, bool) or not agora.UID_MIN <= uid <= agora.UID_MAX:
        raise _invalid(f"uid must be an integer within {agora.UID_MIN}..{agora.UID_MAX} (got {uid!r}).")
    return uid


def _check_rule_id(rule_id: object) -> int:
    if not isinstance(rule_id, int) or isinstance(rule_id, bool) or rule_id < 1:
        raise _invalid(f"rule id must be a positive integer (got {rule_id!r}).")
    return rule_id


def _duration(seconds: int | None, minutes: int | None) -> tuple[str, int]:
    """The one duration field to send, `time_in_seconds` or `time`, checked against its range."""
    if (seconds is None) == (minutes is None):
        raise _invalid("Give the ban's duration as seconds or as minutes (exactly one).")
    if seconds is not None:
        name, unit, value, (low, high) = "time_in_seconds", "seconds", seconds, SECONDS_RANGE
    else:
        name, unit, value, (low, high) = "time", "minutes", minutes, MINUTES_RANGE
    if not isinstance(value, int) or isinstance(value, bool) or not (value == 0 or low <= value <= high):
        raise _invalid(f"{unit} must be 0 (kick only) or within {low}..{high} (got {value!r}).")
    return name, value


def _check_privileges(privileges: Iterable[str]) -> list[str]:
    if isinstance(privileges, str):
        privileges = [privileges]
    try:
        checked = [Privilege(p).value for p in privileges]
    except (TypeError, ValueError):
        raise _invalid(
            f"privileges must be among {', '.join(p.value for p in Privilege)} (got {privileges!r})."
        ) from None
    if not checked or len(set(checked)) != len(checked):
        raise _invalid(f"privileges must name at least one privilege, each once (got {checked!r}).")
    return checked


def _check_ip(ip: object) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise _invalid(f"ip must be an IPv4 or IPv6 address (got {ip!r}).") from None


# --- ban rules ----------------------------------------------------------------------------------

_RULES_PATH = "/dev/v1/kicking-rule"


def create_ban_rule(
    *,
    privileges: Iterable[str],
    channel: str | None = None,
    uid: int | None = None,
    ip: str | None = None,
    seconds: int | None = None,
    minutes: int | None = None,
) -> int:
    """Ban `uid` (in `channel`, or everywhere), everyone in `channel`, or an `ip`, from the
    `privileges` for `seconds` or `minutes`; 0 kicks out once. The rule's id, to keep."""
    if channel is None and uid is None and ip is None:
        raise _invalid("A ban rule needs a channel, a uid or an ip to apply to.")
    body: dict[str, Any] = {}
    if channel is not None:
        body["cname"] = _check_channel(channel)
    if uid is not None:
        body["uid"] = _check_uid(uid)
    if ip is not None:
        body["ip"] = _check_ip(ip)
    duration_field, duration = _duration(seconds, minutes)
    body[duration_field] = duration
    body["privileges"] = _check_privileges(privileges)
    config = _config()
    body = {"appid": config.app_id, **body}
    lasting = timedelta(seconds=duration if duration_field == "time_in_seconds" else duration * 60)

    def already_created(first_sent_at: datetime) -> dict | None:
        rule = _find_rule(body, expected_expiry=first_sent_at + lasting, since=first_sent_at, config=config)
        return None if rule is None else {"status": "success", "id": rule.id}

    # A kick (0) lasts no time: doing it twice does no harm, so it needs no lookup.
    recover = already_created if duration else None
    answer = _request("POST", _RULES_PATH, config=config, body=body, recover=recover)
    rule_id = answer.get("id")
    if answer.get("status") != "success" or not isinstance(rule_id, int) or isinstance(rule_id, bool):
        raise _unexpected(f"no rule id ({_keys(answer)})")
    return rule_id


def update_ban_rule(rule_id: int, *, seconds: int | None = None, minutes: int | None = None) -> None:
    """Make rule `rule_id` last `seconds` or `minutes` from now (0: end it, kicking once more)."""
    body: dict[str, Any] = {"id": _check_rule_id(rule_id)}
    duration_field, body[duration_field] = _duration(seconds, minutes)
    config = _config()
    _expect_success(_request("PUT", _RULES_PATH, config=config, body={"appid": config.app_id, **body}))


def delete_ban_rule(rule_id: int) -> None:
    """Remove rule `rule_id`: what it banned is allowed again."""
    body = {"id": _check_rule_id(rule_id)}
    config = _config()
    _expect_success(_request("DELETE", _RULES_PATH, config=config, body={"appid": config.app_id, **body}))


def list_ban_rules() -> list[BanRule]:
    """Every ban rule of the project. Agora answers this query last when its network suffers
    and may then leave rules out: keep the ids create_ban_rule returns rather than rely on it."""
    config = _config()
    return _parse_rules(_request("GET", _RULES_PATH, config=config, query={"appid": config.app_id}))


def _expect_success(answer: dict) -> None:
    if answer.get("status") != "success":
        raise _unexpected(_keys(answer))


def _unexpected(what: str) -> AgoraRestError:
    # A 200 whose body is not what Agora documents (a proxy's page, a changed API).
    return AgoraRestError(ErrorKind.UNAVAILABLE, f"unexpected answer: {what}", status=200)


def _keys(answer: dict) -> str:
    # Only the field names: an unexpected answer's values are not ours to log.
    return "fields: " + (", ".join(sorted(map(str, answer))) or "none")


def _parse_rules(answer: dict) -> list[BanRule]:
    rules = answer.get("rules")
    if answer.get("status") != "success" or not isinstance(rules, list):
        raise _unexpected(f"no rule list ({_keys(answer)})")
    parsed = []
    for item in rules:
        if not isinstance(item, dict) or not _is_int(item.get("id")):
            raise _unexpected("a rule without an id")
        privileges = item.get("privileges") if isinstance(item.get("privileges"), list) else []
        parsed.append(
            BanRule(
                id=item["id"],
                channel=item.get("cname") or None,
                uid=item.get("uid") if _is_int(item.get("uid")) and item.get("uid") else None,
                ip=item.get("ip") or None,
                privileges=tuple(p for p in privileges if isinstance(p, str)),
                expires_at=_utc(item.get("ts")),
                created_at=_utc(item.get("createAt")),
                updated_at=_utc(item.get("updateAt")),
                operation_id=item.get("opid") if _is_int(item.get("opid")) else None,
            )
        )
    return parsed


def _find_rule(body: dict, *, expected_expiry: datetime, since: datetime, config: _Config) -> BanRule | None:
    """The rule a lost POST of `body` created, if the list shows one: same target and
    privileges, expiring when that POST's rule would (one attempt; None if the list fails)."""
    try:
        # One attempt: this is itself the fallback of a retry.
        once = replace(config, attempts=1)
        rules = _parse_rules(_request("GET", _RULES_PATH, config=once, query={"appid": config.app_id}))
    except AgoraRestError as exc:
        logger.warning("Agora REST: could not look for the rule a lost POST may have created (%s)", exc.kind)
        return None
    slack = datetime.now(UTC) - since + _EXPIRY_SLACK
    matches = [
        rule
        for rule in rules
        if rule.channel == body.get("cname")
        and rule.uid == body.get("uid")
        and rule.ip == body.get("ip")
        and sorted(rule.privileges) == sorted(body["privileges"])
        and (rule.expires_at is None or abs(rule.expires_at - expected_expiry) <= slack)
    ]
    return max(matches, key=lambda rule: rule.id, default=None)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _utc(value: object) -> datetime | None:
    """Agora's times: ISO 8601 text (rules) or unix seconds (user status)."""
    if _is_int(value) or isinstance(value, float):
        return datetime.fromtimestamp(value, tz=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- who is in a channel ----------------------------------------------------------------------------


def channel_users(channel: str, *, hosts_only: bool = False) -> ChannelUsers:
    """Who is in `channel` now; with `hosts_only`, a live channel's hosts alone."""
    _check_channel(channel)
    config = _config()
    path = f"/dev/v1/channel/user/{quote(config.app_id, safe='')}/{quote(channel, safe='')}"
    answer = _request("GET", path + ("/hosts_only" if hosts_only else ""), config=config)
    data = _data(answer)
    if not data.get("channel_exist"):
        return ChannelUsers(channel=channel, exists=False)
    mode = data.get("mode")
    users = _uids(data, "users")
    broadcasters = _uids(data, "broadcasters")
    audience = _uids(data, "audience")
    audience_total = data.get("audience_total") if _is_int(data.get("audience_total")) else len(audience)
    if mode == ChannelMode.COMMUNICATION:
        total = data.get("total") if _is_int(data.get("total")) else len(users)
    else:
        total = len(broadcasters) + audience_total
    return ChannelUsers(
        channel=channel,
        exists=True,
        mode=_enum(ChannelMode, mode),
        users=users,
        broadcasters=broadcasters,
        audience=audience,
        audience_total=audience_total,
        total=total,
    )


def user_status(uid: int, channel: str) -> UserStatus:
    """Whether `uid` is in `channel` now, and if so since when and as what (Agora's "query
    user status", at /channel/user/property/)."""
    _check_uid(uid)
    _check_channel(channel)
    config = _config()
    path = f"/dev/v1/channel/user/property/{quote(config.app_id, safe='')}/{uid}/{quote(channel, safe='')}"
    data = _data(_request("GET", path, config=config))
    if not data.get("in_channel"):
        return UserStatus(uid=uid, channel=channel, in_channel=False)
    return UserStatus(
        uid=uid,
        channel=channel,
        in_channel=True,
        joined_at=_utc(data.get("join")),
        role=_enum(UserRole, data.get("role")),
        platform=data.get("platform") if _is_int(data.get("platform")) else None,
    )


def _data(answer: dict) -> dict:
    data = answer.get("data")
    if answer.get("success") is not True or not isinstance(data, dict):
        raise _unexpected(_keys(answer))
    return data


def _uids(data: dict, name: str) -> tuple[int, ...]:
    value = data.get(name) or []
    if not isinstance(value, list) or not all(_is_int(uid) for uid in value):
        raise _unexpected(f"{name} is not a list of uids")
    return tuple(value)


def _enum(kind: type[enum.IntEnum], value: object) -> int | None:
    if not _is_int(value):
        return None
    try:
        return kind(value)
    except ValueError:
        return value  # a number Agora added since: kept as it came
