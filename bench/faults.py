"""`make bench-faults` (BENCH_FAULTS=1): PostgreSQL and Redis restarted in the middle of a load
against `make serve`, and what the clients saw.

The machine's own PostgreSQL (5432) and Redis (6379) serve other people's tests, so this run
starts a PostgreSQL cluster of its own (initdb into bench/results/, as the `postgres` user when
run as root: initdb refuses root) and a redis-server of its own, each on a free port, restarts
those, and removes them at the end, Ctrl-C and errors included. One wrk load per outage kind
(bench/load.lua with a timeline of the answers by class in 10 ms slices); in the middle of it
the service is stopped cleanly (PostgreSQL's fast shutdown, Redis's SIGTERM) or killed (SIGKILL
to all its processes), kept down for BENCH_FAULT_DOWN seconds, and started again. The server is
never restarted. Judged: no 5xx other than 503, audit rows = 2xx answers, the first 2xx within
5 s of the service answering again, no worker respawned.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import lanes
from bench.config import ENDPOINTS, OUT, RESULTS_MD, ROOT, BenchError, Config, env_int, env_list
from bench.lanes import Lane, log
from bench.load import ensure_wrk, wrk
from bench.report import machine_info, render, write_section
from tests.servers import ServerProcess, free_port

FAULT_MARKS = (
    "<!-- BEGIN make bench-faults output: everything up to the END marker is rewritten -->",
    "<!-- END make bench-faults output -->",
)
KINDS = ("postgres-stop", "postgres-kill", "redis-stop", "redis-kill")
ENDPOINT = ENDPOINTS["rtc"]  # POST /api/v1/tokens/rtc/: authentication, budget, audit row
BUCKET_MS = 10
RECOVERY_TARGET_S = 5.0
START_ALLOWANCE_S = 5  # load added for the service's own start-up


# --- private services -----------------------------------------------------------------------


def _as_postgres_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise BenchError("no PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql)")
    return found[-1].parent


class PrivateService:
    """A service of this run's own: a new directory under `parent`, a free port on 127.0.0.1,
    one process group (so a crash is SIGKILL to all of it at once)."""

    name = ""

    def __init__(self, parent: Path):
        self.port = free_port()
        parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=parent))
        self.process: ServerProcess | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 30) -> None:
        """Start it and wait until it answers."""
        if self.answers():
            raise BenchError(f"something already answers on the private {self.name}'s port {self.port}")
        self.process = ServerProcess(
            self.argv(), dict(os.environ), self.dir / "server.log", self.dir, self.name
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if not self.process.alive() or time.monotonic() > deadline:
                output = self.process.output()[-2000:]
                raise BenchError(
                    f"the private {self.name} did not start ({self.process.log_path}):\n{output}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """A clean stop: SIGTERM, then SIGKILL to what is left."""
        if self.process is not None and self.process.alive():
            self.process.stop(timeout=30)

    def crash(self) -> None:
        """SIGKILL to every process of it at once."""
        if self.process is not None:
            self.process.kill()

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        if self.process is not None and self.process.alive():
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres(PrivateService):
    """A PostgreSQL cluster of this run's own (trust authentication for user postgres)."""

    name = "postgres"

    def __init__(self, parent: Path):
        super().__init__(parent)
        self.data, self.bin = self.dir / "data", postgres_bin()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        result = subprocess.run(
            [*_as_postgres_user(), str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--encoding=UTF8", "--no-sync"],
            capture_output=True, text=True, check=False, cwd=self.dir,
        )  # fmt: skip
        if result.returncode != 0:
            self.cleanup()
            raise BenchError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def argv(self) -> list[str]:
        return [
            *_as_postgres_user(), str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
            "-c", "max_connections=60", "-c", "shared_buffers=32MB",
        ]  # fmt: skip

    def answers(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url(), connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    def stop(self) -> None:
        """A fast shutdown: SIGINT to the postmaster ends the sessions (SIGTERM would wait for
        the app's persistent connections to close)."""
        if self.process is None or not self.process.alive():
            return
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
        try:
            self.process.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def crash(self) -> None:
        """SIGKILL to the postmaster and every backend, not to runuser above them: runuser reaps
        the postmaster, whose zombie would otherwise keep its lock file "in use" (nothing else
        here reaps orphans). The next start replays the WAL."""
        if self.process is None or not self.process.alive():
            return
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        for pid in [postmaster, *children(postmaster)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            self.process.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class PrivateRedis(PrivateService):
    """A redis-server of this run's own (nothing saved; SIGTERM is its clean stop)."""

    name = "redis"

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def argv(self) -> list[str]:
        return [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
        ]  # fmt: skip

    def answers(self) -> bool:
        """PING answered (a bare socket: redis-py retries a refused connection for seconds)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


# --- what one outage run saw ----------------------------------------------------------------


def first_2xx_after(timeline: dict, moment: float) -> float | None:
    """Seconds from `moment` (time.monotonic()) to the first timeline slice at or after it with a
    2xx answer (to within a slice; 0 when that slice began before `moment`); None if none."""
    bucket = timeline["bucket_ms"]
    start = math.floor(moment * 1000 / bucket)
    found = [s for s, counts in timeline["slices"].items() if s >= start and counts[0] > 0]
    if not found:
        return None
    return max(0.0, min(found) * bucket / 1000 - moment)


def longest_gap(timeline: dict) -> float:
    """The longest time between two slices with 2xx answers (seconds; 0 without a gap)."""
    bucket = timeline["bucket_ms"]
    ok = sorted(s for s, counts in timeline["slices"].items() if counts[0] > 0)
    return max((b - a - 1 for a, b in itertools.pairwise(ok)), default=0) * bucket / 1000


@dataclass
class Outage:
    kind: str  # postgres-stop | postgres-kill | redis-stop | redis-kill
    ok: int
    s503: int
    s5xx: int  # 5xx other than 503
    other: int  # other non-2xx answers
    socket_errors: int
    audit_rows: int
    down_s: float  # from the stop (or kill) until the service answered again
    recovery_s: float | None  # from the service answering again to the first 2xx
    gap_s: float  # the longest stretch without a 2xx
    workers_respawned: int
    server_alive: bool
    sent: int = 0
    answered: int = 0
    connections: int = 0  # of the load: the most requests a crash can leave in flight

    @classmethod
    def from_load(
        cls, kind, result, *, down_at, back_at, audit_rows, workers_respawned, server_alive, connections
    ):
        errors = result["errors"]
        return cls(
            kind=kind, ok=result["ok"], s503=result["s503"], s5xx=result["s5xx"],
            other=result["non2xx"] - result["s503"] - result["s5xx"],
            socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
            audit_rows=audit_rows, down_s=back_at - down_at,
            recovery_s=first_2xx_after(result["timeline"], back_at), gap_s=longest_gap(result["timeline"]),
            workers_respawned=workers_respawned, server_alive=server_alive,
            sent=result["sent"], answered=result["answered"], connections=connections,
        )  # fmt: skip

    def recovery_text(self) -> str:
        if self.recovery_s is None:
            return "no 2xx after it"
        return (
            f"< {BUCKET_MS / 1000:g} s" if self.recovery_s < BUCKET_MS / 1000 else f"{self.recovery_s:.2f} s"
        )

    @property
    def crash(self) -> bool:
        return self.kind == "postgres-kill"  # Redis holds no audit row: its crash cuts no commit

    def rows_ok(self) -> bool:
        """Audit rows against 2xx answers. A restart must leave them equal. A crash of PostgreSQL
        may also leave the row of a token that was never delivered (its commit reached the log,
        the answer to the worker did not, so the client got a 503): at most one per connection
        in flight. Never fewer rows than tokens."""
        if self.crash:
            return self.ok <= self.audit_rows <= self.ok + self.connections
        return self.audit_rows == self.ok

    def checks(self) -> list[tuple[str, bool, str]]:
        """(requirement, met, measured)"""
        rows_rule = (
            f"2xx <= audit rows <= 2xx + {self.connections} (commits whose answer the crash cut off)"
            if self.crash
            else "audit rows = 2xx answers"
        )
        return [
            ("no 5xx other than 503", self.s5xx == 0, f"{self.s5xx}"),
            (
                rows_rule,
                self.rows_ok(),
                f"{self.audit_rows} rows, {self.ok} 2xx"
                + (f" ({self.audit_rows - self.ok:+d})" if self.audit_rows != self.ok else ""),
            ),
            (
                f"first 2xx < {RECOVERY_TARGET_S:g} s after the service is back",
                self.recovery_s is not None and self.recovery_s < RECOVERY_TARGET_S,
                self.recovery_text(),
            ),
            (
                "the server never restarted (same process, no worker respawned)",
                self.server_alive and self.workers_respawned == 0,
                f"{'alive' if self.server_alive else 'EXITED'}, {self.workers_respawned} respawned",
            ),
        ]

    @property
    def failed_hard(self) -> bool:
        """What the design calls a bug: a 5xx that is not a 503, a token without its row (or,
        after a mere restart, a row without its token)."""
        return self.s5xx != 0 or not self.rows_ok()


def outage_tables(outages: list[Outage]):
    head = ["outage", "down s", "2xx", "503", "other 5xx", "other non-2xx", "socket errors",
            "audit rows", "first 2xx after back", "longest gap without 2xx"]  # fmt: skip
    rows = [
        [o.kind, f"{o.down_s:.2f}", o.ok, o.s503, o.s5xx, o.other, o.socket_errors, o.audit_rows,
         o.recovery_text(), f"{o.gap_s:.2f} s"]
        for o in outages
    ]  # fmt: skip
    checks = [
        [o.kind, name, "MET" if met else "MISSED", measured]
        for o in outages
        for name, met, measured in o.checks()
    ]
    return [("Answers during a load with an outage in the middle", (head, rows)),
            ("Requirements", (["outage", "requirement", "result", "measured"], checks))]  # fmt: skip


# --- the run --------------------------------------------------------------------------------


@dataclass
class FaultConfig:
    kinds: list[str] = field(default_factory=lambda: env_list("BENCH_FAULT_KINDS", ",".join(KINDS)))
    load_s: int = field(default_factory=lambda: env_int("BENCH_FAULT_LOAD", 5))
    down_s: int = field(default_factory=lambda: env_int("BENCH_FAULT_DOWN", 2))
    connections: int = field(default_factory=lambda: env_int("BENCH_FAULT_CONNECTIONS", 8))
    base: Config = field(default_factory=Config)

    def __post_init__(self):
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds or self.load_s < 1 or self.down_s < 0:
            raise BenchError(f"BENCH_FAULT_KINDS: some of {', '.join(KINDS)}; BENCH_FAULT_LOAD >= 1")


def children(pid: int) -> set[int]:
    """A process's children (Linux: /proc/PID/task/*/children)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def run_outage(kind, services, lane: Lane, server: ServerProcess, port: int, fcfg: FaultConfig) -> Outage:
    """One load with `kind`'s outage in its middle."""
    cfg = fcfg.base
    service = services[kind.split("-")[0]]
    before, workers = lane.settle(), children(server.main_pid())
    window = 2 * fcfg.load_s + fcfg.down_s + START_ALLOWANCE_S
    result: dict = {}

    def load():
        try:
            result.update(wrk(
                port, ENDPOINT.path, ENDPOINT.body, lane.workdir / "tokens-many.txt", fcfg.connections,
                duration=window, drain=cfg.drain, threads=cfg.cores, bucket_ms=BUCKET_MS,
            ))  # fmt: skip
        except BenchError as exc:
            result["error"] = str(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    time.sleep(fcfg.load_s)
    down_at = time.monotonic()
    if kind.endswith("-kill"):
        service.crash()
    else:
        service.stop()
    log(f"{kind}: {service.name} {'killed' if kind.endswith('-kill') else 'stopped'}")
    time.sleep(fcfg.down_s)
    service.start()
    back_at = time.monotonic()
    log(f"{kind}: {service.name} answers again, {back_at - down_at:.2f} s after it went")
    thread.join()
    if "error" in result:
        raise BenchError(result["error"])
    outage = Outage.from_load(
        kind, result, down_at=down_at, back_at=back_at, audit_rows=lane.settle() - before,
        workers_respawned=len(workers - children(server.main_pid())), server_alive=server.alive(),
        connections=fcfg.connections,
    )  # fmt: skip
    log(
        f"{kind}: {outage.ok} 2xx, {outage.s503} x 503, {outage.s5xx} other 5xx, {outage.other} other, "
        f"{outage.socket_errors} socket errors; {outage.audit_rows} audit rows; first 2xx "
        f"{outage.recovery_text()} after it was back"
    )
    return outage


def report_lines(machine: dict, fcfg: FaultConfig, versions: dict) -> list[str]:
    cfg = fcfg.base
    return [
        f"Date: {machine['date']}; machine: nproc {machine['nproc']}, CPU {machine['cpu']}; "
        f"commit {machine['commit']}",
        f"Private services: {', '.join(f'{k} {v}' for k, v in versions.items())} (own ports, restarted; "
        "the machine's PostgreSQL and Redis untouched)",
        f"Load: wrk, {fcfg.connections} connections, {ENDPOINT.path}, {cfg.users} users; "
        f"{fcfg.load_s} s, then the outage ({fcfg.down_s} s down plus the service's start-up), then at "
        f"least {fcfg.load_s} s more; answers timed in {BUCKET_MS} ms slices",
        f"Project: make serve, {cfg.workers} workers, never restarted",
    ]


def main() -> int:
    fcfg = FaultConfig()
    cfg = fcfg.base
    machine = machine_info(ensure_wrk())
    workdir = OUT / "faults"
    workdir.mkdir(parents=True, exist_ok=True)
    outages: list[Outage] = []
    with contextlib.ExitStack() as stack:
        log("private PostgreSQL (initdb) and Redis for the outage runs")
        postgres = PrivatePostgres(OUT)
        stack.callback(postgres.cleanup)
        postgres.start()
        cache = PrivateRedis(OUT)
        stack.callback(cache.cleanup)
        cache.start()
        import psycopg
        import redis

        with psycopg.connect(postgres.url(), autocommit=True) as db:
            db.execute("CREATE DATABASE tokenbench_faults")
            versions = {"postgresql": db.execute("SHOW server_version").fetchone()[0]}
        versions["redis"] = redis.Redis(port=cache.port).info("server")["redis_version"]
        lane = Lane("postgres", postgres.url("tokenbench_faults"), cache.url(), workdir)
        credentials = {"app_id": secrets.token_hex(16), "app_certificate": secrets.token_hex(16)}
        env = lanes.app_env(lane, cfg.workers, {**credentials, "secret_key": secrets.token_urlsafe(50)})
        log(f"faults: migrate, {cfg.users} users with API tokens")
        lanes.lanetool(env, "setup", str(workdir), str(cfg.users))
        port = free_port()  # the machine is shared: no fixed port to collide on
        server = lanes.start_project(lane, "serve", port, env, cfg.workers)
        stack.callback(server.stop)
        lanes.give_identities(port, workdir / "tokens-many.txt", [ENDPOINT])
        services = {"postgres": postgres, "redis": cache}
        for kind in fcfg.kinds:
            outages.append(run_outage(kind, services, lane, server, port, fcfg))
            server.wait_until_answering(f"http://127.0.0.1:{port}/healthz", timeout=30, healthy=True)
        notes = lanes.server_log_notes(server)
    lines = report_lines(machine, fcfg, versions)
    lines.append(f"Server log: {', '.join(notes) if notes else 'no warnings or errors'}")
    print(render("make bench-faults", lines, outage_tables(outages), markdown=False))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"faults-{stamp}.json").write_text(json.dumps([asdict(o) for o in outages], indent=1))
    if cfg.write_results:
        markdown = render("make bench-faults", lines, outage_tables(outages), markdown=True)
        write_section(markdown, FAULT_MARKS, "Outages under load")
        log(f"wrote {RESULTS_MD.relative_to(ROOT)}")
    if any(o.failed_hard for o in outages):
        return 1
    missed = any(not met for o in outages for _, met, _ in o.checks())
    return 3 if cfg.strict and missed else 0
