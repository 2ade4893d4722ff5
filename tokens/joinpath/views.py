"""The token endpoints: the one path every token request takes, common case or not.

`TokenView.dispatch` is that path: for every POST to a token endpoint it runs DRF's steps in
DRF's order, each with the DRF component that defines it, and nothing else:

1. content negotiation (HeaderNegotiation: 406);
2. authentication: `JoinAuthentication` (the API key, its user and uids in one query; on a key
   this process has seen, none, the audit row's statement deciding), else Django's session
   (SessionAuthentication, with its CSRF check), else 401;
3. the budget: `TokenBudget`, one atomic counter (in the cache on SQLite; on PostgreSQL inside
   the audit row's statement: 429);
4. the body: the parser DRF would pick for its Content-Type (415), StrictJSONParser (400);
5. the input serializer, built once per endpoint (tokens/joinpath/inputs.py: 400);
6. one service call (tokens/services/issuance.py: policy, identity, token, audit row);
7. the body rendered by DRF's JSON renderer, straight from what issuance returns.

Any error takes DRF's exception handling (tokens/exceptions.py: the one error shape), after
`settle` has counted the request and re-read a key taken from memory (budget.py). What DRF's
generic dispatch adds around these steps (a Request wrapper whose every attribute is a proxy,
components made anew per request, headers parsed again) cost more than the steps themselves
(bench/RESULTS.md), so the steps are called directly. Methods other than POST issue no token
and take DRF's own dispatch (405, OPTIONS).
"""

from __future__ import annotations

from contextlib import suppress
from functools import cache, lru_cache
from inspect import cleandoc

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from tokens import clients, services
from tokens.choices import MAIN_SLOT, Service, Source
from tokens.exceptions import DATABASE_OUTAGES
from tokens.joinpath import inputs, outputs
from tokens.joinpath.authentication import ApiCaller, ApiTokenAuthentication, JoinAuthentication, remember_uid
from tokens.joinpath.budget import TokenBudget, settle
from tokens.parsers import StrictJSONParser
from tokens.services.issuance import Guard
from tokens.views import ERRORS, ApiView

_SHORT = 256  # longer header values are negotiated every time, never remembered


class _Headers:
    """What DRF's negotiation reads of a request: its Accept and Content-Type headers, and
    its query parameters (for `?format=`)."""

    def __init__(self, accept: str | None = None, content_type: str = "", query_params=None) -> None:
        self.headers = {} if accept is None else {"accept": accept}
        self.META = {} if accept is None else {"HTTP_ACCEPT": accept}
        self.content_type = content_type
        self.query_params = {} if query_params is None else query_params


class HeaderNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation, reading Accept from the WSGI environment (DRF's reads
    `request.headers`, which rebuilds the name of every header the request carries), with its
    answers remembered for each distinct short Accept or Content-Type value: they depend on
    nothing else."""

    def get_accept_list(self, request):
        return super().get_accept_list(_Headers(request.META.get("HTTP_ACCEPT")))

    def select_renderer(self, request, renderers, format_suffix=None):
        accept = request.META.get("HTTP_ACCEPT")
        if format_suffix or request.META.get("QUERY_STRING") or (accept and len(accept) > _SHORT):
            query = getattr(request, "query_params", None) or request.GET
            return super().select_renderer(_Headers(accept, query_params=query), renderers, format_suffix)
        index, media_type = _renderer(accept, tuple(type(renderer) for renderer in renderers))
        return renderers[index], media_type

    def select_parser(self, request, parsers):
        content_type = request.META.get("CONTENT_TYPE", "")
        if len(content_type) > _SHORT:
            return super().select_parser(_Headers(content_type=content_type), parsers)
        index = _parser(content_type, tuple(type(parser) for parser in parsers))
        return None if index is None else parsers[index]


@lru_cache(maxsize=512)
def _renderer(accept: str | None, renderer_classes: tuple[type, ...]) -> tuple[int, str]:
    renderers = [renderer_class() for renderer_class in renderer_classes]
    renderer, media_type = DefaultContentNegotiation().select_renderer(_Headers(accept), renderers)
    return renderers.index(renderer), media_type


@lru_cache(maxsize=512)
def _parser(content_type: str, parser_classes: tuple[type, ...]) -> int | None:
    parsers = [parser_class() for parser_class in parser_classes]
    parser = DefaultContentNegotiation().select_parser(_Headers(content_type=content_type), parsers)
    return None if parser is None else parsers.index(parser)


@cache
def _shared(view_class: type, attribute: str) -> list:
    # DRF makes new instances of a view's components on every request; these hold no state.
    return [component() for component in getattr(view_class, attribute)]


@cache
def _allow(view_class: type) -> str:
    return ", ".join(view_class().allowed_methods)


class TokenView(ApiView):
    """An endpoint that issues Agora tokens: login required, the per-user budget, and one
    shape: validate the input, call the service, answer what it issued."""

    # What DRF (and the schema) know: the same API keys and sessions. For POSTs the one path
    # reads keys with JoinAuthentication, which may take a key from this process's memory.
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [TokenBudget]
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = HeaderNegotiation
    throttle_scope = "tokens"
    throttle_fails_open = True  # a cache outage must not stop calls from starting
    service: str
    input_class: type
    output: outputs.Output
    source = Source.API
    caller_slots = True  # the token is for one of the caller's own uids (the recorder's is the channel's)
    # How the one path reads an API key: JoinAuthentication may take a key from this process's
    # memory (the audit row's statement re-reads it); a view whose rule reads the user's staff
    # flag or permissions reads it every time (ApiTokenAuthentication).
    key_authentication = JoinAuthentication
    success_status = status.HTTP_201_CREATED
    budget_window = None  # set by TokenBudget when the audit row's statement counts the budget
    budget_charged = None  # set by TokenBudget when it counted the budget in the cache
    drf_request = accepted = user = auth = None  # DRF's Request once made, what was negotiated, who

    # DRF's components, made once per view class.
    def get_authenticators(self):
        return _shared(type(self), "authentication_classes")

    def get_permissions(self):
        return _shared(type(self), "permission_classes")

    def get_throttles(self):
        return _shared(type(self), "throttle_classes")

    def get_parsers(self):
        return _shared(type(self), "parser_classes")

    def get_renderers(self):
        return _shared(type(self), "renderer_classes")

    def get_content_negotiator(self):
        return _NEGOTIATOR

    @property
    def default_response_headers(self):
        return {"Allow": _allow(type(self))}  # and no Vary: Accept, with one renderer

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)  # 405, OPTIONS: no token
        self.args, self.kwargs, self.headers = args, kwargs, self.default_response_headers
        self.request = request
        try:
            response = self.post(request)
        except Exception as exc:
            response = self.handle_exception(exc)
        return self.finalize_response(self.request, response, *args, **kwargs)

    def post(self, request) -> HttpResponse:
        """Steps 1-7 of the module's docstring, for `request` (Django's: `dispatch` calls this
        for every POST itself, without DRF's Request)."""
        renderer, media_type = self.accepted = _NEGOTIATOR.select_renderer(request, self.get_renderers())
        user, auth = self.authenticate(request)
        self.budget(user, auth)
        attrs = inputs.validate(self.input_class, self.parse(request))
        caller = auth if isinstance(auth, ApiCaller) else None
        uids = caller.uids if caller is not None and self.caller_slots else None
        slot = attrs.get("slot", MAIN_SLOT)
        window, self.budget_window = self.budget_window, None  # counted below, whatever the outcome
        issued = services.issue_token(
            user=user,
            service=self.service,
            **attrs,
            source=self.source,
            client_ip=clients.client_ip(request),
            user_agent=clients.user_agent(request),
            uid=uids.get(slot) if uids is not None else None,
            guard=Guard(digest=caller.digest if caller is not None else None, window=window),
        )
        if uids is not None and slot not in uids:
            remember_uid(caller, slot, issued.uid)
        # The media type's parameters say the indent; without any there is none to parse.
        body = renderer.render(self.output.body(issued), media_type if ";" in media_type else None, {})
        return HttpResponse(body, status=self.success_status, content_type=renderer.media_type)

    def authenticate(self, request) -> tuple:
        """The API key, else the session, else 401; IsAuthenticated's check."""
        session_auth = self.get_authenticators()[1]
        found = _key_authentication(type(self)).authenticate(request)
        if found is None:
            found = session_auth.authenticate(self.wrapped(request))
        if found is None:
            raise exceptions.NotAuthenticated
        user, auth = found
        request.user = user  # what Django and the metrics see; DRF sets it the same way
        if self.drf_request is not None:
            self.drf_request.user, self.drf_request.auth = user, auth
        self.user, self.auth = found
        return found

    def budget(self, user, auth) -> None:
        (throttle,) = self.get_throttles()
        throttle.count(user, self, client=self.request)  # raises the 429

    def parse(self, request) -> object:
        """The body as the parser DRF would choose for its Content-Type reads it."""
        if not int(request.META.get("CONTENT_LENGTH") or 0):
            return {}  # DRF's empty data
        parser = _NEGOTIATOR.select_parser(request, self.get_parsers())
        if parser is None:
            raise exceptions.UnsupportedMediaType(request.META.get("CONTENT_TYPE", ""))
        return parser.parse_bytes(request.body, request.encoding)

    def wrapped(self, request) -> Request:
        """DRF's Request around `request`, made when something needs it (a session login,
        an error to render)."""
        if isinstance(request, Request):  # DRF's own dispatch made it (methods other than POST)
            return request
        if self.drf_request is None:
            self.drf_request = self.initialize_request(request, *self.args, **self.kwargs)
            if self.accepted is not None:
                self.drf_request.accepted_renderer, self.drf_request.accepted_media_type = self.accepted
            if self.user is not None:
                self.drf_request.user, self.drf_request.auth = self.user, self.auth
        return self.drf_request

    def handle_exception(self, exc):
        issuing = not isinstance(self.request, Request)  # a POST, in the one path; else DRF's dispatch
        self.request = self.wrapped(self.request)
        # Settled once the caller is known: what fails before that comes before the budget.
        if issuing and self.user is not None and not isinstance(exc, DATABASE_OUTAGES):
            with suppress(*DATABASE_OUTAGES):  # then the request's own error stands
                exc = settle(self, exc)
        return super().handle_exception(exc)


