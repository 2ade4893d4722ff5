"""Who may get which token: the publisher policy (AGORA_PUBLISHER_POLICY), the channel policy
(AGORA_CHANNEL_POLICY: open, rules, or the dotted path of the app's own callable) and who may
have a channel's recorder token.

Every channel policy has one interface, `(user, channel, role) -> None | ChannelAccess |
iterable of ChannelAccess`, raising TokenServiceError (or Django's PermissionDenied) to refuse.
`role` is "publisher" when the token would publish anything (audio, video or data) and
"subscriber" otherwise, as it always was, so a policy written before per-media roles refuses
every publishing role it refused before. None admits with no limits of the policy's own; a
ChannelAccess says what the caller may publish and when (a meeting window); several (one per
channel rule that admits the caller) grant what those open at the time allow together.
`admit` evaluates the answer at the request's `now`, so a policy never reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.utils.module_loading import import_string

from tokens.choices import ALL_RIGHTS, NO_RIGHTS, Role, rights_of, rights_text
from tokens.exceptions import TokenServiceError
from tokens.models import MAIN_SLOT, AgoraIdentity, ChannelRule

POLICY_OPEN, POLICY_PERMISSION = PUBLISHER_POLICIES = ("open", "permission")
CHANNEL_OPEN, CHANNEL_RULES = "open", "rules"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _named(rights: Iterable[str]) -> str:
    return rights_text(rights).replace(",", ", ") or "nothing"


def publisher_not_allowed(refused: Iterable[str], reason: str) -> TokenServiceError:
    """403: the token would publish what this caller may not (`refused`, named)."""
    named = _named(refused)
    return TokenServiceError(
        "publisher_not_allowed",
        f"role: this account may not publish {named} here.",
        status=403,
        fields={"role": [f"Refused: {named}. {reason}"]},
    )


def may_publish(user: AbstractBaseUser) -> bool:
    """Whether the publisher policy lets this user publish anything at all."""
    policy = settings.AGORA_PUBLISHER_POLICY
    return policy == POLICY_OPEN or (policy == POLICY_PERMISSION and user.has_perm("tokens.publish"))


def check_recorder_allowed(user: AbstractBaseUser) -> None:
    """A channel's recorder token: staff, or the tokens.record permission (a service account)."""
    if not (user.is_staff or user.has_perm("tokens.record")):
        raise TokenServiceError(
            "recorder_not_allowed",
            "A recorder token needs a staff account or the tokens.record permission.",
            status=403,
        )


def channel_not_allowed(channel: str) -> TokenServiceError:
    return TokenServiceError(
        "channel_not_allowed",
        f"channel: this account may not join {channel!r}.",
        status=403,
        fields={"channel": [f"No channel rule admits you to {channel!r}."]},
    )


@dataclass(frozen=True)
class ChannelAccess:
    """What a channel policy admits the caller to: what they may publish, and when (from
    `starts_at` less `early_join_seconds` until `ends_at`; None: no bound)."""

    publish_rights: frozenset[str] = ALL_RIGHTS
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    early_join_seconds: int = 0

    @property
    def opens_at(self) -> datetime | None:
        """When tokens are first given: the start less the early-join margin."""
        return None if self.starts_at is None else self.starts_at - timedelta(seconds=self.early_join_seconds)

    def started(self, now: datetime) -> bool:
        return self.opens_at is None or self.opens_at <= now

    def ended(self, second: int) -> bool:
        # Agora counts whole seconds: a window with less than one left has ended.
        return self.ends_at is not None and int(self.ends_at.timestamp()) <= second


@dataclass(frozen=True)
class Admission:
    """What the policies grant a request: the publish rights, and when its join and its
    publish privileges must end at the latest (None: no bound of the policies' own)."""

    publish_rights: frozenset[str] = NO_RIGHTS
    join_ends_at: datetime | None = None
    publish_ends_at: datetime | None = None


def open_channels(user: AbstractBaseUser, channel: str, role: str) -> None:
    """AGORA_CHANNEL_POLICY=open: any logged-in user, any channel, no windows."""


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


def _main_uid_lookup(user: AbstractBaseUser):
    """A function giving the user's main uid, looked up once, when a pattern names {uid}."""
    uid_cache = []

    def main_uid():
        if not uid_cache:
            uid_cache.append(
                AgoraIdentity.objects.filter(user=user, slot=MAIN_SLOT).values_list("uid", flat=True).first()
            )
        return uid_cache[0]

    return main_uid


def channel_rules(user: AbstractBaseUser, channel: str, role: str) -> tuple[ChannelAccess, ...]:
    """AGORA_CHANNEL_POLICY=rules: the admin's channel rules decide, read on every request (one
    query, one more when a rule names {uid}), so an edited or deleted rule applies to the very
    next request in every process. Each rule that admits the caller is one ChannelAccess: its
    publish rights and its window."""
    admitted = (
        ChannelRule.objects.filter(Q(groups__isnull=True) | Q(groups__user=user))
        .values_list("pattern", "publish_rights", "starts_at", "ends_at", "early_join_seconds")
        .distinct()
    )
    main_uid = _main_uid_lookup(user)
    username = user.get_username()
    accesses = tuple(
        ChannelAccess(rights_of(rights), starts_at, ends_at, early)
        for pattern, rights, starts_at, ends_at, early in admitted
        if _matches(pattern, channel, username, main_uid)
    )
    if not accesses:
        raise channel_not_allowed(channel)
    return accesses


