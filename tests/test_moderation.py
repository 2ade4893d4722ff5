"""Moderation (tokens/services/moderation.py, tokens/tasks.py) against a fake Agora on 127.0.0.1:
each action a row written before Agora is called, carried out by tasks until applied or given
up, one rule per uid with its id stored, bans and mutes enforced by the join path at once,
lifts, and live revocation of a deactivated, deleted or revoked user."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from tests.conftest import client_for
from tests.helpers import queued, run_tasks
from tokens import tasks
from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity, ChannelBan, ChannelRule, IssuedToken, ModerationAction
from tokens.services import identities, issuance, moderation

pytestmark = pytest.mark.django_db

RULES = "/dev/v1/kicking-rule"
RTC, RTC_RTM = reverse("tokens:rtc-token"), reverse("tokens:rtc-rtm-token")
COMPAT_RTC, RTM = reverse("tokens:compat-rtc-token"), reverse("tokens:rtm-token")
State = ModerationAction.State


def _moderation_url(channel: str) -> str:
    return reverse("tokens:channel-moderation", kwargs={"channel": channel})


@pytest.fixture
def slots(user):
    """alice's uids: main and phone."""
    return [identities.get_or_create_identity(user=user, slot=slot).uid for slot in ("main", "phone")]


def _posts(fake) -> list[dict]:
    return [r.json for r in fake.requests_to("POST", RULES)]


def _seconds_left(moment) -> float:
    return (moment - timezone.now()).total_seconds()


# --- an action's life ----------------------------------------------------------------------------


def test_a_ban_is_stored_and_enforced_before_agora_is_asked(fake_agora, user, slots):
    action = moderation.moderate(channel="room", kind="ban", user=user, minutes=10, reason="spam")
    assert (action.state, action.uids, action.seconds, action.username) == (
        State.PENDING,
        slots,
        600,
        "alice",
    )
    assert fake_agora.requests == []  # the worker asks, not the request
    assert queued() == 1
    ban = ChannelBan.objects.get()
    assert (ban.user, ban.channel, ban.privilege, ban.ends_at) == (
        user,
        "room",
        "join_channel",
        action.ends_at,
    )


def test_the_worker_makes_one_rule_per_uid_and_stores_each_id(fake_agora, user, slots):
    action = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    assert run_tasks() == 1
    action.refresh_from_db()
    assert action.state == State.APPLIED and action.applied_at is not None and action.attempts == 1
    posts = _posts(fake_agora)
    assert [(p["cname"], p["uid"], p["privileges"]) for p in posts] == [
        ("room", uid, ["join_channel"]) for uid in slots
    ]
    assert all(599 <= p["time_in_seconds"] <= 600 for p in posts)
    stored = dict(action.rules.values_list("uid", "rule_id"))
    assert set(stored.values()) == set(fake_agora.rules) and set(stored) == set(slots)
    assert run_tasks() == 0 and len(fake_agora.rules) == 2  # nothing runs twice


@pytest.mark.parametrize(
    ("kind", "privilege"), [("mute_audio", "publish_audio"), ("mute_video", "publish_video")]
)
def test_a_mute_takes_away_publishing_only(fake_agora, user, slots, kind, privilege):
    moderation.moderate(channel="room", kind=kind, user=user, minutes=1)
    run_tasks()
    assert {tuple(p["privileges"]) for p in _posts(fake_agora)} == {(privilege,)}
    assert ChannelBan.objects.get().privilege == privilege


def test_a_kick_lasts_no_time_and_bans_nothing_here(fake_agora, user, slots):
    action = moderation.moderate(channel="room", kind="kick", user=user)
    run_tasks()
    assert [p["time_in_seconds"] for p in _posts(fake_agora)] == [0, 0]
    action.refresh_from_db()
    assert action.state == State.APPLIED and action.ends_at is None
    assert not ChannelBan.objects.exists()


