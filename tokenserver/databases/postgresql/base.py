"""Django's PostgreSQL backend, with `fetch_one`: one statement, server-side prepared once per
(persistent) connection. Planning the join path's statement costs PostgreSQL more than
running it (bench/RESULTS.md); the connection's OPTIONS set psycopg's `prepare_threshold`
so that psycopg prepares nothing else on its own."""

from __future__ import annotations

import select
from collections.abc import Sequence

import psycopg
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    _fetch_cursor: psycopg.Cursor | None = None  # fetch_all's, for as long as its connection lasts

    def fetch_all(self, sql: str, params: Sequence, *, write: bool = False) -> list[tuple]:
        """Run one statement (`sql` with %s placeholders) and return its rows. When Django logs
        queries (DEBUG, CaptureQueriesContext) or an execute wrapper is installed, through
        Django's cursor, so every count and wrapper sees it; otherwise prepared on the server."""
        if self.connection is not None and not self.in_atomic_block and _dropped(self.connection):
            self.close()  # reconnected below (or by Django's cursor) before anything is sent
        if self.queries_logged or self.execute_wrappers:
            # As on the direct path below: no per-request health check (CONN_HEALTH_CHECKS'
            # SELECT 1, a round trip) but the poll above; a connection that fails during the
            # statement fails it, the request answers 503 and Django replaces the connection
            # when the request ends.
            self.health_check_done = True
            with self.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        if self.connection is None:
            self.ensure_connection()
        cursor = self._fetch_cursor
        if cursor is None or cursor.connection is not self.connection:
            cursor = self._fetch_cursor = psycopg.Cursor(self.connection)
        with self.wrap_database_errors:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall()


def _dropped(connection: psycopg.Connection) -> bool:
    """Whether the server has closed this idle connection (a restart, a failover, an idle
    timeout): its socket is readable, with the end of the stream or the server's last
    message, although no statement is running. A poll of the socket, not a round trip: the
    join path's stand-in for CONN_HEALTH_CHECKS' `SELECT 1`. Readable for any other reason
    (nothing else is sent to an idle session that LISTENs to nothing) costs one reconnect."""
    if connection.closed or connection.broken:
        return True
    try:
        readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(readable)
