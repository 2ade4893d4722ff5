"""The Agora App ID and certificate this server signs with, read from settings when needed."""

from __future__ import annotations

import logging

from django.conf import settings

from tokens import agora
from tokens.exceptions import TokenServiceError

logger = logging.getLogger(__name__)


def agora_configured() -> bool:
    """True when AGORA_APP_ID and AGORA_APP_CERTIFICATE are both 32 hex characters."""
    return agora.is_hex32(settings.AGORA_APP_ID) and agora.is_hex32(settings.AGORA_APP_CERTIFICATE)


def agora_credentials() -> tuple[str, str]:
    """(app id, certificate); 503 `agora_not_configured` when either is missing or malformed."""
    if not agora_configured():
        logger.error("Agora credentials are missing or malformed; run `manage.py check`")
        raise TokenServiceError(
            "agora_not_configured",
            "The token server has no valid Agora App ID and certificate configured.",
            status=503,
        )
    return settings.AGORA_APP_ID, settings.AGORA_APP_CERTIFICATE
