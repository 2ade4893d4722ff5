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

from collections.abc import Callable, Sequence
from datetime import UTC

from django.db import connection, models


def placeholders(sql: str) -> str:
    """`sql` written with %s, in the connection's own parameter style."""
    return sql.replace("%s", "?") if connection.vendor == "sqlite" else sql


def fetch_one(sql: str, native_sql: str, params: Sequence) -> tuple | None:
    """Run one statement (`sql` with %s; `native_sql`, the same in the driver's own style) and
    return its first row."""
    if connection.queries_logged or connection.execute_wrappers:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection.connection.execute(native_sql, params).fetchone()


def _naive_utc_text(value):
    # Django's SQLite backend stores aware datetimes as naive UTC text.
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return None if value is None else str(value)


def adapter(field: models.Field) -> Callable:
    """How the connection's backend adapts a Python value of `field` for a query."""
    if isinstance(field, models.DateTimeField):
        return _naive_utc_text if connection.vendor == "sqlite" else (lambda value: value)
    if isinstance(field, models.GenericIPAddressField):
        return connection.ops.adapt_ipaddressfield_value
    return lambda value: value
