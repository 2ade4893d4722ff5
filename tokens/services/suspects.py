"""Leaked-token detection: joins Agora reports that this server's issuance log cannot account for.

Called for each join as it is stored (tokens/services/channel_events.py), in Agora's webhook
request. A join is flagged (a SuspectJoin row, one per reason) when:

- `never_issued`: this server never issued an RTC (or RTC+RTM) token for its uid;
- `no_live_token`: it did, but none for this channel that was valid when the join happened
  (issued_at <= ts < expires_at, each side widened by CLOCK_SKEW);
- `duplicate_client`: presence (tokens/services/presence.py) says the uid was already in the
  channel: Agora lets a second client in with the same uid and drops the first, which is what a
  leaked or shared token looks like. Every join of the uid in the session is judged again when
  another of its joins arrives, so a join delivered late still makes the one after it a
  duplicate. A flag is never withdrawn: see the README for the sequences that can fool it.

Each new flag is counted (agora_suspect_joins_total{reason}), logged, and announced with the
signal tokens.signals.suspect_join_flagged once its row is committed (auto-kick listens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from tokens import agora, metrics, ncs
from tokens.choices import Service, SuspectReason
from tokens.models import ChannelEvent, IssuedToken, SuspectJoin
from tokens.services import presence
from tokens.signals import suspect_join_flagged

logger = logging.getLogger(__name__)

# How far Agora's clock (the join's ts) and ours (a token's issue and expiry times) may differ.
CLOCK_SKEW = timedelta(seconds=30)
_RTC_SERVICES = (Service.RTC, Service.RTC_RTM)
_MOMENT = "%Y-%m-%d %H:%M:%S UTC"


@dataclass(frozen=True)
class Suspicion:
    """One reason to flag one join."""

    join: presence.Event
    reason: str
    detail: str


def token_suspicion(*, join: presence.Event, channel: str) -> Suspicion | None:
    """never_issued or no_live_token, or None when a token for the channel was valid at the
    join (one query; two more only when none was)."""
    at = join.occurred_at
    tokens = IssuedToken.objects.filter(uid=join.uid, service__in=_RTC_SERVICES)
    live = tokens.filter(
        channel=channel,
        issued_at__lte=at + CLOCK_SKEW,
        expires_at__gt=at - CLOCK_SKEW,
        # No token lives longer than Agora's 24 h: older rows need not be read.
        issued_at__gte=at - CLOCK_SKEW - timedelta(seconds=agora.MAX_LIFETIME),
    ).filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=at))  # a revoked token admits no one after
    if live.exists():
        return None
    columns = ("pk", "channel", "issued_at", "expires_at")
    last_here = tokens.filter(channel=channel, issued_at__lte=at + CLOCK_SKEW).order_by("-issued_at")
    row = last_here.values_list(*columns).first()
    if row is not None:
        pk, _, issued_at, expires_at = row
        detail = (
            f"The last token for this channel before the join (audit row #{pk}) was valid "
            f"{issued_at:{_MOMENT}} to {expires_at:{_MOMENT}}; the join was at {at:{_MOMENT}}."
        )
        return Suspicion(join, SuspectReason.NO_LIVE_TOKEN, detail)
    row = tokens.order_by("-issued_at").values_list(*columns).first()
    if row is None:
        return Suspicion(
            join, SuspectReason.NEVER_ISSUED, f"No RTC token was ever issued here for uid {join.uid}."
        )
    pk, other, issued_at, _ = row
    detail = (
        f"No token for this channel was issued for uid {join.uid} before the join; its latest RTC "
        f"token (audit row #{pk}, {issued_at:{_MOMENT}}) is for {other!r}."
    )
    return Suspicion(join, SuspectReason.NO_LIVE_TOKEN, detail)


def duplicate_suspicions(*, join: presence.Event, channel: str) -> list[Suspicion]:
    """duplicate_client for each join of the uid, in the session of `join`, that came while the
    uid was already in the channel (two queries)."""
    events = presence.uid_session_events(channel=channel, uid=join.uid, at=join.occurred_at)
    found = []
    for repeated, staying in presence.replay(events).repeated_joins:
        platform = f", platform {staying.platform_name}" if staying.platform is not None else ""
        detail = (
            f"uid {repeated.uid} was already in the channel since {staying.joined_at:{_MOMENT}} "
            f"(channel event #{staying.event_id}{platform}); Agora drops that client for this one."
        )
        found.append(Suspicion(repeated, SuspectReason.DUPLICATE_CLIENT, detail))
    return found


def suspicions(*, join: presence.Event, channel: str) -> list[Suspicion]:
    """Every reason to flag `join` (and, for duplicate_client, later joins of its uid)."""
    if channel == ncs.HEALTH_TEST_CHANNEL and join.uid == ncs.HEALTH_TEST_UID:
        return []  # Agora's own test event, sent when the callback is saved in its Console
    found = duplicate_suspicions(join=join, channel=channel)
    token = token_suspicion(join=join, channel=channel)
    return [token, *found] if token is not None else found


def _announce(flag: SuspectJoin) -> None:
    """Tell the receivers (auto-kick) about a committed flag; a failing receiver is logged."""
    kick = settings.AGORA_AUTO_KICK_SUSPECT
    for receiver, result in suspect_join_flagged.send_robust(sender=SuspectJoin, flag=flag, kick=kick):
        if isinstance(result, Exception):
            logger.error(
                "suspect join receiver %s failed for flag %s: %r",
                getattr(receiver, "__qualname__", receiver),
                flag.pk,
                result,
                exc_info=result,
            )


def flag_suspect_join(*, event: ChannelEvent, now: datetime) -> list[SuspectJoin]:
    """Flag a stored join that looks like a leaked or shared token; the flags it wrote (none
    for an innocent join: three or four queries in all)."""
    join = presence.Event.of(event)
    written = []
    for suspicion in suspicions(join=join, channel=event.channel):
        joined = suspicion.join
        flag, created = SuspectJoin.objects.get_or_create(
            event_id=joined.id,
            reason=suspicion.reason,
            defaults={
                "channel": event.channel,
                "uid": joined.uid,
                "user_id": joined.user_id,
                "slot": joined.slot,
                "joined_at": joined.occurred_at,
                "detected_at": now,
                "detail": suspicion.detail[: SuspectJoin._meta.get_field("detail").max_length],
            },
        )
        if not created:
            continue  # judged so before (a duplicate found again)
        written.append(flag)
        metrics.count_suspect_join(reason=flag.reason)
        logger.warning(
            "suspect join flagged reason=%s channel=%r uid=%s user_id=%s slot=%s event=%s",
            flag.reason, flag.channel, flag.uid, flag.user_id, flag.slot or "-", flag.event_id,
        )  # fmt: skip
        transaction.on_commit(partial(_announce, flag))
    return written
