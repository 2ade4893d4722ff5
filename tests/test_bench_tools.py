"""The benchmark's own logic (bench/): the seeder against today's schema (one that no longer fits
the audit table would only fail an hour into `make bench`), the order of the rounds, the
judgement of the targets, the parsing of load.lua's output, RESULTS.md's markers, the outage
runs' arithmetic, and the private PostgreSQL and Redis that `make bench-faults` restarts."""

import http.server
import itertools
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from bench import faults, lanetool, load, report
from bench import run as bench
from bench.config import TWIN_TABLE, Config
from tests.servers import missing
from tokens.models import IssuedToken
from tokens.services.identities import get_or_create_identity


@pytest.mark.django_db
def test_the_seeder_writes_audit_rows_the_schema_and_the_admin_accept(django_user_model):
    users = [django_user_model.objects.create(username=f"{lanetool.USER_PREFIX}{i}") for i in range(3)]
    identity = get_or_create_identity(user=users[0])
    get_or_create_identity(user=users[0], slot="screen")  # a second slot must not double the rows
    with connection.cursor() as cursor:
        for statement in lanetool._seed_sql(connection.vendor, 300, int(time.time())):
            cursor.execute(statement)
    rows = IssuedToken.objects.all()
    assert rows.count() == 300
    assert set(rows.values_list("slot", flat=True)) == {"main"}
    assert set(rows.values_list("service", flat=True)) == {"rtc", "rtm"}
    assert set(rows.values_list("user_id", flat=True)) == {user.pk for user in users}
    assert set(rows.filter(user=users[0]).values_list("uid", flat=True)) == {identity.uid}
    assert all(1 <= uid <= 2**32 - 1 for uid in rows.values_list("uid", flat=True))
    assert all(row.expires_at > row.issued_at and len(row.token_sha256) == 64 for row in rows[:50])


def _fake_bench(monkeypatch, tmp_path, speed: dict, p99_ms: float = 30.0):
    """A Bench whose rounds are made up: req/s per table from `speed`, every row accounted for;
    and the order in which it loaded the servers."""
    monkeypatch.setenv("BENCH_ROUNDS", "2")
    run = bench.Bench(Config())
    loaded = []

    def fake_round(lane, server, port, key, users, connections, table, tokens):
        loaded.append((lane.label, server, port, table))
        side = "tutorial" if server == "tutorial" else "project"
        audit = 1 if side == "project" else None
        return load.Round(
            lane=lane.name, server=server, side=side, endpoint=key, users=users, connections=connections,
            table=table, rps=speed["tutorial" if side == "tutorial" else table], p50_ms=10.0,
            p99_ms=p99_ms, non2xx=0, socket_errors=0, socket_detail={}, ok=1, sent=1, answered=1,
            audit_expected=audit, audit_delta=audit,
        )  # fmt: skip

    run.round = fake_round
    return run, loaded


def test_the_seeded_figures_are_judged_against_the_empty_twin_loaded_in_the_same_rounds(
    tmp_path, monkeypatch
):
    """The seeded lane and its empty twin are loaded in the same rounds, beside the tutorial,
    and the 10% target compares those two: not the empty phase, measured minutes earlier."""
    speed = {"empty": 2000.0, "seeded": 1000.0, TWIN_TABLE: 1100.0, "tutorial": 4000.0}
    run, loaded = _fake_bench(monkeypatch, tmp_path, speed)
    lane = bench.Lane("sqlite", "sqlite:///x", "locmem://", tmp_path)
    twin = bench.Lane("sqlite", "sqlite:///y", "locmem://", tmp_path, twin=True)
    run.measure([bench.Side(lane, "serve", 1, "empty")], [("rtctoken", "many", 32)])
    sides = [bench.Side(lane, "serve", 1, "seeded"), bench.Side(twin, "serve", 2, TWIN_TABLE)]
    run.measure(sides, [("rtctoken", "many", 32)])
    tutorial = ("sqlite", "tutorial", run.cfg.tutorial_port, "seeded")
    seeded, twinned = ("sqlite", "serve", 1, "seeded"), ("sqlite-twin", "serve", 2, "twin")
    assert loaded[4:] == [seeded, twinned, tutorial, tutorial, twinned, seeded]
    run.lanes = [lane]

    def seeded_check():
        (check,) = [c for c in report.Report(run).checks if "audit rows within" in c[0]]
        return check

    # 1000 against the twin's 1100 is -9%: met, although the empty phase gave 2000.
    assert seeded_check()[1] == "MET"
    assert "req/s 1000 vs 1100 (-9%)" in seeded_check()[2]
    speed[TWIN_TABLE] = 1200.0  # -17%
    run.rounds = [r for r in run.rounds if r.table == "empty"]
    run.measure(sides, [("rtctoken", "many", 32)])
    assert seeded_check()[1] == "MISSED"


