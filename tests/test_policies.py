"""Channel access: AGORA_CHANNEL_POLICY open (any channel), rules (the admin's channel rules)
or the app's own callable, for RTC and RTC+RTM requests, the tutorial endpoint and the CLI."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity, ChannelRule, IssuedToken

pytestmark = pytest.mark.django_db

RTC, RTM, RTC_RTM = reverse("tokens:rtc-token"), reverse("tokens:rtm-token"), reverse("tokens:rtc-rtm-token")
COMPAT_RTC = reverse("tokens:compat-rtc-token")
CHANNEL_ENDPOINTS = [RTC, RTC_RTM, COMPAT_RTC]


def _ask(api, path, channel, role="subscriber"):
    if path == COMPAT_RTC:
        return api.post(path, {"channel": channel, "isPublisher": role == "publisher"}, format="json")
    return api.post(path, {"channel": channel, "role": role}, format="json")


@pytest.fixture
def rules(settings):
    settings.AGORA_CHANNEL_POLICY = "rules"


EVERYTHING = "audio,video,data"  # what a publisher token publishes


def _rule(pattern, publish_rights="", groups=()):
    rule = ChannelRule.objects.create(pattern=pattern, publish_rights=publish_rights)
    rule.groups.set(groups)
    return rule


@pytest.mark.parametrize("path", CHANNEL_ENDPOINTS)
def test_open_policy_admits_any_channel(api, path):
    assert _ask(api, path, "anything at all", "publisher").status_code in (200, 201)


@pytest.mark.parametrize("path", CHANNEL_ENDPOINTS)
def test_rules_that_admit_nothing_refuse_every_channel_with_403_naming_the_channel(api, rules, path):
    _rule("other-room")
    response = _ask(api, path, "lobby")
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("channel_not_allowed", ["channel"])
    assert "lobby" in error["message"]
    assert IssuedToken.objects.count() == 0


@pytest.mark.parametrize("path", CHANNEL_ENDPOINTS)
def test_exact_and_prefix_patterns(api, rules, path):
    _rule("lobby")
    _rule("team-*", publish_rights=EVERYTHING)
    assert _ask(api, path, "lobby").status_code in (200, 201)
    assert _ask(api, path, "lobby2").status_code == 403
    assert _ask(api, path, "team-red", "publisher").status_code in (200, 201)
    assert _ask(api, path, "team-", "publisher").status_code in (200, 201)
    assert _ask(api, path, "teams").status_code == 403


@pytest.mark.parametrize("path", CHANNEL_ENDPOINTS)
def test_a_publisher_request_where_rules_admit_only_subscribers_is_403_publisher_not_allowed(
    api, rules, path
):
    _rule("stage")
    assert _ask(api, path, "stage").status_code in (200, 201)
    response = _ask(api, path, "stage", "publisher")
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("publisher_not_allowed", ["role"])


def test_groups_admit_their_members_only_and_the_highest_role_wins(api, user, rules, django_user_model):
    from tests.conftest import PASSWORD, client_for

    hosts, crew = Group.objects.create(name="hosts"), Group.objects.create(name="crew")
    _rule("show-*", groups=[crew])
    _rule("show-main", publish_rights=EVERYTHING, groups=[hosts])
    assert _ask(api, RTC, "show-main").status_code == 403  # alice is in no group
    user.groups.add(crew)
    assert _ask(api, RTC, "show-main").status_code == 201
    assert _ask(api, RTC, "show-main", "publisher").status_code == 403
    user.groups.add(hosts)
    assert _ask(api, RTC, "show-main", "publisher").status_code == 201
    assert _ask(api, RTC, "show-backstage", "publisher").status_code == 403
    outsider = client_for(django_user_model.objects.create_user("bob", password=PASSWORD))
    assert _ask(outsider, RTC, "show-main").status_code == 403


def test_uid_and_username_placeholders_give_each_user_private_channels(api, user, rules, django_user_model):
    from tests.conftest import PASSWORD, client_for

    _rule("dm-{uid}-*", publish_rights=EVERYTHING)
    _rule("home-{username}")
    own = api.get(reverse("tokens:me")).json()["uid"]
    bob = client_for(django_user_model.objects.create_user("bob", password=PASSWORD))
    bobs = bob.get(reverse("tokens:me")).json()["uid"]
    assert _ask(api, RTC_RTM, f"dm-{own}-{bobs}", "publisher").status_code == 201
    assert _ask(bob, RTC_RTM, f"dm-{own}-{bobs}").status_code == 403
    assert _ask(bob, RTC, f"dm-{bobs}-{own}", "publisher").status_code == 201
    # A slot's token for a private channel: {uid} is the account's main uid.
    response = api.post(RTC, {"channel": f"dm-{own}-x", "slot": "screen"}, format="json")
    assert response.status_code == 201
    assert response.json()["uid"] == AgoraIdentity.objects.get(user=user, slot="screen").uid
    assert _ask(api, RTC, "home-alice").status_code == 201
    assert _ask(bob, RTC, "home-alice").status_code == 403


def test_an_edited_or_deleted_rule_applies_to_the_very_next_request(api, rules):
    rule = _rule("room")
    assert _ask(api, RTC, "room").status_code == 201
    rule.pattern = "other"
    rule.save()
    assert _ask(api, RTC, "room").status_code == 403
    rule.pattern = "room"
    rule.save()
    assert _ask(api, RTC, "room", "publisher").status_code == 403
    ChannelRule.objects.filter(pk=rule.pk).update(publish_rights=EVERYTHING)
    assert _ask(api, RTC, "room", "publisher").status_code == 201
    rule.delete()
    assert _ask(api, RTC, "room").status_code == 403


def test_rtm_alone_is_not_a_channel_and_is_never_refused_by_channel_rules(api, rules):
    assert api.post(RTM, {}, format="json").status_code == 201


def test_the_command_obeys_the_policy_too(user, rules):
    with pytest.raises(CommandError, match="may not join 'ops'"):
        call_command("issue_token", "alice", "rtc", "--channel", "ops")
    _rule("ops")
    call_command("issue_token", "alice", "rtc", "--channel", "ops")
    assert IssuedToken.objects.get().channel == "ops"


# An app's own policy, as AGORA_CHANNEL_POLICY would name it.
def members_only(user, channel, role):
    if channel.startswith("room-") and channel != f"room-{user.get_username()}":
        raise PermissionDenied(f"{user.get_username()} is not a member of {channel}.")
    if channel == "vip":
        raise TokenServiceError(
            "not_a_vip", "channel: VIPs only.", status=403, fields={"channel": ["VIPs only."]}
        )


def test_the_apps_own_callable_decides(api, settings):
    settings.AGORA_CHANNEL_POLICY = "tests.test_policies.members_only"
    assert _ask(api, RTC, "room-alice").status_code == 201
    response = _ask(api, RTC_RTM, "room-bob")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "channel_not_allowed"
    assert response.json()["error"]["fields"] == {"channel": ["alice is not a member of room-bob."]}
    response = _ask(api, COMPAT_RTC, "vip")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "not_a_vip")


@pytest.mark.parametrize("policy", ["nonsense", "tests.test_policies.no_such_function", "tests.nowhere.f"])
def test_check_fails_when_the_policy_cannot_be_imported(settings, policy):
    from tokens.checks import check_agora_settings

    settings.AGORA_CHANNEL_POLICY = policy
    assert [e.id for e in check_agora_settings()] == ["tokens.E011"]


@pytest.mark.parametrize("policy", ["open", "rules", "tests.test_policies.members_only"])
def test_check_accepts_the_built_in_policies_and_an_importable_callable(settings, policy):
    from tokens.checks import check_agora_settings

    settings.AGORA_CHANNEL_POLICY = policy
    assert check_agora_settings() == []


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [("room", True), ("team-*", True), ("*", True), ("dm-{uid}-*", True), ("{username}", True),
     ("a*b", False), ("bad/name", False), ("", False), ("x" * 64, False)],
)  # fmt: skip
def test_rule_patterns_are_validated_in_the_admin(pattern, ok):
    from django.core.exceptions import ValidationError

    rule = ChannelRule(pattern=pattern)
    if ok:
        rule.full_clean()
    else:
        with pytest.raises(ValidationError):
            rule.full_clean()


def test_rules_are_managed_in_the_admin(admin_client, rules):
    response = admin_client.post(
        reverse("admin:tokens_channelrule_add"),
        {"pattern": "team-*", "publish_rights": EVERYTHING, "early_join_seconds": 0, "note": "teams"},
    )
    assert response.status_code == 302, response.content
    rule = ChannelRule.objects.get()
    assert (rule.pattern, rule.publish_rights) == ("team-*", EVERYTHING)
    assert admin_client.get(reverse("admin:tokens_channelrule_changelist")).status_code == 200
