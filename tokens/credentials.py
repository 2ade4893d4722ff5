"""The Agora App ID and certificates this server signs and verifies with, read from settings
when needed.

Rotation: Agora Console holds a primary and, once enabled, a secondary App Certificate, and
accepts tokens signed with either. AGORA_APP_CERTIFICATE is the primary,
AGORA_APP_CERTIFICATE_SECONDARY the secondary (empty: none), and AGORA_SIGNING_CERTIFICATE
(primary | secondary) the one that signs new tokens; every configured one verifies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from tokens import agora
from tokens.exceptions import TokenServiceError

logger = logging.getLogger(__name__)

PRIMARY, SECONDARY = "primary", "secondary"
SIGNING_CHOICES = (PRIMARY, SECONDARY)
SETTINGS = {PRIMARY: "AGORA_APP_CERTIFICATE", SECONDARY: "AGORA_APP_CERTIFICATE_SECONDARY"}
NOT_HEX32 = "is not 32 hexadecimal characters"


@dataclass(frozen=True)
class SigningCredentials:
    """What a token is signed with: the App ID, the certificate chosen to sign, its label
    (primary, secondary) and its fingerprint, which the audit row keeps."""

    app_id: str
    certificate: str
    label: str
    fingerprint: str


# Two settings, a handful of values over a process's life: hash each once.
fingerprint = lru_cache(maxsize=8)(agora.certificate_fingerprint)


def _settings() -> tuple[str, str, str, str]:
    return (
        settings.AGORA_APP_ID,
        settings.AGORA_APP_CERTIFICATE,
        settings.AGORA_APP_CERTIFICATE_SECONDARY,
        settings.AGORA_SIGNING_CERTIFICATE,
    )


def credential_problems() -> dict[str, str]:
    """Setting name -> what is wrong with it, for each Agora credential setting that keeps this
    server from signing (the App ID, either certificate, the signing choice); {} when it can."""
    return _problems(*_settings())


def _problems(app_id: str, primary: str, secondary: str, signing: str) -> dict[str, str]:
    problems = {}
    for name, value in (("AGORA_APP_ID", app_id), ("AGORA_APP_CERTIFICATE", primary)):
        if not agora.is_hex32(value):
            problems[name] = "is not set" if not value else NOT_HEX32
    if secondary and not agora.is_hex32(secondary):
        problems["AGORA_APP_CERTIFICATE_SECONDARY"] = NOT_HEX32
    if signing not in SIGNING_CHOICES:
        problems["AGORA_SIGNING_CERTIFICATE"] = f"is {signing!r}, neither primary nor secondary"
    elif signing == SECONDARY and not secondary:
        problems["AGORA_APP_CERTIFICATE_SECONDARY"] = "is not set, but AGORA_SIGNING_CERTIFICATE is secondary"
    return problems


def agora_configured() -> bool:
    """True when this server can sign: the App ID and the certificates are well-formed and the
    one AGORA_SIGNING_CERTIFICATE names is set."""
    return not credential_problems()


def _not_configured() -> TokenServiceError:
    problems = credential_problems()
    logger.error("Agora credentials unusable (%s); run `manage.py check`", ", ".join(problems))
    named = "; ".join(f"{name} {problem}" for name, problem in problems.items())
    return TokenServiceError(
        "agora_not_configured",
        f"The token server has no valid Agora App ID and certificate configured ({named}).",
        status=503,
    )


def certificates() -> dict[str, str]:
    """Every configured certificate by label, the one that signs first: {"primary": ...,
    "secondary": ...} (the secondary only when set). 503 `agora_not_configured` when the
    server cannot sign."""
    if not agora_configured():
        raise _not_configured()
    found = {PRIMARY: settings.AGORA_APP_CERTIFICATE}
    if settings.AGORA_APP_CERTIFICATE_SECONDARY:
        found[SECONDARY] = settings.AGORA_APP_CERTIFICATE_SECONDARY
    signing = settings.AGORA_SIGNING_CERTIFICATE
    return {signing: found[signing], **found}


def signing_credentials() -> SigningCredentials:
    """The App ID and the certificate AGORA_SIGNING_CERTIFICATE chooses; 503
    `agora_not_configured` (naming the setting) when either is missing or malformed."""
    signing = _signing(*_settings())
    if signing is None:
        raise _not_configured()
    return signing


@lru_cache(maxsize=8)
def _signing(app_id: str, primary: str, secondary: str, label: str) -> SigningCredentials | None:
    # Every token request asks; the answer depends on these four values only, which a process
    # sees a handful of over its life (a test's override, a rotation).
    if _problems(app_id, primary, secondary, label):
        return None
    certificate = {PRIMARY: primary, SECONDARY: secondary}[label]
    return SigningCredentials(app_id, certificate, label, fingerprint(certificate))


def agora_credentials() -> tuple[str, str]:
    """(app id, the signing certificate); 503 `agora_not_configured` when either is unusable."""
    signing = signing_credentials()
    return signing.app_id, signing.certificate
