"""Django's SQLite backend, tuned for several worker processes on one file.

- Defaults for its OPTIONS: WAL (readers beside the writer), synchronous=NORMAL, IMMEDIATE
  transactions (the write lock at BEGIN, no upgrade deadlocks) and a 20 s busy timeout;
  anything set in OPTIONS wins.
- `fetch_one`: one statement on the DB-API connection inside Django's error translation; a
  write holds the file's writers' lock (below). Django's cursor wrapper costs more than a
  short statement itself (a regex rewrite of the placeholders, wrappers), so it is skipped
  unless Django is logging queries or an execute wrapper is installed.
- The writers' lock: SQLite lets one writer in at a time, and a writer that finds the file
  locked sleeps in SQLite's busy handler (1, 2, 5, 10 ... ms) before it tries again, while
  the lock is held for ~0.1 ms. An exclusive flock() on `<name>.write-lock` instead queues
  the writers in the kernel, which wakes the next as soon as it is released: 3-7% more token
  requests/s with two workers (bench/RESULTS.md). A file beside the database, because flock
  and SQLite's own fcntl locks must not share a descriptor.
- Checkpoints off the request path (OPTIONS `background_checkpoints`, default on): see
  `Checkpointer`.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import nullcontext, suppress
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote

from django.conf import settings
from django.db.backends.sqlite3 import base, operations

logger = logging.getLogger(__name__)

DEFAULT_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    "timeout": 20,
    "background_checkpoints": True,
}


class FileLock:
    """The exclusive flock() on a SQLite file's writers' lock file (`<name>.write-lock`), held
    for a `with` block. Each instance has its own descriptor, so two of them exclude each other
    even within one process."""

    def __init__(self, database_path: str) -> None:
        self.database_path = database_path
        self.fd = os.open(f"{database_path}.write-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc_info) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


_NO_LOCK = nullcontext()
_file_locks: dict[tuple[int, str], FileLock] = {}


class DatabaseOperations(operations.DatabaseOperations):
    def adapt_datetimefield_value(self, value):
        # Django stores an aware datetime as naive UTC text; a value already in UTC (every
        # timestamp this server makes) needs no time zone conversion to get there.
        if (
            type(value) is datetime
            and value.tzinfo is UTC
            and self.connection.timezone_name == "UTC"
            and settings.USE_TZ
        ):
            return _utc_text(value) if value.microsecond == 0 else str(value.replace(tzinfo=None))
        return super().adapt_datetimefield_value(value)


@lru_cache(maxsize=256)
def _utc_text(value: datetime) -> str:
    # A whole second in UTC (a token's issue and expiry times), as Django stores it: each comes
    # up for every token issued within that second, and formatting one costs ~1.4 us.
    return str(value.replace(tzinfo=None))


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def __init__(self, settings_dict, *args, **kwargs):
        options = {**DEFAULT_OPTIONS, **settings_dict.get("OPTIONS", {})}
        self.background_checkpoints = bool(options.pop("background_checkpoints"))
        super().__init__({**settings_dict, "OPTIONS": options}, *args, **kwargs)

    def is_file_database(self) -> bool:
        return not self.is_in_memory_db()

    def write_lock(self):
        """The file's writers' lock (a context manager), or nothing for an in-memory database.
        One descriptor per process: a descriptor inherited over fork() would share its lock."""
        if not self.is_file_database():
            return _NO_LOCK
        key = (os.getpid(), str(self.settings_dict["NAME"]))
        lock = _file_locks.get(key)
        if lock is None:
            lock = _file_locks[key] = FileLock(key[1])
        return lock

    def fetch_all(self, sql: str, params: Sequence, *, write: bool = False) -> list[tuple]:
        """Run one statement (`sql` with %s placeholders) and return its rows; `write`: it
        writes, so it holds the writers' lock."""
        lock = self.write_lock() if write else _NO_LOCK
        if self.queries_logged or self.execute_wrappers:
            with lock, self.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        if self.connection is None:
            self.ensure_connection()
        native = _qmark(sql)
        with self.wrap_database_errors, lock:
            return self.connection.execute(native, params).fetchall()

    def get_new_connection(self, conn_params):
        conn = super().get_new_connection(conn_params)
        if self.background_checkpoints and self.is_file_database():
            Checkpointer.start_for(str(self.settings_dict["NAME"]))
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer does it
        return conn


_qmarks: dict[str, str] = {}


def _qmark(sql: str) -> str:
    # The statements are few and fixed: each is rewritten to SQLite's style once.
    native = _qmarks.get(sql)
    if native is None:
        native = _qmarks[sql] = sql.replace("%s", "?")
    return native


