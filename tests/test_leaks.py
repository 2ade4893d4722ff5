"""Leaked-token detection: each reason (never_issued, no_live_token, duplicate_client) comes from
its scripted sequence of signed notifications and not from the innocent sequence beside it; the
flags are counted, announced once committed (auto-kick), never fail the webhook, and are listed
read-only in the admin."""

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from tests.helpers import NCS_SECRET, TS, Script, at, counted, deliver, scrape
from tokens import ncs
from tokens.models import ChannelEvent, SuspectJoin
from tokens.services import get_or_create_identity, issue_token, suspects
from tokens.signals import suspect_join_flagged

pytestmark = pytest.mark.django_db

FLAGS = reverse("admin:tokens_suspectjoin_changelist")
EVENTS = reverse("admin:tokens_channelevent_changelist")
HOUR = 3600


@pytest.fixture(autouse=True)
def _ncs_on(settings):
    settings.AGORA_NCS_SECRET = NCS_SECRET


def flags() -> list[tuple]:
    """(notice id, reason) of every flag, in the order of their joins."""
    rows = SuspectJoin.objects.order_by("joined_at", "event_id", "reason")
    return list(rows.values_list("event__notice_id", "reason"))


def token(user, *, channel, at_ts=TS - 60, lifetime=HOUR, service="rtc", slot="main"):
    return issue_token(
        service=service, user=user, channel=channel, expires_in=lifetime, slot=slot, now=at(at_ts)
    )


# --- each reason beside its innocent twin ---------------------------------------------------------
# Each script takes (user, room) and returns the noticeIds it expects flagged, with the reason.


def got_a_token_then_joined(user, room):
    uid = token(user, channel=room.channel).uid
    room.send(room.create(TS), room.join(uid, TS))
    return []


def joined_with_a_uid_never_issued_here(user, room):
    token(user, channel=room.channel)
    join = room.join(4242, TS)
    room.send(room.create(TS), join)
    return [(join["noticeId"], "never_issued")]


def joined_with_an_rtm_token_only(user, room):
    uid = token(user, channel="", service="rtm").uid
    join = room.join(uid, TS)
    room.send(join)
    return [(join["noticeId"], "never_issued")]


def renewed_before_expiry_then_rejoined(user, room):
    uid = token(user, channel=room.channel, at_ts=TS - 60).uid  # valid until TS + 3540
    token(user, channel=room.channel, at_ts=TS + 3500)  # the renewal, valid until TS + 7100
    room.send(room.join(uid, TS), room.leave(uid, TS + 4000), room.join(uid, TS + 5000))
    return []


def rejoined_after_the_token_expired(user, room):
    uid = token(user, channel=room.channel, at_ts=TS - 60).uid  # valid until TS + 3540, never renewed
    rejoin = room.join(uid, TS + 5000)
    room.send(room.join(uid, TS), room.leave(uid, TS + 4000), rejoin)
    return [(rejoin["noticeId"], "no_live_token")]


def joined_with_a_token_for_another_channel(user, room):
    uid = token(user, channel="backstage").uid
    join = room.join(uid, TS)
    room.send(join)
    return [(join["noticeId"], "no_live_token")]


def joined_before_the_token_was_issued(user, room):
    uid = token(user, channel=room.channel, at_ts=TS + 3600).uid  # a token issued an hour after the join
    join = room.join(uid, TS)
    room.send(join)
    return [(join["noticeId"], "no_live_token")]


def rejoined_after_a_leave(user, room):
    uid = token(user, channel=room.channel).uid
    room.send(room.join(uid, TS), room.leave(uid, TS + 60), room.join(uid, TS + 120, platform=1))
    return []


def joined_again_from_a_second_client(user, room):
    uid = token(user, channel=room.channel).uid
    second = room.join(uid, TS + 120, platform=1)
    # Agora drops the first client as the second joins: that leave says reason 5.
    dropped = room.leave(uid, TS + 120, reason=ncs.LEAVE_REASON_NEW_DEVICE)
    room.send(room.join(uid, TS), second, dropped)
    return [(second["noticeId"], "duplicate_client")]


