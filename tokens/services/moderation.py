"""Moderation: kick, ban and mute users in Agora channels, lift bans, and revoke everything a user
holds (live revocation).

Every action is a row (ModerationAction) written, with the task that carries it out, in one
transaction before Agora is called: the worker (tokens/tasks.py) then asks Agora's REST API for
one ban rule per uid and retries until it is applied or given up, so no action is lost to an
Agora outage or a crash. A ban or mute also takes effect on this server at once: its ChannelBan
row, written in the same transaction, refuses the user's next token for that channel in every
process (the audit row's statement reads it, tokens/joinpath/statements.py).

Bans are per user (every slot uid); Agora's rules are per uid and channel, so one action may
hold several rules. Without AGORA_CUSTOMER_ID and AGORA_CUSTOMER_SECRET nothing here is sent:
requests fail with 503 `moderation_not_configured`, naming the settings.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone
from knox.models import AuthToken

from tokens import agora, validators
from tokens.agora_rest import rest_not_configured_reason
from tokens.agora_rest.client import MINUTES_RANGE, SECONDS_RANGE
from tokens.choices import KIND_PRIVILEGE, LASTING_KINDS, BanPrivilege
from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity, ChannelBan, IssuedToken, ModerationAction, ModerationRule
from tokens.policies import moderates_channel
from tokens.tasks import enqueue_attempt

logger = logging.getLogger(__name__)

Kind, State, Source = ModerationAction.Kind, ModerationAction.State, ModerationAction.Source
MODERATE_PERMISSION = "tokens.moderate"
# Set on a user instance by whoever saves or deletes it (the admin: the admin user), so the
# revocation that deactivating or deleting it brings (tokens/signals.py) names who did it.
REVOKED_BY = "_agora_revoked_by"
# Kinds a request may ask for (a lift is asked for with lift()).
REQUESTABLE_KINDS = (Kind.KICK, Kind.BAN, Kind.MUTE_AUDIO, Kind.MUTE_VIDEO)


# --- who may, and whether it can be done at all ----------------------------------------------


def moderation_not_configured() -> TokenServiceError:
    """The 503 every moderation request gets without Agora's REST credentials, naming them."""
    reason = rest_not_configured_reason()
    return TokenServiceError(
        "moderation_not_configured",
        f"Moderation is off: {reason}. Set a RESTful API key from Agora Console "
        "(AGORA_CUSTOMER_ID, AGORA_CUSTOMER_SECRET).",
        status=503,
    )


def check_configured() -> None:
    """503 `moderation_not_configured` unless Agora's REST API can be called."""
    if rest_not_configured_reason():
        raise moderation_not_configured()


def moderation_allowed(user: AbstractBaseUser, channel: str) -> bool:
    """Whether `user` may moderate `channel`: the tokens.moderate permission, or a member of a
    group a channel rule matching the channel names as its moderators."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    return user.has_perm(MODERATE_PERMISSION) or moderates_channel(user, channel)


def check_moderation_allowed(user: AbstractBaseUser, channel: str) -> None:
    """403 `moderation_not_allowed` unless `user` may moderate `channel`."""
    if not moderation_allowed(user, channel):
        raise TokenServiceError(
            "moderation_not_allowed",
            f"channel: this account may not moderate {channel!r}.",
            status=403,
            fields={
                "channel": [
                    "Moderating needs the tokens.moderate permission, or a channel rule naming "
                    "one of your groups as its moderators."
                ]
            },
        )


# --- requesting an action ----------------------------------------------------------------------


def validated_channel(channel: str) -> str:
    """`channel` if Agora allows the name; 400 `invalid` naming the field otherwise."""
    try:
        validators.validate_channel_name(channel)
    except ValidationError as exc:
        raise TokenServiceError.from_validation_error("channel", exc) from None
    return channel


def _invalid(name: str, message: str) -> TokenServiceError:
    return TokenServiceError("invalid", f"{name}: {message}", fields={name: [message]})


def _duration(kind: str, minutes: int | None, seconds: int | None) -> int:
    """The action's length in seconds: 0 for a kick; a ban or mute needs `minutes` (1..1440,
    Agora's `time`) or `seconds` (10..86430, its `time_in_seconds`)."""
    if kind == Kind.KICK:
        if minutes or seconds:
            raise _invalid("minutes", "A kick lasts no time: ban for a duration instead.")
        return 0
    if minutes is not None:
        low, high = MINUTES_RANGE
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not low <= minutes <= high:
            raise _invalid("minutes", f"Must be within {low}..{high} (got {minutes!r}).")
        return minutes * 60
    if seconds is not None:
        low, high = SECONDS_RANGE
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
            raise _invalid("seconds", f"Must be within {low}..{high} (got {seconds!r}).")
        return seconds
    raise _invalid("minutes", f"A {kind.replace('_', ' ')} needs its duration in minutes.")


