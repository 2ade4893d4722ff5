"""Who is in a channel now, from the channel events Agora reported (tokens/ncs.py), and how that
compares with Agora's own list.

`replay(events)` is the whole rule, a pure function over events in any order: sorted by
Agora's order (`order_key`), a join makes its uid present with the join's role, a leave ends
it, a role change changes the role, and a channel create or destroy ends everyone's presence
(a session starts again). The selectors below read only what can matter: the channel's events
since its last create or destroy (one index probe), the newest SESSION_EVENTS_LIMIT of them,
and of those only each uid's events from its last join or leave on (a window function in the
database), since what came before cannot change whether, or as what, the uid is in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db.models import Case, DateTimeField, F, Max, Q, Value, When, Window
from django.db.models.functions import Coalesce
from django.utils import timezone

from tokens import agora_rest, ncs, validators
from tokens.choices import NO_RIGHTS
from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity, ChannelEvent
from tokens.policies import admit

logger = logging.getLogger(__name__)

# How many of a session's events a channel's presence considers at most (the newest): a session
# with more is judged from its newest events only, and says so (`complete`).
SESSION_EVENTS_LIMIT = 10_000
# How many of one uid's events in a session the suspect-join check reads at most.
UID_EVENTS_LIMIT = 500

# At one and the same second a channel's create or destroy (both end everyone's presence) comes
# before the users' own events: the first user's join shares its second with the create.
_SESSION_RANK, _USER_RANK = 0, 1


def _small_int(value: object) -> int | None:
    # Payload fields the parser does not check (platform, reason): JSON integers or nothing, as
    # the database's JSON comparison in _from_last_move sees them.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Event:
    """What presence needs of one channel event."""

    id: int
    event_type: int
    uid: int | None
    client_seq: int | None
    occurred_at: datetime
    platform: int | None = None
    reason: int | None = None  # a leave's reason
    user_id: int | None = None
    slot: str = ""

    @classmethod
    def of(cls, row: ChannelEvent) -> Event:
        """A stored (or just inserted) ChannelEvent."""
        payload = (row.notification or {}).get("payload") or {}
        return cls(
            id=row.pk,
            event_type=row.event_type,
            uid=row.uid,
            client_seq=row.client_seq,
            occurred_at=row.occurred_at,
            platform=_small_int(payload.get("platform")),
            reason=_small_int(payload.get("reason")),
            user_id=row.user_id,
            slot=row.slot,
        )


def order_key(event: Event) -> tuple:
    """Agora's order: the time it happened (whole seconds), then at one second a create or
    destroy before the users' events, and those by clientSeq (one user's order); the row id
    last, so the order is total and the same whatever order the events arrived in."""
    rank = _SESSION_RANK if event.event_type in ncs.SESSION_EVENT_TYPES else _USER_RANK
    seq = event.client_seq if event.client_seq is not None else -1
    return (event.occurred_at, rank, seq, event.id)


@dataclass(frozen=True)
class Participant:
    """A uid in the channel: since when, as what, from where, and whose."""

    uid: int
    role: str  # one of ncs.ROLES
    joined_at: datetime
    platform: int | None
    user_id: int | None
    slot: str
    event_id: int  # the join that began this stay (a role change, when its join never came)

    @property
    def platform_name(self) -> str | None:
        if self.platform is None:
            return None
        return ncs.PLATFORMS.get(self.platform, "other")


@dataclass(frozen=True)
class Replay:
    """Who is present after the events, and each join of a uid that was present already."""

    present: dict[int, Participant]
    repeated_joins: list[tuple[Event, Participant]]  # (the join, who was in with that uid)


def replay(events: Iterable[Event]) -> Replay:
    """Play the events in Agora's order: who is present at the end, and which joins came for a
    uid already present (another client with the same uid)."""
    present: dict[int, Participant] = {}
    repeated: list[tuple[Event, Participant]] = []
    for event in sorted(events, key=order_key):
        kind = event.event_type
        if kind in ncs.SESSION_EVENT_TYPES:
            present.clear()
        elif event.uid is None:
            continue
        elif kind in ncs.JOIN_EVENT_TYPES:
            if event.uid in present:
                repeated.append((event, present[event.uid]))
            present[event.uid] = Participant(
                uid=event.uid,
                role=ncs.ROLE_OF[kind],
                joined_at=event.occurred_at,
                platform=event.platform,
                user_id=event.user_id,
                slot=event.slot,
                event_id=event.id,
            )
        elif kind in ncs.LEAVE_EVENT_TYPES:
            # Forced out by a client that joined with the same uid: the uid is still in.
            if event.reason != ncs.LEAVE_REASON_NEW_DEVICE:
                present.pop(event.uid, None)
        elif kind in ncs.ROLE_CHANGE_EVENT_TYPES:
            # Only someone in the channel changes role: one whose join never came is in too.
            staying = present.get(event.uid)
            if staying is None:
                staying = Participant(
                    uid=event.uid,
                    role=ncs.ROLE_OF[kind],
                    joined_at=event.occurred_at,
                    platform=event.platform,
                    user_id=event.user_id,
                    slot=event.slot,
                    event_id=event.id,
                )
            present[event.uid] = replace(staying, role=ncs.ROLE_OF[kind])
        # Any other type (one Agora adds later) says nothing about presence.
    return Replay(present=present, repeated_joins=repeated)


def participants(events: Iterable[Event]) -> list[Participant]:
    """Who is in the channel after `events`, by time of joining."""
    return sorted(replay(events).present.values(), key=lambda p: (p.joined_at, p.uid))


# --- reading the rows ----------------------------------------------------------------------------


def session_start(*, channel: str, at: datetime | None = None) -> datetime | None:
    """When the channel's session (as of `at`, else now) began: its last create or destroy
    Agora reported, or None when it reported none. A MAX over (channel, event_type, occurred_at)
    index entries: no ORDER BY to tempt SQLite, which has no statistics, onto the time index."""
    starts = ChannelEvent.objects.filter(channel=channel, event_type__in=ncs.SESSION_EVENT_TYPES)
    if at is not None:
        starts = starts.filter(occurred_at__lte=at)
    return starts.aggregate(start=Max("occurred_at"))["start"]


def _read(rows) -> list[Event]:
    """The rows as Events, in no particular order (replay sorts them)."""
    fields = ("id", "event_type", "uid", "client_seq", "occurred_at", "user_id", "slot", "notification")
    events = []
    for pk, kind, uid, seq, occurred_at, user_id, slot, body in rows.values_list(*fields):
        payload = body.get("payload") if isinstance(body, dict) else None
        payload = payload if isinstance(payload, dict) else {}
        events.append(
            Event(
                id=pk,
                event_type=kind,
                uid=uid,
                client_seq=seq,
                occurred_at=occurred_at,
                platform=_small_int(payload.get("platform")),
                reason=_small_int(payload.get("reason")),
                user_id=user_id,
                slot=slot,
            )
        )
    return events


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FORCED_OUT = Q(event_type__in=ncs.LEAVE_EVENT_TYPES) & Q(
    notification__payload__reason=ncs.LEAVE_REASON_NEW_DEVICE
)


def _from_last_move(rows):
    """Of each uid's rows, those from its last join or leave on (a leave that only means the uid
    joined again elsewhere is no move): replay gives the same presence from them as from all."""
    move = Case(
        When(_FORCED_OUT, then=Value(None)),
        When(event_type__in=ncs.JOIN_EVENT_TYPES | ncs.LEAVE_EVENT_TYPES, then=F("occurred_at")),
        default=Value(None),
        output_field=DateTimeField(),
    )
    last_move = Window(Max(move), partition_by=[F("uid")])
    # A uid with role changes only (its join never came) keeps them all.
    return rows.annotate(last_move=last_move).filter(occurred_at__gte=Coalesce(F("last_move"), Value(_EPOCH)))


def session_events(*, channel: str) -> tuple[list[Event], bool]:
    """What presence needs of the channel's current session (since its last create or destroy):
    of its newest SESSION_EVENTS_LIMIT events, each uid's from its last join or leave on; and
    whether those were all the session's events."""
    rows = ChannelEvent.objects.filter(channel=channel).order_by()
    start = session_start(channel=channel)
    if start is not None:
        rows = rows.filter(occurred_at__gte=start)
    # The first event beyond the limit, if any (an index-only walk): only newer ones are considered.
    newest = rows.order_by("-occurred_at").values_list("occurred_at", flat=True)
    beyond = next(iter(newest[SESSION_EVENTS_LIMIT : SESSION_EVENTS_LIMIT + 1]), None)
    if beyond is not None:
        rows = rows.filter(occurred_at__gt=beyond)
    return _read(_from_last_move(rows.filter(uid__isnull=False))), beyond is None