BUILT_IN_CHANNEL_POLICIES = {CHANNEL_OPEN: open_channels, CHANNEL_RULES: channel_rules}


@lru_cache(maxsize=8)
def channel_policy(name: str):
    """The callable AGORA_CHANNEL_POLICY names (built in, or a dotted path)."""
    return BUILT_IN_CHANNEL_POLICIES.get(name) or import_string(name)


def _ask_policy(policy: str, user: AbstractBaseUser, channel: str, rights: frozenset[str]):
    try:
        return channel_policy(policy)(user, channel, Role.PUBLISHER if rights else Role.SUBSCRIBER)
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


def not_started(channel: str, access: ChannelAccess) -> TokenServiceError:
    opens, starts = _iso(access.opens_at), _iso(access.starts_at)
    early = f" (it starts at {starts})" if access.early_join_seconds else ""
    return TokenServiceError(
        "not_started",
        f"channel: {channel!r} opens at {opens}{early}.",
        status=403,
        fields={"channel": [f"Opens at {opens}{early}."], "starts_at": [starts], "opens_at": [opens]},
    )


def ended(channel: str, ends_at: datetime) -> TokenServiceError:
    return TokenServiceError(
        "ended",
        f"channel: {channel!r} ended at {_iso(ends_at)}.",
        status=403,
        fields={"channel": [f"Ended at {_iso(ends_at)}."], "ends_at": [_iso(ends_at)]},
    )


def _latest(ends: Iterable[datetime | None]) -> datetime | None:
    ends = list(ends)
    return None if not ends or None in ends else max(ends)


def _evaluated(answer, channel: str, rights: frozenset[str], *, now: datetime, optional: bool) -> Admission:
    """A channel policy's answer at `now`: the rights granted and the ends that bound them."""
    if answer is None:
        return Admission(rights)
    accesses = (answer,) if isinstance(answer, ChannelAccess) else tuple(answer)
    if not accesses:
        raise channel_not_allowed(channel)
    second = int(now.timestamp())
    live = [a for a in accesses if a.started(now) and not a.ended(second)]
    if not live:
        upcoming = [a for a in accesses if not a.started(now)]
        if upcoming:
            raise not_started(channel, min(upcoming, key=lambda a: a.opens_at))
        raise ended(channel, max(a.ends_at for a in accesses))
    allowed = frozenset().union(*(a.publish_rights for a in live))
    refused = rights - allowed
    if refused and not optional:
        reason = f"The channel rules let you publish {_named(allowed)} in {channel!r} now."
        raise publisher_not_allowed(refused, reason)
    granted = NO_RIGHTS if refused else rights
    # Each right lasts as long as the latest live access that grants it; publishing ends with
    # the first of them to end.
    publish_ends = [_latest(a.ends_at for a in live if right in a.publish_rights) for right in granted]
    bounded = [end for end in publish_ends if end is not None]
    return Admission(
        granted,
        join_ends_at=_latest(a.ends_at for a in live),
        publish_ends_at=min(bounded) if bounded else None,
    )


def admit(
    user: AbstractBaseUser, channel: str, rights: frozenset[str], *, now: datetime, optional: bool = False
) -> Admission:
    """The publisher policy, then the channel policy, for a token of `rights` in `channel` at
    `now`: 403 `publisher_not_allowed`, `channel_not_allowed`, `not_started`, `ended` (or the
    policy's own error) to refuse. `optional`: the rights are a default, not asked for; where
    they are refused the token publishes nothing instead."""
    if rights and not may_publish(user):
        if not optional:
            raise publisher_not_allowed(rights, "Publishing needs the tokens.publish permission.")
        rights = NO_RIGHTS
    policy = settings.AGORA_CHANNEL_POLICY
    if policy == CHANNEL_OPEN:
        return Admission(rights)
    try:
        answer = _ask_policy(policy, user, channel, rights)
    except TokenServiceError:
        # A policy refusing the default rights (an app's own may say so with any error): ask
        # again for a listener, who got exactly that answer before there was a default.
        if not (optional and rights):
            raise
        rights = NO_RIGHTS
        answer = _ask_policy(policy, user, channel, rights)
    return _evaluated(answer, channel, rights, now=now, optional=optional)


def moderates_channel(user: AbstractBaseUser, channel: str) -> bool:
    """Whether a channel rule whose pattern matches `channel` names one of `user`'s groups as
    its moderators: read on every call (one query), as the rules policy reads its rules."""
    patterns = ChannelRule.objects.filter(moderators__user=user).values_list("pattern", flat=True).distinct()
    main_uid = _main_uid_lookup(user)
    username = user.get_username()
    return any(_matches(pattern, channel, username, main_uid) for pattern in patterns)
