"""Read-only lookups: what a token says, which certificate signed it, and which audit row it
belongs to."""

from __future__ import annotations

from tokens import agora
from tokens.credentials import certificates, fingerprint, signing_credentials
from tokens.exceptions import TokenServiceError
from tokens.models import IssuedToken, token_sha256


def _signed_names(record: IssuedToken | None) -> tuple[str | None, str | None]:
    """The channel and account a 006 token signs, as its audit row names them (RTM: the user
    id in the channel, Agora's design)."""
    if record is None:
        return None, None
    if record.service == IssuedToken.Service.RTM:
        return record.rtm_user_id, ""
    return record.channel, str(record.uid)


def inspect(*, token: str) -> tuple[dict, IssuedToken | None]:
    """Decode a token, find its audit row by SHA-256, and say which of the configured
    certificates signed it (006 tokens carry only CRCs of channel and uid: the row supplies
    them). Returns agora.inspect's summary and the row; the summary adds `app_id_matches`,
    `signed_with` ("primary", "secondary", None: neither, or unverifiable), its fingerprint,
    the configured certificates' fingerprints and which one signs new tokens."""
    try:
        decoded = agora.decode(token)
    except agora.InvalidTokenError as exc:
        raise TokenServiceError("invalid_token", f"token: {exc}", fields={"token": [str(exc)]}) from None
    signing = signing_credentials()
    candidates = certificates()
    record = IssuedToken.objects.filter(token_sha256=token_sha256(token)).select_related("user").first()
    channel, account = _signed_names(record)
    if decoded.version == agora.VERSION_006 and record is None:
        signed_with = None  # unverifiable: inspect() says so with signature_valid None
    else:
        signed_with = agora.identify_certificate(decoded, candidates, channel=channel, account=account)
    certificate = candidates.get(signed_with, signing.certificate)
    summary = agora.inspect(token, certificate, channel=channel, account=account)
    summary["app_id_matches"] = summary["app_id"] == signing.app_id
    summary["signed_with"] = signed_with
    summary["signed_with_fingerprint"] = None if signed_with is None else fingerprint(certificate)
    summary["certificates"] = {label: fingerprint(value) for label, value in sorted(candidates.items())}
    summary["signing_certificate"] = signing.label
    return summary, record


def inspect_token(*, token: str) -> dict:
    """inspect() as one JSON-ready dict, with the audit row's id and the certificate
    fingerprint it recorded (manage.py inspect_token, the admin inspector's JSON)."""
    summary, record = inspect(token=token)
    summary["audit_row"] = None if record is None else record.pk
    summary["audit_row_certificate"] = None if record is None else record.certificate or None
    return summary
