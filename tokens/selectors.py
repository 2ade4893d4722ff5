"""Read-only lookups: what a token says, and which audit row it belongs to."""

from __future__ import annotations

from tokens import agora
from tokens.credentials import agora_credentials
from tokens.exceptions import TokenServiceError
from tokens.models import IssuedToken, token_sha256


def inspect_token(*, token: str) -> dict:
    """Decode a token, find its audit row by SHA-256, and verify its signature under the
    configured certificate (006 tokens carry only CRCs of channel and uid: the row supplies
    them)."""
    try:
        agora.decode(token)
    except agora.InvalidTokenError as exc:
        raise TokenServiceError("invalid_token", f"token: {exc}", fields={"token": [str(exc)]}) from None
    _, certificate = agora_credentials()
    record = IssuedToken.objects.filter(token_sha256=token_sha256(token)).first()
    channel = account = None
    if record is not None:
        if record.service == IssuedToken.Service.RTC:
            channel, account = record.channel, str(record.uid)
        else:
            channel, account = record.rtm_user_id, ""
    summary = agora.inspect(token, certificate, channel=channel, account=account)
    summary["audit_row"] = None if record is None else record.pk
    return summary
