"""Meeting windows: a channel rule's `starts_at`, `ends_at` and early-join margin. Before the
window: 403 `not_started` with the start time; during it the join privilege ends at `ends_at`
whatever `expires_in` asks (Agora then removes the user) and the answer says so; after it: 403
`ended`. Every test runs on a frozen clock (`now` passed in, or timezone.now pinned): no
sleeping."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from tests.conftest import APP_CERTIFICATE
from tokens import agora, services
from tokens.choices import ALL_RIGHTS
from tokens.exceptions import TokenServiceError
from tokens.models import ChannelRule, IssuedToken, token_sha256
from tokens.policies import ChannelAccess

pytestmark = pytest.mark.django_db

RTC, RTC_RTM = reverse("tokens:rtc-token"), reverse("tokens:rtc-rtm-token")
EVERYTHING = "audio,video,data"
NOW = datetime(2030, 3, 4, 9, 0, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Clock:
    """timezone.now(), frozen at `now` until moved."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def move(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    # Whole seconds, near the real time: the API keys made for the test stay valid.
    frozen = Clock(timezone.now().replace(microsecond=0))
    monkeypatch.setattr(timezone, "now", lambda: frozen.now)
    return frozen


@pytest.fixture
def rules(settings):
    settings.AGORA_CHANNEL_POLICY = "rules"


def _window(pattern="standup", *, start=None, end=None, early=0, rights=EVERYTHING, groups=()):
    rule = ChannelRule.objects.create(
        pattern=pattern, publish_rights=rights, starts_at=start, ends_at=end, early_join_seconds=early
    )
    rule.groups.set(groups)
    return rule


def _issue(user, *, now=NOW, channel="standup", **ask):
    return services.issue_token(user=user, service=ask.pop("service", "rtc"), channel=channel, now=now, **ask)


def _refusal(user, *, now=NOW, **ask) -> TokenServiceError:
    rows = IssuedToken.objects.count()
    with pytest.raises(TokenServiceError) as refused:
        _issue(user, now=now, **ask)
    assert IssuedToken.objects.count() == rows  # no token, no row
    return refused.value


def _privileges(token: str) -> dict[int, int]:
    return agora.decode(token).service(agora.SERVICE_RTC).privileges


# --- before, during, after (the service, `now` passed in) ----------------------------------------


def test_before_the_start_it_is_403_not_started_with_the_start_time(user, rules):
    _window(start=NOW + timedelta(minutes=10), end=NOW + timedelta(hours=1))
    refusal = _refusal(user)
    assert (refusal.code, refusal.status) == ("not_started", 403)
    starts = "2030-03-04T09:10:00Z"
    assert refusal.message == f"channel: 'standup' opens at {starts}."
    assert refusal.fields == {"channel": [f"Opens at {starts}."], "starts_at": [starts], "opens_at": [starts]}
    assert _issue(user, now=NOW + timedelta(minutes=10)).expires_at == NOW + timedelta(hours=1)


def test_the_early_join_margin_opens_the_channel_before_the_start(user, rules):
    _window(start=NOW + timedelta(minutes=10), end=NOW + timedelta(hours=1), early=300)
    refusal = _refusal(user, now=NOW + timedelta(minutes=4, seconds=59))
    assert refusal.code == "not_started"
    assert (
        refusal.message
        == "channel: 'standup' opens at 2030-03-04T09:05:00Z (it starts at 2030-03-04T09:10:00Z)."
    )
    assert refusal.fields["starts_at"] == ["2030-03-04T09:10:00Z"]
    assert refusal.fields["opens_at"] == ["2030-03-04T09:05:00Z"]
    issued = _issue(user, now=NOW + timedelta(minutes=5), role="publisher")
    assert issued.expires_at == NOW + timedelta(hours=1)
    assert set(_privileges(issued.token).values()) == {55 * 60}


