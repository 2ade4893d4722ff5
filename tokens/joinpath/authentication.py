"""API-token authentication: the key, its user and every uid they have, in one query.

API tokens are knox's (SHA-512 digests at rest, expiring; opened by POST /api/v1/auth/token/),
sent as `Authorization: Token <key>`. Knox's own authentication runs two queries and, on every
request, walks all of the user's tokens to delete expired ones; here the digest (the primary
key) is looked up together with the user and their uids in one statement (knox's header
parsing and messages kept, `authenticate_credentials` replaced, as knox invites). Expired
tokens are deleted by `manage.py purge_expired`.

Two classes:
- `ApiTokenAuthentication`, every API view's: the statement on every request, so a revoked
  key, a deactivated or deleted user stop on the very next request in every process.
- `JoinAuthentication`, the token endpoints': where the token's audit row re-reads the key and
  the user as it is written (tokens/joinpath/statements.py, PostgreSQL) and the policies need
  nothing of the user, a key already read in this process is not read again: a key's user and
  a user's uids never change, and the audit row's statement is what decides. A revoked key
  then writes nothing and gets the same 401, and any answer but a token re-reads the key first
  (the view's `handle_exception`). So a warm token request is that one statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models.base import ModelState
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS
from rest_framework import exceptions

from tokens.exceptions import DATABASE_OUTAGES
from tokens.joinpath import statements

MAX_KEY_LENGTH = 128
INVALID = "Invalid token."
INACTIVE = "User inactive or deleted."
CACHED_CALLERS_MAX = 10_000  # per process; past it the cache starts again


@dataclass(frozen=True)
class ApiCaller:
    """Who an API token belongs to and their uids (slot -> uid, drawn so far); `fresh`: read
    from the database by this request."""

    user: AbstractBaseUser
    digest: str
    token_key: str
    uids: Mapping[str, int]
    fresh: bool

    @property
    def api_token(self) -> AuthToken:
        """The API token itself (knox's model), e.g. to revoke it; built without a query."""
        token = AuthToken.from_db(
            statements.ALIAS, ["digest", "token_key", "user_id"], [self.digest, self.token_key, self.user.pk]
        )
        token.user = self.user
        return token


def valid_key(token: bytes) -> str | None:
    """The key as text, or None when it could not be one of ours (too long, not printable)."""
    key = token.decode("latin-1")
    if len(key) > MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        return None
    return key


def _find(digest: str, now: datetime) -> statements.CallerRow | None:
    # The first query of a request meets a persistent connection the server may have closed
    # (restart, failover, idle timeout): a read is safe to retry once on a fresh connection.
    conn = statements.connection()
    try:
        return statements.find_caller(digest, now=now)
    except DATABASE_OUTAGES:
        if conn.in_atomic_block:
            raise
        conn.close()
    return statements.find_caller(digest, now=now)


def _user(fields: Mapping[str, object]) -> AbstractBaseUser:
    """A user instance with these loaded fields (the rest load when read, as deferred fields
    do), new on every request since Django caches permissions on it: what `Model.from_db`
    makes, without running Model.__init__ over every field and its signals."""
    model = get_user_model()
    user = model.__new__(model)
    user.__dict__.update(fields)
    user._state = ModelState()
    user._state.adding, user._state.db = False, statements.ALIAS
    return user


def find_api_caller(key: str, *, now: datetime | None = None) -> ApiCaller | None:
    """The owner of API token `key` and their uids, in one query; None when the key is unknown
    or expired. The caller checks `user.is_active`."""
    digest = hash_token(key)
    row = _find(digest, now or timezone.now())
    if row is None:
        return None
    return ApiCaller(
        user=_user(row.user_fields), digest=digest, token_key=row.token_key, uids=row.uids, fresh=True
    )


class _Authorization:
    """What knox's header parsing reads of a request: its Authorization header. DRF's
    `get_authorization_header` reads `request.headers`, which first rebuilds the name of every
    header the request carries; this reads the one from the WSGI environment."""

    __slots__ = ("headers",)

    def __init__(self, meta: Mapping[str, object]) -> None:
        self.headers = {"authorization": meta.get("HTTP_AUTHORIZATION", b"")}


class ApiTokenAuthentication(TokenAuthentication):
    """DRF authentication for `Authorization: Token <key>`: 401 for a malformed header, an
    unknown, revoked or expired key, or an inactive user (knox's messages), never a 500.
    `request.auth` is the ApiCaller."""

    def authenticate(self, request):
        return super().authenticate(_Authorization(request.META))  # knox's parsing and messages

    def authenticate_credentials(self, token: bytes):
        key = valid_key(token)
        caller = self.find(key) if key else None
        if caller is None:
            raise exceptions.AuthenticationFailed(INVALID)
        if not caller.user.is_active:
            raise exceptions.AuthenticationFailed(INACTIVE)
        return caller.user, caller

    def find(self, key: str) -> ApiCaller | None:
        return find_api_caller(key)


# digest -> (the user's fields, their uids) as last read; only what never changes is relied on.
_callers: dict[str, tuple[dict, dict[str, int]]] = {}


def caching_allowed() -> bool:
    """A key may be taken from this process's memory when the policies decide nothing from the
    user's groups, permissions or name: the audit row's statement re-reads the key and the
    user's active state anyway."""
    return settings.AGORA_CHANNEL_POLICY == "open" and settings.AGORA_PUBLISHER_POLICY == "open"


def forget(digest: str) -> None:
    """The key was found revoked or its user inactive: read it again next time."""
    _callers.pop(digest, None)


def remember_uid(caller: ApiCaller, slot: str, uid: int) -> None:
    """A uid drawn for a slot after the key was cached."""
    cached = _callers.get(caller.digest)
    if cached is not None:
        cached[1][slot] = uid


class JoinAuthentication(ApiTokenAuthentication):
    """The token endpoints' authentication (see the module's docstring)."""

    def find(self, key: str) -> ApiCaller | None:
        if not caching_allowed():
            return super().find(key)
        digest = hash_token(key)
        cached = _callers.get(digest)
        if cached is not None:
            fields, uids = cached
            return ApiCaller(
                user=_user(fields),
                digest=digest,
                token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
                uids=uids,
                fresh=False,
            )
        caller = super().find(key)
        if caller is not None and caller.user.is_active:
            if len(_callers) >= CACHED_CALLERS_MAX:
                _callers.clear()
            fields = {name: getattr(caller.user, name) for name in statements.caller_user_fields()}
            _callers[digest] = (fields, dict(caller.uids))
        return caller


class ApiTokenScheme(KnoxTokenScheme):
    """OpenAPI: document ApiTokenAuthentication as knox's `Authorization: Token <key>`."""

    target_class = ApiTokenAuthentication
    match_subclasses = True