def _name(user: AbstractBaseUser | None) -> str:
    return user.get_username() if user is not None else ""


def uids_of(user: AbstractBaseUser) -> list[int]:
    """Every uid of the user, one per slot, main first."""
    return list(
        AgoraIdentity.objects.filter(user=user).order_by("created_at", "id").values_list("uid", flat=True)
    )


def find_target(
    *, user: AbstractBaseUser | None = None, username: str | None = None, uid: int | None = None
) -> AbstractBaseUser:
    """The user a request names: as a user, by username, or by one of their uids; 404
    `not_found` naming the field when there is no such user."""
    if user is not None:
        return user
    user_model = get_user_model()
    if username is not None:
        found = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        if found is None:
            raise TokenServiceError(
                "not_found", f"username: no user named {username!r}.", status=404,
                fields={"username": ["No such user."]},
            )  # fmt: skip
        return found
    identity = AgoraIdentity.objects.filter(uid=uid, user__isnull=False).select_related("user").first()
    if identity is None:
        raise TokenServiceError(
            "not_found", f"uid: no user of this server has uid {uid}.", status=404,
            fields={"uid": ["No user of this server has this uid."]},
        )  # fmt: skip
    return identity.user


def _create(
    *, kind: str, channel: str, user: AbstractBaseUser | None, uids: list[int], seconds: int, reason: str,
    requested_by: AbstractBaseUser | None, source: str, now: datetime, username: str | None = None,
    lifts: ModerationAction | None = None,
) -> ModerationAction:  # fmt: skip
    """The action, its rules to make, its ChannelBan (a ban or mute of a user) and its first
    task, in the caller's transaction."""
    lasting = kind in LASTING_KINDS
    action = ModerationAction.objects.create(
        requested_at=now, requested_by=requested_by, requested_by_name=_name(requested_by), source=source,
        kind=kind, channel=channel, user=user, username=_name(user) if username is None else username,
        uids=uids, seconds=seconds, ends_at=now + timedelta(seconds=seconds) if lasting else None,
        reason=reason[:200], lifts=lifts, next_attempt_at=now,
    )  # fmt: skip
    ModerationRule.objects.bulk_create([ModerationRule(action=action, uid=uid) for uid in uids])
    if lasting and user is not None:
        ChannelBan.objects.create(
            user=user, channel=channel, privilege=KIND_PRIVILEGE[kind], ends_at=action.ends_at, action=action
        )
    enqueue_attempt(action, at=now)
    logger.info(
        "moderation %s requested id=%s channel=%r user=%s uids=%s seconds=%s by=%s source=%s",
        kind, action.pk, channel, action.username, uids, seconds, action.requested_by_name or "-", source,
    )  # fmt: skip
    return action


