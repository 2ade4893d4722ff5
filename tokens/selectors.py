"""Read-only lookups: what a token says, and which audit row it belongs to."""

from __future__ import annotations

from tokens import agora
from tokens.credentials import agora_credentials
from tokens.exceptions import TokenServiceError
from tokens.models import IssuedToken, token_sha256


def inspect(*, token: str) -> tuple[dict, IssuedToken | None]:
    """Decode a token, find its audit row by SHA-256, and verify its signature under the
    configured certificate (006 tokens carry only CRCs of channel and uid: the row supplies
    them). Returns agora.inspect's summary, plus `app_id_matches`, and the row."""
    try:
        agora.decode(token)
    except agora.InvalidTokenError as exc:
        raise TokenServiceError("invalid_token", f"token: {exc}", fields={"token": [str(exc)]}) from None
    app_id, certificate = agora_credentials()
    record = IssuedToken.objects.filter(token_sha256=token_sha256(token)).select_related("user").first()
    channel = account = None
    if record is not None:
        if record.service == IssuedToken.Service.RTM:
            channel, account = record.rtm_user_id, ""
        else:
            channel, account = record.channel, str(record.uid)
    summary = agora.inspect(token, certificate, channel=channel, account=account)
    summary["app_id_matches"] = summary["app_id"] == app_id
    return summary, record


def inspect_token(*, token: str) -> dict:
    """inspect() as one JSON-ready dict, the audit row by id (manage.py inspect_token)."""
    summary, record = inspect(token=token)
    summary["audit_row"] = None if record is None else record.pk
    return summary