def uid_session_events(*, channel: str, uid: int, at: datetime) -> list[Event]:
    """One uid's events in the channel from the start of the session `at` falls in (the newest
    UID_EVENTS_LIMIT), with the creates and destroys among them: two queries, three when the uid
    has events after `at` (delivered before the one at `at`)."""
    start = session_start(channel=channel, at=at)
    rows = ChannelEvent.objects.filter(channel=channel, uid=uid)
    if start is not None:
        rows = rows.filter(occurred_at__gte=start)
    events = _read(rows.order_by("-occurred_at")[:UID_EVENTS_LIMIT])
    latest = max((event.occurred_at for event in events), default=at)
    if latest > at:
        # A later session may have begun in between: its create or destroy ends the uid's stay.
        later = ChannelEvent.objects.filter(
            channel=channel,
            event_type__in=ncs.SESSION_EVENT_TYPES,
            occurred_at__gt=at,
            occurred_at__lte=latest,
        )
        events += _read(later.order_by())
    return events


@dataclass(frozen=True)
class Presence:
    """Who is in a channel, as the events received up to `as_of` say."""

    channel: str
    participants: tuple[Participant, ...]
    as_of: datetime
    complete: bool  # False: the session had more than SESSION_EVENTS_LIMIT events
    usernames: dict[int, str]  # user id -> username, for the participants' users

    def username(self, participant: Participant) -> str | None:
        return self.usernames.get(participant.user_id) if participant.user_id is not None else None


