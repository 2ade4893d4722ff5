"""Thin API views: validate -> one service call -> serialize. The token endpoints are in
tokens/joinpath/views.py."""

import logging

from django.core.cache import caches
from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import status
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from tokens import clients, metrics, services, validators
from tokens.credentials import agora_configured
from tokens.exceptions import error_body, method_not_allowed, page_not_found, permission_denied
from tokens.joinpath.authentication import ApiTokenAuthentication
from tokens.joinpath.budget import ScopedThrottle
from tokens.serializers import (
    ActiveBansOutput,
    ErrorOutput,
    HealthErrorOutput,
    HealthOutput,
    LiftInput,
    LiftOutput,
    LoginInput,
    LoginOutput,
    MeOutput,
    ModerationActionOutput,
    ModerationInput,
)
from tokens.services import moderation

logger = logging.getLogger(__name__)

ERRORS = {code: ErrorOutput for code in (400, 401, 403, 405, 411, 413, 415, 429, 503)}
MODERATION_ERRORS = {code: ErrorOutput for code in (400, 401, 403, 404, 405, 409, 411, 413, 415, 429, 503)}


class ApiView(APIView):
    """APIView that answers a method it does not serve with 405 before anything else, so an
    anonymous TRACE is a 405, not a 401."""

    def initial(self, request, *args, **kwargs):
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            self.http_method_not_allowed(request, *args, **kwargs)
        super().initial(request, *args, **kwargs)