def rejoined_in_a_new_session_after_a_lost_leave(user, room):
    uid = token(user, channel=room.channel, lifetime=24 * HOUR).uid
    # The leave never arrives; the channel is destroyed (the last one left) and made again.
    room.send(room.create(TS), room.join(uid, TS), room.destroy(TS + 60))
    room.send(room.create(TS + 600), room.join(uid, TS + 600))
    return []


def second_client_whose_first_join_arrived_late(user, room):
    uid = token(user, channel=room.channel).uid
    first, second = room.join(uid, TS), room.join(uid, TS + 120, platform=1)
    room.send(second, first)  # the second join is judged again when the first arrives
    return [(second["noticeId"], "duplicate_client")]


@pytest.mark.parametrize(
    ("suspect", "innocent"),
    [
        (joined_with_a_uid_never_issued_here, got_a_token_then_joined),
        (joined_with_an_rtm_token_only, got_a_token_then_joined),
        (rejoined_after_the_token_expired, renewed_before_expiry_then_rejoined),
        (joined_with_a_token_for_another_channel, got_a_token_then_joined),
        (joined_before_the_token_was_issued, got_a_token_then_joined),
        (joined_again_from_a_second_client, rejoined_after_a_leave),
        (second_client_whose_first_join_arrived_late, rejoined_after_a_leave),
        (joined_again_from_a_second_client, rejoined_in_a_new_session_after_a_lost_leave),
    ],
    ids=lambda script: script.__name__,
)
def test_each_reason_comes_from_its_sequence_and_not_from_the_innocent_one(
    suspect, innocent, user, django_user_model
):
    expected = suspect(user, Script("lobby"))
    assert expected
    assert flags() == expected
    other = django_user_model.objects.create_user("other")
    assert innocent(other, Script("stage")) == []
    assert flags() == expected  # the innocent channel added none


def test_a_late_join_from_an_earlier_session_makes_no_later_join_a_duplicate(user):
    uid = token(user, channel="lobby", lifetime=24 * HOUR).uid
    lobby = Script("lobby")
    first, second = lobby.join(uid, TS), lobby.join(uid, TS + 100)
    # The first stay's leave is lost; the channel was destroyed and made again in between.
    lobby.send(lobby.create(TS), lobby.destroy(TS + 50), lobby.create(TS + 100), second)
    lobby.send(first)  # delivered last: judged with the uid's later events and sessions
    assert flags() == []
    lobby.send(lobby.join(uid, TS + 120))  # but a second client in the later session is one
    assert flags() == [("lobby:6", "duplicate_client")]


def test_a_flag_names_the_join_its_owner_and_what_the_rule_found(user):
    uid = token(
        user, channel="lobby", at_ts=TS - 60, slot="phone"
    ).uid  # audit row valid TS - 60 .. TS + 3540
    lobby = Script("lobby")
    lobby.send(lobby.join(uid, TS + 5000, event_type=105))
    flag = SuspectJoin.objects.get()
    event = ChannelEvent.objects.get()
    audit = user.issued_agora_tokens.get()
    assert (flag.event, flag.reason, flag.channel, flag.uid, flag.user, flag.slot, flag.joined_at) == (
        event,
        "no_live_token",
        "lobby",
        uid,
        user,
        "phone",
        at(TS + 5000),
    )
    assert flag.detail == (
        f"The last token for this channel before the join (audit row #{audit.pk}) was valid "
        "2026-03-01 11:59:00 UTC to 2026-03-01 12:59:00 UTC; the join was at 2026-03-01 13:23:20 UTC."
    )


def test_a_duplicate_flag_names_the_client_already_in(user):
    uid = token(user, channel="lobby").uid
    lobby = Script("lobby")
    first = lobby.join(uid, TS, platform=2)
    lobby.send(first, lobby.join(uid, TS + 30, platform=7))
    flag = SuspectJoin.objects.get()
    first_event = ChannelEvent.objects.get(notice_id=first["noticeId"])
    assert flag.detail == (
        f"uid {uid} was already in the channel since 2026-03-01 12:00:00 UTC (channel event "
        f"#{first_event.pk}, platform ios); Agora drops that client for this one."
    )


