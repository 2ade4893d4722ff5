"""Who is in a channel now: the replay of Agora's channel events (any delivery order, resends,
sessions), the same from scripted, signed notifications posted to the webhook, the
participants API, and the admin's presence page with its check against Agora's own list."""

import itertools
import random

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from tests.conftest import APP_ID, client_for
from tests.fake_agora import FakeAgora
from tests.helpers import NCS_SECRET, TS, Script, at
from tokens import ncs
from tokens.agora_rest import client as rest_client
from tokens.models import ChannelEvent, ChannelRule
from tokens.services import get_or_create_identity, issue_token, presence
from tokens.services.presence import Event, Participant, replay

pytestmark = pytest.mark.django_db

PRESENCE_PAGE = reverse("admin:tokens_channelevent_presence")
CUSTOMER_ID = "4d7f0c2a9b8e4f31a6c5d2e1f0a9b8c7"
CUSTOMER_SECRET = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"


def participants_url(channel: str) -> str:
    return reverse("tokens:channel-participants", args=[channel])


@pytest.fixture(autouse=True)
def _ncs_on(settings):
    settings.AGORA_NCS_SECRET = NCS_SECRET


def who(channel: str) -> dict[int, str]:
    """uid -> role, as presence computes it from the stored events."""
    return {p.uid: p.role for p in presence.channel_presence(channel=channel).participants}


# --- the replay, a pure function ----------------------------------------------------------------

_ids = itertools.count(1)


def ev(event_type: int, ts: int, uid: int | None = None, seq: int | None = None, **fields) -> Event:
    return Event(id=next(_ids), event_type=event_type, uid=uid, client_seq=seq, occurred_at=at(ts), **fields)


def roles(events) -> dict[int, str]:
    return {uid: p.role for uid, p in replay(events).present.items()}


def test_a_join_makes_its_uid_present_with_the_joins_role_and_a_leave_ends_it():
    events = [
        ev(103, TS, uid=1, seq=1, platform=1, user_id=7, slot="main"),
        ev(105, TS + 1, uid=2, seq=1),
        ev(107, TS + 2, uid=3, seq=1),
        ev(106, TS + 3, uid=2, seq=2, reason=1),
    ]
    found = replay(events).present
    assert roles(events) == {1: "broadcaster", 3: "communication"}
    assert found[1] == Participant(
        uid=1, role="broadcaster", joined_at=at(TS), platform=1, user_id=7, slot="main", event_id=events[0].id
    )
    assert found[1].platform_name == "android"


def test_role_changes_change_the_role_and_imply_presence():
    events = [ev(105, TS, uid=1, seq=1), ev(111, TS + 5, uid=1, seq=2), ev(112, TS + 6, uid=2, seq=7)]
    found = replay(events).present
    assert roles(events) == {1: "broadcaster", 2: "audience"}
    assert found[1].joined_at == at(TS)  # the role change keeps the stay's start
    assert found[2].joined_at == at(TS + 6)  # its join never came: in since the role change


@pytest.mark.parametrize("session_event", [101, 102])
def test_a_channel_create_or_destroy_ends_everyones_presence(session_event):
    events = [ev(103, TS, uid=1, seq=1), ev(105, TS + 1, uid=2, seq=1), ev(session_event, TS + 10)]
    assert roles(events) == {}
    assert roles([*events, ev(105, TS + 11, uid=3, seq=1)]) == {3: "audience"}


def test_within_one_second_a_create_or_destroy_comes_before_the_users_events():
    # The last user leaves, the channel is destroyed and created again, someone joins: one second.
    events = [
        ev(105, TS + 5, uid=9, seq=4),
        ev(101, TS + 5),
        ev(102, TS + 5),
        ev(103, TS, uid=1, seq=1),
        ev(104, TS + 5, uid=1, seq=2),
    ]
    assert roles(events) == {9: "audience"}
    assert roles([ev(103, TS, uid=1, seq=1), ev(101, TS)]) == {1: "broadcaster"}  # the creating join


def test_one_users_events_in_the_same_second_follow_their_client_sequence():
    rejoin = [ev(103, TS, uid=1, seq=1), ev(104, TS + 9, uid=1, seq=3), ev(103, TS + 9, uid=1, seq=2)]
    assert roles(rejoin) == {}  # joined again, then left, all in second TS + 9
    assert roles([*rejoin, ev(103, TS + 9, uid=1, seq=4)]) == {1: "broadcaster"}


