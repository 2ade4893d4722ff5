"""The audit admin at scale (a benchmark, not a test): seed PostgreSQL with millions of audit rows
and time the changelist's first page, unfiltered and filtered, and the CSV export's memory.

    .venv/bin/python bench/admin_scale.py [--rows 10000000] [--keep] [--export-rows 1000000]

Uses its own database (ADMIN_BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/tokenbench_admin; dropped and created unless --keep finds
it seeded), requests through Django's test client with DEBUG off, and prints a table for
bench/RESULTS.md. Timings are medians of several requests, server side (no network)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/tokenbench_admin"
_ENV = {
    "DJANGO_ENV_FILE": "",
    "DJANGO_DEBUG": "false",
    "AGORA_APP_ID": "0123456789abcdef0123456789abcdef",
    "AGORA_APP_CERTIFICATE": "fedcba9876543210fedcba9876543210",
    "LOG_LEVEL": "ERROR",
    "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
}

SEED_SQL = """
INSERT INTO tokens_issuedtoken
  (issued_at, expires_at, username, user_id, service, version, channel, uid, slot, rtm_user_id,
   role, source, client_ip, user_agent, token_sha256, issued_by_id)
SELECT t.issued_at, t.issued_at + interval '1 hour', 'user' || (g % 1000), NULL,
  CASE WHEN g % 10 < 7 THEN 'rtc' WHEN g % 10 < 9 THEN 'rtm' ELSE 'rtc+rtm' END,
  CASE WHEN g % 10 = 3 THEN '006' ELSE '007' END,
  CASE WHEN g % 10 IN (7, 8) THEN '' ELSE 'channel-' || (g % 5000) END,
  1000000 + (g % 1000), CASE WHEN g % 20 = 0 THEN 'screen' ELSE 'main' END,
  CASE WHEN g % 10 IN (7, 8, 9) THEN (1000000 + (g % 1000))::text ELSE '' END,
  CASE WHEN g % 10 IN (7, 8) THEN '' WHEN g % 3 = 0 THEN 'publisher' ELSE 'subscriber' END,
  CASE WHEN g % 1000 = 0 THEN 'admin' WHEN g % 1000 = 1 THEN 'cli'
       WHEN g % 5 = 0 THEN 'compat' ELSE 'api' END,
  ('10.0.' || (g % 250) || '.' || (g % 200))::inet, 'bench-agent/1.0',
  md5(g::text) || md5((g * 7919)::text), NULL
FROM generate_series(1::bigint, %(rows)s) AS g,
LATERAL (SELECT now() - interval '365 days' + (g::double precision / %(rows)s) * interval '365 days'
         - interval '2 hours' AS issued_at) AS t
"""


def _django(url: str):
    os.environ.update(_ENV, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="tokenserver.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(url: str, rows: int, keep: bool) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    assert "bench" in name, "the benchmark database's name must contain 'bench' (it is dropped)"
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and keep:
            with psycopg.connect(url) as db:
                have = db.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = 'tokens_issuedtoken'"
                )
                count = have.fetchone()
            if count and count[0] >= rows * 0.99:
                print(f"keeping {name}: about {count[0]:,} rows")
                return
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, **_ENV, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("SET maintenance_work_mem = '512MB'")
        db.execute(SEED_SQL.replace("%(rows)s", str(int(rows))))
        db.execute("ANALYZE tokens_issuedtoken")
    print(f"seeded {rows:,} rows in {time.monotonic() - started:.0f} s")


def time_pages(repeat: int) -> list[tuple[str, float, int]]:
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    admin, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)
    now = timezone.now()
    month_ago = now - timezone.timedelta(days=30)
    year, month, day = str(month_ago.year), str(month_ago.month), str(month_ago.day)
    cases = [
        ("unfiltered", {}),
        ("service = rtc", {"service__exact": "rtc"}),
        ("service = rtc+rtm", {"service__exact": "rtc+rtm"}),
        ("version = 006", {"version__exact": "006"}),
        ("role = publisher", {"role__exact": "publisher"}),
        ("source = admin (1 in 1000)", {"source__exact": "admin"}),
        ("status = active", {"status": "active"}),
        ("status = expired", {"status": "expired"}),
        ("issued this month (list filter)", {"issued_at__gte": month_ago.strftime("%Y-%m-%d")}),
        ("date bar: a year", {"issued_at__year": str(month_ago.year)}),
        ("date bar: a month", {"issued_at__year": year, "issued_at__month": month}),
        ("date bar: a day", {"issued_at__year": year, "issued_at__month": month, "issued_at__day": day}),
        ("search: channel", {"q": "channel-42"}),
        ("search: uid", {"q": "1000042"}),
        ("search: sha256", {"q": "c4ca4238a0b923820dcc509a6f75849b" + "a8f5f167f44f4964e6c998dee827110c"}),
        ("service = rtm and status = expired", {"service__exact": "rtm", "status": "expired"}),
    ]  # fmt: skip
    results = []
    for label, params in cases:
        client.get("/admin/tokens/issuedtoken/", params)  # warm
        samples = []
        for _ in range(repeat):
            reset_queries()
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get("/admin/tokens/issuedtoken/", params)
                samples.append(time.perf_counter() - started)
            assert response.status_code == 200, (label, response.status_code)
        results.append((label, statistics.median(samples) * 1000, len(queries.captured_queries)))
        print(f"  {label:38s} {results[-1][1]:8.1f} ms  {results[-1][2]} queries", flush=True)
    return results


EXPORT_SCRIPT = r"""
import os, resource, sys, time
sys.path.insert(0, os.environ["BENCH_ROOT"])
import django; django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
admin = get_user_model().objects.get(username="bench-admin")
client = Client(); client.force_login(admin)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
response = client.get("/admin/tokens/issuedtoken/export.csv", {"issued_at__gte": os.environ["SINCE"]})
rows = size = 0
for chunk in response.streaming_content:
    rows += chunk.count(b"\n"); size += len(chunk)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{rows - 1} {size} {before} {after} {time.monotonic() - started:.1f}")
"""


def measure_export(url: str, export_rows: int, total_rows: int) -> str:
    from django.utils import timezone

    # Rows are spread evenly over the past year: the newest export_rows of them.
    since = (
        timezone.now() - timezone.timedelta(days=365 * export_rows / total_rows) - timezone.timedelta(hours=2)
    )
    env = {**os.environ, "BENCH_ROOT": str(ROOT), "SINCE": since.strftime("%Y-%m-%d %H:%M:%S+00:00")}
    out = subprocess.run(
        [sys.executable, "-c", EXPORT_SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    rows, size, before, after, seconds = out.stdout.split()
    line = (
        f"exported {int(rows):,} rows ({int(size) / 1e6:.0f} MB of CSV) in {seconds} s; "
        f"peak RSS {int(before) / 1024:.0f} MiB before the export, {int(after) / 1024:.0f} MiB after"
    )
    print(line)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="reuse an already seeded database")
    args = parser.parse_args()
    url = os.environ.get("ADMIN_BENCH_DATABASE_URL", DEFAULT_URL)
    seed(url, args.rows, args.keep)
    _django(url)
    print(f"changelist first page, PostgreSQL, {args.rows:,} audit rows (median of {args.repeat}):")
    time_pages(args.repeat)
    measure_export(url, args.export_rows, args.rows)


if __name__ == "__main__":
    main()