@pytest.mark.parametrize("service", ["rtc", "rtc+rtm"])
def test_during_the_window_the_join_privilege_ends_at_its_end_whatever_expires_in_asks(user, rules, service):
    _window(start=NOW - timedelta(minutes=5), end=NOW + timedelta(minutes=30))
    issued = _issue(user, service=service, role="audio", expires_in=7200, publish_expires_in=3600)
    assert (issued.expires_at, issued.expires_in) == (NOW + timedelta(minutes=30), 1800)
    assert issued.publish_expires_at == NOW + timedelta(minutes=30)  # publishing ends with it at the latest
    decoded = agora.decode(issued.token)
    assert (decoded.issued_at, decoded.expires_at) == (int(NOW.timestamp()), int(NOW.timestamp()) + 1800)
    assert _privileges(issued.token) == {1: 1800, 2: 1800}
    if service == "rtc+rtm":
        assert decoded.service(agora.SERVICE_RTM).privileges == {1: 1800}
    assert agora.verify(decoded, APP_CERTIFICATE)
    row = IssuedToken.objects.get(token_sha256=token_sha256(issued.token))
    assert (row.expires_at, row.publish_expires_at) == (issued.expires_at, issued.publish_expires_at)


def test_a_token_shorter_than_the_rest_of_the_window_keeps_its_life(user, rules):
    _window(end=NOW + timedelta(hours=2))
    issued = _issue(user, role="publisher", expires_in=600, publish_expires_in=120)
    assert (issued.expires_in, issued.publish_expires_at) == (600, NOW + timedelta(seconds=120))
    assert _privileges(issued.token) == {1: 600, 2: 120, 3: 120, 4: 120}


def test_every_renewal_in_the_window_ends_at_its_end(user, rules):
    _window(end=NOW + timedelta(minutes=90))
    for minutes in (0, 50, 85):
        issued = _issue(user, now=NOW + timedelta(minutes=minutes), expires_in=7200)
        assert issued.expires_at == NOW + timedelta(minutes=90)
    assert _issue(user, now=NOW + timedelta(minutes=89, seconds=59)).expires_in == 1


@pytest.mark.parametrize("after", [timedelta(0), timedelta(milliseconds=1), timedelta(days=3)])
def test_after_the_end_it_is_403_ended(user, rules, after):
    _window(start=NOW - timedelta(hours=1), end=NOW)
    refusal = _refusal(user, now=NOW + after)
    assert (refusal.code, refusal.status) == ("ended", 403)
    assert refusal.message == "channel: 'standup' ended at 2030-03-04T09:00:00Z."
    assert refusal.fields == {
        "channel": ["Ended at 2030-03-04T09:00:00Z."],
        "ends_at": ["2030-03-04T09:00:00Z"],
    }


def test_less_than_a_second_left_is_ended_not_a_token_of_no_life(user, rules):
    _window(end=NOW + timedelta(milliseconds=999))
    assert _refusal(user).code == "ended"


def test_006_tokens_end_at_the_window_too(user, rules):
    _window(end=NOW + timedelta(minutes=20))
    issued = _issue(user, role="publisher", version="006")
    decoded = agora.decode(issued.token)
    assert set(decoded.services[0].privileges.values()) == {int(NOW.timestamp()) + 1200}
    assert (issued.expires_in, issued.publish_expires_at) == (1200, issued.expires_at)


def test_a_rule_without_a_window_changes_nothing(user, rules):
    _window(rights="")
    issued = _issue(user, expires_in=3600)
    assert (issued.expires_at, issued.role, issued.publish_expires_at) == (
        NOW + timedelta(hours=1),
        "subscriber",
        None,
    )


def test_the_open_policy_has_no_rules_hence_no_windows(user, settings):
    settings.AGORA_CHANNEL_POLICY = "open"
    _window(end=NOW - timedelta(days=1))
    assert _issue(user).expires_at == NOW + timedelta(hours=1)


# --- several rules ----------------------------------------------------------------------------