def test_a_leave_forced_by_a_second_client_keeps_the_uid_in():
    # Agora drops the first client when another joins with the same uid (leave reason 5).
    events = [
        ev(103, TS, uid=1, seq=1, platform=7),
        ev(104, TS + 9, uid=1, seq=500, reason=ncs.LEAVE_REASON_NEW_DEVICE),
        ev(103, TS + 9, uid=1, seq=3, platform=1),
    ]
    result = replay(events)
    assert roles(events) == {1: "broadcaster"}
    assert result.present[1].platform == 1
    assert [(join.id, was.event_id) for join, was in result.repeated_joins] == [(events[2].id, events[0].id)]


def test_an_event_type_agora_adds_later_says_nothing_about_presence():
    assert roles([ev(103, TS, uid=1, seq=1), ev(199, TS + 1, uid=1, seq=2), ev(10, TS + 2)]) == {
        1: "broadcaster"
    }


SEQUENCE = [
    ev(101, TS),
    ev(103, TS, uid=1, seq=1),
    ev(105, TS + 1, uid=2, seq=1),
    ev(111, TS + 2, uid=2, seq=2),
    ev(104, TS + 3, uid=1, seq=2),
    ev(107, TS + 4, uid=3, seq=1),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(SEQUENCE))))[::37])
def test_the_replay_is_the_same_whatever_order_the_events_come_in(order):
    assert roles([SEQUENCE[i] for i in order]) == {2: "broadcaster", 3: "communication"}


# --- presence from signed notifications posted to the webhook ------------------------------------


