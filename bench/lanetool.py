"""Django-side helper for bench/run.py; runs with the project's settings and one lane's
environment (DATABASE_URL, CACHE_URL) and prints one JSON object on stdout.

    lanetool.py setup OUT_DIR USERS   migrate; USERS users with an API token each (made
                                      through the ORM, not the throttled login); writes
                                      OUT_DIR/tokens-many.txt and OUT_DIR/tokens-one.txt
    lanetool.py seed ROWS             ROWS realistic audit rows in one INSERT ... SELECT, ANALYZE
    lanetool.py probe REQUESTS BODIES SQL statements and cache operations per warm token
                                      request, in-process through the WSGI handler
    lanetool.py profile REQUESTS PATH BODY   cProfile of warm requests (report on stderr)

The app is a black box here except for the models it is built on (users, knox API tokens, the
audit table's columns), so the benchmark keeps working while the request path is rewritten.
"""

import cProfile
import io
import json
import os
import pstats
import re
import sys
import time
import wsgiref.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenserver.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from knox.models import AuthToken  # noqa: E402

USER_PREFIX = "bench-"
AUDIT_TABLE = "tokens_issuedtoken"
SECONDS_PER_YEAR = 365 * 24 * 3600
TRANSACTION_CONTROL = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT)\b", re.IGNORECASE)


def setup(out_dir: str, users: str) -> dict:
    """Migrate, then make the load's users, each with its own API token."""
    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    count = int(users)
    made = []
    for number in range(1, count + 1):
        user = user_model(username=f"{USER_PREFIX}{number:05d}")
        user.set_unusable_password()  # API tokens only: no password hashing, no login
        made.append(user)
    made = user_model.objects.bulk_create(made)
    if made and made[0].pk is None:  # backends that do not return ids from bulk_create
        made = list(user_model.objects.filter(username__startswith=USER_PREFIX).order_by("pk"))
    keys = [AuthToken.objects.create(user=user)[1] for user in made]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokens-many.txt").write_text("\n".join(keys) + "\n")
    (out / "tokens-one.txt").write_text(keys[0] + "\n")
    return {"users": len(keys), "seconds": round(time.monotonic() - started, 2)}


def _seed_sql(vendor: str, rows: int, now: int) -> list[str]:
    """The statements that add ROWS audit rows: a helper table of the bench users, one
    INSERT ... SELECT, ANALYZE. Rows cycle over the users and three kinds of token (compat
    RTC 006, API RTC 007, API RTM 007); issue times are spread evenly over the year before
    NOW, each token valid one hour. Only integers are formatted in, so no parameters are
    needed (and `%` is SQL's modulo here)."""
    rows, now = int(rows), int(now)
    columns = (
        "issued_at, expires_at, user_id, username, service, version, channel, uid, rtm_user_id, "
        "role, source, client_ip, user_agent, token_sha256, slot"
    )
    issued = f"{now - SECONDS_PER_YEAR} + n * {SECONDS_PER_YEAR} / {max(rows, 1)}"
    values = (
        "u.id, u.username, "
        "CASE WHEN n % 3 = 2 THEN 'rtm' ELSE 'rtc' END, "
        "CASE WHEN n % 3 = 0 THEN '006' ELSE '007' END, "
        "CASE WHEN n % 3 = 2 THEN '' ELSE 'room-' || (n % 5000) END, "
        "u.uid, "
        "CASE WHEN n % 3 = 2 THEN CAST(u.uid AS VARCHAR(20)) ELSE '' END, "
        "CASE WHEN n % 3 = 2 THEN '' WHEN n % 2 = 0 THEN 'publisher' ELSE 'subscriber' END, "
        "CASE WHEN n % 3 = 0 THEN 'compat' ELSE 'api' END"
    )
    ip = "'10.' || (n / 65536 % 256) || '.' || (n / 256 % 256) || '.' || (n % 256)"
    users = (
        "CREATE TEMP TABLE bench_seed_users AS "
        "SELECT row_number() OVER (ORDER BY au.id) - 1 AS k, au.id, au.username, "
        "COALESCE(ai.uid, 1 + (au.id * 2654435761) % 4294967295) AS uid "
        "FROM auth_user au LEFT JOIN tokens_agoraidentity ai ON ai.user_id = au.id AND ai.slot = 'main' "
        f"WHERE au.username LIKE '{USER_PREFIX}%'"
    )
    join = "JOIN bench_seed_users u ON u.k = n % (SELECT count(*) FROM bench_seed_users)"
    if vendor == "sqlite":
        insert = (
            f"INSERT INTO {AUDIT_TABLE} ({columns}) "
            f"WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < {rows} - 1) "
            f"SELECT datetime({issued}, 'unixepoch'), datetime({issued} + 3600, 'unixepoch'), "
            f"{values}, {ip}, 'bench-seed', lower(hex(randomblob(32))), 'main' FROM seq {join}"
        )
        analyze = "ANALYZE"
    elif vendor == "postgresql":
        insert = (
            f"INSERT INTO {AUDIT_TABLE} ({columns}) "
            f"SELECT to_timestamp({issued}), to_timestamp({issued} + 3600), "
            f"{values}, ({ip})::inet, 'bench-seed', md5(n::text) || md5((-n)::text), 'main' "
            f"FROM generate_series(0::bigint, {rows} - 1) AS n {join}"
        )
        analyze = f"ANALYZE {AUDIT_TABLE}"
    else:
        raise SystemExit(f"seeding is written for SQLite and PostgreSQL, not {vendor}")
    return [users, insert, "DROP TABLE bench_seed_users", analyze]


