"""django-tasks-db's `db_worker`, plus the recovery of moderation actions whose worker died
(tokens/tasks.py `recover`): once at start and every --recovery-interval seconds in a thread
beside the worker. With --stop-with-parent it stops when the process that started it does
(`make run` and `make serve` start it beside the web server).

django-tasks-db's loop ends at the first database error that is not a lock (PostgreSQL
restarted, a failover, the network cut); here the worker then polls again after a pause (1 s,
doubling up to 10 s while the database stays away), so moderation resumes once the database is
back, without restarting the server."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

from django.db import connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand

from tokens import tasks
from tokens.exceptions import DATABASE_OUTAGES

logger = logging.getLogger(__name__)

RESTART_DELAY, RESTART_DELAY_MAX = 1.0, 10.0  # seconds between polls while the database is away
_SHUTDOWN_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGQUIT") if hasattr(signal, name)
)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _recover_once() -> None:
    try:
        tasks.recover()
    except Exception:  # the database may be down for a while: try again next round
        logger.exception("moderation recovery failed; trying again in the next round")
    finally:
        connections.close_all()  # this thread's own connections


def _recovering(interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        _recover_once()


def _stop_with_parent() -> None:
    """SIGTERM this process when its parent dies (Linux), so a worker started beside a server
    never outlives it; the worker's own handler then finishes the task it is running."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Command(DatabaseWorkerCommand):
    help = (
        "Run the database task worker (django-tasks-db's), recovering moderation actions whose "
        "worker died: at start and every --recovery-interval seconds."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--recovery-interval",
            type=float,
            default=10.0,
            help="Seconds between looks for moderation attempts whose worker died (default: %(default)s).",
        )
        parser.add_argument(
            "--stop-with-parent",
            action="store_true",
            help="Stop when the process that started this one exits (Linux).",
        )

    def handle(self, *args, recovery_interval: float, stop_with_parent: bool, **options):
        if stop_with_parent:
            _stop_with_parent()
        # Under --reload the parent process only restarts the child that works.
        working = not options["reload"] or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"
        if working:
            _recover_once()
            if not options["batch"] and recovery_interval > 0:
                thread = threading.Thread(
                    target=_recovering,
                    args=(recovery_interval, threading.Event()),
                    name="moderation-recovery",
                    daemon=True,
                )
                thread.start()
        delay = RESTART_DELAY
        while True:
            started = time.monotonic()
            try:
                super().handle(*args, **options)
                return
            except DATABASE_OUTAGES as exc:
                if time.monotonic() - started > RESTART_DELAY_MAX:
                    delay = RESTART_DELAY  # it had been working: a new outage starts short
                name = type(exc).__name__
                logger.warning("task worker: database unavailable (%s); polling again in %.0f s", name, delay)
            connections.close_all()
            # No task runs during the pause: a stop signal ends the process at once (the next
            # worker sets django-tasks-db's graceful handlers again).
            for signum in _SHUTDOWN_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            time.sleep(delay)
            delay = min(2 * delay, RESTART_DELAY_MAX)