def test_kick_uid_kicks_one_uid_whoever_owns_it(fake_agora, user, slots):
    mine = moderation.kick_uid(channel="room", uid=slots[1], reason="leaked token")
    stranger = moderation.kick_uid(channel="room", uid=77, reason="not ours")
    run_tasks()
    assert [(p["uid"], p["time_in_seconds"]) for p in _posts(fake_agora)] == [(slots[1], 0), (77, 0)]
    mine.refresh_from_db(), stranger.refresh_from_db()
    assert (mine.user, mine.uids, mine.source, mine.state) == (user, [slots[1]], "system", State.APPLIED)
    assert (stranger.user, stranger.username, stranger.state) == (None, "", State.APPLIED)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"kind": "ban"}, "minutes"),
        ({"kind": "ban", "minutes": 0}, "minutes"),
        ({"kind": "ban", "minutes": 1441}, "minutes"),
        ({"kind": "kick", "minutes": 5}, "minutes"),
        ({"kind": "lift"}, "action"),
        ({"kind": "ban", "minutes": 5, "channel": "bad/name"}, "channel"),
    ],
)
def test_a_request_outside_the_rules_is_refused_by_field_and_stores_nothing(fake_agora, user, call, field):
    with pytest.raises(TokenServiceError) as refused:
        moderation.moderate(**{"channel": "room", "user": user, **call})
    assert (refused.value.code, list(refused.value.fields)) == ("invalid", [field])
    assert not ModerationAction.objects.exists() and queued() == 0


def test_without_rest_credentials_moderation_is_off_and_says_which_settings(settings, user):
    settings.AGORA_CUSTOMER_ID = ""
    with pytest.raises(TokenServiceError) as refused:
        moderation.moderate(channel="room", kind="kick", user=user)
    assert (refused.value.code, refused.value.status) == ("moderation_not_configured", 503)
    assert "AGORA_CUSTOMER_ID is not set" in refused.value.message
    assert not ModerationAction.objects.exists()


# --- retries ------------------------------------------------------------------------------------


def test_an_agora_outage_is_retried_later_with_a_growing_delay_until_applied(fake_agora, user, slots):
    action = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    fake_agora.fail_next(2, 429)  # refused unprocessed, twice: no rule may exist
    started = timezone.now()
    run_tasks()
    action.refresh_from_db()
    assert (action.state, action.attempts) == (State.PENDING, 1)
    assert "HTTP 429" in action.failure  # the last error, shown while it is retried
    assert 29 <= (action.next_attempt_at - started).total_seconds() <= 31  # MODERATION_RETRY_DELAY
    assert queued() == 1 and run_tasks() == 0  # not due yet
    run_tasks(later_too=True)
    action.refresh_from_db()
    assert (action.state, action.attempts, action.failure) == (State.APPLIED, 3, "")
    assert len(fake_agora.rules) == 2  # one per uid, whatever failed on the way


def test_retry_delays_double_and_honour_retry_after(settings):
    settings.MODERATION_RETRY_DELAY = 30.0
    assert [tasks.retry_delay(n) for n in (1, 2, 3, 10)] == [30, 60, 120, tasks.RETRY_DELAY_MAX]
    assert tasks.retry_delay(1, retry_after=90) == 90


def test_an_action_is_given_up_after_its_attempts_with_the_reason(fake_agora, settings, user, slots):
    settings.MODERATION_ATTEMPTS = 2
    action = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    fake_agora.fail_next(10, 500)
    run_tasks(later_too=True)
    action.refresh_from_db()
    assert (action.state, action.attempts) == (State.FAILED, 2)
    assert action.failure.startswith("gave up after 2 attempts; attempt 2: Agora REST unavailable (HTTP 500)")
    assert queued() == 0
    # The server's own ban holds until it ends or is lifted, whatever Agora did.
    assert ChannelBan.objects.filter(action=action).exists()


def test_an_error_no_retry_can_mend_fails_at_once(fake_agora, settings, user, slots):
    action = moderation.moderate(channel="room", kind="kick", user=user)
    settings.AGORA_CUSTOMER_SECRET = "wrong"
    run_tasks(later_too=True)
    action.refresh_from_db()
    assert (action.state, action.attempts) == (State.FAILED, 1)
    assert "Agora REST auth (HTTP 401)" in action.failure and "wrong" not in action.failure


