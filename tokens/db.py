"""The join path's two statements, run with as little as is safe between them and the database.

Measured on SQLite (bench/RESULTS.md): Django's cursor wrapper costs ~50 us a statement (a
regex rewrite of the placeholders, wrappers, converters) while the statement itself costs
~20 us, and `Field.get_db_prep_save` ~20 us a field. So the API-token read and the audit
INSERT are prepared once per database vendor and run on the DB-API connection inside
Django's own error translation; values are adapted as Django's backend would adapt them
(a test holds the two to each other). When Django is logging queries (DEBUG,
CaptureQueriesContext, assertNumQueries) or an execute wrapper is installed, they go
through Django's cursor instead, so every count and wrapper sees them.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from datetime import UTC
from urllib.parse import quote

from django.db import DEFAULT_DB_ALIAS, connections, models

logger = logging.getLogger(__name__)

try:
    import psycopg
except ImportError:  # pragma: no cover - SQLite-only installs
    psycopg = None


def default():
    """The default database connection of this thread (one lookup; `django.db.connection` is a
    proxy that looks it up again on every attribute)."""
    return connections[DEFAULT_DB_ALIAS]


def placeholders(sql: str) -> str:
    """`sql` written with %s, in the connection's own parameter style."""
    return sql.replace("%s", "?") if default().vendor == "sqlite" else sql


def fetch_one(sql: str, native_sql: str, params: Sequence, *, write: bool = False) -> tuple | None:
    """Run one statement (`sql` with %s; `native_sql`, the same in the driver's own style) and
    return its first row. `write`: the statement writes (see _write_lock)."""
    conn = default()
    if conn.queries_logged or conn.execute_wrappers:
        with _write_lock(conn, write), conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    if conn.connection is None:
        conn.ensure_connection()
    with conn.wrap_database_errors:
        if conn.vendor == "postgresql":
            # A server-side prepared statement (settings: DATABASE_PREPARED_STATEMENTS):
            # PostgreSQL plans it once per persistent connection, not on every request; the
            # API-token read costs more to plan than to run.
            with psycopg.Cursor(conn.connection) as cursor:
                cursor.execute(native_sql, params, prepare=True)
                return cursor.fetchone()
        # SQLite's driver keeps prepared statements per connection by itself.
        with _write_lock(conn, write):
            return conn.connection.execute(native_sql, params).fetchone()