def test_a_window_for_speaking_beside_an_open_listening_rule(user, rules):
    """Everyone may listen any time; hosts may speak from 10:00 to 11:00: their publish
    privileges end at 11:00 and their join privilege lasts."""
    hosts = Group.objects.create(name="hosts")
    user.groups.add(hosts)
    _window("show*", rights="")
    start, end = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    _window("show", start=start, end=end, groups=[hosts])
    early = _refusal(user, channel="show", role="publisher")
    assert early.code == "publisher_not_allowed"
    assert _issue(user, channel="show").expires_at == NOW + timedelta(hours=1)
    during = _issue(
        user, now=start + timedelta(minutes=30), channel="show", role="publisher", expires_in=7200
    )
    assert (during.expires_in, during.publish_expires_at) == (7200, end)
    assert _privileges(during.token) == {1: 7200, 2: 1800, 3: 1800, 4: 1800}
    # 006 cannot end publishing before the join: the whole token ends with the speaking window.
    old = _issue(user, now=start + timedelta(minutes=30), channel="show", role="publisher", version="006")
    assert (old.expires_at, old.publish_expires_at) == (end, end)
    assert _refusal(user, now=end, channel="show", role="audio").code == "publisher_not_allowed"
    assert _issue(user, now=end, channel="show").expires_in == 3600


def test_the_soonest_of_several_unopened_windows_is_named(user, rules):
    _window("class-*", start=NOW + timedelta(hours=3), end=NOW + timedelta(hours=4))
    _window("class-1", start=NOW + timedelta(hours=1), end=NOW + timedelta(hours=2))
    assert _refusal(user, channel="class-1").fields["starts_at"] == ["2030-03-04T10:00:00Z"]
    # Between the two: the later one is still ahead.
    assert _refusal(user, now=NOW + timedelta(hours=2), channel="class-1").fields["starts_at"] == [
        "2030-03-04T12:00:00Z"
    ]
    assert _issue(user, now=NOW + timedelta(hours=3), channel="class-1").expires_at == NOW + timedelta(
        hours=4
    )
    assert _refusal(user, now=NOW + timedelta(hours=5), channel="class-1").fields["ends_at"] == [
        "2030-03-04T13:00:00Z"
    ]


def test_open_windows_together_last_as_long_as_the_latest(user, rules):
    _window("room-*", end=NOW + timedelta(minutes=10))
    _window("room-1", end=NOW + timedelta(minutes=40))
    assert _issue(user, channel="room-1").expires_in == 2400
    assert _issue(user, channel="room-2").expires_in == 600


# --- an app's own policy ----------------------------------------------------------------------


def until_ten(user, channel, role):
    return ChannelAccess(ALL_RIGHTS, ends_at=datetime(2030, 3, 4, 10, 0, tzinfo=UTC))


def audio_only(user, channel, role):
    return [ChannelAccess(frozenset({"audio"}))]


def test_an_apps_own_policy_may_answer_a_window_or_rights(user, settings):
    settings.AGORA_CHANNEL_POLICY = "tests.test_windows.until_ten"
    assert _issue(user, role="publisher").expires_at == datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
    assert _refusal(user, now=NOW + timedelta(hours=2)).code == "ended"
    settings.AGORA_CHANNEL_POLICY = "tests.test_windows.audio_only"
    assert _issue(user, role="audio").role == "audio"
    assert _refusal(user, role="video").code == "publisher_not_allowed"


# --- through the API, on a frozen clock ------------------------------------------------------------


