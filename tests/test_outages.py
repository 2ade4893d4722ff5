"""Outages: a database or cache that is down, cut off mid-connection, or back again; Agora
settings that cannot sign. Each runs the project as its own server process."""

import contextlib
import os
import sys
import time

import pytest

from tests.servers import ServerProcess, TcpProxy, call, manage, require_service, running_server, server_env

POSTGRES_PORT, REDIS_PORT = 5432, 6379
CLOSED_PORT = 1  # nothing listens on 127.0.0.1:1
PASSWORD = "correct-horse-battery-staple"

ENDPOINTS = [
    ("POST", "/api/v1/auth/token/", '{"username": "alice", "password": "x"}'),
    ("DELETE", "/api/v1/auth/token/", None),
    ("GET", "/api/v1/me/", None),
    ("POST", "/api/v1/tokens/rtc/", '{"channel": "c"}'),
    ("POST", "/api/v1/tokens/rtm/", "{}"),
    ("POST", "/rtctoken", '{"channel": "c"}'),
    ("POST", "/rtmtoken", "{}"),
    ("POST", "/admin/login/", None),
]
TOKEN_REQUESTS = [
    ("/api/v1/tokens/rtc/", '{"channel": "c"}'),
    ("/api/v1/tokens/rtm/", "{}"),
    ("/rtctoken", '{"channel": "c"}'),
    ("/rtmtoken", "{}"),
]


def _auth(key: str) -> dict:
    return {"Authorization": f"Token {key}"}


def _sqlite_env(tmp_path, **overrides):
    env = server_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", **overrides)
    manage(env, "migrate", "--no-input", "-v", "0")
    return env


def _user_with_api_token(env) -> str:
    """Create alice (password PASSWORD) and an API token for her; the token's key."""
    script = (
        "from django.contrib.auth.models import User; from knox.models import AuthToken; "
        f"u = User.objects.create_user('alice', password='{PASSWORD}'); "
        "print(AuthToken.objects.create(user=u)[1])"
    )
    return manage(env, "shell", "-v", "0", "-c", script).strip()


def test_database_down_every_endpoint_answers_503_never_500():
    env = server_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:{CLOSED_PORT}/none")
    with running_server(env) as base:
        status, _, body = call(base, "GET", "/healthz")
        assert status == 503
        assert body["database"] == "unavailable"
        assert body["error"]["fields"] == {"database": ["unavailable"]}
        for method, path, payload in ENDPOINTS:
            status, _, body = call(base, method, path, payload, _auth("a" * 64))
            if path == "/admin/login/":  # a form post: the CSRF check refuses it before any query
                assert status == 403, (method, path, status)
                continue
            assert status == 503, (method, path, status, body)
            assert body["error"]["code"] == "database_unavailable", (method, path)
        # Pages that need no database still work.
        assert call(base, "GET", "/api/schema/")[0] == 200
        assert call(base, "GET", "/")[0] == 200


def test_cache_down_tokens_still_issue_login_answers_503_and_health_says_so(tmp_path, caplog):
    env = _sqlite_env(tmp_path, CACHE_URL=f"redis://127.0.0.1:{CLOSED_PORT}/0")
    key = _user_with_api_token(env)
    with running_server(env) as base:
        for path, payload in TOKEN_REQUESTS:
            status, _, body = call(base, "POST", path, payload, _auth(key))
            assert status in (200, 201), (path, status, body)
            assert body["token"].startswith(("006", "007"))
        status, _, body = call(
            base, "POST", "/api/v1/auth/token/", f'{{"username": "alice", "password": "{PASSWORD}"}}'
        )
        assert status == 503
        assert body["error"]["code"] == "cache_unavailable"
        status, _, body = call(base, "GET", "/healthz")
        assert (status, body["cache"], body["database"], body["agora"]) == (503, "unavailable", "ok", "ok")
    rows = manage(
        env,
        "shell",
        "-v",
        "0",
        "-c",
        "from tokens.models import IssuedToken; print(IssuedToken.objects.count())",
    )
    assert rows.strip() == str(len(TOKEN_REQUESTS))


def test_invalid_agora_settings_make_health_fail(tmp_path):
    env = {**_sqlite_env(tmp_path), "AGORA_APP_CERTIFICATE": "not-a-certificate"}
    with running_server(env) as base:
        status, _, body = call(base, "GET", "/healthz")
        assert status == 503
        assert (body["agora"], body["database"], body["cache"]) == ("not_configured", "ok", "ok")
        assert body["error"]["fields"] == {"agora": ["not_configured"]}


@pytest.fixture
def postgres_database():
    """A fresh PostgreSQL database for one server process; its name."""
    require_service("PostgreSQL", POSTGRES_PORT)
    import psycopg

    name = f"tokenserver_outages_{os.getpid()}"  # one per test run: runs may overlap
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    yield name
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def _served_through_a_proxy(postgres_database):
    """The project served on PostgreSQL through a TcpProxy, alice with an API key: yields
    (proxy, env, base URL, key)."""
    proxy = TcpProxy(POSTGRES_PORT)
    try:
        env = server_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:{proxy.port}/{postgres_database}")
        manage(env, "migrate", "--no-input", "-v", "0")
        key = _user_with_api_token(env)
        with running_server(env) as base:
            yield proxy, env, base, key
    finally:
        proxy.close()


