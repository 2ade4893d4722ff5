"""The moderation worker as it runs in production: `manage.py db_worker` in a process of its own
against a database file, killed with SIGKILL while Agora (the fake, on 127.0.0.1) holds its ban
request unanswered, then started again: the action is applied exactly once, with one rule at
Agora, whether or not the lost request had made its rule."""

import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import APP_ID, REST_CUSTOMER_ID, REST_CUSTOMER_SECRET
from tests.fake_agora import FakeAgora
from tests.servers import ServerProcess, manage, server_env
from tokens.agora_rest import client

RULES = "/dev/v1/kicking-rule"
DEADLINE = 60.0  # seconds any wait below may take at most (the lease here runs out in ~6 s)
SETUP = (
    "from django.contrib.auth import get_user_model; from tokens.services.identities import "
    "get_or_create_identity; print(get_or_create_identity(user=get_user_model().objects.create_user("
    "'alice')).uid)"
)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    """A migrated SQLite database file, copied for each test (migrating takes seconds)."""
    path = tmp_path_factory.mktemp("worker-db") / "template.sqlite3"
    manage(server_env(DATABASE_URL=f"sqlite:///{path}"), "migrate", "--no-input", "-v", "0")
    return path


@pytest.fixture
def fake():
    with FakeAgora(
        customer_id=REST_CUSTOMER_ID, customer_secret=REST_CUSTOMER_SECRET, app_id=APP_ID
    ) as server:
        yield server
        client.close()


def _env(database: Path, fake: FakeAgora) -> dict[str, str]:
    # A request times out after 2 s: the test kills the worker well before that.
    return server_env(
        DATABASE_URL=f"sqlite:///{database}", AGORA_CUSTOMER_ID=REST_CUSTOMER_ID,
        AGORA_CUSTOMER_SECRET=REST_CUSTOMER_SECRET, AGORA_REST_URL=fake.url, AGORA_REST_TIMEOUT="2",
        AGORA_REST_CONNECT_TIMEOUT="0.5", AGORA_REST_RETRIES="1", AGORA_REST_BACKOFF="0",
        AGORA_REST_BACKOFF_MAX="0", LOG_LEVEL="INFO",
    )  # fmt: skip


def _worker(env: dict[str, str], log: Path) -> ServerProcess:
    argv = [
        sys.executable,
        "manage.py",
        "db_worker",
        "--no-reload",
        "--no-startup-delay",
        "--interval",
        "0.1",
    ]
    return ServerProcess([*argv, "--recovery-interval", "0.5"], env, log, name="db_worker")


def _until(condition, what: str, process: ServerProcess | None = None):
    deadline = time.monotonic() + DEADLINE
    while not (found := condition()):
        if time.monotonic() > deadline or (process is not None and not process.alive()):
            output = process.output()[-3000:] if process is not None else ""
            raise AssertionError(f"no {what} within {DEADLINE:.0f} s\n{output}")
        time.sleep(0.05)
    return found


def _action(database: Path, action_id: int) -> dict:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM tokens_moderationaction WHERE id = ?", (action_id,)).fetchone()
        rules = db.execute("SELECT uid, rule_id FROM tokens_moderationrule WHERE action_id = ?", (action_id,))
        return {**dict(row), "rules": [tuple(r) for r in rules.fetchall()]}


@pytest.mark.parametrize("processed", [True, False], ids=["rule-made-answer-lost", "request-lost"])
def test_a_worker_killed_mid_ban_and_started_again_applies_it_exactly_once(
    migrated, fake, tmp_path, processed
):
    database = tmp_path / "db.sqlite3"
    shutil.copy(migrated, database)
    env = _env(database, fake)
    uid = int(manage(env, "shell", "-v", "0", "-c", SETUP).strip())
    (action,) = [json.loads(manage(env, "ban", "alice", "--channel", "room", "--minutes", "10"))]
    assert (action["state"], action["uids"]) == ("pending", [uid])
    fake.fail_next(1, "hang", after_processing=processed)  # the first POST gets no answer

    first = _worker(env, tmp_path / "worker-1.log")
    try:
        _until(lambda: fake.requests_to("POST", RULES), "ban request at Agora", first)
        first.kill()  # SIGKILL while it waits for the answer
    finally:
        first.kill()
    assert len(fake.rules) == (1 if processed else 0)
    state = _action(database, action["id"])
    assert (state["state"], state["attempts"], state["rules"]) == ("pending", 1, [(uid, None)])

    second = _worker(env, tmp_path / "worker-2.log")
    try:
        done = _until(
            lambda: (row := _action(database, action["id"]))["state"] != "pending" and row,
            "applied action",
            second,
        )
    finally:
        second.stop()
    assert (done["state"], done["attempts"]) == ("applied", 2), second.output()[-2000:]
    (rule_id,) = fake.rules  # exactly one rule at Agora
    assert done["rules"] == [(uid, rule_id)]
    assert fake.rules[rule_id]["uid"] == uid and fake.rules[rule_id]["cname"] == "room"
    # Adopted from the list when it had been made; asked for once more when it had not.
    assert len(fake.requests_to("POST", RULES)) == (1 if processed else 2)
    assert "attempt was lost" in second.output()