_NEGOTIATOR = HeaderNegotiation()


@cache
def _key_authentication(view_class: type):
    return view_class.key_authentication()


def _documented(view: type) -> type:
    """Tell the OpenAPI schema what a TokenView takes and answers (and, where the view says,
    what it is for, from its `description` or its own docstring, and the codes of its 403s)."""
    responses = {view.success_status: view.output.serializer, **ERRORS}
    refusals = getattr(view, "refusals", ())
    if refusals:
        codes = ", ".join(f"`{code}`" for code in refusals)
        responses[403] = OpenApiResponse(ERRORS[403], description=f"Refused: {codes} (error.code).")
    description = getattr(view, "description", None)
    if description is None and view.__dict__.get("__doc__"):
        description = cleandoc(view.__doc__)
    documented = extend_schema(request=view.input_class, responses=responses, description=description)
    return extend_schema_view(post=documented)(view)


_RTC_REFUSALS = ("publisher_not_allowed", "channel_not_allowed", "not_started", "ended", "too_many_slots")
_RTC_DESCRIPTION = (
    "An RTC token for your own uid in `slot`. `role` says what it may publish: `publisher` "
    "(audio, video and data), `audio`, `video` or `data` alone (007 only), `subscriber` (join "
    "only; the default, except the `screen` slot on 007: `video` where you may publish video). "
    "`publish_expires_in` ends publishing earlier than the token (then the uid listens). A channel "
    "rule's meeting window refuses the channel before its start (403 `not_started`, with "
    "`starts_at`) and after its end (403 `ended`), and ends the token at its end whatever "
    "`expires_in` asks: `expires_at` says when. Agora enforces publish rights only when co-host "
    "authentication is enabled in Agora Console."
)


@_documented
class RtcTokenView(TokenView):
    service, input_class, output = Service.RTC, inputs.RtcTokenInput, outputs.RTC
    description, refusals = _RTC_DESCRIPTION, _RTC_REFUSALS


@_documented
class RtcRtmTokenView(TokenView):
    """One 007 token for RTC (channel, uid, role) and RTM (str(uid)) together."""

    service, input_class, output = Service.RTC_RTM, inputs.RtcRtmTokenInput, outputs.RTC_RTM
    description = _RTC_DESCRIPTION + " The RTM login (user id str(uid)) ends with the token."
    refusals = _RTC_REFUSALS


@_documented
class RecorderTokenView(TokenView):
    """A join-only 007 token for the channel's reserved recorder uid, the uid Agora Cloud
    Recording's acquire call names: staff or the tokens.record permission."""

    service, input_class, output = Service.RTC, inputs.RecorderTokenInput, outputs.RECORDER
    caller_slots = False
    key_authentication = ApiTokenAuthentication  # the rule reads the staff flag and permissions
    description = (
        "A join-only (subscriber) 007 token for the channel's reserved recorder uid: the uid and "
        "token Agora Cloud Recording's `acquire` and `start` calls take. One uid per channel, kept "
        "for ever, never any user's. Staff accounts, or accounts with the `tokens.record` "
        "permission (a service account); the channel policy does not apply. Audited with role "
        "`recorder` and slot `recorder` under the caller's name."
    )
    refusals = ("recorder_not_allowed",)


@_documented
class RtmTokenView(TokenView):
    service, input_class, output = Service.RTM, inputs.RtmTokenInput, outputs.RTM


@_documented
class ChatTokenView(TokenView):
    """An Agora Chat user token (007) for your own Chat user id: str(uid) of the slot, as RTM's
    (`user_id` in the answer). `version` "006" is a 400 naming version: 006 has no Chat service."""

    service, input_class, output = Service.CHAT, inputs.ChatTokenInput, outputs.CHAT


@_documented
class ChatAppTokenView(TokenView):
    """Agora Chat's app token (007), the app server's credential for Chat's REST API: for staff
    with the tokens.chat_app permission only, else 403 `chat_app_not_allowed`. It names no Chat
    user; its audit row names the caller's own uid. `version` "006" is a 400 naming version."""

    service, input_class, output = Service.CHAT_APP, inputs.ChatAppTokenInput, outputs.CHAT_APP
    # The key and its user read on every request: the rule reads the user's staff flag and
    # permissions, which a key remembered by this process would not see change.
    key_authentication = ApiTokenAuthentication


@_documented
class CompatRtcTokenView(TokenView):
    """The tutorial's POST /rtctoken, now bound to the caller's own uid."""

    service, input_class, output = Service.RTC, inputs.CompatRtcInput, outputs.COMPAT_RTC
    source = Source.COMPAT
    success_status = status.HTTP_200_OK  # as the tutorial answered


@_documented
class CompatRtmTokenView(TokenView):
    """The tutorial's POST /rtmtoken, for the caller's own RTM user id only."""

    service, input_class, output = Service.RTM, inputs.CompatRtmInput, outputs.COMPAT_RTM
    source = Source.COMPAT
    success_status = status.HTTP_200_OK