def test_presence_follows_joins_leaves_and_role_changes_sent_to_the_webhook(user, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    alice_uid = get_or_create_identity(user=user).uid
    bob_phone = get_or_create_identity(user=bob, slot="phone").uid
    lobby = Script("lobby")
    lobby.send(
        lobby.create(TS),
        lobby.join(alice_uid, TS, platform=2),
        lobby.join(bob_phone, TS + 1, event_type=105, platform=1),
        lobby.join(4242, TS + 2, event_type=105),
        lobby.role(bob_phone, TS + 3, to_broadcaster=True),
        lobby.leave(4242, TS + 4, event_type=106),
        lobby.role(alice_uid, TS + 5, to_broadcaster=False),
    )
    found = presence.channel_presence(channel="lobby", now=at(TS + 10))
    assert [(p.uid, p.role, p.joined_at, p.platform_name, p.slot) for p in found.participants] == [
        (alice_uid, "audience", at(TS), "ios", "main"),
        (bob_phone, "broadcaster", at(TS + 1), "android", "phone"),
    ]
    assert [found.username(p) for p in found.participants] == ["alice", "bob"]
    assert (found.as_of, found.complete) == (at(TS + 10), True)


def test_a_resent_notification_counts_once():
    lobby = Script("lobby")
    join, leave, rejoin = lobby.join(1, TS), lobby.leave(1, TS + 5), lobby.join(1, TS + 9)
    assert lobby.send(join, join, leave, leave, {**join, "notifyMs": join["notifyMs"] + 3000}) == [
        "stored",
        "duplicate",
        "stored",
        "duplicate",
        "duplicate",
    ]
    assert who("lobby") == {}
    lobby.send(rejoin, leave)
    assert who("lobby") == {1: "broadcaster"}
    assert ChannelEvent.objects.count() == 3


def test_a_leave_delivered_before_its_join_still_ends_the_stay():
    lobby = Script("lobby")
    join, leave = lobby.join(1, TS), lobby.leave(1, TS + 60)
    lobby.send(leave)
    assert who("lobby") == {}
    lobby.send(join)
    assert who("lobby") == {}


def test_presence_is_the_same_whatever_order_the_webhook_receives_a_session_in():
    channels = {}
    for n, order in enumerate([None, "reversed", 1, 2, 3]):
        script = Script(f"room-{n}")
        bodies = [
            script.create(TS),
            script.join(1, TS, event_type=107),
            script.join(2, TS + 1, event_type=107),
            script.leave(1, TS + 2, event_type=108),
            script.join(3, TS + 2, event_type=107),
            script.join(1, TS + 3, event_type=107),
            script.leave(2, TS + 3, event_type=108),
        ]
        if order == "reversed":
            bodies.reverse()
        elif order is not None:
            random.Random(order).shuffle(bodies)
        script.send(*bodies)
        channels[n] = who(f"room-{n}")
    assert set(map(frozenset, (c.items() for c in channels.values()))) == {
        frozenset({1: "communication", 3: "communication"}.items())
    }


def test_a_destroy_ends_the_session_and_events_before_a_later_create_do_not_count():
    lobby = Script("lobby")
    first = [lobby.create(TS), lobby.join(1, TS), lobby.join(2, TS + 1)]
    destroyed = lobby.destroy(TS + 100)  # both left; their leaves never arrive
    second = [lobby.create(TS + 200), lobby.join(3, TS + 200)]
    lobby.send(*first)
    assert who("lobby") == {1: "broadcaster", 2: "broadcaster"}
    lobby.send(destroyed)
    assert who("lobby") == {}
    lobby.send(*second)
    assert who("lobby") == {3: "broadcaster"}
    # The first session's events delivered late change nothing in the second.
    lobby.send(lobby.join(4, TS + 50), lobby.role(2, TS + 60, to_broadcaster=False))
    assert who("lobby") == {3: "broadcaster"}


def test_a_channel_whose_create_was_never_reported_counts_every_event():
    lobby = Script("lobby")
    lobby.send(lobby.join(1, TS), lobby.join(2, TS + 1), lobby.leave(2, TS + 2))
    assert who("lobby") == {1: "broadcaster"}
    assert who("elsewhere") == {}


def test_channels_do_not_mix():
    lobby, stage = Script("lobby"), Script("stage")
    lobby.send(lobby.join(1, TS), stage.join(1, TS + 1), stage.leave(1, TS + 2), stage.create(TS + 3))
    assert (who("lobby"), who("stage")) == ({1: "broadcaster"}, {})


def test_a_session_longer_than_the_limit_is_judged_from_its_newest_events_and_says_so(monkeypatch):
    monkeypatch.setattr(presence, "SESSION_EVENTS_LIMIT", 4)
    lobby = Script("lobby")
    lobby.send(lobby.create(TS), lobby.join(1, TS + 1), lobby.join(2, TS + 2), lobby.join(3, TS + 3))
    found = presence.channel_presence(channel="lobby")
    assert ({p.uid for p in found.participants}, found.complete) == ({1, 2, 3}, True)
    lobby.send(lobby.join(4, TS + 4))  # the create is now the fifth newest: not considered
    found = presence.channel_presence(channel="lobby")
    assert ({p.uid for p in found.participants}, found.complete) == ({1, 2, 3, 4}, False)
    lobby.send(lobby.join(5, TS + 5))  # nor uid 1's join: it is missed, and the answer says so
    found = presence.channel_presence(channel="lobby")
    assert ({p.uid for p in found.participants}, found.complete) == ({2, 3, 4, 5}, False)


def test_presence_reads_only_the_current_session(monkeypatch):
    lobby = Script("lobby")
    lobby.send(lobby.create(TS), *(lobby.join(n, TS + n) for n in range(1, 6)), lobby.destroy(TS + 60))
    lobby.send(lobby.create(TS + 100), lobby.join(9, TS + 100))
    events, complete = presence.session_events(channel="lobby")
    assert ([(e.event_type, e.uid) for e in events], complete) == ([(103, 9)], True)
    monkeypatch.setattr(presence, "SESSION_EVENTS_LIMIT", 2)  # the earlier session is not counted
    assert presence.channel_presence(channel="lobby").complete


def test_of_each_uid_only_its_events_from_its_last_join_or_leave_on_are_read():
    lobby = Script("lobby")
    lobby.send(
        lobby.create(TS),
        lobby.join(1, TS),
        lobby.leave(1, TS + 1),
        lobby.join(1, TS + 2),
        lobby.role(1, TS + 3, to_broadcaster=False),
        lobby.join(2, TS),
        lobby.leave(2, TS + 5, reason=ncs.LEAVE_REASON_NEW_DEVICE),  # forced out: not a move
        lobby.role(3, TS + 6, to_broadcaster=True),  # its join never came
        lobby.join(4, TS),
        lobby.leave(4, TS + 7, reason="5"),  # not Agora's number 5: a plain leave
    )
    kept, complete = presence.session_events(channel="lobby")
    assert sorted((e.uid, e.event_type, e.occurred_at) for e in kept) == [
        (1, 103, at(TS + 2)),
        (1, 112, at(TS + 3)),
        (2, 103, at(TS)),
        (2, 104, at(TS + 5)),
        (3, 111, at(TS + 6)),
        (4, 104, at(TS + 7)),
    ]
    assert (roles(kept), complete) == ({1: "audience", 2: "broadcaster", 3: "broadcaster"}, True)
    assert roles(Event.of(row) for row in ChannelEvent.objects.all()) == roles(kept)


@pytest.mark.parametrize("seed", range(8))
def test_what_the_database_keeps_of_a_session_replays_to_the_same_presence_as_every_event(seed):
    # Random traffic of a few uids, many of its events in the same second: joins of each kind,
    # leaves (some forced by a second client), role changes (some without a join), resends.
    rng = random.Random(seed)
    lobby = Script("lobby")
    bodies, ts = [lobby.create(TS)], TS
    for _ in range(80):
        ts += rng.choice([0, 0, 1, 5])
        uid = rng.randint(1, 6)
        pick = rng.random()
        if pick < 0.4:
            bodies.append(
                lobby.join(uid, ts, event_type=rng.choice([103, 105, 107]), platform=rng.choice([1, 7]))
            )
        elif pick < 0.7:
            bodies.append(lobby.leave(uid, ts, reason=rng.choice([1, 2, ncs.LEAVE_REASON_NEW_DEVICE])))
        else:
            bodies.append(lobby.role(uid, ts, to_broadcaster=rng.random() < 0.5))
    bodies += rng.sample(bodies, 5)  # resends
    rng.shuffle(bodies)
    lobby.send(*bodies)
    kept, complete = presence.session_events(channel="lobby")
    every = [Event.of(row) for row in ChannelEvent.objects.all()]
    assert complete
    assert len(kept) < len(every)
    assert presence.participants(kept) == presence.participants(every)
    assert presence.channel_presence(channel="lobby").participants == tuple(presence.participants(every))


def test_presence_reads_four_queries_whatever_the_traffic(user):
    lobby = Script("lobby")
    lobby.send(lobby.create(TS), lobby.join(get_or_create_identity(user=user).uid, TS))
    for n in range(30):
        lobby.send(lobby.join(100 + n, TS + n), lobby.leave(100 + n, TS + n + 1))
    with CaptureQueriesContext(connection) as queries:
        presence.channel_presence(channel="lobby")
    assert len(queries) == 4  # the session's start, whether it is longer, its events, the usernames


# --- GET /api/v1/channels/{channel}/participants/ -------------------------------------------------


@pytest.fixture
def lobby_with_alice_and_bob(user, django_user_model):
    """alice (main, broadcaster) and bob (phone, audience) in the lobby; a stranger uid too."""
    bob = django_user_model.objects.create_user("bob", password="x" * 12)
    alice_uid = issue_token(service="rtc", user=user, channel="lobby", now=at(TS - 10)).uid
    bob_uid = issue_token(service="rtc", user=bob, channel="lobby", slot="phone", now=at(TS - 10)).uid
    lobby = Script("lobby")
    lobby.send(
        lobby.create(TS),
        lobby.join(alice_uid, TS, platform=7),
        lobby.join(bob_uid, TS + 1, event_type=105, platform=1),
        lobby.join(4242, TS + 2, event_type=105, platform=99),
    )
    return {"alice": alice_uid, "bob": bob_uid, "bob_user": bob}


def test_participants_api_shows_everyone_and_names_only_your_own_uids(api, lobby_with_alice_and_bob):
    uids = lobby_with_alice_and_bob
    response = api.get(participants_url("lobby"))
    assert response.status_code == 200
    body = response.json()
    as_of = parse_datetime(body.pop("as_of"))
    assert abs((as_of - presence.timezone.now()).total_seconds()) < 60
    assert body == {
        "channel": "lobby",
        "participants": [
            {
                "uid": uids["alice"],
                "you": True,
                "username": "alice",
                "slot": "main",
                "role": "broadcaster",
                "joined_at": "2026-03-01T12:00:00Z",
                "platform": "web",
            },
            {
                "uid": uids["bob"],
                "you": False,
                "username": None,
                "slot": None,
                "role": "audience",
                "joined_at": "2026-03-01T12:00:01Z",
                "platform": "android",
            },
            {
                "uid": 4242,
                "you": False,
                "username": None,
                "slot": None,
                "role": "audience",
                "joined_at": "2026-03-01T12:00:02Z",
                "platform": "other",
            },
        ],
    }


def test_participants_api_names_everyone_for_staff(user, lobby_with_alice_and_bob):
    user.is_staff = True
    user.save()
    shown = client_for(user).get(participants_url("lobby")).json()["participants"]
    assert [(p["username"], p["slot"], p["you"]) for p in shown] == [
        ("alice", "main", True),
        ("bob", "phone", False),
        (None, None, False),  # a uid not issued here has no owner to name
    ]


def test_participants_api_on_a_channel_nobody_is_in_and_a_name_with_a_space(api):
    ops = Script("ops room")
    ops.send(ops.join(1, TS), ops.leave(1, TS + 1))
    for channel in ("quiet", "ops room"):
        response = api.get(participants_url(channel))
        assert response.status_code == 200
        assert (response.json()["channel"], response.json()["participants"]) == (channel, [])
    assert participants_url("ops room") == "/api/v1/channels/ops%20room/participants/"


def test_participants_api_refuses_a_channel_the_policy_does_not_admit_you_to(api, settings):
    settings.AGORA_CHANNEL_POLICY = "rules"
    ChannelRule.objects.create(pattern="team-*", publish_rights="")
    response = api.get(participants_url("lobby"))
    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "channel_not_allowed",
            "message": "channel: this account may not join 'lobby'.",
            "fields": {"channel": ["No channel rule admits you to 'lobby'."]},
        }
    }
    assert api.get(participants_url("team-red")).status_code == 200


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        (
            "bad/name",
            "Channel name contains '/', which Agora does not allow (allowed: a-z A-Z 0-9 space and "
            "!#$%&()+-:;<=.>?@[]^_{}|~,).",
        ),
        ("c" * 64, "Channel name must be at most 63 bytes (got 64)."),
        (
            "é",
            "Channel name contains 'é', which Agora does not allow (allowed: a-z A-Z 0-9 space and "
            "!#$%&()+-:;<=.>?@[]^_{}|~,).",
        ),
    ],
)
def test_participants_api_refuses_a_channel_name_agora_would_refuse(api, channel, message):
    response = api.get(participants_url(channel))
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid", "message": f"channel: {message}", "fields": {"channel": [message]}}
    }


