"""POST /webhooks/agora/: Agora's channel event notifications (NCS).

A plain Django view, kept short because Agora resends anything not answered 200 within a
few seconds: no login and no CSRF (the signature over the raw body is the credential), one
identity lookup and one INSERT. Off (404) while AGORA_NCS_SECRET is unset.
"""

import logging

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from tokens import clients, ncs
from tokens.exceptions import (
    DATABASE_OUTAGES,
    TokenServiceError,
    database_unavailable,
    method_not_allowed,
    page_not_found,
    service_error_response,
)
from tokens.services.channel_events import record_channel_event

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Agora-Signature-V2"
_SIGNATURE_META = "HTTP_AGORA_SIGNATURE_V2"


def _bad_signature(missing: bool) -> TokenServiceError:
    message = (
        f"{SIGNATURE_HEADER} header missing."
        if missing
        else f"{SIGNATURE_HEADER} does not match the body under AGORA_NCS_SECRET."
    )
    return TokenServiceError(
        "invalid_signature", message, status=401, headers={"WWW-Authenticate": SIGNATURE_HEADER}
    )


@csrf_exempt  # the signature is the credential; Agora sends no cookie or CSRF token
def agora_webhook(request):
    """Verify Agora's signature, then store the channel event once (200 on resends too)."""
    secret = settings.AGORA_NCS_SECRET
    if not secret:
        return page_not_found(request)
    if request.method != "POST":
        response = method_not_allowed(request.method)
        response["Allow"] = "POST"
        return response
    body = request.body  # the raw bytes Agora signed; RequestGuardMiddleware caps their size
    header = request.META.get(_SIGNATURE_META)
    if not header or not ncs.signature_matches(body, header, secret):
        logger.warning(
            "agora webhook refused: %s signature from %s",
            "no" if not header else "bad",
            clients.client_ip(request),
        )
        return service_error_response(_bad_signature(missing=not header))
    try:
        notification = ncs.parse(body)
    except ncs.InvalidNotificationError as exc:
        code = "parse_error" if isinstance(exc, ncs.NotJsonError) else "invalid"
        return service_error_response(TokenServiceError(code, exc.message, fields={exc.field: [exc.message]}))
    try:
        outcome = record_channel_event(notification=notification)
    except DATABASE_OUTAGES as exc:
        # A 503 makes Agora send it again later, when the database is back.
        logger.warning("agora webhook: database unavailable (%s)", type(exc).__name__)
        return service_error_response(database_unavailable())
    return JsonResponse({"status": outcome.value})
