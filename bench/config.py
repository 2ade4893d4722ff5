"""What `make bench` loads and judges: the endpoints, the issue's targets, and the knobs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "results"  # gitignored
LOGS = OUT / "logs"
RESULTS_MD = BENCH / "RESULTS.md"


class BenchError(Exception):
    """The benchmark cannot run (exit 2)."""


@dataclass(frozen=True)
class Endpoint:
    key: str
    path: str
    body: dict | None  # None: a GET
    tutorial_path: str  # the tutorial's nearest equivalent
    tutorial_body: dict | None
    target: bool = False  # named in the speed targets
    audited: bool = True  # writes one audit row per 2xx answer


ENDPOINTS = {
    e.key: e
    for e in (
        Endpoint(
            "rtctoken", "/rtctoken", {"channel": "bench", "isPublisher": True},
            "/rtctoken", {"channel": "bench", "isPublisher": True}, target=True,
        ),
        Endpoint(
            "rtc", "/api/v1/tokens/rtc/", {"channel": "bench", "role": "publisher", "version": "007"},
            "/rtctoken", {"channel": "bench", "isPublisher": True}, target=True,
        ),
        Endpoint("rtm", "/api/v1/tokens/rtm/", {"version": "007"}, "/rtmtoken", {"user": "bench"}),
        # Not loaded by default: a near-empty request (one SELECT 1) against the tutorial's
        # greeting, to compare servers by their own overhead.
        Endpoint("healthz", "/healthz", None, "/", None, audited=False),
    )
}  # fmt: skip
DEFAULT_ENDPOINTS = "rtctoken,rtc,rtm"
# Many users rotate over BENCH_USERS API tokens, one per user; "one" sends the first only.
USER_MODES = ("many", "one")


@dataclass(frozen=True)
class Targets:
    """One lane's targets from the issue. A ratio of None is printed, not judged: SQLite's
    target is "no slower than the previous run", which one run cannot check alone."""

    min_ratio: float | None
    max_p99_ms: float
    max_sql: float  # SQL statements per warm token request
    max_cache: float | None  # cache operations per warm token request (None: not a target)


TARGETS = {
    "sqlite": Targets(min_ratio=None, max_p99_ms=50.0, max_sql=2, max_cache=None),
    "postgres": Targets(min_ratio=0.35, max_p99_ms=50.0, max_sql=1, max_cache=1),
}
SEEDED_TOLERANCE = 0.10  # with 1,000,000 audit rows: within 10% of its empty twin
# The seeded figures' comparison: a copy of the lane as set up (same users and API tokens, no
# audit rows), served beside the seeded lane and loaded in the same rounds, so that the size
# of the audit table is all that differs between two figures measured side by side.
TWIN_TABLE = "twin"

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tokenbench"
DEFAULT_CACHE_URL = "redis://127.0.0.1:6379/9"


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    value = os.environ.get(name)
    return [item.strip() for item in (default if value is None else value).split(",") if item.strip()]


def env_flag(name: str, default: str = "") -> bool:
    return os.environ.get(name, default) not in ("", "0")


@dataclass
class Config:
    quick: bool = field(default_factory=lambda: env_flag("BENCH_QUICK"))
    duration: int = field(default_factory=lambda: env_int("BENCH_DURATION", 10))
    drain: int = field(default_factory=lambda: env_int("BENCH_DRAIN", 30))
    connections: int = field(default_factory=lambda: env_int("BENCH_CONNECTIONS", 32))
    users: int = field(default_factory=lambda: env_int("BENCH_USERS", 200))
    seed_rows: int = field(default_factory=lambda: env_int("BENCH_SEED_ROWS", 1_000_000))
    probe_requests: int = field(default_factory=lambda: env_int("BENCH_PROBE_REQUESTS", 50))
    port: int = field(default_factory=lambda: env_int("BENCH_PORT", 18400))
    tutorial_port: int = field(default_factory=lambda: env_int("BENCH_TUTORIAL_PORT", 18300))
    strict: bool = field(default_factory=lambda: env_flag("BENCH_STRICT"))
    keep: bool = field(default_factory=lambda: env_flag("BENCH_KEEP"))
    write_results: bool = field(default_factory=lambda: env_flag("BENCH_WRITE_RESULTS", "1"))

    def __post_init__(self):
        self.cores = len(os.sched_getaffinity(0))
        self.workers = env_int("BENCH_WORKERS", env_int("WEB_CONCURRENCY", 2 * self.cores))
        self.rounds = env_int("BENCH_ROUNDS", 1 if self.quick else 2)
        self.curve = [int(c) for c in env_list("BENCH_CURVE", "1,8,32,128")]
        self.lanes = env_list("BENCH_LANES", "sqlite,postgres")
        self.servers = env_list("BENCH_SERVERS", "serve")
        self.endpoints = env_list("BENCH_ENDPOINTS", DEFAULT_ENDPOINTS)
        self.database_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
        self.cache_url = os.environ.get("BENCH_CACHE_URL") or DEFAULT_CACHE_URL
        # Asked for by name: a PostgreSQL or Redis that does not answer is an error, not a skip.
        self.postgres_explicit = any(os.environ.get(v) for v in ("BENCH_DATABASE_URL", "BENCH_CACHE_URL"))
        self.postgres_explicit |= "postgres" in os.environ.get("BENCH_LANES", "")
        unknown = [e for e in self.endpoints if e not in ENDPOINTS]
        unknown += [lane for lane in self.lanes if lane not in TARGETS]
        if unknown:
            raise BenchError(f"unknown endpoint or lane: {', '.join(unknown)}")
        if self.users < 1 or self.duration < 1 or self.rounds < 1 or not self.servers:
            raise BenchError("BENCH_USERS, BENCH_DURATION, BENCH_ROUNDS and BENCH_SERVERS must be set")

    def plan(self) -> list[tuple[str, str, int]]:
        """(endpoint, users, connections) for the empty-table figures of the first server."""
        items = []
        for key in self.endpoints:
            modes = USER_MODES if not self.quick or key == "rtctoken" else ("many",)
            items += [(key, users, self.connections) for users in modes]
        curve_endpoints = ["rtctoken"] if self.quick else ["rtctoken", "rtc"]
        for key in curve_endpoints:
            if key in self.endpoints:
                items += [(key, "many", c) for c in self.curve if c != self.connections]
        return items

    def seeded_plan(self) -> list[tuple[str, str, int]]:
        keys = [k for k in self.endpoints if ENDPOINTS[k].target or not self.quick]
        return [(key, "many", self.connections) for key in keys]
