"""Guarantees across processes: two production server processes sharing one database (and,
on the PostgreSQL lane, one Redis) each see a revoked API token, a deactivated user and a
deleted user on the very next request; the token budget holds exactly (N allowed, never
N+1) across them; and every token a client received under load has its audit row."""

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.servers import (
    call,
    chunked_rtm_request,
    manage,
    raw_http,
    require_service,
    running_server,
    server_env,
)

BUDGET = 30  # tokens per user per day on these servers


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def lane(request, tmp_path_factory):
    """Two server processes (two workers each) sharing one migrated database and, on the
    PostgreSQL lane, one Redis; yields (lane, env, (url_a, url_b))."""
    if request.param == "sqlite":
        env = server_env(DATABASE_URL=f"sqlite:///{tmp_path_factory.mktemp('lane') / 'db.sqlite3'}")
    else:
        require_service("PostgreSQL", 5432)
        require_service("Redis", 6379)
        import psycopg
        import redis

        name = f"tokenserver_processes_{os.getpid()}"  # one per test run: runs may overlap
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        redis.Redis.from_url("redis://127.0.0.1:6379/10").flushdb()
        env = server_env(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{name}", CACHE_URL="redis://127.0.0.1:6379/10"
        )
    env["THROTTLE_TOKENS_RATE"] = f"{BUDGET}/day"
    manage(env, "migrate", "--no-input", "-v", "0")
    with running_server(env, workers=2) as a, running_server(env, workers=2) as b:
        yield request.param, env, (a, b)
    if request.param != "sqlite":  # the servers are gone: drop this run's database
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _shell(env, script: str) -> str:
    return manage(env, "shell", "-v", "0", "-c", script).strip().splitlines()[-1]


def _users_with_keys(env, names) -> dict[str, str]:
    """Users (no password: nothing here logs in) with an API token each; name -> key."""
    script = (
        "import json; from django.contrib.auth.models import User; from knox.models import AuthToken; "
        "print(json.dumps({n: AuthToken.objects.create(user=User.objects.create_user(n))[1] "
        f"for n in {names!r}}}))"
    )
    return json.loads(_shell(env, script))


def _audit_digests(env) -> list[str]:
    script = (
        "import json; from tokens.models import IssuedToken as T; "
        "print(json.dumps(list(T.objects.values_list('token_sha256', flat=True))))"
    )
    return json.loads(_shell(env, script))


def _post(base, key, path="/api/v1/tokens/rtc/", body=None):
    body = {"channel": "c"} if body is None else body
    return call(base, "POST", path, json.dumps(body), {"Authorization": f"Token {key}"})


def test_revocation_deactivation_and_deletion_stop_the_next_request_in_the_other_process(lane):
    _, env, servers = lane
    keys = _users_with_keys(env, ["revoked", "deactivated", "deleted"])
    for key in keys.values():  # warm: both processes (and, likely, all their workers) served each user
        assert {_post(server, key)[0] for server in servers for _ in range(4)} == {201}
    a, b = servers
    status, _, _ = call(
        a, "DELETE", "/api/v1/auth/token/", None, {"Authorization": f"Token {keys['revoked']}"}
    )
    assert status == 204
    _shell(
        env,
        "from django.contrib.auth.models import User; "
        "User.objects.filter(username='deactivated').update(is_active=False); "
        "User.objects.filter(username='deleted').delete(); print('ok')",
    )
    for name, key in keys.items():
        for server in (b, a):
            status, _, body = _post(server, key)
            assert (status, body["error"]["code"]) == (401, "authentication_failed"), (name, server)


# Local-memory budgets are per process by design: a shared budget is what Redis is for.
@pytest.mark.parametrize("lane", ["postgres+redis"], indirect=True)
def test_the_token_budget_holds_exactly_across_two_processes(lane):
    _, env, servers = lane
    for attempt in range(2):  # a day boundary in the middle would open a second budget: again
        (key,) = _users_with_keys(env, [f"hammer{attempt}"]).values()
        before = len(_audit_digests(env))
        day = int(time.time() // 86400)
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda i, key=key: _post(servers[i % 2], key)[0], range(4 * BUDGET)))
        if int(time.time() // 86400) == day:
            break
    assert (statuses.count(201), statuses.count(429)) == (BUDGET, 3 * BUDGET)
    assert len(_audit_digests(env)) - before == BUDGET


def test_every_token_received_under_load_has_its_audit_row(lane):
    _, env, servers = lane
    keys = list(_users_with_keys(env, [f"load{i}" for i in range(20)]).values())
    before = set(_audit_digests(env))
    requests = [
        ("/api/v1/tokens/rtc/", {"channel": "room"}),
        ("/api/v1/tokens/rtm/", {}),
        ("/rtctoken", {"channel": "room", "isPublisher": True}),
        ("/rtmtoken", {}),
    ]

    def send(i):
        path, body = requests[i % len(requests)]
        return _post(servers[i % 2], keys[i % len(keys)], path, body)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(send, range(20 * (BUDGET - 2))))  # within every user's budget
    assert {status for status, _, _ in answers} <= {200, 201}
    received = [hashlib.sha256(body["token"].encode()).hexdigest() for _, _, body in answers]
    added = set(_audit_digests(env)) - before
    assert len(received) == len(set(received)) == len(added)
    assert set(received) == added


def test_a_raw_chunked_request_to_the_production_server_is_411_and_issues_nothing(lane):
    """Under granian (make serve), as under Django's test server: a chunked body is refused,
    never read as empty (which would issue a default token: 007, an hour)."""
    _, env, servers = lane
    key = _users_with_keys(env, ["chunked"])["chunked"]
    rows_before = len(_audit_digests(env))
    for server in servers:
        answer = raw_http(server, chunked_rtm_request(key))
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 411"), answer[:300]
        assert json.loads(payload)["error"]["code"] == "length_required", answer
    assert len(_audit_digests(env)) == rows_before