def _probe(sql: float, cache: float, redis: bool) -> dict:
    endpoint = {
        "sql": sql,
        "cache_calls": 0 if redis else cache,
        "redis_round_trips": cache if redis else None,
    }
    return {"endpoints": {"rtctoken": endpoint}}


@pytest.mark.parametrize(
    ("tutorial", "p99_ms", "postgres_sql", "sqlite_sql", "expected"),
    [
        # 1000 req/s against the tutorial's 2500 is 0.40: PostgreSQL's 0.35 is met.
        (2500.0, 40.0, 1, 2, {"postgres ratio": "MET", "p99": "MET", "postgres SQL": "MET",
                              "sqlite SQL": "MET"}),
        # 0.33; p99 over 50 ms; today's two statements on PostgreSQL, three on SQLite.
        (3000.0, 51.0, 2, 3, {"postgres ratio": "MISSED", "p99": "MISSED", "postgres SQL": "MISSED",
                              "sqlite SQL": "MISSED"}),
    ],
)  # fmt: skip
def test_the_targets_are_the_issues_and_sqlites_ratio_is_reported_not_judged(
    tmp_path, monkeypatch, tutorial, p99_ms, postgres_sql, sqlite_sql, expected
):
    run, _ = _fake_bench(monkeypatch, tmp_path, {"empty": 1000.0, "tutorial": tutorial}, p99_ms=p99_ms)
    run.lanes = [bench.Lane(name, "", "", tmp_path) for name in ("sqlite", "postgres")]
    for lane in run.lanes:
        run.measure([bench.Side(lane, "serve", 1, "empty")], [("rtctoken", "many", 32)])
    run.probes = {
        "sqlite": _probe(sqlite_sql, 1, redis=False),
        "postgres": _probe(postgres_sql, 1, redis=True),
    }
    checks = {target: result for target, result, _ in report.Report(run).checks}

    def result(prefix, words):
        (found,) = [r for t, r in checks.items() if t.startswith(prefix) and words in t]
        return found

    assert result("sqlite: /rtctoken", "ratio to the tutorial") == "REPORTED"
    assert result("postgres: /rtctoken", "ratio >= 0.35") == expected["postgres ratio"]
    assert {result(f"{lane}: /rtctoken", "p99 <= 50 ms") for lane in ("sqlite", "postgres")} == {
        expected["p99"]
    }
    assert result("postgres: warm /rtctoken", "<= 1 SQL and <= 1 cache operation") == expected["postgres SQL"]
    assert result("sqlite: warm /rtctoken", "<= 2 SQL") == expected["sqlite SQL"]
    assert {result(f"{lane}: audit rows", "= 2xx") for lane in ("sqlite", "postgres")} == {"MET"}


