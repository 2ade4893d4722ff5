"""Where the token endpoints are mounted for requests that carry an API key: right after the
request guards, ahead of URL resolution and the layers below them (static files, sessions,
CSRF, the session's user, the admin's messages), none of which such a request uses.

The view mounted here is the very view the URLconf maps the path to (tokens/joinpath/views.py,
`TokenView`), called the same way: one implementation of the contract, mounted where it costs
least. Everything else (a session login, no credentials, another method or path) takes the
URLconf to the same view. bench/RESULTS.md measures what the skipped layers cost.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver, resolve

from tokens.joinpath.views import TokenView


def _routes(patterns, prefix: str = ""):
    """(path, pattern) for every plain route (no converters, no regex) under `patterns`."""
    for pattern in patterns:
        route = getattr(pattern.pattern, "_route", None)
        if route is None or pattern.pattern.converters:
            continue
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield "/" + prefix + route, pattern


def token_views() -> dict:
    """path -> (view callable, its ResolverMatch), for every URL the URLconf gives a TokenView."""
    views = {}
    for path, pattern in _routes(get_resolver().url_patterns):
        view_class = getattr(pattern.callback, "view_class", None)
        if view_class is not None and issubclass(view_class, TokenView):
            views[path] = (pattern.callback, resolve(path))
    return views


def _has_api_key(meta) -> bool:
    scheme = meta.get("HTTP_AUTHORIZATION", "").split(" ", 1)[0]
    return scheme.lower() == "token"


class JoinPathMiddleware:
    """Serve POSTs to a token endpoint that carry `Authorization: Token ...` with the
    endpoint's own view (see the module's docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.views: dict | None = None  # built on first use: the URLconf loads late

    def __call__(self, request):
        if request.method != "POST" or not _has_api_key(request.META):
            return self.get_response(request)
        if self.views is None:
            self.views = token_views()
        mounted = self.views.get(request.path_info)
        if mounted is None:
            return self.get_response(request)
        view, match = mounted
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it for every request
        request.resolver_match = match  # as URL resolution would have set it (metrics read it)
        response = view(request)
        if hasattr(response, "render") and not response.is_rendered:
            response = response.render()  # an error's DRF Response, as Django's handler renders it
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))  # as CommonMiddleware adds it
        return response