@pytest.mark.parametrize(
    ("join_ts", "flagged"),
    [
        (TS - 60 - 29, False),  # 29 s before issue: within the clock skew
        (TS - 60 - 31, True),
        (TS - 60 + HOUR + 29, False),  # 29 s after expiry: within the clock skew
        (TS - 60 + HOUR + 31, True),
    ],
)
def test_a_token_counts_as_live_within_the_clock_skew_of_its_issue_and_expiry(user, join_ts, flagged):
    assert timedelta(seconds=30) == suspects.CLOCK_SKEW
    uid = token(user, channel="lobby", at_ts=TS - 60).uid
    Script("lobby").send(Script("lobby").join(uid, join_ts))
    assert SuspectJoin.objects.filter(reason="no_live_token").exists() is flagged


def test_agoras_health_test_event_is_never_flagged():
    join = Script(ncs.HEALTH_TEST_CHANNEL).join(ncs.HEALTH_TEST_UID, TS)
    assert Script.send(join) == ["stored"]
    assert flags() == []
    Script.send(Script(ncs.HEALTH_TEST_CHANNEL).join(4242, TS + 1) | {"noticeId": "other"})
    assert [reason for _, reason in flags()] == ["never_issued"]


def test_leaves_role_changes_and_channel_events_are_never_flagged():
    lobby = Script("lobby")
    lobby.send(lobby.create(TS), lobby.role(4242, TS + 1, to_broadcaster=True), lobby.leave(4243, TS + 2))
    lobby.send(lobby.destroy(TS + 3))
    assert flags() == []


def test_a_resent_join_is_flagged_once_and_counted_once(settings):
    settings.METRICS_ENABLED = True
    before = scrape()
    join = Script("lobby").join(4242, TS)
    assert Script.send(join, join, {**join, "notifyMs": join["notifyMs"] + 5000}) == [
        "stored",
        "duplicate",
        "duplicate",
    ]
    assert len(flags()) == 1
    assert counted(before, scrape(), "agora_suspect_joins_total", "reason") == {("never_issued",): 1}


def test_a_duplicate_found_again_by_a_later_join_is_flagged_counted_and_announced_once(
    user, settings, announced, django_capture_on_commit_callbacks
):
    settings.METRICS_ENABLED = True
    before = scrape()
    uid = token(user, channel="lobby").uid
    lobby = Script("lobby")
    with django_capture_on_commit_callbacks(execute=True):
        # The third join finds the second's duplicate again, beside its own.
        lobby.send(lobby.join(uid, TS), lobby.join(uid, TS + 10), lobby.join(uid, TS + 20))
    assert flags() == [("lobby:2", "duplicate_client"), ("lobby:3", "duplicate_client")]
    assert counted(before, scrape(), "agora_suspect_joins_total", "reason") == {("duplicate_client",): 2}
    assert len(announced) == 2


# --- counted, announced, never failing the webhook ---------------------------------------------------


def test_suspect_joins_are_counted_by_reason(settings, user):
    settings.METRICS_ENABLED = True
    before = scrape()
    uid = token(user, channel="lobby").uid
    lobby = Script("lobby")
    lobby.send(lobby.join(4242, TS), lobby.join(4243, TS), lobby.join(uid, TS + 1), lobby.join(uid, TS + 2))
    Script("stage").send(Script("stage").join(uid, TS))
    assert counted(before, scrape(), "agora_suspect_joins_total", "reason") == {
        ("never_issued",): 2,
        ("duplicate_client",): 1,
        ("no_live_token",): 1,
    }


@pytest.fixture
def announced():
    """What the suspect_join_flagged receivers were sent."""
    received = []

    def receiver(sender, *, flag, kick, **kwargs):
        received.append((sender, flag.reason, flag.uid, kick))

    suspect_join_flagged.connect(receiver)
    yield received
    suspect_join_flagged.disconnect(receiver)


@pytest.mark.parametrize("auto_kick", [False, True])
def test_each_new_flag_is_announced_after_commit_with_the_auto_kick_setting(
    announced, settings, django_capture_on_commit_callbacks, auto_kick
):
    settings.AGORA_AUTO_KICK_SUSPECT = auto_kick
    join = Script("lobby").join(4242, TS)
    with django_capture_on_commit_callbacks() as callbacks:
        Script.send(join)
        assert announced == []  # not before the flag's row is committed
    assert len(callbacks) == 1
    callbacks[0]()
    assert announced == [(SuspectJoin, "never_issued", 4242, auto_kick)]
    with django_capture_on_commit_callbacks(execute=True):
        Script.send(join)  # a resend: no new flag, nothing announced
    assert len(announced) == 1


