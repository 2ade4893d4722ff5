"""The one error shape: {"error": {"code": ..., "message": ..., "fields": {...}}}.

Services raise TokenServiceError (never DRF exceptions) so the admin and management commands
can call them too; the API exception handler turns it, and every DRF error, into that shape.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence

from django.core.exceptions import BadRequest, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class TokenServiceError(Exception):
    """A domain error with a stable machine code, an HTTP status and optional field errors."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        fields: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = {name: list(errors) for name, errors in (fields or {}).items()}
        self.headers = dict(headers or {})
        if status == 401:
            self.headers.setdefault("WWW-Authenticate", "Token")  # RFC 9110: a 401 names its scheme

    @classmethod
    def from_validation_error(cls, field: str, exc: DjangoValidationError) -> TokenServiceError:
        """Turn a validator's Django ValidationError on one field into the domain error."""
        messages = list(exc.messages)
        return cls("invalid", f"{field}: {messages[0]}", fields={field: messages})


def _printable(text: str) -> str:
    # Messages may echo client input; a lone surrogate from JSON would make the response
    # unencodable (a 500), so it is shown escaped instead.
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(code: str, message: str, fields: Mapping[str, Sequence[str]] | None = None) -> dict:
    """The JSON body every error response carries."""
    return {
        "error": {
            "code": code,
            "message": _printable(message),
            "fields": {
                _printable(name): [_printable(e) for e in errors] for name, errors in (fields or {}).items()
            },
        }
    }


def _flatten(detail: object) -> list[str]:
    if isinstance(detail, dict):
        return [f"{key}: {msg}" for key, value in detail.items() for msg in _flatten(value)]
    if isinstance(detail, list):
        return [msg for item in detail for msg in _flatten(item)]
    return [str(detail)]


def _field_errors(detail: object) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {str(name): _flatten(value) for name, value in detail.items()}
    return {"body": _flatten(detail)}


_TOO_LARGE = ("too_large", "body: the request body is too large.", {"body": ["Too large."]})

# The database is unreachable or dropped the connection: a 503 the client may retry, not a bug.
DATABASE_OUTAGES = (OperationalError, InterfaceError)


def database_unavailable() -> TokenServiceError:
    """The error every endpoint answers while the database cannot be reached."""
    return TokenServiceError(
        "database_unavailable", "The database is unavailable; try again shortly.", status=503
    )


def authentication_failed(message: str) -> TokenServiceError:
    """The 401 of an API key that is unknown, expired or revoked ("Invalid token.") or whose
    user is inactive ("User inactive or deleted."): knox's messages, DRF's code."""
    return TokenServiceError("authentication_failed", message, status=401)


def throttled(wait: int) -> TokenServiceError:
    """The 429 every request over its budget gets, with Retry-After (DRF's message)."""
    unit = "second" if wait == 1 else "seconds"
    return TokenServiceError(
        "throttled",
        f"Request was throttled. Expected available in {wait} {unit}.",
        status=429,
        headers={"Retry-After": str(wait)},
    )


_CODES = {
    drf.ValidationError: "invalid",
    drf.ParseError: "parse_error",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every handled error in the one shape; None lets a bug be a 500."""
    if isinstance(exc, DATABASE_OUTAGES):
        logger.warning("database unavailable: %s", type(exc).__name__)
        exc = database_unavailable()
    if isinstance(exc, TokenServiceError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status, headers=exc.headers)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body(*_TOO_LARGE), status=413)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    # Imported here: rest_framework.views loads the authentication classes, which import this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, drf.ValidationError):
        fields = _field_errors(exc.detail)
        message = "; ".join(f"{name}: {errors[0]}" for name, errors in fields.items())
    elif isinstance(exc, drf.ParseError):
        fields = {"body": [str(exc.detail)]}
        message = f"body: {exc.detail}"
    else:
        fields = {}
        message = str(exc.detail) if isinstance(exc, drf.APIException) else str(exc)
    response.data = error_body(code, message, fields)
    return response


# --- Django-level handlers, for requests that never reach a DRF view ------------------------


def json_error(status: int, code: str, message: str, fields: Mapping | None = None) -> JsonResponse:
    """An error response in the one shape, for code outside DRF views (with its length: the
    guards answer above CommonMiddleware, which would otherwise add it)."""
    response = JsonResponse(error_body(code, message, fields), status=status)
    response["Content-Length"] = str(len(response.content))
    return response


def service_error_response(exc: TokenServiceError) -> JsonResponse:
    """A TokenServiceError as a plain Django response (outside DRF views)."""
    response = json_error(exc.status, exc.code, exc.message, exc.fields)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return json_error(413, *_TOO_LARGE)
    if isinstance(exception, BadRequest) and exception.args:
        # Raised by our own code with a message meant for the client.
        return json_error(400, "bad_request", str(exception))
    return json_error(400, "bad_request", "The request could not be understood.")


def permission_denied(request, exception=None):
    return json_error(403, "permission_denied", "You do not have permission to do this.")


def csrf_failure(request, reason=""):
    return json_error(403, "csrf_failed", "CSRF check failed; API clients send `Authorization: Token <key>`.")


def page_not_found(request, exception=None):
    return json_error(404, "not_found", f"No endpoint at {request.path!r}.")


def method_not_allowed(method: str) -> JsonResponse:
    return json_error(405, "method_not_allowed", f'Method "{method}" not allowed.')


def server_error(request):
    # Django calls this inside its `except`, so the exception is at hand.
    if isinstance(sys.exc_info()[1], DATABASE_OUTAGES):
        return service_error_response(database_unavailable())
    return json_error(500, "server_error", "Internal error; it has been logged.")