def test_the_api_answers_when_access_ends_and_refuses_outside_the_window(api, rules, clock):
    start, end = clock.now + timedelta(minutes=15), clock.now + timedelta(minutes=75)
    _window(start=start, end=end, early=300)
    response = api.post(RTC, {"channel": "standup"}, format="json")
    assert response.status_code == 403
    opens = _iso(start - timedelta(minutes=5))
    assert response.json() == {
        "error": {
            "code": "not_started",
            "message": f"channel: 'standup' opens at {opens} (it starts at {_iso(start)}).",
            "fields": {
                "channel": [f"Opens at {opens} (it starts at {_iso(start)})."],
                "starts_at": [_iso(start)],
                "opens_at": [opens],
            },
        }
    }
    clock.move(minutes=10)
    for path in (RTC, RTC_RTM):
        body = api.post(
            path, {"channel": "standup", "role": "publisher", "expires_in": 7200}, format="json"
        ).json()
        assert (body["issued_at"], body["expires_at"], body["expires_in"]) == (
            _iso(clock.now),
            _iso(end),
            3900,
        )
        assert body["publish_expires_at"] == _iso(end)
        assert set(_privileges(body["token"]).values()) == {3900}
    clock.move(minutes=65)
    response = api.post(RTC, {"channel": "standup"}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "ended")
    assert response.json()["error"]["fields"]["ends_at"] == [_iso(end)]
    assert IssuedToken.objects.count() == 2


@pytest.mark.parametrize("window", [False, True])
def test_a_window_costs_no_statement_more(user, rules, clock, django_assert_num_queries, window):
    if window:
        _window(start=clock.now - timedelta(minutes=1), end=clock.now + timedelta(hours=1))
    else:
        _window()
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=user)[1]}")
    assert client.post(RTC, {"channel": "standup"}, format="json").status_code == 201
    # The key (not remembered while rules decide), the rules (one query, as before windows), the
    # audit row: as on a warm request before there were windows.
    with django_assert_num_queries(3):
        assert client.post(RTC, {"channel": "standup", "role": "audio"}, format="json").status_code == 201


# --- the rules themselves ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "early", "field"),
    [
        (NOW, NOW, 0, "ends_at"),
        (NOW, NOW - timedelta(seconds=1), 0, "ends_at"),
        (None, NOW, 60, "early_join_seconds"),
        (NOW, None, 86401, "early_join_seconds"),
    ],
)
def test_a_window_must_end_after_it_starts_in_the_admin_and_the_database(start, end, early, field):
    rule = ChannelRule(pattern="standup", starts_at=start, ends_at=end, early_join_seconds=early)
    with pytest.raises(ValidationError) as invalid:
        rule.full_clean()
    assert field in invalid.value.message_dict
    if field == "ends_at" or early > 86400:
        with pytest.raises(IntegrityError), transaction.atomic():
            rule.save()


def test_windows_are_shown_and_edited_in_the_admin(admin_client, rules):
    response = admin_client.post(
        reverse("admin:tokens_channelrule_add"),
        {
            "pattern": "standup",
            "publish_rights": "audio",
            "starts_at_0": "2030-03-04",
            "starts_at_1": "09:00:00",
            "ends_at_0": "2030-03-04",
            "ends_at_1": "09:30:00",
            "early_join_seconds": "300",
            "note": "",
        },
    )
    assert response.status_code == 302, response.content
    rule = ChannelRule.objects.get()
    assert (rule.starts_at, rule.ends_at, rule.early_join_seconds, rule.publish_rights) == (
        NOW, NOW + timedelta(minutes=30), 300, "audio",
    )  # fmt: skip
    listing = admin_client.get(reverse("admin:tokens_channelrule_changelist")).content.decode()
    assert "2030-03-04 09:00 to 2030-03-04 09:30, join 300 s early" in listing
    backwards = admin_client.post(
        reverse("admin:tokens_channelrule_change", args=[rule.pk]),
        {"pattern": "standup", "publish_rights": "", "starts_at_0": "2030-03-04", "starts_at_1": "09:00:00",
         "ends_at_0": "2030-03-04", "ends_at_1": "08:00:00", "early_join_seconds": "0", "note": ""},
    )  # fmt: skip
    assert backwards.status_code == 200 and "Must be after the start." in backwards.content.decode()
