"""`make bench`: the project, served the production way, side by side with the tutorial's
Express server (../shared/anchors/seed-express), loaded with the same wrk script, connections
and duration in alternating rounds. A benchmark, not a test: it prints figures and writes
bench/RESULTS.md; it fails (exit 1) only when the audit log and the 2xx answers disagree, or
(exit 2) when it cannot run. The machine is shared and noisy: only the same-run ratio
project/tutorial means much.

Knobs (environment): see KNOBS below or bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import typing
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "results"
LOGS = OUT / "logs"
LUA = BENCH / "load.lua"
LANETOOL = BENCH / "lanetool.py"
RESULTS_MD = BENCH / "RESULTS.md"
TUTORIAL_COPY = BENCH / "seed-express"  # gitignored: ../shared may be read-only
TUTORIAL_FILES = ("index.js", "package.json", "package-lock.json")
PYTHON = Path(sys.executable)  # make bench runs this file with the project's venv
BEGIN_MARK = "<!-- BEGIN make bench output: everything up to the END marker is rewritten -->"
END_MARK = "<!-- END make bench output -->"

# Many users rotate over BENCH_USERS API tokens, one per user; "one" sends the first only.
USER_MODES = ("many", "one")


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

# Targets from the issue: lane -> (min ratio project/tutorial, max p99 ms).
TARGETS = {"sqlite": (0.5, 50.0), "postgres": (0.3, 80.0)}
SEEDED_TOLERANCE = 0.10  # with 1,000,000 audit rows: within 10% of the empty-table figure
# The seeded figures' comparison: a copy of the lane as set up (same users and API tokens, no
# audit rows), served beside the seeded lane and loaded in the same rounds, so that the size
# of the audit table is all that differs between two figures measured side by side.
TWIN_TABLE = "twin"
WARM_MAX_SQL, WARM_MAX_CACHE = 2, 1

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tokenbench"
DEFAULT_CACHE_URL = "redis://127.0.0.1:6379/9"

KNOBS = {
    "BENCH_DURATION": "seconds of load per round (default 10)",
    "BENCH_DRAIN": "longest wait after a round for the answers still due (default 30)",
    "BENCH_CONNECTIONS": "connections for the main figures (default 32)",
    "BENCH_CURVE": "connection counts for the curve (default 1,8,32,128; empty: none)",
    "BENCH_ROUNDS": "rounds per figure, alternating project/tutorial (default 2; quick 1)",
    "BENCH_USERS": "users, each with its own API token (default 200)",
    "BENCH_LANES": "sqlite,postgres (default both; postgres is skipped when nothing answers)",
    "BENCH_QUICK": "1: one round, fewer combinations",
    "BENCH_SERVERS": "project servers to compare: serve (make serve), gunicorn-sync, "
    "gunicorn-gthread[:threads], granian[:blocking threads], each [@workers][+metrics] (default serve)",
    "BENCH_WORKERS": "worker processes (default WEB_CONCURRENCY, else 2 x cores)",
    "BENCH_ENDPOINTS": f"{DEFAULT_ENDPOINTS} (default); also healthz (GET /healthz vs the tutorial's GET /)",
    "BENCH_SEED_ROWS": "audit rows for the seeded figures (default 1000000; 0: skip)",
    "BENCH_PROBE_REQUESTS": "warm requests per endpoint for the SQL/cache count (default 50)",
    "BENCH_DATABASE_URL": f"PostgreSQL lane (default {DEFAULT_DATABASE_URL}; dropped and "
    "recreated, so its name must contain 'bench')",
    "BENCH_CACHE_URL": f"Redis lane (default {DEFAULT_CACHE_URL}; flushed)",
    "BENCH_WRITE_RESULTS": "0: do not rewrite bench/RESULTS.md",
    "BENCH_STRICT": "1: exit 3 when a target is missed",
    "BENCH_TUTORIAL_SRC": "the tutorial's server (default ../shared/anchors/seed-express)",
}


class BenchError(Exception):
    """The benchmark cannot run (exit 2)."""


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    value = os.environ.get(name)
    return [item.strip() for item in (default if value is None else value).split(",") if item.strip()]


@dataclass
class Config:
    quick: bool = field(default_factory=lambda: os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    duration: int = field(default_factory=lambda: env_int("BENCH_DURATION", 10))
    drain: int = field(default_factory=lambda: env_int("BENCH_DRAIN", 30))
    connections: int = field(default_factory=lambda: env_int("BENCH_CONNECTIONS", 32))
    users: int = field(default_factory=lambda: env_int("BENCH_USERS", 200))
    seed_rows: int = field(default_factory=lambda: env_int("BENCH_SEED_ROWS", 1_000_000))
    probe_requests: int = field(default_factory=lambda: env_int("BENCH_PROBE_REQUESTS", 50))
    port: int = field(default_factory=lambda: env_int("BENCH_PORT", 18400))
    tutorial_port: int = field(default_factory=lambda: env_int("BENCH_TUTORIAL_PORT", 18300))
    strict: bool = field(default_factory=lambda: os.environ.get("BENCH_STRICT", "") not in ("", "0"))
    write_results: bool = field(default_factory=lambda: os.environ.get("BENCH_WRITE_RESULTS", "1") != "0")

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


# --- processes ------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Process:
    """A server this run started, in its own session so that stopping it (by its process
    group id) stops its workers too."""

    def __init__(self, name: str, argv: list[str], env: dict, cwd: Path, log_path: Path):
        self.name, self.argv, self.log_path = name, argv, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def _server_pid(self) -> int:
        """The server's main process: make's child for `make serve` (the recipe execs it)."""
        pid = self.popen.pid
        if Path(self.argv[0]).name == "make":
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        return pid

    def stop(self) -> None:
        """SIGTERM to the server's main process, which stops its workers in order (sent to the
        whole group, a worker could exit first and be logged as an unexpected exit); then to
        the group, then SIGKILL, for whatever is left."""
        if self.alive():
            for target in (self._server_pid(), -self.popen.pid):  # a negative pid: the group
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=15)
                    break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # whatever is left, workers included
        self.popen.wait(timeout=10)
        self._log.close()


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(url: str, process: Process, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise BenchError(f"{process.name} exited during start-up; see {process.log_path}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - 127.0.0.1
        ):
            if response.status == 200:
                return
        time.sleep(0.25)
    raise BenchError(f"{process.name} did not answer {url} within {timeout:.0f} s; see {process.log_path}")


def run(argv: list[str], check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, text=True, capture_output=True, **kwargs)


def ensure_wrk() -> str:
    if shutil.which("wrk"):
        return run(["wrk", "--version"], check=False).stdout.splitlines()[0].strip()
    log("wrk is missing: apt-get install -y wrk")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=False).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
    return ensure_wrk()


def ensure_tutorial() -> None:
    """Copy the tutorial's server out of ../shared (read-only in CI) and npm ci it once."""
    source = Path(os.environ.get("BENCH_TUTORIAL_SRC", ROOT.parent / "shared" / "anchors" / "seed-express"))
    TUTORIAL_COPY.mkdir(parents=True, exist_ok=True)
    for name in TUTORIAL_FILES:
        src, dst = source / name, TUTORIAL_COPY / name
        if src.is_file() and (not dst.is_file() or src.read_bytes() != dst.read_bytes()):
            shutil.copyfile(src, dst)
            shutil.rmtree(TUTORIAL_COPY / "node_modules", ignore_errors=True)
        if not dst.is_file():
            raise BenchError(f"the tutorial's {name} is neither in {source} nor in {TUTORIAL_COPY}")
    if not (TUTORIAL_COPY / "node_modules").is_dir():
        log("npm ci in bench/seed-express")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TUTORIAL_COPY, check=True)


