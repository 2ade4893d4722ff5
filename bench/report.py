"""The report of a `make bench` run: figures per combination, the targets, the tables (text for
the console, markdown for RESULTS.md), and rewriting RESULTS.md between its markers."""

from __future__ import annotations

import collections
import contextlib
import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.config import ENDPOINTS, RESULTS_MD, ROOT, SEEDED_TOLERANCE, TARGETS, TWIN_TABLE
from bench.load import Round

MAIN_MARKS = (
    "<!-- BEGIN make bench output: everything up to the END marker is rewritten -->",
    "<!-- END make bench output -->",
)


def _output(argv: list[str]) -> str:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()


def machine_info(wrk_version: str) -> dict:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = _output(["git", "rev-parse", "--short", "HEAD"])
    dirty = _output(["git", "status", "--porcelain", "--untracked-files=no"])
    versions = {"python": platform.python_version(), "wrk": wrk_version}
    for package in ("django", "djangorestframework", "django-rest-knox", "gunicorn", "granian"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    versions["node"] = _output(["node", "--version"])
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


MET, MISSED, REPORTED = "MET", "MISSED", "REPORTED"


class Report:
    def __init__(self, bench):  # a bench.run.Bench after its run
        self.bench, self.cfg = bench, bench.cfg
        groups: dict[tuple, Figure] = {}
        for r in bench.rounds:
            key = (r.lane, r.server, r.endpoint, r.users, r.connections, r.table)
            figure = groups.setdefault(key, Figure(*key, [], []))
            (figure.project if r.side == "project" else figure.tutorial).append(r)
        self.figures = list(groups.values())
        self.checks = self._targets()
        self.missed = [c for c in self.checks if c[1] == MISSED]

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
        """(target, MET/MISSED/REPORTED, measured); REPORTED: printed, not judged here."""
        checks = []

        def check(target: str, met: bool | None, measured: str) -> None:
            checks.append((target, REPORTED if met is None else MET if met else MISSED, measured))

        for lane in self.bench.lanes:
            target = TARGETS[lane.name]
            for key in ("rtctoken", "rtc"):
                if (f := self.find(lane.name, key)) is None:
                    continue
                where = f"{lane.name}: {ENDPOINTS[key].path}, {self.cfg.users} users, {f.connections} conns"
                if target.min_ratio is None:  # "no slower than the previous run": one run cannot tell
                    check(
                        f"{where}: ratio to the tutorial (compare with the previous run)",
                        None,
                        f.ratio_text(),
                    )
                else:
                    check(
                        f"{where}: ratio >= {target.min_ratio}", f.ratio >= target.min_ratio, f.ratio_text()
                    )
                errors = sum(f.errors("project"))
                check(
                    f"{where}: p99 <= {target.max_p99_ms:.0f} ms, no errors",
                    f.p("p99_ms") <= target.max_p99_ms and errors == 0,
                    f"p99 {f.p('p99_ms'):.1f} ms, errors {errors}",
                )
                seeded = self.find(lane.name, key, table="seeded")
                twin = self.find(lane.name, key, table=TWIN_TABLE)
                if seeded is not None and twin is not None:
                    change = seeded.p("rps") / twin.p("rps") - 1
                    check(
                        f"{lane.name}: {ENDPOINTS[key].path} with {self.cfg.seed_rows:,} audit rows "
                        f"within {SEEDED_TOLERANCE:.0%} of an empty table (the empty twin, side by side)",
                        change >= -SEEDED_TOLERANCE,
                        f"req/s {seeded.p('rps'):.0f} vs {twin.p('rps'):.0f} ({change:+.0%}); "
                        f"ratio to the tutorial {seeded.ratio:.2f} vs {twin.ratio:.2f}; "
                        f"p99 {seeded.p('p99_ms'):.1f} vs {twin.p('p99_ms'):.1f} ms",
                    )
            _, rounds, expected, added, bad = self._audit_row(lane.name)
            if rounds:
                check(f"{lane.name}: audit rows = 2xx answers", bad == 0, f"{added} rows, {expected} 2xx")
            for key, figures in self.bench.probes.get(lane.name, {}).get("endpoints", {}).items():
                cache = figures["redis_round_trips"]
                cache = figures["cache_calls"] if cache is None else cache
                wanted, met = f"<= {target.max_sql:g} SQL", figures["sql"] <= target.max_sql
                if target.max_cache is not None:
                    wanted += f" and <= {target.max_cache:g} cache operation"
                    met = met and cache <= target.max_cache
                check(
                    f"{lane.name}: warm {ENDPOINTS[key].path}: {wanted}",
                    met,
                    f"{figures['sql']:g} SQL, {cache:g} cache",
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
        first = self.cfg.servers[0]
        figures = [f for f in self.figures if (f.table, f.users, f.server) == ("empty", "many", first)]
        counts = collections.Counter((f.lane, f.endpoint) for f in figures)  # 1: no curve measured
        rows = [
            [f.lane, ENDPOINTS[f.endpoint].path, f.connections, f"{f.p('rps'):.0f}",
             f"{f.p('p99_ms'):.1f}", f"{f.t('rps'):.0f}", f"{f.t('p99_ms'):.1f}", f.ratio_text()]
            for f in sorted(figures, key=lambda f: (f.lane, f.endpoint, f.connections))
            if counts[f.lane, f.endpoint] > 1
        ]  # fmt: skip
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

    def _audit_row(self, lane: str) -> list:
        rounds = [r for r in self.bench.rounds if r.lane == lane and r.side == "project"]
        bad = sum(1 for r in rounds if r.audit_delta != r.audit_expected)
        expected, added = sum(r.audit_expected for r in rounds), sum(r.audit_delta for r in rounds)
        return [lane, len(rounds), expected, added, bad]

    def audit_table(self):
        head = ["lane", "project rounds", "2xx answers (token endpoints)", "audit rows added", "mismatches"]
        return head, [self._audit_row(lane.name) for lane in self.bench.lanes]

    def _users(self, mode: str) -> str:
        return str(self.cfg.users) if mode == "many" else "1"

    def sections(self):
        cfg = self.cfg
        yield "Main figures (empty audit table)", self.main_table()
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
        return render("make bench", self.settings_lines(), self.sections(), markdown=False)

    def markdown(self) -> str:
        return render("make bench", self.settings_lines(), self.sections(), markdown=True)

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


def render(title: str, lines: list[str], sections, *, markdown: bool) -> str:
    """Settings lines and (title, (head, rows)) tables, for the console or for RESULTS.md."""
    out = [f"- {line}" for line in lines] if markdown else ["", "=" * 100, title, *lines]
    for heading, (head, rows) in sections:
        if markdown:
            out += ["", f"### {heading}", "", *markdown_table(head, rows)]
        else:
            out += ["", f"== {heading}", *text_table(head, rows)]
    return "\n".join(out)


def write_section(generated: str, marks: tuple[str, str], title: str, path: Path = RESULTS_MD) -> None:
    """Rewrite the part of RESULTS.md between `marks` (appended under `title` the first time);
    the hand-written text around it stays."""
    begin, end = marks
    block = f"{begin}\n\n{generated}\n\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n{block}\n"
    path.write_text(text)