def moderate(
    *,
    channel: str,
    kind: str,
    user: AbstractBaseUser | None = None,
    username: str | None = None,
    uid: int | None = None,
    minutes: int | None = None,
    seconds: int | None = None,
    reason: str = "",
    requested_by: AbstractBaseUser | None = None,
    source: str = Source.API,
    now: datetime | None = None,
) -> ModerationAction:
    """Kick a user (`user`, or named by `username` or one of their uids) out of `channel`, or
    ban them from it (or from publishing audio or video: a mute) for `minutes` or `seconds`,
    on every uid they have (every slot). The action is stored and its task enqueued before
    this returns; Agora is asked by the worker. A ban or mute refuses the user's next token for
    the channel at once."""
    check_configured()
    validated_channel(channel)
    if kind not in REQUESTABLE_KINDS:
        raise _invalid("action", f"Must be one of {', '.join(REQUESTABLE_KINDS)}.")
    length = _duration(kind, minutes, seconds)
    user = find_target(user=user, username=username, uid=uid)
    now = now or timezone.now()
    with transaction.atomic():
        return _create(
            kind=kind, channel=channel, user=user, uids=uids_of(user), seconds=length, reason=reason,
            requested_by=requested_by, source=source, now=now,
        )  # fmt: skip


def kick_uid(
    *, channel: str, uid: int, reason: str, requested_by: AbstractBaseUser | None = None
) -> ModerationAction:
    """Kick one uid out of `channel`, whoever owns it (a uid this server never issued
    included): for the server's own uses, such as a leaked token's uid."""
    check_configured()
    validated_channel(channel)
    if isinstance(uid, bool) or not isinstance(uid, int) or not agora.UID_MIN <= uid <= agora.UID_MAX:
        raise _invalid("uid", f"Must be within {agora.UID_MIN}..{agora.UID_MAX} (got {uid!r}).")
    owner = AgoraIdentity.objects.filter(uid=uid).values_list("user", flat=True).first()
    user = get_user_model().objects.filter(pk=owner).first() if owner is not None else None
    source = Source.SYSTEM if requested_by is None else Source.ADMIN
    with transaction.atomic():
        return _create(
            kind=Kind.KICK, channel=channel, user=user, uids=[uid], seconds=0, reason=reason,
            requested_by=requested_by, source=source, now=timezone.now(),
        )  # fmt: skip


# --- lifting -------------------------------------------------------------------------------------


def active_bans(*, channel: str | None = None, user: AbstractBaseUser | None = None, now=None) -> QuerySet:
    """Bans and mutes not lifted, failed or ended (pending ones included: the server enforces
    them already), newest first."""
    now = now or timezone.now()
    found = ModerationAction.objects.filter(
        kind__in=LASTING_KINDS, state__in=[State.PENDING, State.APPLIED], ends_at__gt=now
    )
    if channel is not None:
        found = found.filter(channel=channel)
    if user is not None:
        found = found.filter(user=user)
    return found.select_related("requested_by")


def lift_action(
    *, action: ModerationAction, requested_by: AbstractBaseUser | None = None, source: str = Source.API,
    reason: str = "", now: datetime | None = None,
) -> ModerationAction:  # fmt: skip
    """Lift one ban or mute: the server stops refusing at once, and a lift action, carried out
    by the worker like any other, deletes its rules at Agora. The lift action."""
    check_configured()
    now = now or timezone.now()
    with transaction.atomic():
        target = ModerationAction.objects.select_for_update().get(pk=action.pk)
        if not target.lasting or target.state not in (State.PENDING, State.APPLIED, State.FAILED):
            raise TokenServiceError(
                "not_liftable",
                f"action: this {target.get_kind_display().lower()} is {target.get_state_display().lower()}; "
                "only a ban or mute not lifted yet can be.",
                status=409,
                fields={"action": ["Not a ban or mute that can be lifted."]},
            )
        target.state, target.lifted_at, target.lifted_by = State.LIFTED, now, requested_by
        target.save(update_fields=["state", "lifted_at", "lifted_by"])
        ChannelBan.objects.filter(action=target).delete()
        return _create(
            kind=Kind.LIFT, channel=target.channel, user=target.user, uids=[], seconds=0, reason=reason,
            requested_by=requested_by, source=source, now=now, username=target.username,
            lifts=target,
        )  # fmt: skip