def test_a_failing_receiver_is_logged_and_the_webhook_answers_200(
    django_capture_on_commit_callbacks, caplog, settings
):
    settings.AGORA_AUTO_KICK_SUSPECT = True

    def kick_uid_is_down(sender, **kwargs):
        raise RuntimeError("moderation is down")

    suspect_join_flagged.connect(kick_uid_is_down)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = deliver(Script("lobby").join(4242, TS))
    finally:
        suspect_join_flagged.disconnect(kick_uid_is_down)
    assert (response.status_code, response.json()) == (200, {"status": "stored"})
    assert flags() == [("lobby:1", "never_issued")]
    assert any("kick_uid_is_down" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_a_failing_check_never_costs_the_event_or_the_200(monkeypatch, caplog):
    def broken(**kwargs):
        raise ValueError("a bug in a rule")

    monkeypatch.setattr(suspects, "suspicions", broken)
    response = deliver(Script("lobby").join(4242, TS))
    assert (response.status_code, response.json()) == (200, {"status": "stored"})
    assert ChannelEvent.objects.count() == 1
    assert flags() == []
    assert any(r.getMessage() == "suspect join check failed notice='lobby:1'" for r in caplog.records)


def test_a_suspect_join_costs_a_few_queries_more_than_an_innocent_one(user):
    uid = token(user, channel="lobby").uid
    with CaptureQueriesContext(connection) as innocent:
        deliver(Script("lobby").join(uid, TS))
    with CaptureQueriesContext(connection) as suspect:
        deliver(Script("stage").join(4242, TS))
    assert len(innocent) == 5
    # Two more lookups for the detail, and the flag's get_or_create (a savepoint around it).
    assert len(suspect) <= len(innocent) + 6


# --- the admin --------------------------------------------------------------------------------------


@pytest.fixture
def admin(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def flagged(user, django_user_model):
    """never_issued in the lobby, no_live_token and duplicate_client (alice's) in the stage."""
    uid = token(user, channel="backstage").uid
    lobby, stage = Script("lobby"), Script("stage")
    lobby.send(lobby.join(4242, TS), lobby.join(get_or_create_identity(user=user).uid, TS + 1))
    stage.send(stage.join(uid, TS + 100), stage.join(uid, TS + 200))
    return {f.event.notice_id + "/" + f.reason: f for f in SuspectJoin.objects.select_related("event")}


def _listed(response) -> set[str]:
    assert response.status_code == 200, response.content[:300]
    return {f"{row.event.notice_id}/{row.reason}" for row in response.context["cl"].result_list}


def test_admin_lists_flags_newest_first_and_filters_them(admin, flagged, user):
    assert set(flagged) == {
        "lobby:1/never_issued",
        "lobby:2/no_live_token",
        "stage:1/no_live_token",
        "stage:2/no_live_token",
        "stage:2/duplicate_client",
    }
    assert _listed(admin.get(FLAGS)) == set(flagged)
    assert _listed(admin.get(FLAGS, {"reason__exact": "duplicate_client"})) == {"stage:2/duplicate_client"}
    assert _listed(admin.get(FLAGS, {"channel__exact": "lobby"})) == {
        "lobby:1/never_issued",
        "lobby:2/no_live_token",
    }
    assert _listed(admin.get(FLAGS, {"user__isnull": "True"})) == {"lobby:1/never_issued"}
    assert _listed(admin.get(FLAGS, {"q": "4242"})) == {"lobby:1/never_issued"}
    assert _listed(admin.get(FLAGS, {"q": "alice"})) == set(flagged) - {"lobby:1/never_issued"}
    SuspectJoin.objects.filter(event__notice_id="lobby:1").update(detected_at=at(TS - 86400))
    assert _listed(admin.get(FLAGS, {"detected_at__lt": "2026-03-01"})) == {"lobby:1/never_issued"}
    page = admin.get(FLAGS).content.decode()
    assert "Join (Agora)" in page


def test_admin_flags_are_read_only_even_for_a_superuser(admin, flagged):
    flag = flagged["lobby:1/never_issued"]
    assert admin.get(reverse("admin:tokens_suspectjoin_add")).status_code == 403
    change = reverse("admin:tokens_suspectjoin_change", args=[flag.pk])
    assert admin.get(change).status_code == 200
    assert admin.post(change, {"reason": "no_live_token"}).status_code == 403
    assert (
        admin.post(reverse("admin:tokens_suspectjoin_delete", args=[flag.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert SuspectJoin.objects.get(pk=flag.pk).reason == "never_issued"
    with pytest.raises(TypeError):
        flag.save()
    with pytest.raises(TypeError):
        SuspectJoin.objects.all().delete()


def test_admin_channel_events_filter_by_flag(admin, flagged):
    def notices(params):
        response = admin.get(EVENTS, params)
        assert response.status_code == 200
        return {event.notice_id for event in response.context["cl"].result_list}

    assert notices({}) == {"lobby:1", "lobby:2", "stage:1", "stage:2"}
    assert notices({"suspect": "any"}) == {"lobby:1", "lobby:2", "stage:1", "stage:2"}
    assert notices({"suspect": "duplicate_client"}) == {"stage:2"}
    assert notices({"suspect": "never_issued", "channel__exact": "stage"}) == set()
    admin.raise_request_exception = False
    assert admin.get(EVENTS, {"suspect": "bogus"}).status_code == 400


def test_admin_channel_event_shows_its_flags(admin, flagged):
    flag = flagged["stage:2/duplicate_client"]
    page = admin.get(reverse("admin:tokens_channelevent_change", args=[flag.event_id])).content.decode()
    assert "uid already in the channel on another client" in page
    assert "was already in the channel since" in page
    listed = admin.get(EVENTS).content.decode()
    assert (
        f'href="{reverse("admin:tokens_suspectjoin_change", args=[flag.pk])}">duplicate_client</a>' in listed
    )


def test_admin_flag_lists_query_count_does_not_grow_with_rows(admin, user):
    deliver(Script("lobby").join(4242, TS))
    with CaptureQueriesContext(connection) as few_flags:
        admin.get(FLAGS)
    with CaptureQueriesContext(connection) as few_events:
        admin.get(EVENTS)
    script = Script("stage")
    for n in range(20):
        script.send(script.join(5000 + n, TS + n))
    with CaptureQueriesContext(connection) as many_flags:
        assert admin.get(FLAGS).status_code == 200
    with CaptureQueriesContext(connection) as many_events:
        assert admin.get(EVENTS).status_code == 200
    assert (len(many_flags), len(many_events)) == (len(few_flags), len(few_events))


def test_a_flag_outlives_its_user_without_the_user(user):
    uid = token(user, channel="backstage").uid
    Script("lobby").send(Script("lobby").join(uid, TS))
    user.delete()
    flag = SuspectJoin.objects.get()
    assert (flag.user, flag.uid, flag.slot) == (None, uid, "main")


def test_the_api_and_the_metrics_endpoint_stay_quiet_about_flags(user, settings):
    settings.METRICS_ENABLED = True
    deliver(Script("lobby").join(4242, TS))
    text = APIClient().get(reverse("tokens:metrics")).content.decode()
    assert "4242" not in text and "lobby" not in text


@pytest.mark.parametrize("auto_kick", [False, True])
def test_with_auto_kick_a_suspect_joiner_is_kicked_at_agora_and_otherwise_left(
    fake_agora, settings, django_capture_on_commit_callbacks, auto_kick
):
    from tests.helpers import run_tasks
    from tokens.models import ModerationAction

    settings.AGORA_AUTO_KICK_SUSPECT = auto_kick
    with django_capture_on_commit_callbacks(execute=True):
        Script.send(Script("lobby").join(4242, TS))  # never issued here
    run_tasks()
    kicks = list(ModerationAction.objects.values_list("kind", "channel", "uids", "state", "reason"))
    expected = [("kick", "lobby", [4242], "applied", "suspect join: never_issued")] if auto_kick else []
    assert kicks == expected
    posts = [r for r in fake_agora.requests if r.method == "POST"]
    assert [(p.json["cname"], p.json["uid"], p.json["time_in_seconds"]) for p in posts] == (
        [("lobby", 4242, 0)] if auto_kick else []
    )