def test_participants_api_needs_a_login_and_only_answers_get(anon, api):
    response = anon.get(participants_url("lobby"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert api.post(participants_url("lobby"), {}, format="json").status_code == 405
    assert anon.delete(participants_url("lobby")).status_code == 405


def test_participants_api_is_in_the_schema(anon):
    schema = anon.get(reverse("schema"), HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/channels/{channel}/participants/"]["get"]
    (parameter,) = operation["parameters"]
    assert (parameter["name"], parameter["in"], parameter["schema"]["maxLength"]) == ("channel", "path", 63)
    assert set(operation["responses"]) >= {"200", "400", "401", "403", "404"}


# --- the admin's presence page ---------------------------------------------------------------------


@pytest.fixture
def admin(client, admin_user):
    client.force_login(admin_user)
    return client


def test_admin_presence_page_lists_who_is_in_with_their_user_and_slot(admin, lobby_with_alice_and_bob):
    uids = lobby_with_alice_and_bob
    response = admin.get(PRESENCE_PAGE, {"channel": "lobby"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    rows = [(r["participant"].uid, r["username"], r["participant"].slot) for r in response.context["rows"]]
    assert rows == [(uids["alice"], "alice", "main"), (uids["bob"], "bob", "phone"), (4242, None, "")]
    page = response.content.decode()
    assert "3 in <strong>lobby</strong>" in page
    join = ChannelEvent.objects.get(uid=4242)
    assert f'href="{reverse("admin:tokens_channelevent_change", args=[join.pk])}"' in page
    assert "never_issued" in page  # the stranger's join is flagged (see test_leaks.py)


def test_admin_presence_page_is_reached_from_an_event_and_from_a_channel_search(
    admin, lobby_with_alice_and_bob
):
    join = ChannelEvent.objects.get(uid=4242)
    detail = admin.get(reverse("admin:tokens_channelevent_change", args=[join.pk])).content.decode()
    assert f'href="{PRESENCE_PAGE}?channel=lobby"' in detail
    listed = admin.get(reverse("admin:tokens_channelevent_changelist"), {"channel__exact": "ops room"})
    assert f'href="{PRESENCE_PAGE}?channel=ops%20room"' in listed.content.decode()
    assert "Who is in ops room now" in listed.content.decode()
    form = admin.get(PRESENCE_PAGE)
    assert form.status_code == 200
    assert "rows" not in form.context


def test_admin_presence_page_needs_the_view_permission_on_channel_events(client, django_user_model):
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(PRESENCE_PAGE, {"channel": "lobby"}).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_channelevent"))
    assert client.get(PRESENCE_PAGE, {"channel": "lobby"}).status_code == 200


def test_admin_check_with_agora_is_disabled_without_rest_credentials(admin, settings):
    settings.AGORA_CUSTOMER_ID = settings.AGORA_CUSTOMER_SECRET = ""
    page = admin.get(PRESENCE_PAGE, {"channel": "lobby"}).content.decode()
    assert '<input type="submit" value="Check with Agora" disabled' in page
    assert "AGORA_CUSTOMER_ID is not set; AGORA_CUSTOMER_SECRET is not set" in page
    response = admin.post(PRESENCE_PAGE, {"channel": "lobby"})  # sent anyway: nothing is asked
    assert response.status_code == 200
    assert response.context["comparison"] is None


@pytest.fixture
def agora(settings):
    """A fake Agora REST API on 127.0.0.1, and the settings that point the client at it."""
    settings.AGORA_CUSTOMER_ID = CUSTOMER_ID
    settings.AGORA_CUSTOMER_SECRET = CUSTOMER_SECRET
    settings.AGORA_REST_TIMEOUT = settings.AGORA_REST_CONNECT_TIMEOUT = 2
    settings.AGORA_REST_RETRIES = 1
    with FakeAgora(customer_id=CUSTOMER_ID, customer_secret=CUSTOMER_SECRET, app_id=APP_ID) as server:
        settings.AGORA_REST_URL = server.url
        yield server
        rest_client.close()
    assert server.errors == []


def test_admin_check_with_agora_shows_who_only_agora_and_only_we_see(admin, agora, lobby_with_alice_and_bob):
    uids = lobby_with_alice_and_bob
    carol = get_or_create_identity(user=lobby_with_alice_and_bob["bob_user"], slot="laptop").uid
    # Agora: alice and bob as hosts, the stranger gone, bob's laptop and an unknown uid in.
    agora.set_channel("lobby", broadcasters=[uids["alice"], uids["bob"], carol], audience=[777])
    response = admin.post(PRESENCE_PAGE, {"channel": "lobby"})
    assert response.status_code == 200
    comparison = response.context["comparison"]
    assert [p.uid for p in comparison.both] == [uids["alice"], uids["bob"]]
    assert [p.uid for p in comparison.only_ours] == [4242]
    assert comparison.only_agora == tuple(sorted([carol, 777]))
    assert comparison.owners == {carol: ("bob", "laptop")}
    rows = {row["participant"].uid: row["agora_role"] for row in response.context["rows"]}
    assert rows == {uids["alice"]: "broadcaster", uids["bob"]: "broadcaster", 4242: None}
    page = response.content.decode()
    assert "Agora lists 4 in the channel" in page
    assert "bob (laptop)" in page
    assert "none: a uid not issued here" in page
    assert [r.path for r in agora.requests] == [f"/dev/v1/channel/user/{APP_ID}/lobby"]


def test_admin_check_with_agora_of_a_channel_agora_does_not_know(admin, agora, lobby_with_alice_and_bob):
    response = admin.post(PRESENCE_PAGE, {"channel": "lobby"})
    comparison = response.context["comparison"]
    assert (comparison.agora.exists, comparison.both, comparison.only_agora) == (False, (), ())
    assert len(comparison.only_ours) == 3
    assert "Agora says the channel does not exist" in response.content.decode()


def test_admin_check_with_agora_reports_agoras_refusal_on_the_page(admin, agora, settings):
    settings.AGORA_CUSTOMER_SECRET = "0" * 32
    response = admin.post(PRESENCE_PAGE, {"channel": "lobby"})
    assert response.status_code == 200
    assert response.context["comparison"] is None
    assert "Agora REST auth (HTTP 401): Invalid authentication credentials" in response.content.decode()


def test_admin_check_with_agora_says_when_agora_listed_part_of_the_audience(admin, agora):
    lobby = Script("lobby")
    lobby.send(lobby.join(5, TS, event_type=105))
    agora.set_channel("lobby", broadcasters=[], audience=list(range(10, 10_011)))  # 10,001
    response = admin.post(PRESENCE_PAGE, {"channel": "lobby"})
    comparison = response.context["comparison"]
    assert (comparison.partial, comparison.agora.audience_total, len(comparison.agora.audience)) == (
        True,
        10_001,
        10_000,
    )
    assert [p.uid for p in comparison.only_ours] == [5]
    assert "Agora listed only the first 10000 of 10001 audience members" in response.content.decode()
