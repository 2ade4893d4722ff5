"""Who may get which token: the publisher policy (AGORA_PUBLISHER_POLICY) and the channel
policy (AGORA_CHANNEL_POLICY: open, rules, or the dotted path of the app's own callable).

Every channel policy has one interface, `(user, channel, role) -> None`, raising
TokenServiceError (or Django's PermissionDenied) to refuse; the built-in ones below use it too.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.utils.module_loading import import_string

from tokens.exceptions import TokenServiceError
from tokens.models import MAIN_SLOT, AgoraIdentity, ChannelRule, IssuedToken

POLICY_OPEN, POLICY_PERMISSION = PUBLISHER_POLICIES = ("open", "permission")
CHANNEL_OPEN, CHANNEL_RULES = "open", "rules"
Role = IssuedToken.Role


def publisher_not_allowed(reason: str) -> TokenServiceError:
    return TokenServiceError(
        "publisher_not_allowed",
        "role: this account may not request publisher tokens here.",
        status=403,
        fields={"role": [reason]},
    )


def check_publisher_allowed(user: AbstractBaseUser) -> None:
    """403 `publisher_not_allowed` unless the publisher policy lets this user publish."""
    policy = settings.AGORA_PUBLISHER_POLICY
    if policy == POLICY_OPEN:
        return
    if policy == POLICY_PERMISSION and user.has_perm("tokens.publish"):
        return
    raise publisher_not_allowed("Publisher tokens need the tokens.publish permission.")


def channel_not_allowed(channel: str) -> TokenServiceError:
    return TokenServiceError(
        "channel_not_allowed",
        f"channel: this account may not join {channel!r}.",
        status=403,
        fields={"channel": [f"No channel rule admits you to {channel!r}."]},
    )


def open_channels(user: AbstractBaseUser, channel: str, role: str) -> None:
    """AGORA_CHANNEL_POLICY=open: any logged-in user, any channel."""


def _matches(pattern: str, channel: str, username: str, main_uid) -> bool:
    if "{uid}" in pattern:
        uid = main_uid()
        if uid is None:
            return False
        pattern = pattern.replace("{uid}", str(uid))
    pattern = pattern.replace("{username}", username)
    if pattern.endswith("*"):
        return channel.startswith(pattern[:-1])
    return channel == pattern


def channel_rules(user: AbstractBaseUser, channel: str, role: str) -> None:
    """AGORA_CHANNEL_POLICY=rules: the admin's channel rules decide, read on every request (one
    query, one more when a rule names {uid}), so an edited or deleted rule applies to the very
    next request in every process."""
    admitted = (
        ChannelRule.objects.filter(Q(groups__isnull=True) | Q(groups__user=user))
        .values_list("pattern", "max_role")
        .distinct()
    )
    uid_cache = []

    def main_uid():
        if not uid_cache:
            uid_cache.append(
                AgoraIdentity.objects.filter(user=user, slot=MAIN_SLOT).values_list("uid", flat=True).first()
            )
        return uid_cache[0]

    username = user.get_username()
    roles = {max_role for pattern, max_role in admitted if _matches(pattern, channel, username, main_uid)}
    if not roles:
        raise channel_not_allowed(channel)
    if role == Role.PUBLISHER and Role.PUBLISHER not in roles:
        raise publisher_not_allowed(f"The channel rules admit you to {channel!r} as a subscriber only.")


BUILT_IN_CHANNEL_POLICIES = {CHANNEL_OPEN: open_channels, CHANNEL_RULES: channel_rules}


@lru_cache(maxsize=8)
def channel_policy(name: str):
    """The callable AGORA_CHANNEL_POLICY names (built in, or a dotted path)."""
    return BUILT_IN_CHANNEL_POLICIES.get(name) or import_string(name)


def check_channel_allowed(user: AbstractBaseUser, channel: str, role: str) -> None:
    """Ask the channel policy; 403 `channel_not_allowed` (or the policy's own error) to refuse."""
    policy = settings.AGORA_CHANNEL_POLICY
    if policy == CHANNEL_OPEN:
        return
    try:
        channel_policy(policy)(user, channel, role)
    except PermissionDenied as exc:
        refusal = channel_not_allowed(channel)
        if str(exc):
            refusal.fields["channel"] = [str(exc)]
        raise refusal from None


def check_chat_app_allowed(user: AbstractBaseUser) -> None:
    """403 `chat_app_not_allowed` unless the user is staff with the tokens.chat_app permission
    (superusers hold every permission): an Agora Chat app token administers the whole Chat app
    through Chat's REST API, so it is for the app server's operators, never a client."""
    if user.is_staff and user.has_perm("tokens.chat_app"):
        return
    raise TokenServiceError(
        "chat_app_not_allowed",
        "An Agora Chat app token needs a staff account with the tokens.chat_app permission.",
        status=403,
    )