def lift(
    *, channel: str, user: AbstractBaseUser | None = None, username: str | None = None,
    uid: int | None = None, kind: str | None = None, requested_by: AbstractBaseUser | None = None,
    source: str = Source.API, reason: str = "", now: datetime | None = None,
) -> list[ModerationAction]:  # fmt: skip
    """Lift every active ban and mute of a user (as for `moderate`) in `channel` (only those of
    `kind`, if given); 404 `not_found` when there is none. The lift actions."""
    check_configured()
    validated_channel(channel)
    if kind is not None and kind not in LASTING_KINDS:
        raise _invalid("action", f"Only a ban or mute can be lifted: {', '.join(LASTING_KINDS)}.")
    user = find_target(user=user, username=username, uid=uid)
    now = now or timezone.now()
    targets = active_bans(channel=channel, user=user, now=now)
    if kind is not None:
        targets = targets.filter(kind=kind)
    targets = list(targets)
    if not targets:
        raise TokenServiceError(
            "not_found",
            f"{user.get_username()!r} has no active ban or mute in {channel!r}.",
            status=404,
            fields={"username": ["No active ban or mute in this channel."]},
        )
    return [
        lift_action(action=target, requested_by=requested_by, source=source, reason=reason, now=now)
        for target in targets
    ]


# --- the join path's refusal ---------------------------------------------------------------------


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ban_refusal(
    *, user: AbstractBaseUser, channel: str, rights: frozenset[str], now: datetime
) -> TokenServiceError:
    """The 403 `banned` of a token the audit row's statement refused for a ban: naming the
    channel, and for a mute the media the token (with these publish `rights`) would have
    carried."""
    privileges = [BanPrivilege.JOIN_CHANNEL]
    if agora.PUBLISH_AUDIO in rights:
        privileges.append(BanPrivilege.PUBLISH_AUDIO)
    if agora.PUBLISH_VIDEO in rights:
        privileges.append(BanPrivilege.PUBLISH_VIDEO)
    ends = dict(
        ChannelBan.objects.filter(user_id=user.pk, channel=channel, ends_at__gt=now, privilege__in=privileges)
        .values("privilege")
        .annotate(until=Max("ends_at"))
        .values_list("privilege", "until")
    )
    if BanPrivilege.JOIN_CHANNEL in ends:
        until = _utc(ends[BanPrivilege.JOIN_CHANNEL])
        return TokenServiceError(
            "banned",
            f"channel: you are banned from {channel!r} until {until}.",
            status=403,
            fields={"channel": [f"Banned from this channel until {until}."]},
        )
    muted = [
        name
        for privilege, name in (("publish_audio", "audio"), ("publish_video", "video"))
        if privilege in ends
    ]
    if not muted:  # the ban ended between the statement and this look
        return TokenServiceError(
            "banned",
            f"channel: a ban in {channel!r} refused this token and has ended since; ask again.",
            status=403,
            fields={"channel": ["A ban refused this token; it has ended since."]},
        )
    until = _utc(max(ends[f"publish_{name}"] for name in muted))
    media = " and ".join(muted)
    return TokenServiceError(
        "banned",
        f"channel: you are muted ({media}) in {channel!r} until {until}; tokens that do not publish it are "
        "still issued.",
        status=403,
        fields={
            "channel": [f"Muted in this channel ({media}) until {until}."],
            "role": [
                f"Ask for a role that does not publish {media} (subscriber), or wait until the mute ends."
            ],
        },
    )


def purge_ended_bans(*, now: datetime | None = None) -> int:
    """Delete ChannelBan rows whose ban has ended (the join path ignores them already)."""
    deleted, _ = ChannelBan.objects.filter(ends_at__lte=now or timezone.now()).delete()
    return deleted


# --- live revocation --------------------------------------------------------------------------


@dataclass(frozen=True)
class RevocationPlan:
    """What revoking a user takes away, read before anything changes (a deletion sets the
    audit rows' user to NULL): their uids, each channel they hold a live token for with the
    latest expiry there, and those tokens' audit rows."""

    user_id: int
    username: str
    uids: list[int]
    channels: dict[str, datetime]  # channel -> when its latest unexpired token expires
    token_ids: list[int]