# --- lanes ----------------------------------------------------------------------------------


@dataclass
class Lane:
    name: str
    database_url: str
    cache_url: str
    workdir: Path
    sqlite_path: Path | None = None
    versions: dict = field(default_factory=dict)
    twin: bool = False  # the seeded phase's empty twin of the lane of the same name

    @property
    def label(self) -> str:
        return f"{self.name}-twin" if self.twin else self.name

    def count_audit_rows(self) -> int:
        if self.sqlite_path is not None:
            with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=30)) as db:
                return db.execute("SELECT count(*) FROM tokens_issuedtoken").fetchone()[0]
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as db:
            return db.execute("SELECT count(*) FROM tokens_issuedtoken").fetchone()[0]


def remove_sqlite_files(path: Path) -> None:
    """A SQLite database, its WAL, its shared-memory index and the app's write lock beside it
    (only ever removed while no server runs)."""
    for suffix in ("", "-wal", "-shm", ".write-lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_lane(workdir: Path) -> Lane:
    path = workdir / "db.sqlite3"
    remove_sqlite_files(path)
    # The embedded default: SQLite and the local-memory cache (per process).
    lane = Lane("sqlite", f"sqlite:///{path}", "locmemcache://tokenserver", workdir, sqlite_path=path)
    lane.versions["sqlite"] = sqlite3.sqlite_version
    return lane


def _database_name_and_admin(url: str) -> tuple[str, str]:
    """The lane database's name, and a conninfo for the server's `postgres` database."""
    from psycopg import conninfo

    name = conninfo.conninfo_to_dict(url).get("dbname", "")
    if "bench" not in name:
        raise BenchError(
            f"BENCH_DATABASE_URL names database {name!r}: it is dropped, so its name must contain 'bench'"
        )
    return name, conninfo.make_conninfo(url, dbname="postgres", connect_timeout=3)


def _drop_database(admin_connection, name: str) -> None:
    from psycopg import sql

    admin_connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def postgres_lane(cfg: Config, workdir: Path, explicit: bool) -> Lane | None:
    """PostgreSQL + Redis, when they answer; the database is dropped and recreated, the Redis
    database flushed."""
    import psycopg
    import redis
    from psycopg import sql

    name, admin = _database_name_and_admin(cfg.database_url)
    try:
        with psycopg.connect(admin, autocommit=True) as db:
            version = db.execute("SHOW server_version").fetchone()[0]
            _drop_database(db, name)
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        cache = redis.Redis.from_url(cfg.cache_url, socket_connect_timeout=3)
        cache.flushdb()
        redis_version = cache.info("server")["redis_version"]
    except (psycopg.OperationalError, redis.exceptions.RedisError) as exc:
        if explicit:
            raise BenchError(f"postgres lane: {exc}") from exc
        log(f"skipping the postgres lane (PostgreSQL or Redis does not answer): {exc}")
        return None
    lane = Lane("postgres", cfg.database_url, cfg.cache_url, workdir)
    lane.versions.update(postgresql=version, redis=redis_version)
    return lane


def _with_path(url: str, path: str) -> str:
    return urllib.parse.urlsplit(url)._replace(path=path).geturl()


def twin_lane(lane: Lane) -> Lane:
    """The lane's empty twin: a copy of its database as set up (users, API tokens, no audit
    rows yet), with a cache of its own. For PostgreSQL a database `<name>_twin` made from the
    lane's as a template, and the next Redis database number."""
    if lane.sqlite_path is not None:
        path = lane.workdir / "twin.sqlite3"
        remove_sqlite_files(path)
        with (
            contextlib.closing(sqlite3.connect(lane.sqlite_path)) as source,
            contextlib.closing(sqlite3.connect(path)) as copy,
        ):
            source.backup(copy)
        url = f"sqlite:///{path}"
        return Lane(lane.name, url, lane.cache_url, lane.workdir, sqlite_path=path, twin=True)
    import psycopg
    import redis
    from psycopg import sql

    name, admin = _database_name_and_admin(lane.database_url)
    twin_name = f"{name}_twin"
    with psycopg.connect(admin, autocommit=True) as db:
        _drop_database(db, twin_name)
        db.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(twin_name), sql.Identifier(name))
        )
    number = urllib.parse.urlsplit(lane.cache_url).path.strip("/") or "0"
    cache_url = _with_path(lane.cache_url, f"/{(int(number) + 1) % 16}")
    redis.Redis.from_url(cache_url, socket_connect_timeout=3).flushdb()
    return Lane(lane.name, _with_path(lane.database_url, f"/{twin_name}"), cache_url, lane.workdir, twin=True)


