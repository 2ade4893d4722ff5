"""Error pages and reports that never show a secret, DEBUG or not.

Django hides settings whose names contain API, AUTH, TOKEN, KEY, SECRET, PASS or SIGNATURE.
The App Certificate matches none of those, a password can sit inside a URL (CACHE_URL,
DATABASE_URL) and a traceback's local variables can hold any of them. So the filter also
hides settings named like a certificate, strips the password out of every URL, and masks
each configured secret wherever it appears; the reporter masks them once more in the
finished page, whatever part of it they reached (settings, locals, the exception message).
"""

from __future__ import annotations

import base64
import html
import re
from urllib.parse import unquote

from django.conf import settings
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

MASK = SafeExceptionReporterFilter.cleansed_substitute
# Secrets shorter than this are not masked inside other text (they would mask at random).
MIN_SECRET_LENGTH = 6
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@"
)


def _url_passwords(value: object) -> list[str]:
    found = []
    if isinstance(value, str):
        for match in _URL_PASSWORD.finditer(value):
            found += [match["password"], unquote(match["password"])]
    elif isinstance(value, dict):
        for item in value.values():
            found += _url_passwords(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found += _url_passwords(item)
    return found


def configured_secrets() -> list[str]:
    """Every secret this deployment holds: Agora's certificates (primary and secondary), the NCS
    secret, the REST API's customer secret and the Basic credential made of it, Django's key,
    database passwords, the demo password, and the password inside any URL in any setting."""
    customer_secret = getattr(settings, "AGORA_CUSTOMER_SECRET", "")
    candidates = [
        getattr(settings, "AGORA_APP_CERTIFICATE", ""),
        getattr(settings, "AGORA_APP_CERTIFICATE_SECONDARY", ""),
        getattr(settings, "AGORA_NCS_SECRET", ""),
        customer_secret,
        settings.SECRET_KEY,
        getattr(settings, "DEMO_PASSWORD", ""),
    ]
    if customer_secret:  # what an Authorization header to Agora carries, base64(id:secret)
        pair = f"{getattr(settings, 'AGORA_CUSTOMER_ID', '')}:{customer_secret}"
        candidates.append(base64.b64encode(pair.encode()).decode())
    candidates += [database.get("PASSWORD", "") for database in settings.DATABASES.values()]
    for name in dir(settings):
        if name.isupper():
            candidates += _url_passwords(getattr(settings, name))
    secrets = {c for c in candidates if isinstance(c, str) and len(c) >= MIN_SECRET_LENGTH}
    # Longest first, so a secret that contains another is masked whole.
    return sorted(secrets, key=len, reverse=True)


def mask_secrets(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every configured secret (raw or HTML-escaped) and every URL password masked."""
    for secret in configured_secrets() if secrets is None else secrets:
        text = text.replace(secret, MASK)
        escaped = html.escape(secret)
        if escaped != secret:
            text = text.replace(escaped, MASK)
    return _URL_PASSWORD.sub(rf"\g<scheme>\g<user>:{MASK}@", text)


class _Masked:
    """A traceback variable shown by its masked repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SecretsFilter(SafeExceptionReporterFilter):
    """Django's filter, plus certificate-like setting names and secrets inside any value."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CERTIFICATE|CREDENTIAL|PRIVATE", flags=re.I
    )

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            return mask_secrets(value)
        return value

    def get_traceback_frame_variables(self, request, tb_frame):
        secrets = configured_secrets()
        variables = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            try:
                shown = repr(value)
            except Exception:  # a broken __repr__ is shown as Django would, unmasked of nothing
                variables.append((name, value))
                continue
            masked = mask_secrets(shown, secrets)
            variables.append((name, _Masked(masked) if masked != shown else value))
        return variables


class SecretScrubbingReporter(ExceptionReporter):
    """The technical 500 (and DEBUG 400) page and text report, with every secret masked."""

    def get_traceback_html(self):
        return mask_secrets(str(super().get_traceback_html()))

    def get_traceback_text(self):
        return mask_secrets(str(super().get_traceback_text()))
