"""Agora's Channel Management REST API (kick, ban, who is in a channel): the one client module
every call to it goes through. Meant to run in tasks, never on the join path: a call may
take AGORA_REST_TIMEOUT seconds per attempt, AGORA_REST_RETRIES attempts long."""

from tokens.agora_rest.client import (
    AgoraRestError,
    BanRule,
    ChannelMode,
    ChannelUsers,
    ErrorKind,
    Privilege,
    UserRole,
    UserStatus,
    channel_users,
    close,
    create_ban_rule,
    delete_ban_rule,
    list_ban_rules,
    rest_configuration_problems,
    rest_configured,
    rest_not_configured_reason,
    update_ban_rule,
    user_status,
)

__all__ = [
    "AgoraRestError",
    "BanRule",
    "ChannelMode",
    "ChannelUsers",
    "ErrorKind",
    "Privilege",
    "UserRole",
    "UserStatus",
    "channel_users",
    "close",
    "create_ban_rule",
    "delete_ban_rule",
    "list_ban_rules",
    "rest_configuration_problems",
    "rest_configured",
    "rest_not_configured_reason",
    "update_ban_rule",
    "user_status",
]
