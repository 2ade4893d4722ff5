"""The join path's SQL, in one place: built once per database vendor from the models' metadata
(identifiers only; every value is a parameter), run through the connection's `fetch_all`
(tokenserver/databases/: prepared on PostgreSQL, under the writers' lock on SQLite).

- `find_caller`: an API key's owner and every uid they have, one row per slot.
- `record`: the audit row, written only while its caller still holds: an INSERT ... SELECT that
  re-reads the API key (or the user) in the same statement, so a revoked key, a deactivated or
  deleted user inserts nothing, nor, for a channel's token, a user banned from that channel
  (a mute: a publisher token); on PostgreSQL the same statement also counts the user's token
  budget (`charge`), so a warm request is one round trip.
- `charge`: the budget alone (PostgreSQL), for a request that ends without a token.
- `count`: the windowed counter's atomic upsert (login attempts, the budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache, partial

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.utils import load_backend
from knox.models import AuthToken

from tokens import agora
from tokens.choices import BanPrivilege, rights_of
from tokens.models import AgoraIdentity, ChannelBan, Counter, IssuedToken

ALIAS = DEFAULT_DB_ALIAS  # the database the join path's statements run on


def connection():
    """The `ALIAS` database connection of this thread (one lookup; `django.db.connection` is a
    proxy that looks it up again on every attribute)."""
    return connections[ALIAS]


def budget_in_statement() -> bool:
    """Whether the token budget is counted inside the audit row's statement (PostgreSQL: one
    round trip for both) rather than in the cache beforehand (SQLite, whose writers take turns,
    so a second write per request would cost every worker)."""
    return _vendor(connections.settings[ALIAS]["ENGINE"]) == "postgresql"


@lru_cache(maxsize=4)
def _vendor(engine: str) -> str:
    # The backend's vendor, without looking up the thread's connection (an asgiref Local).
    return load_backend(engine).DatabaseWrapper.vendor


def _quote(name: str) -> str:
    return connection().ops.quote_name(name)


def _table(model) -> str:
    return _quote(model._meta.db_table)


def _column(model, name: str) -> str:
    return _quote(model._meta.get_field(name).column)


# --- the caller ---------------------------------------------------------------------------

# What authentication and the token policies read of a user; other fields load if asked for.
USER_FIELDS = ("is_active", "is_superuser", "is_staff")


@dataclass(frozen=True)
class _CallerSql:
    sql: str
    user_fields: tuple[str, ...]  # attnames, in the order the row holds them


@lru_cache(maxsize=4)
def _caller_sql(vendor: str) -> _CallerSql:
    user_model = get_user_model()
    meta = user_model._meta
    wanted = {meta.pk.attname, user_model.USERNAME_FIELD, *USER_FIELDS}
    user_fields = tuple(f.attname for f in meta.concrete_fields if f.attname in wanted)
    columns = ", ".join(f"u.{_quote(meta.get_field(name).column)}" for name in user_fields)
    token, user, identity = _table(AuthToken), _table(user_model), _table(AgoraIdentity)
    sql = (
        f"SELECT t.token_key, {columns}, i.slot, i.uid "  # noqa: S608
        f"FROM {token} t JOIN {user} u ON u.{_quote(meta.pk.column)} = t.user_id "
        f"LEFT JOIN {identity} i ON i.user_id = t.user_id "
        "WHERE t.digest = %s AND (t.expiry IS NULL OR t.expiry > %s)"
    )
    return _CallerSql(sql, user_fields)


def caller_user_fields() -> tuple[str, ...]:
    """The user's fields `find_caller` reads (attnames)."""
    return _caller_sql(connection().vendor).user_fields


@dataclass(frozen=True)
class CallerRow:
    """An API key's owner as the database has them now."""

    token_key: str
    user_fields: dict  # attname -> value (USER_FIELDS, the pk and the username)
    uids: dict[str, int]  # slot -> uid, every slot drawn so far


def find_caller(digest: str, *, now: datetime) -> CallerRow | None:
    """The owner of the API key with this digest and their uids, in one query; None when the
    key is unknown or expired. The caller checks `is_active`."""
    conn = connection()
    statement = _caller_sql(conn.vendor)
    rows = conn.fetch_all(statement.sql, [digest, conn.ops.adapt_datetimefield_value(now)])
    if not rows:
        return None
    first = rows[0]
    width = len(statement.user_fields)
    user_fields = dict(zip(statement.user_fields, first[1 : 1 + width], strict=True))
    uids = {slot: uid for *_, slot, uid in rows if slot is not None}
    return CallerRow(token_key=first[0], user_fields=user_fields, uids=uids)