def test_postgres_cut_off_mid_connection_then_back_recovers_without_restart(postgres_database):
    with _served_through_a_proxy(postgres_database) as (proxy, _, base, key):
        assert call(base, "POST", "/api/v1/tokens/rtc/", '{"channel": "c"}', _auth(key))[0] == 201
        proxy.cut()  # kills the server's live, persistent connection and refuses new ones
        for path, payload in TOKEN_REQUESTS:
            status, _, body = call(base, "POST", path, payload, _auth(key))
            assert (status, (body or {}).get("error", {}).get("code")) == (503, "database_unavailable"), (
                path,
                status,
                body,
            )
        assert call(base, "GET", "/healthz")[0] == 503
        proxy.restore()
        statuses = [
            call(base, "POST", "/api/v1/tokens/rtc/", '{"channel": "c"}', _auth(key))[0] for _ in range(3)
        ]
        assert statuses == [201, 201, 201]
        assert call(base, "GET", "/healthz")[0] == 200


def _audit_rows(env) -> int:
    script = "from tokens.models import IssuedToken; print(IssuedToken.objects.count())"
    return int(manage(env, "shell", "-v", "0", "-c", script).strip())


def test_a_connection_postgres_closed_while_idle_is_replaced_before_the_next_token_not_a_503(
    postgres_database,
):
    # PostgreSQL restarted between two requests: the server's persistent connection is dead
    # but PostgreSQL is back. The join path sees it before sending (no SELECT 1 round trip).
    with _served_through_a_proxy(postgres_database) as (proxy, env, base, key):
        for path, payload in TOKEN_REQUESTS:  # every endpoint warm, its statement prepared
            assert call(base, "POST", path, payload, _auth(key))[0] in (200, 201), path
        rows = _audit_rows(env)
        for path, payload in TOKEN_REQUESTS:
            proxy.cut()  # closes the server's idle connection...
            proxy.restore()  # ...and PostgreSQL is reachable again at once
            time.sleep(0.2)  # the end of the stream has reached the server's socket
            status, _, body = call(base, "POST", path, payload, _auth(key))
            assert status in (200, 201), (path, status, body)
        assert _audit_rows(env) == rows + len(TOKEN_REQUESTS)  # each token with its one row


def _task_status(env, task_id: str) -> str:
    script = (
        "from django_tasks_db.models import DBTaskResult; "
        f"print(DBTaskResult.objects.get(id='{task_id}').status)"
    )
    return manage(env, "shell", "-v", "0", "-c", script).strip()


def _until(condition, what: str, worker: ServerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.alive(), f"the task worker died ({what})\n{worker.output()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s\n{worker.output()[-3000:]}"
        time.sleep(0.1)


def test_the_task_worker_outlives_postgres_cut_off_and_runs_tasks_once_it_is_back(
    postgres_database, tmp_path
):
    """django-tasks-db's loop stops at a database error; `manage.py db_worker` (what `make serve`
    runs beside the server) polls again until the database is back, then runs what is due."""
    proxy = TcpProxy(POSTGRES_PORT)
    try:
        env = server_env(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{proxy.port}/{postgres_database}", LOG_LEVEL="INFO"
        )
        manage(env, "migrate", "--no-input", "-v", "0")
        argv = [
            sys.executable,
            "manage.py",
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval",
            "0.1",
        ]
        worker = ServerProcess(
            [*argv, "--recovery-interval", "0.5"], env, tmp_path / "worker.log", name="db_worker"
        )
        try:
            _until(lambda: "Starting worker" in worker.output(), "start", worker)
            proxy.cut()  # its connection killed, new ones refused
            _until(lambda: "task worker: database unavailable" in worker.output(), "outage noticed", worker)
            time.sleep(1.5)  # at least one more poll while the database is away
            assert worker.alive(), worker.output()[-3000:]
            proxy.restore()
            # A task enqueued once the database is back is run: no moderation action 0 exists, so
            # the attempt ends FAILED, but it ends (READY while no worker polls).
            script = "from tokens.tasks import apply_moderation; print(apply_moderation.enqueue(0).id)"
            task_id = manage(env, "shell", "-v", "0", "-c", script).strip()
            _until(lambda: _task_status(env, task_id) not in ("READY", "RUNNING"), "task run", worker)
            assert worker.alive()
        finally:
            worker.stop()
    finally:
        proxy.close()


def test_redis_cut_off_mid_connection_then_back_recovers_without_restart(tmp_path):
    require_service("Redis", REDIS_PORT)
    proxy = TcpProxy(REDIS_PORT)
    try:
        import redis

        redis.Redis.from_url("redis://127.0.0.1:6379/11").flushdb()  # no budget left over from elsewhere
        env = _sqlite_env(tmp_path, CACHE_URL=f"redis://127.0.0.1:{proxy.port}/11")
        key = _user_with_api_token(env)
        login = f'{{"username": "alice", "password": "{PASSWORD}"}}'
        with running_server(env) as base:
            assert call(base, "POST", "/api/v1/auth/token/", login)[0] == 200
            proxy.cut()
            assert call(base, "POST", "/api/v1/tokens/rtc/", '{"channel": "c"}', _auth(key))[0] == 201
            assert call(base, "POST", "/api/v1/auth/token/", login)[0] == 503
            assert call(base, "GET", "/healthz")[0] == 503
            proxy.restore()
            assert call(base, "POST", "/api/v1/auth/token/", login)[0] == 200
            assert call(base, "POST", "/api/v1/tokens/rtc/", '{"channel": "c"}', _auth(key))[0] == 201
            assert call(base, "GET", "/healthz")[0] == 200
    finally:
        proxy.close()
