"""Request guards that apply before any view (the admin's included), request metrics, the
messages only the admin uses, and the static files server."""

import os
from functools import partial
from time import perf_counter

from corsheaders.middleware import CorsMiddleware as _CorsMiddleware
from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.contrib.sessions.middleware import SessionMiddleware
from django.utils.cache import patch_vary_headers
from django.utils.functional import SimpleLazyObject, empty
from whitenoise.middleware import WhiteNoiseMiddleware

from tokens import metrics
from tokens.exceptions import json_error, method_not_allowed

# Methods whose requests never carry a body Django would read.
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _nul_in_query(query) -> bool:
    return any("\x00" in k or "\x00" in v for k, vs in query.lists() for v in vs)


class RequestGuardMiddleware:
    """Refuse, before any work, what no view here can handle safely:

    - a NUL byte in the path or query string (400): PostgreSQL cannot store or compare text
      with NUL, so a filter like the admin's `?username__exact=%00` would be a 500;
    - a body without a Content-Length (411): WSGI hands Django a chunked body as empty, so
      `Transfer-Encoding: chunked` would be taken for `{}` and answered with defaults;
    - a declared body over DATA_UPLOAD_MAX_MEMORY_SIZE (413), before a byte of it is parsed:
      every body this server takes (login, token requests, admin forms) is tiny.

    And a 405 from a view outside the API (the admin's) is answered in the error shape too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if "\x00" in request.path or (meta.get("QUERY_STRING") and _nul_in_query(request.GET)):
            return json_error(400, "invalid", "The URL contains a NUL byte.")
        if "HTTP_TRANSFER_ENCODING" in meta and request.method not in _BODYLESS:
            return json_error(
                411,
                "length_required",
                "body: send it with a Content-Length header; chunked transfer encoding is not accepted.",
                {"body": ["Content-Length required."]},
            )
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = meta.get("CONTENT_LENGTH")
        if limit is not None and length:
            try:
                too_large = int(length) > limit
            except ValueError:
                return json_error(400, "bad_request", "Content-Length is not a number.")
            if too_large:
                return json_error(
                    413,
                    "too_large",
                    f"body: the request body is too large (at most {limit} bytes).",
                    {"body": [f"At most {limit} bytes."]},
                )
        response = self.get_response(request)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            allow = response.get("Allow")
            response = method_not_allowed(request.method)
            if allow:
                response["Allow"] = allow
        return response


class RequestMetricsMiddleware:
    """Time every request, the mounted token endpoints' included, and count error responses by
    code, when METRICS_ENABLED (tokens.metrics). First in MIDDLEWARE, so the whole stack is
    timed; with metrics off it costs one settings read."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.METRICS_ENABLED:
            return self.get_response(request)
        started = perf_counter()
        response = self.get_response(request)
        metrics.observe_request(request, response, perf_counter() - started)
        return response


class CorsMiddleware(_CorsMiddleware):
    """django-cors-headers' middleware, looking for the Origin header in the WSGI environment
    first: its own check reads `request.headers`, which rebuilds the name of every header the
    request carries, and most callers (servers, apps; every client but a browser on another
    origin) send none. Without one, the answer is what django-cors-headers gives it (only
    `Vary: origin` on the CORS paths); with one, django-cors-headers decides, unchanged."""

    def add_response_headers(self, request, response):
        if "HTTP_ORIGIN" in request.META:
            return super().add_response_headers(request, response)
        enabled = getattr(request, "_cors_enabled", None)
        if enabled if enabled is not None else self.is_enabled(request):
            patch_vary_headers(response, ("origin",))
        return response


class LazySessionMiddleware(SessionMiddleware):
    """Django's sessions, with the request's session store made when something first reads it
    (a session login, the admin) instead of on every request. A session nobody read has
    nothing to save or delete, so its response is left as Django would leave it."""

    def process_request(self, request):
        request.session = SimpleLazyObject(partial(self._store, request))

    def _store(self, request):
        return self.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))

    def process_response(self, request, response):
        session = getattr(request, "session", None)
        unread = isinstance(session, SimpleLazyObject) and session._wrapped is empty
        if unread and not settings.SESSION_SAVE_EVERY_REQUEST:
            return response
        return super().process_response(request, response)


class LazyMessageMiddleware(MessageMiddleware):
    """Django's messages, with the request's message storage made when a view first uses it
    (the admin does; the API never does) instead of on every request: its cookie signer and
    session storage cost an API request more than its own budget counter."""

    def process_request(self, request):
        request._messages = SimpleLazyObject(partial(default_storage, request))

    def process_response(self, request, response):
        storage = getattr(request, "_messages", None)
        if isinstance(storage, SimpleLazyObject) and storage._wrapped is empty:
            return response  # never used: nothing to store
        return super().process_response(request, response)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, without its "No directory at" warning for a STATIC_ROOT that collectstatic
    has not filled. The warning is for setups that need collectstatic; this one serves the
    installed apps' files either way (WHITENOISE_USE_FINDERS), so a missing STATIC_ROOT is
    normal and every worker warning about it at start-up is noise. Once the directory exists
    it is indexed as before."""

    def add_files(self, root, prefix=None):
        # The only case in which WhiteNoise warns: indexing at start-up a directory that is missing.
        if root is self.static_root and not self.autorefresh and not os.path.isdir(root):
            return
        super().add_files(root, prefix)