# --- the windowed counter -----------------------------------------------------------------


@lru_cache(maxsize=4)
def _upsert_sql(vendor: str) -> str:
    """INSERT ... ON CONFLICT DO UPDATE of one counter: a new window once the old one has ended.
    Parameters: key, resets_at of a new window, now, now."""
    table, key, count, resets = (
        _table(Counter), _column(Counter, "key"), _column(Counter, "count"), _column(Counter, "resets_at"),
    )  # fmt: skip
    return (
        f"INSERT INTO {table} ({key}, {count}, {resets}) VALUES (%s, 1, %s) "  # noqa: S608
        f"ON CONFLICT ({key}) DO UPDATE SET "
        f"{count} = CASE WHEN {table}.{resets} <= %s THEN 1 ELSE {table}.{count} + 1 END, "
        f"{resets} = CASE WHEN {table}.{resets} <= %s THEN excluded.{resets} ELSE {table}.{resets} END "
        f"RETURNING {count}, {resets}"
    )


def _aware(value, conn) -> datetime:
    """A datetime column as `conn`'s database returned it, made what Django's ORM would make it."""
    convert = getattr(conn.ops, "convert_datetimefield_value", None)  # SQLite's; psycopg's are aware
    return value if convert is None else convert(value, None, conn)


@dataclass(frozen=True)
class Window:
    """A budget: at most `limit` per `seconds`, counted under `key`."""

    key: str
    limit: int
    seconds: int


def count(key: str, *, now: datetime, seconds: int) -> tuple[int, datetime]:
    """One atomic upsert (SQLite and PostgreSQL alike): add one to `key`'s window (a new window
    of `seconds` once the old one has ended) and return the count in it and when it ends."""
    conn = connection()
    adapt = conn.ops.adapt_datetimefield_value
    now_db = adapt(now)
    params = [key, adapt(now + timedelta(seconds=seconds)), now_db, now_db]
    ((counted, resets_at),) = conn.fetch_all(_upsert_sql(conn.vendor), params, write=True)
    return counted, _aware(resets_at, conn)


# --- the audit row ------------------------------------------------------------------------

# Filled from the caller's own row in the statement itself, not from parameters.
_FROM_CALLER = ("user_id", "username")
# Never written at issue (NULL until a revocation updates them).
_NOT_AT_ISSUE = ("revoked_at", "revoked_by_id")


@dataclass(frozen=True)
class _RecordSql:
    sql: str
    fields: tuple[models.Field, ...]  # the audit columns given as parameters, in order

    @cached_property
    def adapters(self) -> tuple[tuple[str, str | None], ...]:
        """(attname, the backend operation that adapts its value, if any) per parameter."""
        return tuple((field.attname, _adapter(field)) for field in self.fields)


def _caller_source(by_key: bool) -> tuple[str, tuple[str, str, str]]:
    """(FROM ... WHERE ..., (user id, username, is_active)) of the caller: the API key's owner
    (parameters: digest, now) or a user by id (parameter: user id)."""
    user_model = get_user_model()
    meta = user_model._meta
    pk = f"u.{_quote(meta.pk.column)}"
    select = (
        pk,
        f"u.{_column(user_model, user_model.USERNAME_FIELD)}",
        f"u.{_column(user_model, 'is_active')}",
    )
    if by_key:
        source = (
            f"FROM {_table(AuthToken)} t JOIN {_table(user_model)} u ON {pk} = t.user_id "
            "WHERE t.digest = %s AND (t.expiry IS NULL OR t.expiry > %s)"
        )
    else:
        source = f"FROM {_table(user_model)} u WHERE {pk} = %s"
    return source, select