@dataclass(frozen=True)
class Revocation:
    """What a revocation did: the bans requested, API keys deleted, audit rows marked revoked;
    `skipped`, why no ban was sent (REST credentials missing), else empty."""

    actions: list[ModerationAction] = field(default_factory=list)
    api_keys: int = 0
    tokens: int = 0
    skipped: str = ""


def revocation_plan(*, user: AbstractBaseUser, now: datetime | None = None) -> RevocationPlan:
    """The user's uids and every channel with an unexpired RTC or RTC+RTM token of theirs (from
    the audit log: the newest rows of their index, tokens living at most 24 h)."""
    now = now or timezone.now()
    live = IssuedToken.objects.filter(
        user=user, expires_at__gt=now, issued_at__gt=now - timedelta(seconds=agora.MAX_LIFETIME)
    ).exclude(channel="")
    rows = list(live.values_list("id", "channel", "expires_at"))
    channels: dict[str, datetime] = {}
    for _, channel, expires_at in rows:
        channels[channel] = max(expires_at, channels.get(channel, expires_at))
    return RevocationPlan(
        user_id=user.pk, username=user.get_username(), uids=uids_of(user),
        channels=dict(sorted(channels.items())), token_ids=[row[0] for row in rows],
    )  # fmt: skip


def _ban_seconds(until: datetime, now: datetime) -> int:
    low, high = SECONDS_RANGE
    return min(high, max(low, math.ceil((until - now).total_seconds())))


def apply_revocation(
    plan: RevocationPlan, *, user: AbstractBaseUser | None, requested_by: AbstractBaseUser | None = None,
    reason: str, now: datetime | None = None,
) -> Revocation:  # fmt: skip
    """Ban every uid in the plan from each of its channels for as long as the latest token
    there lives, and mark those tokens' audit rows revoked; `user`: the user still there (None
    once deleted: the bans are at Agora only, since a deleted user gets no token anyway)."""
    now = now or timezone.now()
    problem = rest_not_configured_reason()
    if problem:
        logger.warning("revocation of %s: no Agora bans sent (%s)", plan.username, problem)
        return Revocation(skipped=problem)
    actions = []
    with transaction.atomic():
        for channel, until in plan.channels.items():
            ban = _create(
                kind=Kind.BAN, channel=channel, user=user, uids=plan.uids, seconds=_ban_seconds(until, now),
                reason=reason, requested_by=requested_by, source=Source.REVOCATION, now=now,
                username=plan.username,
            )  # fmt: skip
            actions.append(ban)
        # The audit log is append-only: these two columns are the one update it takes.
        tokens = IssuedToken.objects.filter(pk__in=plan.token_ids, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=requested_by
        )
    return Revocation(actions=actions, tokens=tokens)


def revoke_everything(
    *, user: AbstractBaseUser, requested_by: AbstractBaseUser | None = None, reason: str = "",
    now: datetime | None = None,
) -> Revocation:  # fmt: skip
    """Take back all a user holds: their API keys deleted, and every uid of theirs banned from
    every channel they hold an unexpired token for, as long as that token lives. Deactivating
    or deleting a user does this (tokens/signals.py); logging out does not."""
    now = now or timezone.now()
    with transaction.atomic():
        api_keys, _ = AuthToken.objects.filter(user=user).delete()
        plan = revocation_plan(user=user, now=now)
        done = apply_revocation(
            plan, user=user, requested_by=requested_by, reason=reason or "access revoked", now=now
        )
    logger.info(
        "revoked user=%s api_keys=%d bans=%d tokens=%d by=%s",
        plan.username, api_keys, len(done.actions), done.tokens, _name(requested_by) or "-",
    )  # fmt: skip
    return Revocation(actions=done.actions, api_keys=api_keys, tokens=done.tokens, skipped=done.skipped)
