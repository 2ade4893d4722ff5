"""The join path: token requests answered in one query, one cache operation and one INSERT.

A token request through DRF costs ~7 ms of CPU (profile in bench/RESULTS.md): Django's full
middleware stack, DRF's request wrapping, authentication, serializers and rendering, while
the token itself costs ~0.1 ms. This middleware, placed right after the request guards,
answers the common case itself: a POST with `Authorization: Token <key>` and a JSON body that
the endpoint's own input serializer would accept as it is. It authenticates the key together
with the user and uid in one query, counts the request against the user's budget with one
atomic cache operation, and calls the very service the DRF view calls, which writes the audit
row with one INSERT before the token is returned.

Anything else (a missing or bad credential, a session login, an invalid or unexpected body,
another method or content type) goes on to the DRF view untouched: that view is the reference
for the contract, and the tests hold the two paths to the same answers, headers included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.http import HttpResponse
from rest_framework import fields as drf_fields
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from tokens import clients, throttling
from tokens.authentication import find_api_caller, key_from_header
from tokens.exceptions import (
    DATABASE_OUTAGES,
    TokenServiceError,
    database_unavailable,
    service_error_response,
)
from tokens.models import MAIN_SLOT
from tokens.services.issuance import issue_token


class _FallbackError(Exception):
    """The request is not the common case: the DRF view answers it."""


@dataclass(frozen=True)
class _Field:
    kind: type  # the JSON type the field accepts: str, int or bool
    choices: dict | None  # ChoiceField: accepted string -> value
    validators: tuple
    allow_blank: bool
    default: object  # drf_fields.empty when none


class FastInput:
    """An input serializer's acceptance, checked without DRF's per-field machinery (which costs
    ~0.2 ms a request): exact JSON types, choices, the field's own validators, defaults, then
    the serializer's `validate()`. Anything it is not sure of is a _FallbackError, never a guess:
    the serializer then gives its own answer."""

    def __init__(self, serializer_class: type[serializers.Serializer]) -> None:
        serializer = serializer_class()
        self.fields: dict[str, _Field] = {}
        for name, field in serializer.fields.items():
            if isinstance(field, serializers.BooleanField):
                kind = bool
            elif isinstance(field, serializers.IntegerField):
                kind = int
            elif isinstance(field, serializers.CharField | serializers.ChoiceField):
                kind = str
            else:  # a field type this class does not know: never fast
                raise TypeError(
                    f"{serializer_class.__name__}.{name}: unsupported field {type(field).__name__}"
                )
            choices = field.choice_strings_to_values if isinstance(field, serializers.ChoiceField) else None
            default = field.default
            if default is not drf_fields.empty and (callable(default) or field.required):
                raise TypeError(f"{serializer_class.__name__}.{name}: unsupported default")
            self.fields[name] = _Field(
                kind, choices, tuple(field.validators), getattr(field, "allow_blank", True), default
            )
        self.names = frozenset(self.fields)
        self.required = frozenset(name for name, field in serializer.fields.items() if field.required)
        overridden = type(serializer).validate is not serializers.Serializer.validate
        self.validate = serializer.validate if overridden else None

    def __call__(self, data: object) -> dict:
        if not isinstance(data, dict) or not data.keys() <= self.names or not self.required <= data.keys():
            raise _FallbackError  # unknown or missing fields: the serializer names them
        attrs = {}
        for name, spec in self.fields.items():
            if name not in data:
                if spec.default is not drf_fields.empty:
                    attrs[name] = spec.default
                continue
            value = data[name]
            if type(value) is not spec.kind or (spec.kind is str and not value and not spec.allow_blank):
                raise _FallbackError
            if spec.choices is not None:
                if value not in spec.choices:
                    raise _FallbackError
                value = spec.choices[value]
            try:
                for validator in spec.validators:
                    validator(value)
            except Exception:  # Django's, DRF's and our ValidationErrors alike
                raise _FallbackError from None
            attrs[name] = value
        if self.validate is not None:
            try:
                attrs = self.validate(attrs)
            except Exception:
                raise _FallbackError from None
        return attrs


@dataclass(frozen=True)
class Endpoint:
    """What the fast path needs of a TokenView."""

    service: str
    source: str
    accept: FastInput
    body: object  # issued -> dict
    status: int
    allow: str


def _endpoints() -> dict[str, Endpoint]:
    from django.urls import reverse

    from tokens import views

    table = {}
    for url_name, view in (
        ("tokens:rtc-token", views.RtcTokenView),
        ("tokens:rtm-token", views.RtmTokenView),
        ("tokens:rtc-rtm-token", views.RtcRtmTokenView),
        ("tokens:compat-rtc-token", views.CompatRtcTokenView),
        ("tokens:compat-rtm-token", views.CompatRtmTokenView),
    ):
        allow = ", ".join(m.upper() for m in view().allowed_methods)
        table[reverse(url_name)] = Endpoint(
            view.service, view.source, FastInput(view.input_class), view.body, view.success_status, allow
        )
    return table


_RENDERER = JSONRenderer()  # DRF's own, so bodies are byte for byte what DRF would send
_JSON = "application/json"
# Accept values DRF would answer with plain JSON; anything else (a media type parameter such
# as indent, another type) is negotiated by DRF itself.
_PLAIN_ACCEPT = frozenset({None, "", "*/*", "application/json", "application/*"})


class TokenFastPathMiddleware:
    """Serve the token endpoints' common case (see the module's docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.endpoints: dict[str, Endpoint] | None = None  # built on first use: URLs load late

    def __call__(self, request):
        if request.method != "POST":
            return self.get_response(request)
        if self.endpoints is None:
            self.endpoints = _endpoints()
        endpoint = self.endpoints.get(request.path_info)
        if endpoint is None:
            return self.get_response(request)
        try:
            return self._serve(request, endpoint)
        except _FallbackError:
            return self.get_response(request)

    def _serve(self, request, endpoint: Endpoint) -> HttpResponse:
        meta = request.META
        key = key_from_header(meta.get("HTTP_AUTHORIZATION"))
        if key is None or meta.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != _JSON:
            raise _FallbackError
        if meta.get("HTTP_ACCEPT") not in _PLAIN_ACCEPT:
            raise _FallbackError
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware would check it
        try:
            attrs = endpoint.accept(json.loads(request.body))
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
            raise _FallbackError from None
        try:
            caller = find_api_caller(key, slot=attrs.get("slot", MAIN_SLOT))
            if caller is None or not caller.user.is_active:
                raise _FallbackError
            try:
                wait = throttling.hit("tokens", f"user:{caller.user.pk}")
            except throttling.CacheUnavailableError:
                throttling.log_skipped_budget("tokens")  # as the DRF view does: go on unbudgeted
                wait = None
            if wait is not None:
                raise throttling.throttled(wait)
            issued = issue_token(
                user=caller.user,
                service=endpoint.service,
                **attrs,
                source=endpoint.source,
                client_ip=clients.client_ip(request),
                user_agent=clients.user_agent(request),
                uid=caller.uid,
            )
        except DATABASE_OUTAGES:
            return self._finish(service_error_response(database_unavailable()), endpoint)
        except TokenServiceError as exc:
            return self._finish(service_error_response(exc), endpoint)
        response = HttpResponse(
            _RENDERER.render(endpoint.body(issued)), status=endpoint.status, content_type=_JSON
        )
        return self._finish(response, endpoint)

    @staticmethod
    def _finish(response: HttpResponse, endpoint: Endpoint) -> HttpResponse:
        # What DRF's view and the skipped middleware would have added (DRF adds Vary: Accept
        # only with several renderers; there is one).
        response["Allow"] = endpoint.allow
        response["Content-Length"] = str(len(response.content))
        return response