def _ban_probe(user_id: str) -> str:
    """EXISTS an active ban of `user_id` (an SQL expression) that refuses this token: one probe
    of ChannelBan's (user, channel, ends_at) index. Parameters: channel, now, the join
    privilege, then each publish privilege a mute takes with whether the token carries it (a
    mute refuses only a token that would publish what it mutes)."""
    column = partial(_column, ChannelBan)
    return (
        f"EXISTS (SELECT 1 FROM {_table(ChannelBan)} b WHERE b.{column('user')} = {user_id} "  # noqa: S608
        f"AND b.{column('channel')} = %s AND b.{column('ends_at')} > %s "
        f"AND (b.{column('privilege')} = %s OR (b.{column('privilege')} = %s AND %s) "
        f"OR (b.{column('privilege')} = %s AND %s)))"
    )


def _audit_columns() -> tuple[list[models.Field], str, list[str]]:
    fields = [
        f for f in IssuedToken._meta.concrete_fields if not f.primary_key and f.attname not in _NOT_AT_ISSUE
    ]
    columns = ", ".join(_quote(f.column) for f in fields)
    given = [f for f in fields if f.attname not in _FROM_CALLER]
    return fields, columns, given


@lru_cache(maxsize=16)
def _record_sql(vendor: str, by_key: bool, charged: bool, banning: bool) -> _RecordSql:
    """The guarded audit INSERT. Without `charged`: INSERT ... SELECT <values>, <caller's id and
    username> FROM <caller> WHERE active [AND NOT EXISTS <a ban>] RETURNING id, username (both
    vendors). With `charged` (PostgreSQL): one statement of three parts, the caller (and whether
    a ban refuses them), the budget's upsert for an active caller, and the INSERT only within
    the budget and without a ban, answering what each part found. `banning`: a channel's token,
    which a ban of the caller in that channel refuses."""
    fields, columns, given = _audit_columns()
    source, select = _caller_source(by_key)

    def values(user_id: str, username: str) -> str:
        named = {"user_id": user_id, "username": username}
        return ", ".join(named.get(f.attname, "%s") for f in fields)

    audit = _table(IssuedToken)
    user_id, username, active = select
    if not charged:
        unbanned = f" AND NOT {_ban_probe(user_id)}" if banning else ""
        sql = (
            f"INSERT INTO {audit} ({columns}) SELECT {values(user_id, username)} "
            f"{source} AND {active}{unbanned} RETURNING id, {_column(IssuedToken, 'username')}"
        )
        return _RecordSql(sql, tuple(given))
    upsert = _upsert_sql(vendor)
    into, rest = upsert.split(" VALUES (%s, 1, %s) ", 1)
    banned = _ban_probe(user_id) if banning else "FALSE"
    sql = (
        f"WITH caller (user_id, username, is_active, banned) AS (SELECT {', '.join(select)}, {banned} "  # noqa: S608
        f"{source}), "
        f"charged AS ({into} SELECT %s, 1, %s FROM caller WHERE caller.is_active {rest}), "
        f"recorded AS (INSERT INTO {audit} ({columns}) SELECT {values('caller.user_id', 'caller.username')} "
        f"FROM caller, charged WHERE charged.{_column(Counter, 'count')} <= %s AND NOT caller.banned "
        "RETURNING id) "
        f"SELECT caller.username, caller.is_active, caller.banned, {_charged_columns()}, recorded.id "
        "FROM caller LEFT JOIN charged ON TRUE LEFT JOIN recorded ON TRUE"
    )
    return _RecordSql(sql, tuple(given))


def _charged_columns() -> str:
    """The budget's count and its window's end, as seconds since the epoch: a float8 is loaded
    by psycopg's C loader, a timestamptz by Django's Python one (9 µs a request, bench/RESULTS.md)."""
    count, resets = _column(Counter, "count"), _column(Counter, "resets_at")
    return f"charged.{count}, EXTRACT(EPOCH FROM charged.{resets})::float8"


@lru_cache(maxsize=4)
def _charge_sql(vendor: str, by_key: bool) -> str:
    """The caller and the budget's upsert, without an audit row (PostgreSQL)."""
    source, select = _caller_source(by_key)
    into, rest = _upsert_sql(vendor).split(" VALUES (%s, 1, %s) ", 1)
    return (
        f"WITH caller (user_id, username, is_active) AS (SELECT {', '.join(select)} {source}), "  # noqa: S608
        f"charged AS ({into} SELECT %s, 1, %s FROM caller WHERE caller.is_active {rest}) "
        f"SELECT caller.username, caller.is_active, FALSE, {_charged_columns()} "
        "FROM caller LEFT JOIN charged ON TRUE"
    )