# After a bulk load, what a database that has lived with its rows would have done by then:
# the WAL folded back into the database file (SQLite), the table vacuumed (visibility map,
# hint bits) and its dirty pages written out (PostgreSQL). Otherwise the first requests
# measured would pay for the load.
SETTLE_SQL = {
    "sqlite": ["PRAGMA wal_checkpoint(TRUNCATE)"],
    "postgresql": [f"VACUUM (ANALYZE) {AUDIT_TABLE}", "CHECKPOINT"],
}


def seed(rows: str) -> dict:
    """Add ROWS audit rows with one INSERT ... SELECT, refresh the planner's statistics, and
    let the database settle."""
    started = time.monotonic()
    inserted = None
    with connection.cursor() as cursor:
        for statement in _seed_sql(connection.vendor, int(rows), int(time.time())):
            cursor.execute(statement)
            if statement.startswith("INSERT"):
                inserted = cursor.rowcount
        for statement in SETTLE_SQL.get(connection.vendor, []):
            cursor.execute(statement)
        cursor.execute(f"SELECT count(*) FROM {AUDIT_TABLE}")
        total = cursor.fetchone()[0]
    return {"inserted": inserted, "total": total, "seconds": round(time.monotonic() - started, 2)}


class CacheCalls:
    """Counts calls to the Django cache API (outermost only: BaseCache.get_or_set calls get()
    and add() itself), and, when the cache is Redis, the commands redis-py writes to the
    socket: one write is one round trip (a pipeline is one write)."""

    METHODS = (
        "get", "set", "add", "delete", "touch", "incr", "decr", "has_key", "get_or_set",
        "get_many", "set_many", "delete_many", "clear",
    )  # fmt: skip

    def __init__(self, cache):
        self.api_calls = self.redis_writes = 0
        self._depth = 0
        self.counting = False
        for name in self.METHODS:
            if hasattr(cache, name):
                setattr(cache, name, self._wrap(getattr(cache, name)))
        try:
            from redis.connection import AbstractConnection
        except ImportError:
            return
        original = AbstractConnection.send_packed_command
        calls = self

        def send_packed_command(conn, *args, **kwargs):
            if calls.counting:
                calls.redis_writes += 1
            return original(conn, *args, **kwargs)

        AbstractConnection.send_packed_command = send_packed_command

    def _wrap(self, method):
        def counted(*args, **kwargs):
            if self.counting and self._depth == 0:
                self.api_calls += 1
            self._depth += 1
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1

        return counted


def _redis_commands(cache) -> dict[str, int] | None:
    """Server-side command counts (INFO commandstats), or None when the cache is not Redis."""
    if "redis" not in type(cache).__module__.lower():
        return None
    client = cache._cache.get_client()
    stats = client.info("commandstats")
    return {name: value["calls"] for name, value in stats.items() if name != "cmdstat_info"}


