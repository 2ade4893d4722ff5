"""Prometheus metrics: tokens issued, uids allocated, suspect joins by reason, error responses by
code, request latency per endpoint; exported at GET /metrics.

Off unless METRICS_ENABLED (read at call time): then nothing is recorded and /metrics is a 404.
On, recording costs microseconds and no I/O beyond memory: no SQL, no cache. Label children
are kept in dicts keyed by their label values, so a request does not pay prometheus_client's
`labels()` (argument checks and a lock) each time. Every label value comes from a bounded set
(the services, versions, sources, roles and suspect-join reasons the models define, the URL
patterns' names, a fixed list of methods, the error codes this server writes): no request can add a series.

Several worker processes: a scrape reaches one of them, so when PROMETHEUS_MULTIPROC_DIR is in
the environment prometheus_client runs in its multiprocess mode (it decides once, when first
imported): each process writes its values to memory-mapped files in that directory, and a
scrape, whichever process answers it, adds up the files of every process. Only counters and
histograms are used: they need no gauge mode, and a worker that exits or is replaced keeps its
counts in the sums, as counts should. The directory must be empty when the server starts.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re

from django.conf import settings
from django.urls import Resolver404, resolve
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from tokens.choices import SuspectReason

logger = logging.getLogger(__name__)

# What prometheus_client decided when it was imported (just above): values go to files in that
# directory, and a scrape must read them all back.
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ

# `_created` series double the count of series and multiprocess mode has none: one output in
# both modes.
disable_created_metrics()

# Our own registry: /metrics exports exactly these, in both modes.
REGISTRY = CollectorRegistry(auto_describe=True)

# Sub-millisecond (a warm token request) to seconds (an outage's timeouts).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

TOKENS_ISSUED = Counter(
    "agora_tokens_issued",
    "Agora tokens issued, each with its audit row, by service, version, source and role.",
    ["service", "version", "source", "role"],
    registry=REGISTRY,
)
UIDS_ALLOCATED = Counter(
    "agora_uids_allocated",
    "Agora uids drawn for a new (user, slot): slot_kind main, or extra for any other slot.",
    ["slot_kind"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "agora_token_server_errors",
    "Error responses (status 400 and above) by the error code in their body.",
    ["code"],
    registry=REGISTRY,
)
SUSPECT_JOINS = Counter(
    "agora_suspect_joins",
    "Joins Agora reported that look like a leaked or shared token, by reason (never_issued,"
    " no_live_token, duplicate_client).",
    ["reason"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "agora_token_server_request_seconds",
    "Time to answer a request, by endpoint (URL pattern name), method and status.",
    ["endpoint", "method", "status"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)


class _Children(dict):
    """label values -> the metric's child for them, made on first use."""

    def __init__(self, metric) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, values: tuple):
        child = self[values] = self.metric.labels(*values)
        return child


_tokens_issued = _Children(TOKENS_ISSUED)
_uids_allocated = _Children(UIDS_ALLOCATED)
_errors = _Children(ERRORS)
_suspect_joins = _Children(SUSPECT_JOINS)
_request_seconds = _Children(REQUEST_SECONDS)

_METHODS = {m: m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")}
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
UNMATCHED = "unmatched"
OTHER = "other"
_SUSPECT_REASONS = frozenset(SuspectReason.values)


def enabled() -> bool:
    """METRICS_ENABLED, read at call time."""
    return settings.METRICS_ENABLED


_failure_logged = False


def _recording_failed() -> None:
    # A metric must never cost a token (its audit row is already written when it is counted):
    # an unusable PROMETHEUS_MULTIPROC_DIR is logged once, and `manage.py check` names it.
    global _failure_logged
    if not _failure_logged:
        _failure_logged = True
        logger.exception("metrics could not be recorded (is PROMETHEUS_MULTIPROC_DIR writable?)")


def count_token(*, service: str, version: str, source: str, role: str) -> None:
    """One token issued (its audit row written)."""
    if settings.METRICS_ENABLED:
        try:
            _tokens_issued[(service, version, source, role or "none")].inc()
        except Exception:
            _recording_failed()


def count_uid(*, main: bool) -> None:
    """One uid drawn for a new (user, slot)."""
    if settings.METRICS_ENABLED:
        try:
            _uids_allocated[("main" if main else "extra",)].inc()
        except Exception:
            _recording_failed()


def count_suspect_join(*, reason: str) -> None:
    """One suspect join flagged (its row written)."""
    if settings.METRICS_ENABLED:
        try:
            _suspect_joins[(reason if reason in _SUSPECT_REASONS else OTHER,)].inc()
        except Exception:
            _recording_failed()


def observe_request(request, response, seconds: float) -> None:
    """A request answered in `seconds`; an error response also counts by its code."""
    status = response.status_code
    try:
        _request_seconds[(endpoint(request), _METHODS.get(request.method, OTHER), status)].observe(seconds)
        if status >= 400:
            _errors[(error_code(response),)].inc()
    except Exception:
        _recording_failed()


def endpoint(request) -> str:
    """The URL pattern's name (`tokens:rtc-token`, `admin:index`), never the raw path. The
    request guards answer before Django resolves the URL: their paths are resolved here; a path
    no pattern matches is `unmatched`."""
    match = request.resolver_match
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
    return match.view_name


def error_code(response) -> str:
    """The `code` of an error response in the one error shape; `other` for any other body."""
    if response.streaming or not response.get("Content-Type", "").startswith("application/json"):
        return OTHER
    try:
        code = json.loads(response.content)["error"]["code"]
    except (ValueError, LookupError, TypeError):
        return OTHER
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else OTHER


def _network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:
        return None  # `manage.py check` names it (tokens.E021); it admits nobody


def client_allowed(ip: str | None) -> bool:
    """METRICS_ALLOWED_IPS (addresses or networks) admits `ip`; empty admits every client."""
    allowed = settings.METRICS_ALLOWED_IPS
    if not allowed:
        return True
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    return any(network is not None and address in network for network in map(_network, allowed))


def exposition(accept: str | None) -> tuple[bytes, str]:
    """Every metric, in the format the scraper's Accept asks for (Prometheus text by default),
    summed over every process in multiprocess mode; (body, content type)."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