def drop_lane(lane: Lane) -> None:
    """A lane's (or twin's) data: its SQLite files, or its PostgreSQL database and Redis db."""
    if lane.sqlite_path is not None:
        remove_sqlite_files(lane.sqlite_path)  # its unwritten pages are dropped
        return
    import psycopg
    import redis

    name, admin = _database_name_and_admin(lane.database_url)
    with psycopg.connect(admin, autocommit=True) as db:
        _drop_database(db, name)
    redis.Redis.from_url(lane.cache_url).flushdb()


def app_env(lane: Lane, cfg: Config, secrets_: dict) -> dict:
    """The served app's environment: production settings with the lane's database and cache;
    a developer's .env and any project variables of the caller are left out."""
    dropped = ("DJANGO_", "AGORA_", "DATABASE_", "CACHE_URL", "THROTTLE_", "AUTH_TOKEN_", "TRUSTED_PROXY")
    dropped += ("LOG_LEVEL", "DEMO_", "WEB_CONCURRENCY", "GRANIAN_", "GUNICORN_CMD_ARGS", "MAKE", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k not in ("PORT", "HOST")}
    env.update(
        DJANGO_ENV_FILE="",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets_["secret_key"],
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=lane.database_url,
        CACHE_URL=lane.cache_url,
        AGORA_APP_ID=secrets_["app_id"],
        AGORA_APP_CERTIFICATE=secrets_["app_certificate"],
        # Throttling runs on every request but never refuses one.
        THROTTLE_TOKENS_RATE="100000000/min",
        LOG_LEVEL="WARNING",
        WEB_CONCURRENCY=str(cfg.workers),
    )
    return env


