"""What several test files share (fixtures stay in conftest.py): Agora's channel event
notifications, signed and posted to the webhook the way Agora sends them, scripted sequences of
them; /metrics scraped and compared; moderation's queued tasks run in this process."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime
from unittest import mock

from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

NCS_SECRET = "ncs-secret-7c9e1f0a2b"
WEBHOOK_URL = reverse("tokens:agora-webhook")
TS = 1772366400  # 2026-03-01T12:00:00Z
NOTIFY_MS = TS * 1000 + 250


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def sign(body: bytes, secret: str = NCS_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def ncs_body(event_type: int, notice_id: str, payload: dict, *, notify_ms: int = NOTIFY_MS) -> dict:
    """One RTC channel event notification, as Agora's documentation shows them."""
    return {
        "noticeId": notice_id,
        "productId": 1,
        "eventType": event_type,
        "notifyMs": notify_ms,
        "sid": "C866467GVJJ54687",
        "payload": payload,
    }


def deliver(body, *, signature: str | None = None, client: Client | None = None, **headers):
    """POST `body` (a dict is sent as compact JSON) the way Agora does, signed unless told."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if signature is None:
        signature = sign(raw)
    if signature:
        headers["HTTP_AGORA_SIGNATURE_V2"] = signature
    return (client or Client()).post(WEBHOOK_URL, raw, content_type="application/json", **headers)


class Script:
    """A channel's events as Agora would report them, each with its own noticeId and, per uid, an
    increasing clientSeq; `send` posts them signed, in the order given (not necessarily the
    order they happened in) and returns the webhook's answers."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._notices = itertools.count(1)
        self._seqs: dict[int, itertools.count] = {}

    def _body(self, event_type: int, ts: int, **payload) -> dict:
        payload = {"channelName": self.channel, "ts": ts, **payload}
        if "uid" in payload:
            payload.setdefault("clientSeq", next(self._seqs.setdefault(payload["uid"], itertools.count(1))))
        return ncs_body(event_type, f"{self.channel}:{next(self._notices)}", payload)

    def create(self, ts: int) -> dict:
        return self._body(101, ts)

    def destroy(self, ts: int) -> dict:
        return self._body(102, ts)

    def join(self, uid: int, ts: int, *, event_type: int = 103, platform: int = 7, **payload) -> dict:
        return self._body(event_type, ts, uid=uid, platform=platform, **payload)

    def leave(self, uid: int, ts: int, *, event_type: int = 104, reason: int = 1, **payload) -> dict:
        return self._body(event_type, ts, uid=uid, platform=7, reason=reason, duration=60, **payload)

    def role(self, uid: int, ts: int, *, to_broadcaster: bool, **payload) -> dict:
        return self._body(111 if to_broadcaster else 112, ts, uid=uid, **payload)

    @staticmethod
    def send(*bodies: dict) -> list[str]:
        answers = []
        for body in bodies:
            response = deliver(body)
            assert response.status_code == 200, response.content
            answers.append(response.json()["status"])
        return answers


# --- /metrics -------------------------------------------------------------------------------


def parse(text: str) -> dict[tuple, float]:
    """(sample name, frozenset of its labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape() -> dict[tuple, float]:
    response = APIClient().get(reverse("tokens:metrics"))
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def counted(before: dict, after: dict, name: str, *labels: str) -> dict[tuple, float]:
    """What changed in `name` between two scrapes: (its label values, in order) -> increase."""
    return {
        tuple(dict(sample_labels)[label] for label in labels): amount
        - before.get((sample, sample_labels), 0.0)
        for (sample, sample_labels), amount in after.items()
        if sample == name and amount != before.get((sample, sample_labels), 0.0)
    }


MAX_ROUNDS = 20  # a bounded loop: each round runs what is due


def run_tasks(*, later_too: bool = False) -> int:
    """Run the queued tasks in this process, as `manage.py db_worker` does (the backend's own
    worker, in batch mode); `later_too`: tasks scheduled for later (retries) are made due
    first, round after round, until none is left. How many ran. The worker's check for stale
    connections is skipped: inside a test's transaction it would close the connection."""
    with mock.patch.object(db_worker, "close_old_connections", lambda: None):
        return _run(later_too)


def _run(later_too: bool) -> int:
    ran = 0
    for _ in range(MAX_ROUNDS):
        if later_too:
            DBTaskResult.objects.filter(status=TaskResultStatus.READY).update(run_after=timezone.now())
        before = DBTaskResult.objects.exclude(status=TaskResultStatus.READY).count()
        db_worker.Worker(
            queue_names=["default"], interval=0, batch=True, backend_name="default", startup_delay=False,
            max_tasks=None, worker_id="tests", excluded_queue_names=[],
        ).run()  # fmt: skip
        done = DBTaskResult.objects.exclude(status=TaskResultStatus.READY).count() - before
        ran += done
        if not later_too or not DBTaskResult.objects.filter(status=TaskResultStatus.READY).exists():
            break
    return ran


def queued() -> int:
    """Tasks waiting to run, due or not."""
    return DBTaskResult.objects.filter(status=TaskResultStatus.READY).count()
