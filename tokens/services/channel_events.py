"""Channel events from Agora Notifications: each stored once, its uid traced to our user, each
join checked against the issuance log (tokens/services/suspects.py)."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum

from django.db import connection
from django.utils import timezone

from tokens import ncs
from tokens.models import AgoraIdentity, ChannelEvent
from tokens.services import suspects

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # a resend of a stored noticeId
    IGNORED = "ignored"  # another Agora product's notification, not a channel event


def _insert_once(event: ChannelEvent) -> int | None:
    """INSERT the row unless its noticeId is stored: one statement, safe under concurrent
    resends (the loser waits for the winner's commit, then inserts nothing), no exception and
    no savepoint. The new row's id when this call stored it, else None."""
    meta = ChannelEvent._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    # Only quoted names from the model go into the text; every value is a parameter.
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({quote(meta.get_field('notice_id').column)}) DO NOTHING "
        f"RETURNING {quote(meta.pk.column)}"
    )
    params = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def _look_for_suspects(event: ChannelEvent, *, now: datetime) -> None:
    """Flag a join that looks like a leaked or shared token. The event is stored already and
    Agora resends what is not answered 200: a failure here is logged, never the answer."""
    try:
        suspects.flag_suspect_join(event=event, now=now)
    except Exception:
        logger.exception("suspect join check failed notice=%r", event.notice_id)


def record_channel_event(*, notification: ncs.Notification, now: datetime | None = None) -> Outcome:
    """File one verified notification, once per noticeId, with the user and slot that own its
    uid (none for a uid this server never issued). Other products' notifications are ignored."""
    if notification.product_id != ncs.RTC_PRODUCT_ID:
        logger.info(
            "agora notification ignored notice=%r product=%s type=%s",
            notification.notice_id,
            notification.product_id,
            notification.event_type,
        )
        return Outcome.IGNORED
    received_at = now or timezone.now()
    user_id, slot = None, ""
    if notification.uid is not None:
        owner = AgoraIdentity.objects.filter(uid=notification.uid).values_list("user_id", "slot").first()
        if owner is not None:
            user_id, slot = owner
    event = ChannelEvent(
        notice_id=notification.notice_id,
        event_type=notification.event_type,
        channel=notification.channel,
        uid=notification.uid,
        user_id=user_id,
        slot=slot,
        client_seq=notification.client_seq,
        occurred_at=notification.occurred_at or received_at,
        received_at=received_at,
        notification=notification.body,
    )
    event.pk = _insert_once(event)
    if event.pk is None:
        logger.info("agora channel event already stored notice=%r", notification.notice_id)
        return Outcome.DUPLICATE
    logger.info(
        "agora channel event stored notice=%r type=%s channel=%r uid=%s user_id=%s slot=%s",
        notification.notice_id,
        notification.event_type,
        notification.channel,
        notification.uid,
        user_id,
        slot or "-",
    )
    if event.event_type in ncs.JOIN_EVENT_TYPES:
        _look_for_suspects(event, now=received_at)
    return Outcome.STORED
