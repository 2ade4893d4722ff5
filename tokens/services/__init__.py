"""Business logic, one concern per module: issuance (tokens and their audit rows), identities
(uids), accounts (login, guessing limits, cleanup). Keyword-only, typed, and callable from
views, the admin and management commands; errors are TokenServiceError."""

from tokens.services.accounts import ensure_demo_account, log_in, log_out, purge_expired, start_login_attempt
from tokens.services.identities import get_or_create_identity, slots_of
from tokens.services.issuance import IssuedAgoraToken, issue_token

__all__ = [
    "IssuedAgoraToken",
    "ensure_demo_account",
    "get_or_create_identity",
    "issue_token",
    "log_in",
    "log_out",
    "purge_expired",
    "slots_of",
    "start_login_attempt",
]