def test_a_ban_whose_time_ran_out_before_agora_answered_is_failed_not_applied(fake_agora, user, slots):
    action = moderation.moderate(channel="room", kind="ban", user=user, minutes=1)
    ModerationAction.objects.filter(pk=action.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
    run_tasks()
    action.refresh_from_db()
    assert (action.state, action.failure) == (State.FAILED, "the ban ended before Agora could apply it")
    assert fake_agora.rules == {}


# --- exactly once, whatever dies -------------------------------------------------------------


def _as_if_its_worker_died(action: ModerationAction) -> None:
    """The action's attempt started (its lease taken) in a worker that died mid-call: the task
    stays RUNNING and the lease is over."""
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(id=action.task_id).update(status="RUNNING", started_at=timezone.now())
    ModerationAction.objects.filter(pk=action.pk).update(
        attempts=1, running_until=timezone.now() - timedelta(seconds=1)
    )


def test_recovery_adopts_the_rule_a_dead_attempt_made_and_asks_for_no_second_one(fake_agora, user, slots):
    action = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    # The dead attempt's POST for the first uid reached Agora; its answer never came back.
    from tokens.agora_rest import create_ban_rule

    made = create_ban_rule(channel="room", uid=slots[0], seconds=600, privileges=["join_channel"])
    _as_if_its_worker_died(action)
    assert tasks.recover() == 1
    assert tasks.recover() == 0  # its new task is queued: nothing more to recover
    run_tasks()
    action.refresh_from_db()
    assert (action.state, action.attempts) == (State.APPLIED, 2)
    assert dict(action.rules.values_list("uid", "rule_id"))[slots[0]] == made
    assert len(fake_agora.rules) == 2  # the adopted one and the second uid's


def test_recovery_never_adopts_a_rule_another_action_holds(fake_agora, user, slots):
    first = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    run_tasks()
    second = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)  # ends alike
    _as_if_its_worker_died(second)
    tasks.recover()
    run_tasks()
    second.refresh_from_db()
    held = set(first.rules.values_list("rule_id", flat=True))
    assert second.state == State.APPLIED
    assert held.isdisjoint(second.rules.values_list("rule_id", flat=True))
    assert len(fake_agora.rules) == 4


def test_recovery_leaves_an_attempt_whose_lease_still_holds(fake_agora, user, slots):
    action = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    _as_if_its_worker_died(action)
    ModerationAction.objects.filter(pk=action.pk).update(running_until=timezone.now() + timedelta(minutes=1))
    assert tasks.recover() == 0
    ModerationAction.objects.filter(pk=action.pk).update(running_until=None, attempts=0)
    assert tasks.recover() == 0  # its task is still queued: it will run


def test_a_superseded_or_duplicate_task_does_nothing(fake_agora, user, slots):
    action = moderation.moderate(channel="room", kind="kick", user=user)
    assert tasks.attempt(action_id=action.pk, task_id="not-its-task") == "superseded"
    assert tasks.attempt(action_id=action.pk, task_id=action.task_id) == "applied"
    assert tasks.attempt(action_id=action.pk, task_id=action.task_id) == "skipped (applied)"
    assert len(fake_agora.requests) == 2


# --- lifting ----------------------------------------------------------------------------------------


def test_lifting_an_applied_ban_deletes_its_rules_at_agora_and_stops_refusing_at_once(
    fake_agora, user, slots
):
    ban = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    run_tasks()
    assert len(fake_agora.rules) == 2
    (lift,) = moderation.lift(channel="room", user=user, reason="appeal")
    assert not ChannelBan.objects.exists()  # the server stops refusing before Agora is asked
    ban.refresh_from_db()
    assert (ban.state, lift.lifts, lift.state) == (State.LIFTED, ban, State.PENDING)
    run_tasks()
    lift.refresh_from_db()
    assert lift.state == State.APPLIED and fake_agora.rules == {}
    assert not ban.rules.filter(deleted_at=None).exists()


def test_lifting_a_pending_ban_stops_it_before_agora_hears_of_it(fake_agora, user, slots):
    moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    moderation.lift(channel="room", user=user)
    run_tasks()
    assert fake_agora.requests_to("POST") == [] and fake_agora.requests_to("DELETE") == []


def test_a_rule_agora_no_longer_has_counts_as_lifted(fake_agora, user, slots):
    moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    run_tasks()
    fake_agora.rules.clear()  # expired or deleted in Agora Console
    (lift,) = moderation.lift(channel="room", user=user)
    run_tasks()
    lift.refresh_from_db()
    assert lift.state == State.APPLIED


def test_lifting_without_an_active_ban_is_a_404_and_a_kick_cannot_be_lifted(fake_agora, user, slots):
    kick = moderation.moderate(channel="room", kind="kick", user=user)
    with pytest.raises(TokenServiceError) as refused:
        moderation.lift(channel="room", user=user)
    assert (refused.value.code, refused.value.status) == ("not_found", 404)
    with pytest.raises(TokenServiceError) as refused:
        moderation.lift_action(action=kick)
    assert (refused.value.code, refused.value.status) == ("not_liftable", 409)