def _usernames(user_ids: Iterable[int]) -> dict[int, str]:
    wanted = {pk for pk in user_ids if pk is not None}
    if not wanted:
        return {}
    model = get_user_model()
    return dict(model.objects.filter(pk__in=wanted).values_list("pk", model.USERNAME_FIELD))


def channel_presence(*, channel: str, now: datetime | None = None) -> Presence:
    """Who is in `channel` now, from the stored events (four queries: the session's start,
    whether it has more than SESSION_EVENTS_LIMIT events, the events presence needs, the
    participants' usernames)."""
    as_of = now or timezone.now()
    events, complete = session_events(channel=channel)
    if not complete:
        logger.warning("presence of %r judged from its newest %d events only", channel, SESSION_EVENTS_LIMIT)
    found = participants(events)
    return Presence(
        channel=channel,
        participants=tuple(found),
        as_of=as_of,
        complete=complete,
        usernames=_usernames(p.user_id for p in found),
    )


# --- the API's view of it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VisibleParticipant:
    """One participant as the caller may see them: everyone's uid, role, time and platform;
    the username and slot only of the caller's own uids, unless the caller is staff."""

    uid: int
    you: bool
    username: str | None
    slot: str | None
    role: str
    joined_at: datetime
    platform: str | None


@dataclass(frozen=True)
class VisiblePresence:
    channel: str
    participants: tuple[VisibleParticipant, ...]
    as_of: datetime


def participants_for(*, user: AbstractBaseUser, channel: str, now: datetime | None = None) -> VisiblePresence:
    """Who is in `channel`, for a user the channel policy admits to it (as a subscriber);
    400 `invalid` for a name Agora would refuse, 403 when the policy refuses."""
    try:
        validators.validate_channel_name(channel)
    except ValidationError as exc:
        raise TokenServiceError.from_validation_error("channel", exc) from None
    admit(user, channel, NO_RIGHTS, now=now or timezone.now())  # as a listener would be admitted
    presence = channel_presence(channel=channel, now=now)
    sees_all = user.is_staff
    shown = []
    for participant in presence.participants:
        you = participant.user_id is not None and participant.user_id == user.pk
        named = you or sees_all
        shown.append(
            VisibleParticipant(
                uid=participant.uid,
                you=you,
                username=presence.username(participant) if named else None,
                slot=(participant.slot or None) if named else None,
                role=participant.role,
                joined_at=participant.joined_at,
                platform=participant.platform_name,
            )
        )
    return VisiblePresence(channel=channel, participants=tuple(shown), as_of=presence.as_of)


# --- compared with Agora's own list ---------------------------------------------------------------


@dataclass(frozen=True)
class AgoraComparison:
    """Our presence beside Agora's channel user list (agora_rest.channel_users)."""

    presence: Presence
    agora: agora_rest.ChannelUsers
    both: tuple[Participant, ...]
    only_ours: tuple[Participant, ...]  # our events say they are in; Agora does not list them
    only_agora: tuple[int, ...]  # Agora lists them; no event of ours says they are in
    owners: dict[int, tuple[str | None, str]]  # uid -> (username, slot) for the uids only Agora lists

    @property
    def partial(self) -> bool:
        """Agora listed only part of a live channel's audience (it lists the first 10,000)."""
        return len(self.agora.audience) < self.agora.audience_total

    def agora_role(self, uid: int) -> str | None:
        if uid in self.agora.broadcasters:
            return ncs.BROADCASTER
        if uid in self.agora.audience:
            return ncs.AUDIENCE
        if uid in self.agora.users:
            return ncs.COMMUNICATION
        return None


def compare_with_agora(*, channel: str, now: datetime | None = None) -> AgoraComparison:
    """Ask Agora who is in `channel` and set it beside what our events say. Blocks for Agora's
    answer; raises agora_rest.AgoraRestError (`not_configured` without REST credentials)."""
    listed = agora_rest.channel_users(channel)
    presence = channel_presence(channel=channel, now=now)
    theirs = listed.uids
    ours = {p.uid for p in presence.participants}
    only_agora = tuple(sorted(theirs - ours))
    owners = {}
    if only_agora:
        identities = AgoraIdentity.objects.filter(uid__in=only_agora).values_list("uid", "user_id", "slot")
        found = list(identities)
        names = _usernames(user_id for _, user_id, _ in found)
        owners = {uid: (names.get(user_id), slot) for uid, user_id, slot in found}
    return AgoraComparison(
        presence=presence,
        agora=listed,
        both=tuple(p for p in presence.participants if p.uid in theirs),
        only_ours=tuple(p for p in presence.participants if p.uid not in theirs),
        only_agora=only_agora,
        owners=owners,
    )
