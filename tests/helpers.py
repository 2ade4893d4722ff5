"""Helpers the tests share (fixtures stay in conftest.py)."""

from __future__ import annotations

from unittest import mock

from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands import db_worker
from django_tasks_db.models import DBTaskResult

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