@dataclass(frozen=True)
class Outcome:
    """What the caller-guarded statement found: the caller (`found`, `active`, their username
    now, `banned` from the channel when the statement could tell), the budget's count and window
    end when it was counted, and the audit row's id when one was written."""

    found: bool
    active: bool = False
    banned: bool = False
    username: str = ""
    counted: int | None = None
    resets_at: datetime | None = None
    record_id: int | None = None


def _caller_params(conn, *, digest: str | None, user_id: int | None, now_db) -> list:
    return [digest, now_db] if digest is not None else [user_id]


def _window_params(conn, window: Window, *, now: datetime, now_db) -> list:
    return [
        window.key,
        conn.ops.adapt_datetimefield_value(now + timedelta(seconds=window.seconds)),
        now_db,
        now_db,
    ]


def _ban_params(values: dict, now_db) -> list:
    rights = rights_of(values["publish_rights"])
    return [
        values["channel"], now_db, BanPrivilege.JOIN_CHANNEL.value,
        BanPrivilege.PUBLISH_AUDIO.value, agora.PUBLISH_AUDIO in rights,
        BanPrivilege.PUBLISH_VIDEO.value, agora.PUBLISH_VIDEO in rights,
    ]  # fmt: skip


def _adapter(field: models.Field) -> str | None:
    """The backend operation that adapts a value of `field` for a query, if any."""
    if isinstance(field, models.DateTimeField):
        return "adapt_datetimefield_value"
    if isinstance(field, models.GenericIPAddressField):
        return "adapt_ipaddressfield_value"
    return None


def _values(conn, statement: _RecordSql, values: dict) -> list:
    ops = conn.ops
    return [
        values[name] if adapter is None else getattr(ops, adapter)(values[name])
        for name, adapter in statement.adapters
    ]


def record(
    values: dict, *, digest: str | None = None, user_id: int | None = None, window: Window | None = None,
    now: datetime,
) -> Outcome:  # fmt: skip
    """Write the audit row `values` (every column but the caller's id and username, which the
    statement takes from the caller's row) for the API key with `digest`, or for `user_id`,
    only while that key is valid and its user active, and, with a `window` (PostgreSQL only),
    within the user's budget, which the same statement counts, and for a channel's token (a
    `channel` among the values) only while no ban of the user refuses it (ChannelBan: a ban in
    that channel, or for a publisher token a mute). One statement, autocommitted: the row is
    committed before this returns."""
    conn = connection()
    by_key = digest is not None
    banning = bool(values["channel"])
    statement = _record_sql(conn.vendor, by_key, window is not None, banning)
    now_db = conn.ops.adapt_datetimefield_value(now)
    caller = _caller_params(conn, digest=digest, user_id=user_id, now_db=now_db)
    ban = _ban_params(values, now_db) if banning else []
    audit = _values(conn, statement, values)
    if window is None:
        rows = conn.fetch_all(statement.sql, [*audit, *caller, *ban], write=True)
        if not rows:
            return Outcome(found=False)
        ((record_id, username),) = rows
        return Outcome(found=True, active=True, username=username, record_id=record_id)
    params = [*ban, *caller, *_window_params(conn, window, now=now, now_db=now_db), *audit, window.limit]
    rows = conn.fetch_all(statement.sql, params, write=True)
    return _outcome(rows)


def charge(
    *, window: Window, digest: str | None = None, user_id: int | None = None, now: datetime
) -> Outcome:
    """Count one request against the caller's budget, re-reading the caller (PostgreSQL)."""
    conn = connection()
    now_db = conn.ops.adapt_datetimefield_value(now)
    params = [
        *_caller_params(conn, digest=digest, user_id=user_id, now_db=now_db),
        *_window_params(conn, window, now=now, now_db=now_db),
    ]
    return _outcome(conn.fetch_all(_charge_sql(conn.vendor, digest is not None), params, write=True))


def _outcome(rows: list[tuple]) -> Outcome:
    if not rows:
        return Outcome(found=False)
    username, active, banned, counted, resets_at, *recorded = rows[0]
    return Outcome(
        found=True, active=bool(active), banned=bool(banned), username=username, counted=counted,
        resets_at=None if resets_at is None else datetime.fromtimestamp(resets_at, UTC),
        record_id=(recorded or [None])[0],
    )  # fmt: skip
