"""API-token authentication in one query: the token, its user and that user's uid for a slot.

API tokens are knox's (SHA-512 digests at rest, expiring; opened by POST /api/v1/auth/token/),
sent as `Authorization: Token <key>`. Knox's own authentication runs two queries and, on every
request, walks all of the user's tokens to delete expired ones; here the digest (the primary
key) is looked up together with the user and the uid, in one statement, so a revoked token,
a deactivated user and a deleted user stop working on the very next request in every process,
with no cache to go stale. Expired tokens are deleted by `manage.py purge_expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.crypto import hash_token
from knox.models import AuthToken
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from tokens import db
from tokens.exceptions import DATABASE_OUTAGES
from tokens.models import MAIN_SLOT, AgoraIdentity

MAX_KEY_LENGTH = 128
SCHEME = "Token"


@dataclass(frozen=True)
class ApiCaller:
    """Who an API token belongs to, and their uid for the slot asked about (None until drawn)."""

    user: object
    uid: int | None
    digest: str
    token_key: str
    expiry: object

    @property
    def api_token(self) -> AuthToken:
        """The API token itself (knox's model), e.g. to revoke it; built without a query."""
        token = AuthToken.from_db(
            db.default().alias, ["digest", "token_key", "user_id", "expiry"],
            [self.digest, self.token_key, self.user.pk, self.expiry],
        )  # fmt: skip
        token.user = self.user
        return token


def key_from_header(value: str | bytes | None) -> str | None:
    """The key in `Authorization: Token <key>`, or None when the header is absent, another
    scheme, malformed, or a key that could not be ours (DRF's view then says which)."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    parts = value.split()
    if len(parts) != 2 or parts[0].lower() != SCHEME.lower():
        return None
    key = parts[1]
    if len(key) > MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        return None
    return key


# What authentication and the token policies read of a user; other fields load if asked for.
_USER_FIELDS = ("is_active", "is_superuser", "is_staff")


@lru_cache(maxsize=4)
def _lookup_sql(vendor: str) -> tuple[str, str, tuple[str, ...]]:
    """The one statement, built once per database vendor from the models' own metadata: (SQL
    with %s, the same in the driver's style, the user fields it reads)."""
    quote = db.default().ops.quote_name
    user_model = get_user_model()
    meta = user_model._meta
    wanted = {meta.pk.attname, user_model.USERNAME_FIELD, *_USER_FIELDS}
    user_fields = tuple(f.attname for f in meta.concrete_fields if f.attname in wanted)
    columns = ", ".join(f"u.{quote(meta.get_field(name).column)}" for name in user_fields)
    token, user, identity = (quote(m._meta.db_table) for m in (AuthToken, user_model, AgoraIdentity))
    sql = (
        f"SELECT t.token_key, t.expiry, {columns}, i.uid "  # noqa: S608
        f"FROM {token} t JOIN {user} u ON u.{quote(meta.pk.column)} = t.user_id "
        f"LEFT JOIN {identity} i ON i.user_id = t.user_id AND i.slot = %s "
        "WHERE t.digest = %s"
    )
    return sql, db.placeholders(sql), user_fields


def _aware(moment):
    if moment is None or isinstance(moment, str):
        from django.utils.dateparse import parse_datetime

        moment = parse_datetime(moment) if moment else None
    if moment is not None and timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    return moment


def _run_lookup(sql: str, native_sql: str, params: list) -> tuple | None:
    # The first query of a request meets a persistent connection the server may have closed
    # (restart, failover, idle timeout): a read is safe to retry once on a fresh connection.
    # Django's per-request health check (an extra round trip) is skipped for this path.
    conn = db.default()
    conn.health_check_done = True
    try:
        return db.fetch_one(sql, native_sql, params)
    except DATABASE_OUTAGES:
        if conn.in_atomic_block:
            raise
        conn.close()
    return db.fetch_one(sql, native_sql, params)


def find_api_caller(key: str, *, slot: str = MAIN_SLOT, now=None) -> ApiCaller | None:
    """The owner of API token `key` and their uid for `slot` (None until drawn), in one query;
    None when the key is unknown or expired. The caller checks `user.is_active`."""
    conn = db.default()
    sql, native_sql, user_fields = _lookup_sql(conn.vendor)
    digest = hash_token(key)
    row = _run_lookup(sql, native_sql, [slot, digest])
    if row is None:
        return None
    token_key, expiry, *user_values, uid = row
    expiry = _aware(expiry)
    if expiry is not None and expiry <= (now or timezone.now()):
        return None
    user = get_user_model().from_db(conn.alias, user_fields, user_values)
    return ApiCaller(user=user, uid=uid, digest=digest, token_key=token_key, expiry=expiry)


class ApiTokenAuthentication(BaseAuthentication):
    """DRF authentication for `Authorization: Token <key>`: 401 for a malformed header, an
    unknown, revoked or expired key, or an inactive user (knox's messages), never a 500."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != SCHEME.lower().encode():
            return None
        if len(header) == 1:
            raise exceptions.AuthenticationFailed("Invalid token header. No credentials provided.")
        if len(header) > 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header. Token string should not contain spaces."
            )
        key = key_from_header(b" ".join(header))
        caller = find_api_caller(key) if key else None
        if caller is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not caller.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return caller.user, caller.api_token

    def authenticate_header(self, request):
        return SCHEME


class ApiTokenScheme(KnoxTokenScheme):
    """OpenAPI: document ApiTokenAuthentication as knox's `Authorization: Token <key>`."""

    target_class = ApiTokenAuthentication
