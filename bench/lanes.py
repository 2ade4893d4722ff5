"""A lane (a database and a cache the project is served on), its empty twin, and the servers:
the project's (`make serve`, or another server to compare) and the tutorial's."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import LOGS, ROOT, BenchError
from tests.servers import ServerProcess, call, granian_argv, server_env, service_reachable

PYTHON = Path(sys.executable)  # make bench runs the bench with the project's venv
LANETOOL = ROOT / "bench" / "lanetool.py"
TUTORIAL_COPY = ROOT / "bench" / "seed-express"  # gitignored: ../shared may be read-only
TUTORIAL_FILES = ("index.js", "package.json", "package-lock.json")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


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

        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as db:
            return db.execute("SELECT count(*) FROM tokens_issuedtoken").fetchone()[0]

    def settle(self) -> int:
        """The audit row count once the server has finished what it was sent."""
        last, stable_since = self.count_audit_rows(), time.monotonic()
        deadline = stable_since + 15
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.count_audit_rows()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 0.6:
                break
        return last


def remove_sqlite_files(path: Path) -> None:
    """A SQLite database, its WAL, its shared-memory index and the app's write lock beside it
    (only ever removed while no server runs)."""
    for suffix in ("", "-wal", "-shm", ".write-lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_lane(workdir: Path) -> Lane:
    """The embedded default: a fresh SQLite file and the local-memory cache (per process)."""
    path = workdir / "db.sqlite3"
    remove_sqlite_files(path)
    lane = Lane("sqlite", f"sqlite:///{path}", "locmemcache://tokenserver", workdir, sqlite_path=path)
    lane.versions["sqlite"] = sqlite3.sqlite_version
    return lane


def _database_name_and_admin(url: str) -> tuple[str, str]:
    """The lane database's name, and a conninfo for the server's `postgres` database."""
    from psycopg import conninfo

    name = conninfo.conninfo_to_dict(url).get("dbname", "")
    if "bench" not in name:
        raise BenchError(f"the database URL names {name!r}: it is dropped, so its name must contain 'bench'")
    return name, conninfo.make_conninfo(url, dbname="postgres", connect_timeout=3)


def _drop_database(admin_connection, name: str) -> None:
    from psycopg import sql

    admin_connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def postgres_lane(database_url: str, cache_url: str, workdir: Path, explicit: bool) -> Lane | None:
    """PostgreSQL + Redis, when they answer (None, or BenchError when `explicit`); the database
    is dropped and recreated, the Redis database flushed."""
    import psycopg
    import redis
    from psycopg import sql

    name, admin = _database_name_and_admin(database_url)
    try:
        with psycopg.connect(admin, autocommit=True) as db:
            version = db.execute("SHOW server_version").fetchone()[0]
            _drop_database(db, name)
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        cache = redis.Redis.from_url(cache_url, socket_connect_timeout=3)
        cache.flushdb()
        redis_version = cache.info("server")["redis_version"]
    except (psycopg.OperationalError, redis.exceptions.RedisError) as exc:
        if explicit:
            raise BenchError(f"postgres lane: {exc}") from exc
        log(f"skipping the postgres lane (PostgreSQL or Redis does not answer): {exc}")
        return None
    lane = Lane("postgres", database_url, cache_url, workdir)
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
        return Lane(lane.name, f"sqlite:///{path}", lane.cache_url, lane.workdir, sqlite_path=path, twin=True)
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


def app_env(lane: Lane, workers: int, secrets_: dict) -> dict:
    """The served app's environment (tests/servers.py's, without the caller's project
    variables or .env) with the lane's database and cache, this run's credentials, and a
    throttle that runs on every request but never refuses one."""
    return server_env(
        DJANGO_SECRET_KEY=secrets_["secret_key"],
        DATABASE_URL=lane.database_url,
        CACHE_URL=lane.cache_url,
        AGORA_APP_ID=secrets_["app_id"],
        AGORA_APP_CERTIFICATE=secrets_["app_certificate"],
        THROTTLE_TOKENS_RATE="100000000/min",
        WEB_CONCURRENCY=str(workers),
    )


def lanetool(env: dict, *args: str) -> dict:
    """bench/lanetool.py with a lane's environment; the JSON object it prints."""
    result = subprocess.run(
        [str(PYTHON), str(LANETOOL), *args], env=env, cwd=ROOT, text=True, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise BenchError(f"lanetool {args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def give_identities(port: int, tokens: Path, endpoints) -> None:
    """One request per user (a line of `tokens`) and endpoint: the first request of a user makes
    its Agora identity, so that the measured requests are warm ones."""
    for key in tokens.read_text().split():
        for endpoint in endpoints:
            body = json.dumps(endpoint.body)
            status, _, _ = call(
                f"http://127.0.0.1:{port}", "POST", endpoint.path, body, {"Authorization": f"Token {key}"}
            )
            if status >= 300:
                raise BenchError(f"warm-up: {endpoint.path} answered {status}")


# --- servers --------------------------------------------------------------------------------

METRICS_SUFFIX = "+metrics"  # a server spec ending so runs with METRICS_ENABLED=true


def server_checkout(spec: str) -> Path:
    """Where a server spec's project is: `...=DIR` names another checkout (e.g. the code before
    a change, measured in the same rounds), otherwise this one."""
    _, _, directory = spec.partition("=")
    return Path(directory).resolve() if directory else ROOT


def server_argv(spec: str, port: int, workers: int) -> list[str]:
    """The command for a server spec: KIND[:THREADS][@WORKERS][+metrics][=DIR]."""
    spec = spec.partition("=")[0]
    spec, _, worker_count = spec.removesuffix(METRICS_SUFFIX).partition("@")
    kind, _, threads = spec.partition(":")
    workers = int(worker_count) if worker_count else workers
    if kind == "serve":
        return [
            "make",
            "--no-print-directory",
            "serve",
            "HOST=127.0.0.1",
            f"PORT={port}",
            f"WEB_CONCURRENCY={workers}",
        ]
    gunicorn = [str(PYTHON.parent / "gunicorn"), "tokenserver.wsgi:application", "--workers", str(workers)]
    gunicorn += ["--bind", f"127.0.0.1:{port}"]
    if kind == "gunicorn-sync":
        return [*gunicorn, "--worker-class", "sync"]
    if kind == "gunicorn-gthread":
        return [*gunicorn, "--worker-class", "gthread", "--threads", threads or "4"]
    if kind == "granian":
        return granian_argv(port, workers, int(threads or 1))
    raise BenchError(
        f"unknown server {spec!r}: serve, gunicorn-sync, gunicorn-gthread[:N], granian[:N], each [@workers]"
    )


def describe_server(spec: str, port: int, workers: int) -> str:
    """The command a server spec runs (for `serve`, what `make serve` runs)."""
    argv = server_argv(spec, port, workers)
    checkout = server_checkout(spec)
    where = "" if checkout == ROOT else f" in {checkout}"
    metrics = "; METRICS_ENABLED=true" if spec.partition("=")[0].endswith(METRICS_SUFFIX) else ""
    if not spec.startswith("serve"):
        return " ".join([Path(argv[0]).name, *argv[1:]]) + metrics + where
    dry = subprocess.run(["make", "-s", "-n", *argv[2:]], cwd=checkout, text=True, capture_output=True).stdout
    lines = [" ".join(line.split()) for line in dry.replace("\\\n", " ").splitlines() if line.strip()]
    return f"make serve{where}: {lines[-1] if lines else '?'}{metrics}"


def start_project(lane: Lane, spec: str, port: int, env: dict, workers: int) -> ServerProcess:
    """A project server on the lane, answering /healthz with a 200."""
    if service_reachable(port):
        raise BenchError(f"port {port} is taken (BENCH_PORT)")
    name = spec.partition("=")[0] + ("-" + server_checkout(spec).name if "=" in spec else "")
    log_path = LOGS / f"{lane.label}-{name.replace(':', '-').replace('@', '-w')}.log"
    log_path.unlink(missing_ok=True)
    if spec.partition("=")[0].endswith(METRICS_SUFFIX):  # the workers share their counts here
        metrics_dir = lane.workdir / f"metrics-{port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env = {**env, "METRICS_ENABLED": "true", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    log(f"{lane.label}: starting {spec} on port {port}: {describe_server(spec, port, workers)}")
    process = ServerProcess(
        server_argv(spec, port, workers), env, log_path, cwd=server_checkout(spec), name=spec
    )
    try:
        process.wait_until_answering(f"http://127.0.0.1:{port}/healthz", timeout=90, healthy=True)
    except RuntimeError as exc:
        process.stop()
        raise BenchError(str(exc)) from exc
    return process


def server_log_notes(process: ServerProcess) -> list[str]:
    """How often the server's log has warnings, errors and tracebacks."""
    text = process.output()
    needles = ("Traceback", "ERROR", "Error", "WARNING", "Warning", "No directory at")
    return [f"{text.count(needle)} x {needle!r}" for needle in needles if needle in text]


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


def start_tutorial(port: int) -> ServerProcess:
    """The tutorial's server as written (`node index.js`, one process)."""
    ensure_tutorial()
    if service_reachable(port):
        raise BenchError(f"port {port} is taken (BENCH_TUTORIAL_PORT)")
    env = {**os.environ, "PORT": str(port)}
    process = ServerProcess(["node", "index.js"], env, LOGS / "tutorial.log", TUTORIAL_COPY, "tutorial")
    try:
        process.wait_until_answering(f"http://127.0.0.1:{port}/", healthy=True)
    except RuntimeError as exc:
        process.stop()
        raise BenchError(str(exc)) from exc
    return process