def lanetool(env: dict, *args: str) -> dict:
    result = subprocess.run(
        [str(PYTHON), str(LANETOOL), *args], env=env, cwd=ROOT, text=True, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise BenchError(f"lanetool {args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- servers --------------------------------------------------------------------------------


METRICS_SUFFIX = "+metrics"  # a server spec ending so runs with METRICS_ENABLED=true


def server_argv(spec: str, port: int, workers: int) -> list[str]:
    """The command for a server spec: KIND[:THREADS][@WORKERS][+metrics]."""
    spec, _, worker_count = spec.removesuffix(METRICS_SUFFIX).partition("@")
    kind, _, threads = spec.partition(":")
    workers = str(int(worker_count) if worker_count else workers)
    bind = ["--bind", f"127.0.0.1:{port}"]
    app = "tokenserver.wsgi:application"
    if kind == "serve":
        return [
            "make",
            "--no-print-directory",
            "serve",
            "HOST=127.0.0.1",
            f"PORT={port}",
            f"WEB_CONCURRENCY={workers}",
        ]
    gunicorn = [str(PYTHON.parent / "gunicorn"), app, "--workers", workers, *bind]
    if kind == "gunicorn-sync":
        return [*gunicorn, "--worker-class", "sync"]
    if kind == "gunicorn-gthread":
        return [*gunicorn, "--worker-class", "gthread", "--threads", threads or "4"]
    if kind == "granian":
        return [
            str(PYTHON.parent / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", workers, "--blocking-threads", threads or "1", "--log-level", "warning", app,
        ]  # fmt: skip
    raise BenchError(
        f"unknown server {spec!r}: serve, gunicorn-sync, gunicorn-gthread[:N], granian[:N], each [@workers]"
    )


def describe_server(spec: str, cfg: Config, port: int | None = None) -> str:
    """The command a server spec runs (for `serve`, what `make serve` runs)."""
    port = port or cfg.port
    argv = server_argv(spec, port, cfg.workers)
    metrics = "; METRICS_ENABLED=true" if spec.endswith(METRICS_SUFFIX) else ""
    if not spec.startswith("serve"):
        return " ".join([Path(argv[0]).name, *argv[1:]]) + metrics
    dry = run([*argv[:1], "-s", "-n", *argv[2:]], cwd=ROOT, check=False).stdout
    lines = [" ".join(line.split()) for line in dry.replace("\\\n", " ").splitlines() if line.strip()]
    return f"make serve: {lines[-1] if lines else '?'}{metrics}"


# --- load -----------------------------------------------------------------------------------


@dataclass
class Round:
    lane: str
    server: str
    side: str  # project | tutorial
    endpoint: str
    users: str
    connections: int
    table: str  # empty | seeded | twin (the seeded lane's empty twin)
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    socket_detail: dict
    ok: int
    sent: int
    answered: int
    audit_expected: int | None = None  # rows the 2xx answers should have written
    audit_delta: int | None = None


def wrk(
    port: int, path: str, body: dict | None, tokens: Path, connections: int, cfg: Config, duration=None
) -> dict:
    """One wrk run: `duration` seconds of requests, then up to cfg.drain seconds for the last
    ones to be answered: once every wrk thread reports that it has nothing in flight
    (load.lua), wrk is ended with SIGINT, which makes it print its figures as usual."""
    duration = duration or cfg.duration
    threads = min(cfg.cores, connections)
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration + cfg.drain}s",
        "--timeout", "10s", "-s", str(LUA), f"http://127.0.0.1:{port}",
        "--", str(tokens), "GET" if body is None else "POST", path, "-" if body is None else json.dumps(body),
        str(duration * 1000),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, drained = [], 0
    for line in process.stdout:
        lines.append(line)
        if line.startswith("BENCH_DRAINED"):
            drained += 1
            if drained == threads:
                process.send_signal(signal.SIGINT)
    stderr = process.stderr.read()
    process.wait()
    results = [line for line in lines if line.startswith("BENCH_RESULT ")]
    if process.returncode != 0 or not results:
        raise BenchError(f"wrk failed ({' '.join(argv)}):\n{''.join(lines)}\n{stderr}")
    result = json.loads(results[-1].removeprefix("BENCH_RESULT "))
    result["rps"] = result["answered_in_window"] / duration
    return result


def flush_disk(reason: str) -> None:
    """Write dirty pages back before measuring, so that a figure cannot pay for another
    phase's writes (a suspect, not the proven cause, of a slow PostgreSQL phase right after
    the SQLite lane's seed: bench/RESULTS.md, "Oddities seen"). The log shows how long it took."""
    started = time.monotonic()
    os.sync()
    log(f"disk flushed ({reason}) in {time.monotonic() - started:.1f} s")


def settle(lane: Lane) -> int:
    """The audit row count once the server has finished what it was sent."""
    last, stable_since = lane.count_audit_rows(), time.monotonic()
    deadline = stable_since + 15
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = lane.count_audit_rows()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 0.6:
            break
    return last


class Side(typing.NamedTuple):
    """A project server loaded in a measured round: its lane, spec, port, and the audit table
    it stands for (empty, seeded, or the seeded lane's empty twin)."""

    lane: Lane
    server: str
    port: int
    table: str


class Bench:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.rounds: list[Round] = []
        self.probes: dict[str, dict] = {}
        self.seeding: dict[str, dict] = {}
        self.mismatches: list[str] = []
        self.server_notes: dict[str, list[str]] = {}
        self.tutorial: Process | None = None
        self.secrets = {
            "secret_key": secrets.token_urlsafe(50),
            "app_id": secrets.token_hex(16),
            "app_certificate": secrets.token_hex(16),
        }

    # One measured round on one side.
    def round(self, lane, server, port, key, users, connections, table, tokens) -> Round:
        """One measured round against one server (the project's, or the tutorial's when
        server is "tutorial"); for the project's, compare its 2xx answers with the audit rows."""
        endpoint = ENDPOINTS[key]
        side = "tutorial" if server == "tutorial" else "project"
        if side == "project":
            path, body = endpoint.path, endpoint.body
            before = settle(lane)
        else:
            path, body = endpoint.tutorial_path, endpoint.tutorial_body
        result = wrk(port, path, body, tokens, connections, self.cfg)
        errors = result["errors"]
        done = Round(
            lane=lane.name, server=server, side=side, endpoint=key, users=users,
            connections=connections, table=table, rps=result["rps"],
            p50_ms=result["p50_us"] / 1000, p99_ms=result["p99_us"] / 1000,
            non2xx=result["non2xx"],
            socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
            socket_detail={k: v for k, v in errors.items() if v and k != "status"},
            ok=result["ok"], sent=result["sent"], answered=result["answered"],
        )  # fmt: skip
        if side == "project":
            done.audit_delta = settle(lane) - before
            done.audit_expected = done.ok if endpoint.audited else 0
            if done.audit_delta != done.audit_expected:
                self.mismatches.append(
                    f"{lane.label} {server} {key} {users} c={connections} {table}: {done.ok} 2xx answers "
                    f"{'' if endpoint.audited else '(none of which writes a row) '}"
                    f"but {done.audit_delta} audit rows ({done.sent} requests sent, {done.answered} answered"
                    f"{'; BENCH_DRAIN too short?' if done.sent != done.answered else ''})"
                )
        log(
            f"{lane.label:13} {server:18} {key:8} users={users:4} c={connections:<3} {table:6} "
            f"{done.rps:8.0f} req/s p50 {done.p50_ms:6.1f} ms p99 {done.p99_ms:7.1f} ms "
            f"non-2xx {done.non2xx} socket errors {done.socket_errors}"
            + (f" {done.socket_detail}" if done.socket_detail else "")
            + (f" audit +{done.audit_delta} rows, {done.audit_expected} due" if side == "project" else "")
        )
        return done

    def measure(self, sides: list[Side], items) -> None:
        """Rounds for each item, each round loading every project side (a server on a lane's
        database) and the tutorial's server one after the other (the order reversed every
        other round), so that what is compared runs side by side in time; every project round
        is paired with that round's tutorial. The sides share their users' API tokens."""
        loaded = [*sides, Side(sides[0].lane, "tutorial", self.cfg.tutorial_port, sides[0].table)]
        for key, users, connections in items:
            tokens = sides[0].lane.workdir / f"tokens-{users}.txt"
            for number in range(self.cfg.rounds):
                order = range(len(loaded)) if number % 2 == 0 else reversed(range(len(loaded)))
                done = {}
                for index in order:
                    lane, server, port, table = loaded[index]
                    done[index] = self.round(lane, server, port, key, users, connections, table, tokens)
                paired = done[len(sides)]  # the tutorial's round
                for index, side in enumerate(sides):
                    self.rounds.append(done[index])
                    self.rounds.append(dataclasses.replace(paired, server=side.server, table=side.table))

    def start_tutorial(self) -> None:
        ensure_tutorial()
        if port_in_use(self.cfg.tutorial_port):
            raise BenchError(f"port {self.cfg.tutorial_port} is taken (BENCH_TUTORIAL_PORT)")
        env = {**os.environ, "PORT": str(self.cfg.tutorial_port)}
        self.tutorial = Process("tutorial", ["node", "index.js"], env, TUTORIAL_COPY, LOGS / "tutorial.log")
        deadline = time.monotonic() + 30
        while not port_in_use(self.cfg.tutorial_port):
            if not self.tutorial.alive() or time.monotonic() > deadline:
                raise BenchError(f"the tutorial's server did not start; see {LOGS / 'tutorial.log'}")
            time.sleep(0.2)
        tokens = OUT / "tutorial-warm-up-tokens.txt"
        tokens.write_text("unused\n")
        for endpoint in ENDPOINTS.values():
            wrk(
                self.cfg.tutorial_port, endpoint.tutorial_path, endpoint.tutorial_body, tokens, 8, self.cfg, 1
            )

    def start_project(self, lane: Lane, spec: str, port: int, env: dict) -> Process:
        if port_in_use(port):
            raise BenchError(f"port {port} is taken (BENCH_PORT)")
        argv = server_argv(spec, port, self.cfg.workers)
        log_path = LOGS / f"{lane.label}-{spec.replace(':', '-').replace('@', '-w')}.log"
        log_path.unlink(missing_ok=True)
        if spec.endswith(METRICS_SUFFIX):  # the workers share their counts through this directory
            metrics_dir = lane.workdir / f"metrics-{port}"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env = {**env, "METRICS_ENABLED": "true", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        log(f"{lane.label}: starting {spec} on port {port}: {describe_server(spec, self.cfg, port)}")
        process = Process(spec, argv, env, ROOT, log_path)
        wait_for(f"http://127.0.0.1:{port}/healthz", process)
        return process

    def give_identities(self, port: int, lane: Lane) -> None:
        """One request per user and endpoint: the first request of a user makes its Agora
        identity, so that the measured requests are warm ones."""
        for key in (lane.workdir / "tokens-many.txt").read_text().split():
            for endpoint in (ENDPOINTS[k] for k in self.cfg.endpoints if ENDPOINTS[k].audited):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}{endpoint.path}",
                    data=json.dumps(endpoint.body).encode(),
                    headers={"Content-Type": "application/json", "Authorization": f"Token {key}"},
                )
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1
                    if response.status >= 300:
                        raise BenchError(f"warm-up: {endpoint.path} answered {response.status}")

    def warm_up(self, lane: Lane, port: int) -> None:
        """Load each endpoint briefly, so every worker has imported, connected and cached
        what it needs before it is measured."""
        tokens = lane.workdir / "tokens-many.txt"
        for endpoint in (ENDPOINTS[k] for k in self.cfg.endpoints):
            wrk(port, endpoint.path, endpoint.body, tokens, self.cfg.connections, self.cfg, 1)

    def note_server_log(self, lane: Lane, process: Process) -> None:
        text = process.log_path.read_text(errors="replace") if process.log_path.exists() else ""
        notes = []
        for needle in ("Traceback", "ERROR", "Error", "WARNING", "Warning", "No directory at"):
            count = text.count(needle)
            if count:
                notes.append(f"{count} x {needle!r}")
        self.server_notes[f"{lane.label} {process.name}"] = notes

    @contextlib.contextmanager
    def serve(self, lane: Lane, specs: list[str], env: dict, first_port: int | None = None):
        """Start the servers (one port each), warm them, yield their ports; stop them after."""
        processes, ports = [], {}
        try:
            for number, spec in enumerate(specs):
                ports[spec] = (first_port or self.cfg.port) + number
                processes.append(self.start_project(lane, spec, ports[spec], env))
            for port in ports.values():
                self.warm_up(lane, port)
            yield ports
        finally:
            for process in processes:
                process.stop()
                self.note_server_log(lane, process)

    def run_lane(self, lane: Lane) -> None:
        cfg = self.cfg
        env = app_env(lane, cfg, self.secrets)
        log(f"{lane.name}: migrate, {cfg.users} users with API tokens")
        lanetool(env, "setup", str(lane.workdir), str(cfg.users))
        flush_disk(f"{lane.name} set up")
        bodies = {k: [ENDPOINTS[k].path, ENDPOINTS[k].body] for k in cfg.endpoints if ENDPOINTS[k].audited}
        log(f"{lane.name}: SQL statements and cache round trips per warm request")
        if bodies:
            self.probes[lane.name] = lanetool(env, "probe", str(cfg.probe_requests), json.dumps(bodies))
        twin = None
        if cfg.seed_rows > 0:
            log(f"{lane.name}: its empty twin, for the seeded figures (a copy of the database as set up)")
            twin = twin_lane(lane)
        try:
            first = cfg.servers[0]
            # Every server runs all the time (an idle one costs nothing); the main figures load
            # them in turn, the rest of the plan only the first one (what `make serve` runs).
            main = [(key, "many", cfg.connections) for key in cfg.endpoints]
            with self.serve(lane, cfg.servers, env) as ports:
                self.give_identities(ports[first], lane)
                sides = [Side(lane, spec, port, "empty") for spec, port in ports.items()]
                self.measure(sides, main)
                self.measure(sides[:1], [i for i in cfg.plan() if i not in main])
            if twin is not None:
                self.run_seeded(lane, env, twin)
        finally:
            if twin is not None and not os.environ.get("BENCH_KEEP"):
                drop_lane(twin)

    def run_seeded(self, lane: Lane, env: dict, twin: Lane) -> None:
        """The first server on the seeded lane and, in the same rounds, the same server on the
        lane's empty twin (same users and API tokens, no audit rows until it is loaded): what
        the table's size costs is the ratio of two figures measured side by side, not of two
        phases minutes apart (the tutorial's own speed drifted by more than 10% between them
        on a shared machine, bench/RESULTS.md)."""
        cfg, first = self.cfg, self.cfg.servers[0]
        log(f"{lane.name}: seeding {cfg.seed_rows:,} audit rows")
        self.seeding[lane.name] = lanetool(env, "seed", str(cfg.seed_rows))
        log(f"{lane.name}: seeded in {self.seeding[lane.name]['seconds']} s")
        flush_disk(f"{lane.name} seeded")
        twin_env = app_env(twin, cfg, self.secrets)
        with (
            self.serve(lane, [first], env) as ports,
            self.serve(twin, [first], twin_env, first_port=cfg.port + len(cfg.servers)) as twin_ports,
        ):
            self.give_identities(twin_ports[first], twin)
            seeded = Side(lane, first, ports[first], "seeded")
            self.measure([seeded, Side(twin, first, twin_ports[first], TWIN_TABLE)], cfg.seeded_plan())

    def run(self) -> int:
        cfg = self.cfg
        OUT.mkdir(exist_ok=True)
        self.machine = machine_info(ensure_wrk())
        self.served = {spec: describe_server(spec, cfg) for spec in cfg.servers}
        self.start_tutorial()
        self.lanes: list[Lane] = []
        try:
            for name in cfg.lanes:
                workdir = OUT / name
                workdir.mkdir(parents=True, exist_ok=True)
                if name == "sqlite":
                    lane = sqlite_lane(workdir)
                else:
                    # Asked for by name: a PostgreSQL or Redis that does not answer is an error.
                    explicit = any(os.environ.get(v) for v in ("BENCH_DATABASE_URL", "BENCH_CACHE_URL"))
                    explicit = explicit or "postgres" in os.environ.get("BENCH_LANES", "")
                    lane = postgres_lane(cfg, workdir, explicit)
                    if lane is None:
                        continue
                self.lanes.append(lane)
                try:
                    self.run_lane(lane)
                finally:
                    if not os.environ.get("BENCH_KEEP"):
                        drop_lane(lane)
                    flush_disk(f"{lane.name} done")
        finally:
            if self.tutorial:
                self.tutorial.stop()
        report = Report(self)
        text = report.console()
        print(text)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (OUT / f"run-{stamp}.json").write_text(json.dumps(report.as_json(), indent=1))
        if cfg.write_results:
            write_results(report.markdown())
            log(f"wrote {RESULTS_MD.relative_to(ROOT)}")
        if self.mismatches:
            print("AUDIT MISMATCH: the audit log and the 2xx answers disagree:", file=sys.stderr)
            for line in self.mismatches:
                print(f"  {line}", file=sys.stderr)
            return 1
        if cfg.strict and report.missed:
            return 3
        return 0


def machine_info(wrk_version: str) -> dict:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    if model == "?" and shutil.which("lscpu"):
        for line in run(["lscpu"], check=False).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    commit = run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False).stdout.strip()
    dirty = run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, check=False
    ).stdout.strip()
    versions = {"python": platform.python_version(), "wrk": wrk_version}
    for package in ("django", "djangorestframework", "django-rest-knox", "gunicorn", "granian"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    versions["node"] = run(["node", "--version"], check=False).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "kernel": platform.release(),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "versions": versions,
    }


