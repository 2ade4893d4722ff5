"""`make bench`: the project, served the production way, side by side with the tutorial's
Express server (../shared/anchors/seed-express), loaded with the same wrk script, connections
and duration in alternating rounds. A benchmark, not a test: it prints figures and writes
bench/RESULTS.md; it fails (exit 1) only when the audit log and the 2xx answers disagree, or
(exit 2) when it cannot run. The machine is shared and noisy: only the same-run ratio
project/tutorial means much. `make bench-faults` (BENCH_FAULTS=1): PostgreSQL and Redis
restarted under load instead (bench/faults.py). How it measures: bench/README.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import signal
import sys
import time
import typing
from pathlib import Path

if __package__ in (None, ""):  # run as a script (make bench): the repository is the import root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import faults, lanes
from bench.config import (
    BENCH,
    ENDPOINTS,
    LOGS,
    OUT,
    RESULTS_MD,
    ROOT,
    TWIN_TABLE,
    BenchError,
    Config,
    env_flag,
)
from bench.lanes import Lane, log
from bench.load import Round, ensure_wrk, flush_disk, wrk
from bench.report import MAIN_MARKS, Report, machine_info, write_section


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
        self.lanes: list[Lane] = []
        self.rounds: list[Round] = []
        self.probes: dict[str, dict] = {}
        self.seeding: dict[str, dict] = {}
        self.mismatches: list[str] = []
        self.server_notes: dict[str, list[str]] = {}
        self.secrets = {
            "secret_key": secrets.token_urlsafe(50),
            "app_id": secrets.token_hex(16),
            "app_certificate": secrets.token_hex(16),
        }

    def load(self, port: int, path: str, body, tokens: Path, connections: int, duration=None) -> dict:
        cfg = self.cfg
        return wrk(
            port, path, body, tokens, connections,
            duration=duration or cfg.duration, drain=cfg.drain, threads=cfg.cores,
        )  # fmt: skip

    def round(self, lane, server, port, key, users, connections, table, tokens) -> Round:
        """One measured round against one server (the project's, or the tutorial's when
        server is "tutorial"); for the project's, compare its 2xx answers with the audit rows."""
        endpoint = ENDPOINTS[key]
        side = "tutorial" if server == "tutorial" else "project"
        if side == "project":
            path, body = endpoint.path, endpoint.body
            before = lane.settle()
        else:
            path, body = endpoint.tutorial_path, endpoint.tutorial_body
        result = self.load(port, path, body, tokens, connections)
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
            done.audit_delta = lane.settle() - before
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

    def audited(self) -> list:
        return [ENDPOINTS[k] for k in self.cfg.endpoints if ENDPOINTS[k].audited]

    @contextlib.contextmanager
    def serve(self, lane: Lane, specs: list[str], env: dict, first_port: int | None = None):
        """Start the servers (one port each), warm them (1 s of load per endpoint, so every
        worker has imported, connected and cached what it needs), yield their ports; stop them
        after and note what their logs say."""
        processes, ports = [], {}
        try:
            for number, spec in enumerate(specs):
                ports[spec] = (first_port or self.cfg.port) + number
                processes.append(lanes.start_project(lane, spec, ports[spec], env, self.cfg.workers))
            for port in ports.values():
                for endpoint in (ENDPOINTS[k] for k in self.cfg.endpoints):
                    tokens = lane.workdir / "tokens-many.txt"
                    self.load(port, endpoint.path, endpoint.body, tokens, self.cfg.connections, 1)
            yield ports
        finally:
            for process in processes:
                process.stop()
                self.server_notes[f"{lane.label} {process.name}"] = lanes.server_log_notes(process)

    def run_lane(self, lane: Lane) -> None:
        cfg = self.cfg
        env = lanes.app_env(lane, cfg.workers, self.secrets)
        log(f"{lane.name}: migrate, {cfg.users} users with API tokens")
        lanes.lanetool(env, "setup", str(lane.workdir), str(cfg.users))
        flush_disk(f"{lane.name} set up")
        bodies = {k: [ENDPOINTS[k].path, ENDPOINTS[k].body] for k in cfg.endpoints if ENDPOINTS[k].audited}
        log(f"{lane.name}: SQL statements and cache round trips per warm request")
        if bodies:
            self.probes[lane.name] = lanes.lanetool(env, "probe", str(cfg.probe_requests), json.dumps(bodies))
        twin = None
        if cfg.seed_rows > 0:
            log(f"{lane.name}: its empty twin, for the seeded figures (a copy of the database as set up)")
            twin = lanes.twin_lane(lane)
        try:
            first = cfg.servers[0]
            # Every server runs all the time (an idle one costs nothing); the main figures load
            # them in turn, the rest of the plan only the first one (what `make serve` runs).
            main = [(key, "many", cfg.connections) for key in cfg.endpoints]
            with self.serve(lane, cfg.servers, env) as ports:
                lanes.give_identities(ports[first], lane.workdir / "tokens-many.txt", self.audited())
                sides = [Side(lane, spec, port, "empty") for spec, port in ports.items()]
                self.measure(sides, main)
                self.measure(sides[:1], [i for i in cfg.plan() if i not in main])
            if twin is not None:
                self.run_seeded(lane, env, twin)
        finally:
            if twin is not None and not cfg.keep:
                lanes.drop_lane(twin)

    def run_seeded(self, lane: Lane, env: dict, twin: Lane) -> None:
        """The first server on the seeded lane and, in the same rounds, the same server on the
        lane's empty twin (same users and API tokens, no audit rows until it is loaded): what
        the table's size costs is the ratio of two figures measured side by side, not of two
        phases minutes apart (the tutorial's own speed drifted by more than 10% between them
        on a shared machine, docs/bench-history.md)."""
        cfg, first = self.cfg, self.cfg.servers[0]
        log(f"{lane.name}: seeding {cfg.seed_rows:,} audit rows")
        self.seeding[lane.name] = lanes.lanetool(env, "seed", str(cfg.seed_rows))
        log(f"{lane.name}: seeded in {self.seeding[lane.name]['seconds']} s")
        flush_disk(f"{lane.name} seeded")
        twin_env = lanes.app_env(twin, cfg.workers, self.secrets)
        with (
            self.serve(lane, [first], env) as ports,
            self.serve(twin, [first], twin_env, first_port=cfg.port + len(cfg.servers)) as twin_ports,
        ):
            lanes.give_identities(twin_ports[first], twin.workdir / "tokens-many.txt", self.audited())
            seeded = Side(lane, first, ports[first], "seeded")
            self.measure([seeded, Side(twin, first, twin_ports[first], TWIN_TABLE)], cfg.seeded_plan())

    def open_lane(self, name: str) -> Lane | None:
        workdir = OUT / name
        workdir.mkdir(parents=True, exist_ok=True)
        if name == "sqlite":
            return lanes.sqlite_lane(workdir)
        cfg = self.cfg
        return lanes.postgres_lane(cfg.database_url, cfg.cache_url, workdir, cfg.postgres_explicit)

    def run(self) -> int:
        cfg = self.cfg
        OUT.mkdir(exist_ok=True)
        self.machine = machine_info(ensure_wrk())
        self.served = {spec: lanes.describe_server(spec, cfg.port, cfg.workers) for spec in cfg.servers}
        tutorial = lanes.start_tutorial(cfg.tutorial_port)
        try:
            warm_up_tokens = OUT / "tutorial-warm-up-tokens.txt"
            warm_up_tokens.write_text("unused\n")
            for endpoint in ENDPOINTS.values():
                self.load(
                    cfg.tutorial_port, endpoint.tutorial_path, endpoint.tutorial_body, warm_up_tokens, 8, 1
                )
            for name in cfg.lanes:
                lane = self.open_lane(name)
                if lane is None:
                    continue
                self.lanes.append(lane)
                try:
                    self.run_lane(lane)
                finally:
                    if not cfg.keep:
                        lanes.drop_lane(lane)
                    flush_disk(f"{lane.name} done")
        finally:
            tutorial.stop()
        report = Report(self)
        print(report.console())
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (OUT / f"run-{stamp}.json").write_text(json.dumps(report.as_json(), indent=1))
        if cfg.write_results:
            write_section(report.markdown(), MAIN_MARKS, "Last run")
            log(f"wrote {RESULTS_MD.relative_to(ROOT)}")
        if self.mismatches:
            print("AUDIT MISMATCH: the audit log and the 2xx answers disagree:", file=sys.stderr)
            for line in self.mismatches:
                print(f"  {line}", file=sys.stderr)
            return 1
        return 3 if cfg.strict and report.missed else 0


def main() -> int:
    if "--help" in sys.argv or "-h" in sys.argv:  # the knobs' one home is bench/README.md
        print(__doc__)
        print("## Knobs" + (BENCH / "README.md").read_text().split("\n## Knobs", 1)[1])
        return 0
    # A SIGTERM unwinds like Ctrl-C, so the servers (and private services) this run started stop.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    LOGS.mkdir(parents=True, exist_ok=True)
    try:
        if env_flag("BENCH_FAULTS"):
            return faults.main()
        return Bench(Config()).run()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