class _FileLock:
    """The exclusive flock() on a SQLite file's writer-lock file (`<name>.write-lock`), held for
    a `with` block. Each instance has its own descriptor, so two of them exclude each other even
    within one process."""

    def __init__(self, database_path: str) -> None:
        self.database_path = database_path
        self.fd = os.open(f"{database_path}.write-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc_info) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


def _is_sqlite_file(conn) -> bool:
    return conn.vendor == "sqlite" and not conn.is_in_memory_db()


_NO_LOCK = nullcontext()
_file_locks: dict[tuple[int, str], _FileLock] = {}


def _write_lock(conn, write: bool):
    """What a statement holds while it runs: for a write to a SQLite file, the file's writer
    lock; otherwise nothing (reads, PostgreSQL and in-memory databases take no lock).

    SQLite lets one writer at a time in, and a writer that finds the file locked sleeps in
    SQLite's busy handler (1, 2, 5, 10 ... ms) before it tries again, while the lock is held
    for ~0.1 ms. flock() instead queues the writers in the kernel, which wakes the next one
    as soon as the lock is released: with two workers inserting audit rows, 3-7% more token
    requests/s in three alternating rounds (bench/RESULTS.md). A lock file beside the
    database (`<name>.write-lock`), not the database file: flock and SQLite's own fcntl locks
    must not share a file descriptor.
    """
    if not write or not _is_sqlite_file(conn):
        return _NO_LOCK
    # One descriptor per process: a descriptor inherited over fork() would share its lock.
    key = (os.getpid(), str(conn.settings_dict["NAME"]))
    lock = _file_locks.get(key)
    if lock is None:
        lock = _file_locks[key] = _FileLock(key[1])
    return lock


def _naive_utc_text(value):
    # Django's SQLite backend stores aware datetimes as naive UTC text.
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return None if value is None else str(value)


def adapter(field: models.Field) -> Callable:
    """How the connection's backend adapts a Python value of `field` for a query."""
    if isinstance(field, models.DateTimeField) and default().vendor == "sqlite":
        return _naive_utc_text
    if isinstance(field, models.GenericIPAddressField) and default().vendor != "postgresql":
        return default().ops.adapt_ipaddressfield_value
    return _as_is


def _as_is(value):
    return value


def placeholder(field: models.Field) -> str:
    """The parameter placeholder for a value of `field` (with %s): PostgreSQL casts an IP
    address from its text itself, cheaper than adapting it in Python."""
    if isinstance(field, models.GenericIPAddressField) and default().vendor == "postgresql":
        return "%s::inet"
    return "%s"


# --- SQLite checkpoints, off the request path ------------------------------------------------
#
# In WAL mode SQLite appends every commit to `<name>-wal`; a checkpoint copies those pages back
# into the database file and fsyncs both. By default the connection that commits the 1000th
# page runs it, inside its INSERT: under the write lock above, so every worker's writers wait
# for the copy and the fsyncs (bench/RESULTS.md: a stall of every writer each ~110 token
# requests, ~10% of the throughput). Instead each process that opens the SQLite file runs one
# daemon thread that copies the WAL every CHECKPOINT_INTERVAL without the write lock
# (PASSIVE: writers go on; sqlite3 releases the GIL meanwhile), and only when the WAL has
# grown to RESTART_FRAMES syncs what the rounds copied, then takes the write lock for the short
# rest and the restart of the WAL, which bounds its size.
# The requests' own connections then leave checkpoints to it (wal_autocheckpoint=0).
# DATABASE_SQLITE_BACKGROUND_CHECKPOINTS=false restores SQLite's own behaviour.

CHECKPOINT_INTERVAL = 0.1  # seconds
RESTART_FRAMES = 4000  # WAL pages (16 MB with 4 KiB pages)
RESTART_BUSY_TIMEOUT_MS = 50  # longest wait, under the write lock, for readers of old pages
_checkpointers: dict[tuple[int, str], _Checkpointer] = {}
_checkpointers_lock = threading.Lock()


def _sync_open_files(*paths: str) -> None:
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


def checkpoint_once(conn: sqlite3.Connection, lock: _FileLock) -> int:
    """One round of the checkpointer; returns the WAL's length in frames before it."""
    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if frames >= RESTART_FRAMES:
        # While writers keep appending, a PASSIVE round never quite catches up with them, and
        # SQLite fsyncs the database file only after a checkpoint that did: so the pages the
        # rounds copied pile up unsynced, and the RESTART below, which catches up, would fsync
        # all of them while every writer waits on the lock (10-17 ms at each restart under
        # load, bench/RESULTS.md). Flushed here first, the RESTART's own syncs cover only what
        # came in meanwhile. An extra fsync changes nothing SQLite relies on.
        _sync_open_files(f"{lock.database_path}-wal", lock.database_path)
        with lock:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    return frames


class _Checkpointer(threading.Thread):
    """The checkpointer thread of one process and database file."""

    def __init__(self, path: str) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path = path
        self.stopping = threading.Event()

    def run(self) -> None:
        lock = _FileLock(self.path)  # its own descriptor: excludes this process's writers too
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
    for key, thread in list(_checkpointers.items()):
        if key[0] == os.getpid():
            thread.stop()


def use_background_checkpoints(sender, connection, **kwargs) -> None:
    """connection_created: a new connection to a SQLite file leaves checkpoints to this
    process's checkpointer thread, started here on first need."""
    if not _is_sqlite_file(connection) or not connection.settings_dict.get("BACKGROUND_CHECKPOINTS"):
        return
    path = str(connection.settings_dict["NAME"])
    key = (os.getpid(), path)  # a forked worker starts its own
    with _checkpointers_lock:
        thread = _checkpointers.get(key)
        if thread is None or not thread.is_alive():
            thread = _Checkpointer(path)
            thread.start()
            _checkpointers[key] = thread
    connection.connection.execute("PRAGMA wal_autocheckpoint=0")