def _post(application, path: str, body: dict, key: str) -> int:
    """One request through Django's real WSGI handler, as a WSGI server would make it (so the
    request_started/finished signals, connection reuse and health checks run as in production,
    which the test client changes)."""
    data = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_AUTHORIZATION": f"Token {key}",
        "HTTP_USER_AGENT": "bench-probe",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(data),
    }
    wsgiref.util.setup_testing_defaults(environ)
    status = []
    response = application(environ, lambda line, headers, exc_info=None: status.append(line))
    try:
        b"".join(response)
    finally:
        response.close()  # request_finished: what a WSGI server does after each response
    return int(status[0].split()[0])


def probe(requests: str, bodies: str) -> dict:
    """Per warm request: SQL statements the database receives, cache API calls and, on Redis,
    round trips (socket writes) and commands."""
    count = int(requests)
    application = WSGIHandler()
    cache = caches["default"]
    user, _ = get_user_model().objects.get_or_create(username=f"{USER_PREFIX}probe")
    _, key = AuthToken.objects.create(user=user)
    calls = CacheCalls(cache)
    # CONN_HEALTH_CHECKS: a reused connection is checked once per request; on PostgreSQL that
    # is a `SELECT 1` that bypasses the query log, so count it here.
    health_checks = {"n": 0}
    real_is_usable = connection.is_usable

    def counted_is_usable():
        health_checks["n"] += 1
        return real_is_usable()

    connection.is_usable = counted_is_usable
    health_check_sql = 1 if connection.vendor == "postgresql" else 0  # SQLite's check runs no SQL
    results = {}
    for name, (path, body) in json.loads(bodies).items():
        statuses = set()
        for _ in range(3):  # cold: the first request may create the user's Agora identity
            statuses.add(_post(application, path, body, key))
        before = _redis_commands(cache)
        calls.api_calls = calls.redis_writes = health_checks["n"] = 0
        calls.counting = True
        per_request = []
        with CaptureQueriesContext(connection) as queries:
            for _ in range(count):
                seen = len(queries.captured_queries)
                statuses.add(_post(application, path, body, key))
                per_request.append(len(queries.captured_queries) - seen)
        calls.counting = False
        after = _redis_commands(cache)
        logged = [q["sql"] for q in queries.captured_queries]
        control = sum(1 for sql in logged if TRANSACTION_CONTROL.match(sql))
        last = logged[len(logged) - per_request[-1] :]
        results[name] = {
            "statuses": sorted(statuses),
            # Everything the database is sent: logged statements (Django >= 4.2 logs BEGIN and
            # COMMIT too) plus the health checks' hidden SELECT 1.
            "sql": (len(logged) + health_checks["n"] * health_check_sql) / count,
            "sql_data": (len(logged) - control) / count,
            "sql_transaction_control": control / count,
            "sql_health_checks": health_checks["n"] * health_check_sql / count,
            "sql_per_request_range": [min(per_request), max(per_request)],
            "sql_last_request": [sql[:120] for sql in last],
            "cache_calls": calls.api_calls / count,
            "redis_round_trips": calls.redis_writes / count if before is not None else None,
            "redis_commands": (sum(after.values()) - sum(before.values())) / count
            if before is not None
            else None,
            "cache_backend": f"{type(cache).__module__}.{type(cache).__name__}",
        }
    return {"requests": count, "vendor": connection.vendor, "endpoints": results}


def profile(requests: str, path: str, body: str) -> dict:
    """cProfile over REQUESTS warm requests to PATH (in-process, as in probe); the top
    functions by own and by cumulative time go to stderr."""
    count = int(requests)
    application = WSGIHandler()
    user, _ = get_user_model().objects.get_or_create(username=f"{USER_PREFIX}probe")
    _, key = AuthToken.objects.create(user=user)
    for _ in range(3):
        _post(application, path, json.loads(body), key)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(count):
        _post(application, path, json.loads(body), key)
    profiler.disable()
    elapsed = time.perf_counter() - started
    stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return {"requests": count, "ms_per_request": round(elapsed * 1000 / count, 3)}


COMMANDS = {"setup": setup, "seed": seed, "probe": probe, "profile": profile}

if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    print(json.dumps(COMMANDS[command](*arguments)))