# --- report ---------------------------------------------------------------------------------


@dataclass
class Figure:
    lane: str
    server: str
    endpoint: str
    users: str
    connections: int
    table: str
    project: list[Round]
    tutorial: list[Round]

    @staticmethod
    def _mean(rounds, name):
        return statistics.fmean(getattr(r, name) for r in rounds) if rounds else float("nan")

    def p(self, name):
        return self._mean(self.project, name)

    def t(self, name):
        return self._mean(self.tutorial, name)

    def errors(self, side: str) -> tuple[int, int]:
        rounds = self.project if side == "project" else self.tutorial
        return sum(r.non2xx for r in rounds), sum(r.socket_errors for r in rounds)

    @property
    def ratio(self) -> float:
        return self.p("rps") / self.t("rps") if self.tutorial and self.t("rps") else float("nan")

    def ratio_text(self) -> str:
        """The ratio of the means, and its range over the rounds (each project round against
        the tutorial round beside it) when there are several."""
        pairs = [p.rps / t.rps for p, t in zip(self.project, self.tutorial, strict=False) if t.rps]
        if len(pairs) < 2:
            return f"{self.ratio:.2f}"
        return f"{self.ratio:.2f} ({min(pairs):.2f}-{max(pairs):.2f})"


class Report:
    def __init__(self, bench: Bench):
        self.bench, self.cfg = bench, bench.cfg
        groups: dict[tuple, Figure] = {}
        for r in bench.rounds:
            key = (r.lane, r.server, r.endpoint, r.users, r.connections, r.table)
            figure = groups.setdefault(key, Figure(*key, [], []))
            (figure.project if r.side == "project" else figure.tutorial).append(r)
        self.figures = list(groups.values())
        self.checks = self._targets()
        self.missed = [c for c in self.checks if c[1] == "MISSED"]

    def find(self, lane, endpoint, users="many", connections=None, table="empty", server=None):
        connections = connections or self.cfg.connections
        server = server or self.cfg.servers[0]
        for f in self.figures:
            if (f.lane, f.server, f.endpoint, f.users, f.connections, f.table) == (
                lane, server, endpoint, users, connections, table,
            ):  # fmt: skip
                return f
        return None

    def _targets(self) -> list[tuple[str, str, str]]:
        """(target, MET/MISSED, measured)"""
        checks = []
        for lane in self.bench.lanes:
            min_ratio, max_p99 = TARGETS[lane.name]
            for key in ("rtctoken", "rtc"):
                f = self.find(lane.name, key)
                if f is None:
                    continue
                errors = sum(f.errors("project"))
                met = f.ratio >= min_ratio and f.p("p99_ms") <= max_p99 and errors == 0
                checks.append(
                    (
                        f"{lane.name}: {ENDPOINTS[key].path}, {self.cfg.users} users, {f.connections} conns: "
                        f"ratio >= {min_ratio}, p99 <= {max_p99:.0f} ms, no errors",
                        "MET" if met else "MISSED",
                        f"ratio {f.ratio:.2f}, p99 {f.p('p99_ms'):.1f} ms, errors {errors}",
                    )
                )
                seeded = self.find(lane.name, key, table="seeded")
                twin = self.find(lane.name, key, table=TWIN_TABLE)
                if seeded is not None and twin is not None:
                    change = seeded.p("rps") / twin.p("rps") - 1
                    checks.append(
                        (
                            f"{lane.name}: {ENDPOINTS[key].path} with {self.cfg.seed_rows:,} audit rows "
                            f"within {SEEDED_TOLERANCE:.0%} of an empty table (the empty twin, side by side)",
                            "MET" if change >= -SEEDED_TOLERANCE else "MISSED",
                            f"req/s {seeded.p('rps'):.0f} vs {twin.p('rps'):.0f} ({change:+.0%}); "
                            f"ratio to the tutorial {seeded.ratio:.2f} vs {twin.ratio:.2f}; "
                            f"p99 {seeded.p('p99_ms'):.1f} vs {twin.p('p99_ms'):.1f} ms",
                        )
                    )
            probe = self.bench.probes.get(lane.name)
            for key, figures in (probe or {}).get("endpoints", {}).items():
                cache = figures["redis_round_trips"]
                cache = figures["cache_calls"] if cache is None else cache
                met = figures["sql"] <= WARM_MAX_SQL and cache <= WARM_MAX_CACHE
                checks.append(
                    (
                        f"{lane.name}: warm {ENDPOINTS[key].path}: <= {WARM_MAX_SQL} SQL statements "
                        f"and {WARM_MAX_CACHE} cache operation",
                        "MET" if met else "MISSED",
                        f"{figures['sql']:g} SQL, {cache:g} cache",
                    )
                )
        return checks

    # Tables, as rows of cells; rendered as text or markdown.
    def main_table(self, table="empty", curve=False):
        head = [
            "lane", "server", "endpoint", "users", "conns", "project req/s", "p50 ms", "p99 ms",
            "non-2xx", "sock err", "tutorial req/s", "p50 ms", "p99 ms", "non-2xx", "sock err", "ratio",
        ]  # fmt: skip
        rows = []
        for f in self.figures:
            if f.table != table or (f.connections != self.cfg.connections) != curve:
                continue
            rows.append(
                [
                    f.lane, f.server, ENDPOINTS[f.endpoint].path, self._users(f.users), f.connections,
                    f"{f.p('rps'):.0f}", f"{f.p('p50_ms'):.1f}", f"{f.p('p99_ms'):.1f}",
                    *f.errors("project"),
                    f"{f.t('rps'):.0f}", f"{f.t('p50_ms'):.1f}", f"{f.t('p99_ms'):.1f}",
                    *f.errors("tutorial"),
                    f.ratio_text(),
                ]
            )  # fmt: skip
        return head, rows

    def curve_table(self):
        head = ["lane", "endpoint", "conns", "project req/s", "project p99 ms", "tutorial req/s",
                "tutorial p99 ms", "ratio"]  # fmt: skip
        rows = []
        for f in sorted(
            (
                f
                for f in self.figures
                if f.table == "empty" and f.users == "many" and f.server == self.cfg.servers[0]
            ),
            key=lambda f: (f.lane, f.endpoint, f.connections),
        ):
            if sum(1 for g in self.figures if (g.lane, g.endpoint, g.users, g.table, g.server) == (
                f.lane, f.endpoint, f.users, f.table, f.server,
            )) < 2:  # fmt: skip
                continue  # no curve for this endpoint
            rows.append(
                [f.lane, ENDPOINTS[f.endpoint].path, f.connections, f"{f.p('rps'):.0f}",
                 f"{f.p('p99_ms'):.1f}", f"{f.t('rps'):.0f}", f"{f.t('p99_ms'):.1f}", f.ratio_text()]
            )  # fmt: skip
        return head, rows

    def probe_table(self):
        head = ["lane", "endpoint", "SQL sent", "of which BEGIN/COMMIT", "health-check SELECT 1",
                "cache API calls", "Redis round trips", "Redis commands", "status"]  # fmt: skip
        rows = []
        for lane, probe in self.bench.probes.items():
            for key, p in probe["endpoints"].items():
                rows.append(
                    [lane, ENDPOINTS[key].path, f"{p['sql']:g}", f"{p['sql_transaction_control']:g}",
                     f"{p['sql_health_checks']:g}", f"{p['cache_calls']:g}",
                     "-" if p["redis_round_trips"] is None else f"{p['redis_round_trips']:g}",
                     "-" if p["redis_commands"] is None else f"{p['redis_commands']:g}",
                     ",".join(map(str, p["statuses"]))]
                )  # fmt: skip
        return head, rows

    def audit_table(self):
        head = ["lane", "project rounds", "2xx answers (token endpoints)", "audit rows added", "mismatches"]
        rows = []
        for lane in self.bench.lanes:
            rounds = [r for r in self.bench.rounds if r.lane == lane.name and r.side == "project"]
            bad = sum(1 for r in rounds if r.audit_delta != r.audit_expected)
            expected, added = sum(r.audit_expected for r in rounds), sum(r.audit_delta for r in rounds)
            rows.append([lane.name, len(rounds), expected, added, bad])
        return head, rows

    def servers_table(self):
        head = ["lane", "server", "endpoint", "req/s", "p99 ms", "errors", "tutorial req/s", "ratio"]
        rows = []
        for f in self.figures:
            if f.table == "empty" and f.users == "many" and f.connections == self.cfg.connections:
                rows.append(
                    [f.lane, f.server, ENDPOINTS[f.endpoint].path,
                     f"{f.p('rps'):.0f}", f"{f.p('p99_ms'):.1f}", sum(f.errors("project")),
                     f"{f.t('rps'):.0f}", f.ratio_text()]
                )  # fmt: skip
        return head, rows

    def _users(self, mode: str) -> str:
        return str(self.cfg.users) if mode == "many" else "1"

    def sections(self):
        cfg = self.cfg
        yield "Main figures (empty audit table)", self.main_table()
        if len(cfg.servers) > 1:
            yield "Servers compared (many users)", self.servers_table()
        yield "Connections curve (many users)", self.curve_table()
        if cfg.seed_rows > 0:
            yield f"With {cfg.seed_rows:,} audit rows already in the table", self.main_table("seeded")
            yield (
                "Beside it, in the same rounds: its empty twin (same users and tokens, empty at first)",
                self.main_table(TWIN_TABLE),
            )
        yield "SQL statements and cache operations per warm token request", self.probe_table()
        yield "Audit rows against 2xx answers (per project round; must be equal)", self.audit_table()
        yield "Targets", (["target", "result", "measured"], [list(c) for c in self.checks])

    def settings_lines(self) -> list[str]:
        cfg, m = self.cfg, self.bench.machine
        lines = [
            f"Date: {m['date']}; machine: nproc {m['nproc']}, CPU {m['cpu']}, Linux {m['kernel']}; "
            f"commit {m['commit']}",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
            f"Mode: {'quick' if cfg.quick else 'full'}; {cfg.rounds} round(s) per figure, project and "
            f"tutorial alternating; {cfg.duration} s of load per round, then up to {cfg.drain} s "
            "for the answers still due; "
            f"wrk with {min(cfg.cores, cfg.connections)} threads; {cfg.users} users",
            "Project: "
            + "; ".join(f"{k} = {v}" for k, v in self.bench.served.items())
            + f"; {cfg.workers} workers; DJANGO_DEBUG off, LOG_LEVEL=WARNING, "
            "THROTTLE_TOKENS_RATE=100000000/min (throttle runs, never refuses)",
            "Tutorial: node index.js (one process, as written)",
        ]
        for lane in self.bench.lanes:
            versions = ", ".join(f"{k} {v}" for k, v in lane.versions.items())
            lines.append(f"Lane {lane.name}: {versions}")
        for lane, seeded in self.bench.seeding.items():
            lines.append(
                f"Seeding {lane}: {seeded['inserted']:,} rows in {seeded['seconds']} s "
                f"(table now {seeded['total']:,})"
            )
        for name, notes in self.bench.server_notes.items():
            lines.append(f"Server log {name}: {', '.join(notes) if notes else 'no warnings or errors'}")
        return lines

    def console(self) -> str:
        out = ["", "=" * 100, "make bench", *self.settings_lines()]
        for title, (head, rows) in self.sections():
            out += ["", f"== {title}", *text_table(head, rows)]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"- {line}" for line in self.settings_lines()]
        for title, (head, rows) in self.sections():
            out += ["", f"### {title}", "", *markdown_table(head, rows)]
        return "\n".join(out)

    def as_json(self) -> dict:
        return {
            "machine": self.bench.machine,
            "config": {k: v for k, v in vars(self.cfg).items() if not k.startswith("_")},
            "served": self.bench.served,
            "rounds": [vars(r) for r in self.bench.rounds],
            "probes": self.bench.probes,
            "seeding": self.bench.seeding,
            "targets": self.checks,
            "mismatches": self.bench.mismatches,
            "server_notes": self.bench.server_notes,
        }


def text_table(head, rows) -> list[str]:
    if not rows:
        return ["(none)"]
    cells = [[str(c) for c in row] for row in [head, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def markdown_table(head, rows) -> list[str]:
    if not rows:
        return ["(none)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def write_results(generated: str) -> None:
    """Rewrite the generated part of RESULTS.md; the hand-written part around it stays."""
    block = f"{BEGIN_MARK}\n\n{generated}\n\n{END_MARK}"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n\n"
    if BEGIN_MARK in text and END_MARK in text:
        before, rest = text.split(BEGIN_MARK, 1)
        after = rest.split(END_MARK, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n## Last run\n\n" + block + "\n"
    RESULTS_MD.write_text(text)


def main() -> int:
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
        for name, meaning in KNOBS.items():
            print(f"  {name:22} {meaning}")
        return 0
    # A SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return Bench(Config()).run()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