# --- the join path --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [RTC, RTC_RTM, COMPAT_RTC])
def test_a_banned_user_gets_no_token_for_that_channel_and_no_row(fake_agora, user, api, path):
    moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    body = {"channel": "room", **({"isPublisher": False} if path == COMPAT_RTC else {})}
    rows = IssuedToken.objects.count()
    response = api.post(path, body, format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "banned" and list(error["fields"]) == ["channel"]
    assert error["message"].startswith("channel: you are banned from 'room' until ")
    assert IssuedToken.objects.count() == rows
    other = {**body, "channel": "other"}
    assert api.post(path, other, format="json").status_code in (200, 201)  # other channels, and RTM
    assert api.post(RTM, {}, format="json").status_code == 201


def test_a_muted_user_gets_subscriber_tokens_but_no_publisher_token(fake_agora, user, api):
    moderation.moderate(channel="room", kind="mute_audio", user=user, minutes=10)
    response = api.post(RTC, {"channel": "room", "role": "publisher"}, format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "banned"
    assert "muted (audio) in 'room'" in error["message"]
    assert set(error["fields"]) == {"channel", "role"}
    assert api.post(RTC, {"channel": "room"}, format="json").status_code == 201


def test_a_ban_ends_when_it_says_and_when_lifted(fake_agora, user, api):
    action = moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    ChannelBan.objects.update(ends_at=timezone.now() - timedelta(seconds=1))
    assert api.post(RTC, {"channel": "room"}, format="json").status_code == 201
    ChannelBan.objects.update(ends_at=action.ends_at)
    assert api.post(RTC, {"channel": "room"}, format="json").status_code == 403
    moderation.lift(channel="room", user=user)
    assert api.post(RTC, {"channel": "room"}, format="json").status_code == 201


def test_the_admins_and_the_commands_tokens_obey_bans_too(fake_agora, user):
    moderation.moderate(channel="room", kind="ban", user=user, minutes=10)
    for source in ("admin", "cli"):
        with pytest.raises(TokenServiceError) as refused:
            issuance.issue_token(user=user, service="rtc", channel="room", source=source)
        assert refused.value.code == "banned"
    assert not IssuedToken.objects.exists()


# --- live revocation ----------------------------------------------------------------------------


@pytest.fixture
def live_tokens(user, api, slots):
    """alice holds live tokens in three channels from two slots (and an RTM token, which joins
    none): their rows' latest expiry per channel."""
    asks = [
        (RTC, {"channel": "one", "expires_in": 600}),
        (RTC, {"channel": "one", "expires_in": 1800, "slot": "phone"}),
        (RTC_RTM, {"channel": "two", "expires_in": 900}),
        (RTC, {"channel": "three", "expires_in": 3600, "slot": "phone"}),
        (RTM, {"expires_in": 7200}),
    ]
    for path, body in asks:
        assert api.post(path, body, format="json").status_code == 201
    return {"one": 1800, "two": 900, "three": 3600}


def _bans_sent(fake) -> dict[tuple[str, int], int]:
    return {(p["cname"], p["uid"]): p["time_in_seconds"] for p in _posts(fake)}


def test_deactivating_a_user_bans_every_uid_from_every_channel_for_as_long_as_their_tokens_live(
    fake_agora, user, slots, live_tokens
):
    user.is_active = False
    user.save()
    assert not AuthToken.objects.filter(user=user).exists()
    run_tasks()
    sent = _bans_sent(fake_agora)
    assert set(sent) == {(channel, uid) for channel in live_tokens for uid in slots}  # 3 x 2
    for (channel, _), seconds in sent.items():
        assert live_tokens[channel] - 5 <= seconds <= live_tokens[channel]
    actions = ModerationAction.objects.all()
    assert {(a.kind, a.source, a.state) for a in actions} == {("ban", "revocation", "applied")}
    revoked = IssuedToken.objects.exclude(channel="")
    assert all(row.revoked_at is not None and row.revoked_by is None for row in revoked)
    assert IssuedToken.objects.get(channel="").revoked_at is None  # RTM: no channel to ban from


def test_a_user_revoked_and_let_back_in_stays_banned_from_those_channels_on_every_endpoint(
    fake_agora, user, slots, live_tokens, admin_user
):
    moderation.revoke_everything(user=user, requested_by=admin_user)
    assert IssuedToken.objects.exclude(channel="").filter(revoked_by=admin_user).count() == 4
    api = client_for(user)  # logs in again: the password still works
    for path in (RTC, RTC_RTM, COMPAT_RTC):
        for channel in live_tokens:
            response = api.post(path, {"channel": channel}, format="json")
            assert response.status_code == 403 and response.json()["error"]["code"] == "banned", path
    assert api.post(RTC, {"channel": "elsewhere"}, format="json").status_code == 201
    with pytest.raises(TokenServiceError) as refused:
        issuance.issue_token(user=user, service="rtc", channel="two", source="admin", issued_by=admin_user)
    assert refused.value.code == "banned"


def test_deleting_a_user_bans_their_uids_at_agora(fake_agora, user, slots, live_tokens):
    user.delete()
    run_tasks()
    assert set(_bans_sent(fake_agora)) == {(channel, uid) for channel in live_tokens for uid in slots}
    assert {(a.user, a.username) for a in ModerationAction.objects.all()} == {(None, "alice")}
    assert IssuedToken.objects.exclude(channel="").filter(revoked_at=None).count() == 0


def test_saving_a_user_or_logging_out_revokes_nothing(fake_agora, user, slots, live_tokens, api):
    user.first_name = "Alice"
    user.save()
    user.is_active = False
    user.save(update_fields=["first_name"])  # is_active not written: still active in the database
    assert api.delete(reverse("tokens:auth-token")).status_code == 204
    assert not ModerationAction.objects.exists()
    assert IssuedToken.objects.filter(revoked_at__isnull=False).count() == 0


def test_without_rest_credentials_a_deactivation_still_revokes_the_api_keys(settings, user, live_tokens):
    settings.AGORA_CUSTOMER_ID = ""
    user.is_active = False
    user.save()
    assert not AuthToken.objects.filter(user=user).exists()
    assert not ModerationAction.objects.exists()
    assert IssuedToken.objects.filter(revoked_at__isnull=False).count() == 0  # nothing was revoked at Agora


# --- the API ----------------------------------------------------------------------------------------


@pytest.fixture
def moderator(django_user_model):
    """bob, in the group a rule for "team-*" names as its moderators."""
    bob = django_user_model.objects.create_user("bob", password="correct-horse-battery-staple")
    group = Group.objects.create(name="team moderators")
    bob.groups.add(group)
    rule = ChannelRule.objects.create(pattern="team-*", publish_rights="audio,video,data")
    rule.moderators.add(group)
    return client_for(bob)


def test_a_channel_moderator_can_kick_in_their_channel_and_gets_403_in_another(fake_agora, user, moderator):
    response = moderator.post(
        _moderation_url("team-red"), {"username": "alice", "action": "kick"}, format="json"
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["action"], body["channel"], body["username"], body["state"]) == (
        "kick",
        "team-red",
        "alice",
        "pending",
    )
    assert body["requested_by"] == "bob"
    refused = moderator.post(_moderation_url("lobby"), {"username": "alice", "action": "kick"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "moderation_not_allowed"
    assert ModerationAction.objects.count() == 1


def test_a_plain_user_may_not_moderate_and_the_permission_allows_any_channel(
    fake_agora, user, api, django_user_model
):
    refused = api.post(_moderation_url("team-red"), {"username": "alice", "action": "kick"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "moderation_not_allowed"
    carol = django_user_model.objects.create_user("carol", password="correct-horse-battery-staple")
    carol.user_permissions.add(Permission.objects.get(codename="moderate"))
    response = client_for(carol).post(
        _moderation_url("any room"), {"username": "alice", "action": "ban", "minutes": 5}, format="json"
    )
    assert response.status_code == 202 and response.json()["seconds"] == 300


def test_the_api_bans_by_uid_lists_active_bans_and_lifts(fake_agora, user, slots, moderator):
    url = _moderation_url("team-red")
    response = moderator.post(url, {"uid": slots[1], "action": "mute_video", "minutes": 5}, format="json")
    assert response.status_code == 202
    assert response.json()["uids"] == slots  # every slot of the uid's owner
    listed = moderator.get(url).json()
    assert listed["channel"] == "team-red" and [b["action"] for b in listed["bans"]] == ["mute_video"]
    lifted = moderator.delete(url, {"username": "alice"}, format="json")
    assert lifted.status_code == 202
    assert [a["action"] for a in lifted.json()["lifted"]] == ["lift"]
    assert moderator.get(url).json()["bans"] == []
    again = moderator.delete(url, {"username": "alice"}, format="json")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"action": "kick"}, ["username", "uid"]),
        ({"username": "alice", "uid": 5, "action": "kick"}, ["username", "uid"]),
        ({"username": "alice", "action": "ban"}, ["minutes"]),
        ({"username": "alice", "action": "explode"}, ["action"]),
        ({"username": "alice", "action": "kick", "extra": 1}, ["extra"]),
        ({"username": "alice", "action": "ban", "minutes": "5"}, ["minutes"]),
    ],
)
def test_a_bad_moderation_request_is_a_400_naming_the_field(fake_agora, user, moderator, body, fields):
    response = moderator.post(_moderation_url("team-red"), body, format="json")
    assert response.status_code == 400, response.json()
    assert sorted(response.json()["error"]["fields"]) == sorted(fields)
    assert not ModerationAction.objects.exists()


def test_unknown_users_and_channels_get_their_error_shape(fake_agora, user, moderator):
    missing = moderator.post(
        _moderation_url("team-red"), {"username": "nobody", "action": "kick"}, format="json"
    )
    assert missing.status_code == 404 and missing.json()["error"]["fields"] == {"username": ["No such user."]}
    unowned = moderator.post(_moderation_url("team-red"), {"uid": 77, "action": "kick"}, format="json")
    assert unowned.status_code == 404 and list(unowned.json()["error"]["fields"]) == ["uid"]
    bad = moderator.get(_moderation_url("x" * 64))
    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["channel"]


def test_the_api_answers_503_without_rest_credentials_and_401_without_login(settings, user, moderator, anon):
    settings.AGORA_CUSTOMER_SECRET = ""
    response = moderator.post(
        _moderation_url("team-red"), {"username": "alice", "action": "kick"}, format="json"
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "moderation_not_configured"
    assert "AGORA_CUSTOMER_SECRET is not set" in response.json()["error"]["message"]
    assert anon.get(_moderation_url("team-red")).status_code == 401


def test_uids_of_lists_every_slot_main_first(user):
    main = identities.get_or_create_identity(user=user).uid
    screen = identities.get_or_create_identity(user=user, slot="screen").uid
    assert moderation.uids_of(user) == [main, screen]
    assert AgoraIdentity.objects.count() == 2


# --- the commands ---------------------------------------------------------------------------------


def test_the_commands_kick_ban_and_unban_and_print_the_actions(fake_agora, user, slots, capsys):
    import json

    from django.core.management import call_command

    call_command("ban", "alice", "--channel", "ops room", "--minutes", "30", "--mute", "video")
    banned = json.loads(capsys.readouterr().out)
    assert (banned["action"], banned["channel"], banned["uids"], banned["seconds"]) == (
        "mute_video", "ops room", slots, 1800,
    )  # fmt: skip
    call_command("kick", "--uid", str(slots[1]), "--channel", "ops room", "--reason", "noise")
    kicked = json.loads(capsys.readouterr().out)
    assert (kicked["action"], kicked["uids"]) == ("kick", slots)
    call_command("unban", "alice", "--channel", "ops room")
    (lifted,) = json.loads(capsys.readouterr().out)
    assert (lifted["action"], lifted["lifts"]) == ("lift", banned["id"])
    assert {a.source for a in ModerationAction.objects.all()} == {"cli"}


def test_the_commands_fail_clearly(settings, user):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Name the user"):
        call_command("kick", "--channel", "room")
    settings.AGORA_CUSTOMER_ID = ""
    with pytest.raises(CommandError, match="Moderation is off: AGORA_CUSTOMER_ID is not set"):
        call_command("ban", "alice", "--channel", "room", "--minutes", "5")


def test_purge_expired_drops_ended_bans_only(fake_agora, user):
    moderation.moderate(channel="room", kind="ban", user=user, minutes=5)
    moderation.moderate(channel="hall", kind="ban", user=user, minutes=5)
    ChannelBan.objects.filter(channel="hall").update(ends_at=timezone.now() - timedelta(seconds=1))
    assert moderation.purge_ended_bans() == 1
    assert list(ChannelBan.objects.values_list("channel", flat=True)) == ["room"]
