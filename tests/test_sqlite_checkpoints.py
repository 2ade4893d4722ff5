"""SQLite checkpoints off the request path (tokenserver/databases/sqlite3/): each process
copies the WAL into the database file from its own thread, the requests' connections do not,
and the WAL stays bounded."""

import fcntl
import os
import sqlite3
import time

import pytest

from tests.databases import sqlite_connection
from tokenserver.databases.sqlite3 import base as db


def _connection(path, *, background: bool):
    return sqlite_connection(
        path,
        alias="checkpoint-test",
        options={"background_checkpoints": background},
    )


def _wal_database(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # as the requests' connections run
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    return conn


def _wal_frames(conn: sqlite3.Connection) -> int:
    """Frames in the WAL now (a PASSIVE checkpoint reports them, and copies what it can)."""
    return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def _add_rows(writer: sqlite3.Connection, count: int) -> None:
    for _ in range(count):  # ~3 frames each
        writer.execute("INSERT INTO t (v) VALUES (?)", ("x" * 3000,))


def _stop_thread_of(path) -> None:
    thread = db.Checkpointer.running.pop((os.getpid(), str(path)), None)
    if thread is not None:
        thread.stop()


@pytest.fixture
def unblocked(django_db_blocker):
    """Connections to the test's own files (not the test database)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def fast_checkpoints(monkeypatch):
    monkeypatch.setattr(db, "CHECKPOINT_INTERVAL", 0.01)
    monkeypatch.setattr(db, "RESTART_FRAMES", 50)


@pytest.fixture
def one_round(tmp_path, monkeypatch):
    """A WAL database with a writer that leaves checkpoints alone, and what checkpoint_once
    takes: a connection of its own and the file's write lock (restarts from 50 frames)."""
    monkeypatch.setattr(db, "RESTART_FRAMES", 50)
    path = str(tmp_path / "db.sqlite3")
    writer = _wal_database(path)
    checkpointer = sqlite3.connect(path, isolation_level=None)
    lock = db.FileLock(path)
    try:
        yield path, writer, checkpointer, lock
    finally:
        writer.close()
        checkpointer.close()
        lock.close()


def test_a_sqlite_file_connection_leaves_checkpoints_to_one_thread_per_process(tmp_path, unblocked):
    path = tmp_path / "db.sqlite3"
    first, second = _connection(path, background=True), _connection(path, background=True)
    try:
        first.ensure_connection()
        second.ensure_connection()
        thread = db.Checkpointer.running[(os.getpid(), str(path))]
        assert thread.is_alive() and thread.daemon
        threads = [t.name for t in db.Checkpointer.running.values() if t.path == str(path)]
        assert threads == ["sqlite-checkpoint"]
        for conn in (first, second):
            assert conn.connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    finally:
        first.close()
        second.close()
        _stop_thread_of(path)
    assert not thread.is_alive()


def test_without_background_checkpoints_sqlite_checkpoints_as_usual(tmp_path, unblocked):
    path = tmp_path / "db.sqlite3"
    conn = _connection(path, background=False)
    try:
        conn.ensure_connection()
        assert conn.connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
        assert (os.getpid(), str(path)) not in db.Checkpointer.running
    finally:
        conn.close()


def test_in_memory_databases_get_no_thread(unblocked):
    conn = _connection(":memory:", background=True)
    try:
        conn.ensure_connection()
        assert (os.getpid(), ":memory:") not in db.Checkpointer.running
    finally:
        conn.close()


def test_a_round_copies_the_wal_and_restarts_it_once_it_is_long(one_round):
    _, writer, checkpointer, lock = one_round
    _add_rows(writer, 10)
    assert db.checkpoint_once(checkpointer, lock) < 50  # copied, not restarted
    _add_rows(writer, 100)
    before = _wal_frames(writer)
    assert db.checkpoint_once(checkpointer, lock) >= 50  # long: restarted
    writer.execute("INSERT INTO t (v) VALUES ('after')")
    assert _wal_frames(writer) < 10 < before  # the next commit wrote from the WAL's start
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (111,)


def test_a_restart_syncs_the_copied_pages_before_it_takes_the_write_lock(one_round, monkeypatch):
    # SQLite would fsync them inside the RESTART, while every writer waits on the lock.
    path, writer, checkpointer, lock = one_round
    probe = os.open(f"{path}.write-lock", os.O_RDWR)
    synced = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd):
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while the lock is held
            fcntl.flock(probe, fcntl.LOCK_UN)
        except BlockingIOError:
            pytest.fail("fdatasync under the write lock")
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fdatasync(fd)

    opened = []
    real_open = os.open

    def open_(name, *args, **kwargs):
        opened.append(os.path.basename(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "open", open_)
    try:
        _add_rows(writer, 10)
        db.checkpoint_once(checkpointer, lock)
        assert synced == []  # a short WAL: copied only, SQLite syncs as it sees fit
        _add_rows(writer, 100)
        assert db.checkpoint_once(checkpointer, lock) >= 50
        assert synced == ["db.sqlite3-wal", "db.sqlite3"]
        # ... through SQLite's own descriptors: closing one of its own would drop every POSIX
        # lock this process holds on the file, SQLite's included (a corrupted database).
        assert not {"db.sqlite3", "db.sqlite3-wal"} & set(opened)
        writer.execute("INSERT INTO t (v) VALUES ('after')")
        assert _wal_frames(writer) < 10  # and the WAL was restarted all the same
    finally:
        os.close(probe)


def test_the_wal_stays_bounded_while_writers_leave_checkpoints_to_the_thread(tmp_path, fast_checkpoints):
    path = tmp_path / "db.sqlite3"
    writer = _wal_database(str(path))
    thread = db.Checkpointer(str(path))
    thread.start()
    try:
        longest = 0
        for n in range(600):  # ~3 frames each: 1,800 frames in all, 36 times the restart length
            writer.execute("INSERT INTO t (v) VALUES (?)", ("x" * 3000,))
            if n % 50 == 49:
                time.sleep(0.05)  # a few of the thread's rounds
                longest = max(longest, _wal_frames(writer))
        assert longest < 400
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (600,)
    finally:
        thread.stop()
        writer.close()
    assert not thread.is_alive()


def test_the_thread_never_creates_a_missing_file_and_keeps_trying(tmp_path, fast_checkpoints, caplog):
    path = tmp_path / "not-yet.sqlite3"
    thread = db.Checkpointer(str(path))
    thread.start()
    try:
        time.sleep(0.1)  # ~10 rounds
        assert not path.exists()
        failures = [r for r in caplog.records if "background checkpoint" in r.getMessage()]
        assert len(failures) == 1  # logged once per outage, not once a round
        writer = _wal_database(str(path))  # the file appears (migrate): the thread takes it up
        _add_rows(writer, 200)
        deadline = time.monotonic() + 5
        while _wal_frames(writer) >= 50 and time.monotonic() < deadline:
            writer.execute("INSERT INTO t (v) VALUES ('tick')")
            time.sleep(0.02)
        assert _wal_frames(writer) < 50
        writer.close()
    finally:
        thread.stop()
    assert not thread.is_alive()