def test_results_md_is_rewritten_between_its_markers_only(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nhand-written notes\n")
    report.write_section("first", report.MAIN_MARKS, "Last run", path)
    report.write_section("outage one", faults.FAULT_MARKS, "Outages under load", path)
    report.write_section("second", report.MAIN_MARKS, "Last run", path)
    report.write_section("outage two", faults.FAULT_MARKS, "Outages under load", path)
    text = path.read_text()
    assert text.startswith("# Results\n\nhand-written notes\n\n## Last run\n\n")
    assert "first" not in text and "outage one" not in text
    assert text.count("## Last run") == 1 and text.count("## Outages under load") == 1
    assert f"{report.MAIN_MARKS[0]}\n\nsecond\n\n{report.MAIN_MARKS[1]}" in text
    assert f"{faults.FAULT_MARKS[0]}\n\noutage two\n\n{faults.FAULT_MARKS[1]}" in text


def test_load_lua_timelines_are_summed_over_the_threads_by_slice_and_class():
    lines = [
        "BENCH_DRAINED\n",
        "BENCH_TIMELINE 10 100 5 0 0 0;101 0 3 1 0;\n",
        "BENCH_TIMELINE 10 101 2 1 0 4;-1 0 0 0 0;\n",  # -1: the slice of a thread that got nothing
        "BENCH_TIMELINE 10 -1 0 0 0 0;\n",
    ]
    assert load.parse_timeline(lines) == {"bucket_ms": 10, "slices": {100: [5, 0, 0, 0], 101: [2, 4, 1, 4]}}


def _timeline(*slices: tuple[int, int, int]) -> dict:
    """10 ms slices: (slice, 2xx, 503)."""
    return {"bucket_ms": 10, "slices": {s: [ok, s503, 0, 0] for s, ok, s503 in slices}}


def test_recovery_is_the_time_from_the_service_being_back_to_the_first_2xx():
    # 2xx until 1.00 s, only 503 from 1.01 s to 2.49 s, 2xx again from 2.50 s.
    timeline = _timeline(
        *[(s, 3, 0) for s in range(90, 101)], *[(s, 0, 4) for s in range(101, 250)], (250, 2, 1)
    )
    assert faults.first_2xx_after(timeline, 2.0) == pytest.approx(0.5)
    assert faults.first_2xx_after(timeline, 2.503) == 0.0  # a 2xx in the slice it came back in
    assert faults.first_2xx_after(timeline, 2.6) is None  # none after it
    assert faults.longest_gap(timeline) == pytest.approx(1.49)
    assert faults.longest_gap(_timeline((1, 1, 0), (2, 1, 0))) == 0


def test_an_outage_run_counts_answers_by_class_and_is_judged_on_its_requirements():
    result = {
        "ok": 900, "s503": 80, "s5xx": 0, "non2xx": 85, "sent": 985, "answered": 985,
        "errors": {"connect": 1, "read": 2, "write": 0, "timeout": 0, "status": 85},
        "timeline": _timeline((100, 500, 0), (150, 0, 80), (400, 400, 0)),
    }  # fmt: skip

    def outage(**changes):
        kwargs = {
            "down_at": 1.2,
            "back_at": 3.8,
            "audit_rows": 900,
            "workers_respawned": 0,
            "server_alive": True,
            "connections": 8,
        }
        kind = changes.pop("kind", "postgres-kill")
        return faults.Outage.from_load(kind, {**result, **changes.pop("result", {})}, **kwargs | changes)

    good = outage()
    assert (good.ok, good.s503, good.s5xx, good.other, good.socket_errors) == (900, 80, 0, 5, 3)
    assert (good.down_s, good.recovery_s) == (pytest.approx(2.6), pytest.approx(0.2))
    assert [met for _, met, _ in good.checks()] == [True, True, True, True]
    assert not good.failed_hard

    bad = {
        "a 500": outage(result={"s5xx": 1}),
        "a token without its row": outage(audit_rows=899),
        "slow recovery": outage(result={"timeline": _timeline((100, 500, 0), (150, 0, 80), (900, 400, 0))}),
        "no 2xx after it": outage(back_at=4.5),
        "a worker respawned": outage(workers_respawned=1),
        "the server exited": outage(server_alive=False),
    }
    assert {name: [met for _, met, _ in o.checks()].count(False) for name, o in bad.items()} == dict.fromkeys(
        bad, 1
    )
    assert [name for name, o in bad.items() if o.failed_hard] == ["a 500", "a token without its row"]
    # A crash may leave the rows of tokens whose answer it cut off (never more than the
    # connections in flight); a restart may not.
    assert not outage(audit_rows=903).failed_hard
    assert outage(audit_rows=909).failed_hard
    assert outage(kind="postgres-stop", audit_rows=901).failed_hard
    assert not outage(kind="postgres-stop").failed_hard


class _StatusesHandler(http.server.BaseHTTPRequestHandler):
    """Answers 201, 503, 500 and 404 in turn."""

    protocol_version = "HTTP/1.1"
    statuses = itertools.cycle([201, 503, 500, 404])

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(next(self.statuses))
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_load_lua_counts_every_answer_by_class_and_in_its_timeline(tmp_path):
    if not shutil.which("wrk"):
        missing("wrk is not installed")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusesHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("a\nb\n")
    try:
        result = load.wrk(
            server.server_port, "/x", {"a": 1}, tokens, 2, duration=1, drain=5, threads=2, bucket_ms=10
        )
    finally:
        server.shutdown()
    assert result["sent"] == result["answered"] > 0
    assert result["ok"] + result["non2xx"] == result["answered"]
    other = result["non2xx"] - result["s503"] - result["s5xx"]
    assert min(result["ok"], result["s503"], result["s5xx"], other) >= result["answered"] // 4 - 2
    by_class = [sum(counts[i] for counts in result["timeline"]["slices"].values()) for i in range(4)]
    assert by_class == [result["ok"], result["s503"], result["s5xx"], other]


def test_the_private_postgres_and_redis_start_crash_restart_stop_and_leave_nothing():
    """What `make bench-faults` restarts: its own PostgreSQL cluster and redis-server, on free
    ports (never the machine's 5432 and 6379), which come back after a crash."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or not shutil.which("redis-server"):
        missing("PostgreSQL's server binaries or redis-server are not installed")
    parent = Path(tempfile.gettempdir())  # pytest's tmp_path is private; the postgres user must enter
    services = [faults.PrivatePostgres(parent), faults.PrivateRedis(parent)]
    try:
        for service in services:
            assert service.port not in (5432, 6379)
            service.start()
            assert service.answers()
            service.crash()
            assert not service.answers()
            service.start()
            assert service.answers()
            service.stop()
            assert not service.answers() and not service.process.alive()
    finally:
        for service in services:
            service.cleanup()
    assert not any(service.dir.exists() for service in services)