class ApiTokenView(ApiView):
    """POST: username + password -> API token. DELETE: revoke the token sent."""

    throttle_classes = [ScopedThrottle]
    throttle_scope = "auth"

    def _is_login(self) -> bool:
        # The schema generator inspects the view without a request.
        return getattr(self.request, "method", None) == "POST"

    def get_authenticators(self):
        # Login must not trip over a stale Authorization header; logout needs the API token.
        return [] if self._is_login() else [ApiTokenAuthentication()]

    def get_permissions(self):
        return [AllowAny()] if self._is_login() else [IsAuthenticated()]

    @extend_schema(request=LoginInput, responses={200: LoginOutput, **ERRORS}, auth=[])
    def post(self, request):
        data = LoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        login = services.log_in(request=request, **data.validated_data)
        body = {"token": login.key, "expires_at": login.expires_at, "username": login.user.get_username()}
        return Response(LoginOutput(body).data)

    @extend_schema(request=None, responses={204: None, 401: ErrorOutput})
    def delete(self, request):
        services.log_out(request=request, api_token=request.auth.api_token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(ApiView):
    @extend_schema(responses={200: MeOutput, 401: ErrorOutput})
    def get(self, request):
        identity = services.get_or_create_identity(user=request.user)
        body = {
            "username": request.user.get_username(),
            "uid": identity.uid,
            "rtm_user_id": identity.rtm_user_id,
            "slots": services.slots_of(request.user),
        }
        return Response(MeOutput(body).data)


class ModeratesChannel(BasePermission):
    """The channel in the path may be moderated here by this user: Agora's REST API configured
    (else 503 `moderation_not_configured`), a valid channel name (400), and the tokens.moderate
    permission or a moderators group of a channel rule matching it (403)."""

    def has_permission(self, request, view):
        moderation.check_configured()
        channel = moderation.validated_channel(view.kwargs["channel"])
        moderation.check_moderation_allowed(request.user, channel)
        return True


CHANNEL_PARAMETER = OpenApiParameter(
    "channel", {"type": "string", **validators.NAME_SCHEMA}, OpenApiParameter.PATH,
    description=f"The channel, percent-encoded: 1..63 bytes of {validators.ALLOWED_CHARACTERS_TEXT}",
)  # fmt: skip


@extend_schema_view(
    get=extend_schema(parameters=[CHANNEL_PARAMETER]),
    post=extend_schema(parameters=[CHANNEL_PARAMETER]),
    delete=extend_schema(parameters=[CHANNEL_PARAMETER]),
)
class ChannelModerationView(ApiView):
    """Kick, ban or mute a user in one channel (POST), lift their bans (DELETE), list the
    channel's active bans and mutes (GET). Actions are carried out at Agora by the worker:
    202 with the action, whose `state` is pending until Agora has applied it."""

    permission_classes = [IsAuthenticated, ModeratesChannel]
    throttle_classes = [ScopedThrottle]
    throttle_scope = "tokens"

    @extend_schema(responses={200: ActiveBansOutput, **MODERATION_ERRORS})
    def get(self, request, channel):
        bans = moderation.active_bans(channel=channel)
        return Response(ActiveBansOutput({"channel": channel, "bans": bans}).data)

    @extend_schema(request=ModerationInput, responses={202: ModerationActionOutput, **MODERATION_ERRORS})
    def post(self, request, channel):
        data = ModerationInput(data=request.data)
        data.is_valid(raise_exception=True)
        attrs = data.validated_data
        action = moderation.moderate(
            channel=channel, kind=attrs["action"], username=attrs.get("username"), uid=attrs.get("uid"),
            minutes=attrs.get("minutes"), reason=attrs["reason"], requested_by=request.user,
            source=moderation.Source.API,
        )  # fmt: skip
        return Response(ModerationActionOutput(action).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=LiftInput, responses={202: LiftOutput, **MODERATION_ERRORS})
    def delete(self, request, channel):
        data = LiftInput(data=request.data)
        data.is_valid(raise_exception=True)
        attrs = data.validated_data
        lifted = moderation.lift(
            channel=channel, username=attrs.get("username"), uid=attrs.get("uid"), kind=attrs.get("action"),
            reason=attrs["reason"], requested_by=request.user, source=moderation.Source.API,
        )  # fmt: skip
        return Response(LiftOutput({"lifted": lifted}).data, status=status.HTTP_202_ACCEPTED)


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("health check: database unavailable (%s)", type(exc).__name__)
        return "unavailable"
    return "ok"


def _cache_state() -> str:
    try:
        caches["default"].get("healthz")
    except Exception as exc:  # each backend raises its own connection errors
        logger.warning("health check: cache unavailable (%s)", type(exc).__name__)
        return "unavailable"
    return "ok"


class HealthView(ApiView):
    """Can this node issue tokens? Database, cache and Agora credentials, for load balancers."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: HealthOutput, 503: HealthErrorOutput}, auth=[])
    def get(self, request):
        parts = {
            "database": _database_state(),
            "cache": _cache_state(),
            "agora": "ok" if agora_configured() else "not_configured",
        }
        failing = {name: [state] for name, state in parts.items() if state != "ok"}
        if not failing:
            return Response({"status": "ok", **parts})
        message = "; ".join(f"{name}: {state[0]}" for name, state in failing.items())
        body = {**error_body("unhealthy", message, failing), "status": "unhealthy", **parts}
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)


class JsonErrorsMixin:
    """Render errors as JSON even on views whose own renderers are YAML or HTML."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(JsonErrorsMixin, SpectacularAPIView):
    metadata_class = None  # OPTIONS: 405, like any other method these views do not serve


class DocsView(JsonErrorsMixin, SpectacularSwaggerView):
    metadata_class = None  # OPTIONS would render DRF's metadata through the HTML template: a 500


@csrf_exempt  # GET only: there is nothing to protect, and a POST gets a JSON 405
def index(request):
    """The tutorial's greeting, with the way in."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(request.method)
    links = [
        ("API documentation (Swagger UI)", reverse("swagger-ui")),
        ("OpenAPI schema", reverse("schema")),
        ("Your Agora uid (GET, login required)", reverse("tokens:me")),
        ("Admin (audit log)", reverse("admin:index")),
        ("Health", reverse("tokens:health")),
    ]
    items = "".join(f'<li><a href="{escape(url)}">{escape(label)}</a></li>' for label, url in links)
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Agora Auth Token Server</title></head>"
        f"<body><h1>Agora Auth Token Server</h1><ul>{items}</ul></body></html>"
    )
    return HttpResponse(html)


@csrf_exempt  # GET and HEAD only: nothing to protect, and other methods get a JSON 405
def prometheus_metrics(request):
    """Prometheus scrape target: a 404 unless METRICS_ENABLED, a 403 outside METRICS_ALLOWED_IPS."""
    if not metrics.enabled():
        return page_not_found(request)
    if not metrics.client_allowed(clients.client_ip(request)):
        return permission_denied(request)
    if request.method not in ("GET", "HEAD"):
        response = method_not_allowed(request.method)
        response["Allow"] = "GET, HEAD"
        return response
    body, content_type = metrics.exposition(request.headers.get("Accept"))
    return HttpResponse(body, content_type=content_type)