# --- checkpoints, off the request path -----------------------------------------------------
#
# In WAL mode SQLite appends every commit to `<name>-wal`; a checkpoint copies those pages back
# into the database file and fsyncs both. By default the connection that commits the 1000th
# page runs it, inside its INSERT: under the writers' lock, so every worker's writers wait for
# the copy and the fsyncs (bench/RESULTS.md: a stall of every writer each ~110 token requests,
# ~10% of the throughput). Instead each process that opens the file runs one daemon thread
# that copies the WAL every CHECKPOINT_INTERVAL without the lock (PASSIVE: writers go on;
# sqlite3 releases the GIL meanwhile), and only when the WAL has grown to RESTART_FRAMES syncs
# what the rounds copied, then takes the lock for the short rest and the restart of the WAL,
# which bounds its size. The requests' own connections leave checkpoints to it
# (wal_autocheckpoint=0).

CHECKPOINT_INTERVAL = 0.1  # seconds
RESTART_FRAMES = 4000  # WAL pages (16 MB with 4 KiB pages)
RESTART_BUSY_TIMEOUT_MS = 50  # longest wait, under the lock, for readers of old pages


def sync_open_files(*paths: str) -> None:
    """fdatasync() each file in `paths` through a descriptor this process already has open on it
    (SQLite's own: /proc/self/fd), in that order; files with none, or without /proc, are left.

    Never through a descriptor opened here: closing any descriptor of a file drops every POSIX
    lock the process holds on it, SQLite's included, and that corrupts the database (seen:
    "file is not a database" under load). An fsync of whatever a reused descriptor number
    points at by then is harmless."""
    try:
        numbers = os.listdir("/proc/self/fd")
    except OSError:
        return
    wanted = {os.path.realpath(path): None for path in paths}
    for number in numbers:
        try:
            target = os.readlink(f"/proc/self/fd/{number}")
        except OSError:
            continue
        if target in wanted and wanted[target] is None:
            wanted[target] = int(number)
    for fd in wanted.values():
        if fd is not None:
            with suppress(OSError):
                os.fdatasync(fd)


def checkpoint_once(conn: sqlite3.Connection, lock: FileLock) -> int:
    """One round of the checkpointer; returns the WAL's length in frames before it."""
    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if frames >= RESTART_FRAMES:
        # While writers keep appending, a PASSIVE round never quite catches up with them, and
        # SQLite fsyncs the database file only after a checkpoint that did: so the pages the
        # rounds copied pile up unsynced, and the RESTART below, which catches up, would fsync
        # all of them while every writer waits on the lock (10-17 ms at each restart under
        # load, bench/RESULTS.md). Flushed here first, the RESTART's own syncs cover only what
        # came in meanwhile. An extra fsync changes nothing SQLite relies on.
        sync_open_files(f"{lock.database_path}-wal", lock.database_path)
        with lock:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    return frames


class Checkpointer(threading.Thread):
    """The checkpointer thread of one process and database file."""

    running: dict[tuple[int, str], Checkpointer] = {}
    _starting = threading.Lock()

    def __init__(self, path: str) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path = path
        self.stopping = threading.Event()

    @classmethod
    def start_for(cls, path: str) -> Checkpointer:
        """This process's checkpointer of `path`, started on first need (a forked worker
        starts its own)."""
        key = (os.getpid(), path)
        with cls._starting:
            thread = cls.running.get(key)
            if thread is None or not thread.is_alive():
                thread = cls.running[key] = cls(path)
                thread.start()
        return thread

    def run(self) -> None:
        lock = FileLock(self.path)  # its own descriptor: excludes this process's writers too
        conn, failing = None, False
        while not self.stopping.wait(CHECKPOINT_INTERVAL):
            try:
                if conn is None:
                    # mode=rw: never create a database file that is missing (moved, not migrated).
                    uri = f"file:{quote(self.path)}?mode=rw"
                    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                    conn.execute(f"PRAGMA busy_timeout={RESTART_BUSY_TIMEOUT_MS}")
                checkpoint_once(conn, lock)
                failing = False
            except Exception:  # the file is away or locked: try again next round, log once per outage
                if not failing:
                    logger.warning(
                        "SQLite background checkpoint of %s failed; retrying", self.path, exc_info=True
                    )
                failing = True
                if conn is not None:
                    conn.close()
                    conn = None
        if conn is not None:
            conn.close()
        lock.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


@atexit.register
def _stop_checkpointers() -> None:
    # Let the process's last connection to the file be closed at exit, so SQLite checkpoints
    # the WAL into the database file as it does without the thread (a daemon thread would
    # otherwise keep its connection open to the end).
    for key, thread in list(Checkpointer.running.items()):
        if key[0] == os.getpid():
            thread.stop()
