"""API-token authentication: knox tokens (SHA-512 digests at rest, expiring), sent as
`Authorization: Token <key>`."""

from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from rest_framework import exceptions

MAX_KEY_LENGTH = 128


class ApiTokenAuthentication(TokenAuthentication):
    """Knox's TokenAuthentication, answering 401 (never a 500) for a key that could not be
    one of ours: not printable ASCII (a NUL byte would crash PostgreSQL's query) or too long."""

    def authenticate_credentials(self, token: bytes):
        text = token.decode("latin-1")
        if len(text) > MAX_KEY_LENGTH or not (text.isascii() and text.isprintable()):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)


class ApiTokenScheme(KnoxTokenScheme):
    """OpenAPI: document ApiTokenAuthentication as knox's `Authorization: Token <key>`."""

    target_class = ApiTokenAuthentication
