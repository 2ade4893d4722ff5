"""Per-media publish rights: the roles audio, video and data beside publisher and subscriber,
publish_expires_in (speak for a while, then listen), the publisher policy and the channel rules'
rights applied to each, 006's all or nothing, the screen slot's default, and the audit row's
record of what each token was granted. Every token is decoded and its privileges' expiries
checked; Agora's own builders reproduce the API's tokens byte for byte."""

import importlib
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from tests.conftest import APP_CERTIFICATE, APP_ID
from tokens import agora, services
from tokens.exceptions import TokenServiceError
from tokens.models import ChannelRule, IssuedToken, token_sha256

pytestmark = pytest.mark.django_db

RTC, RTC_RTM = reverse("tokens:rtc-token"), reverse("tokens:rtc-rtm-token")
EVERYTHING = "audio,video,data"
ROLES = [
    ("publisher", {1, 2, 3, 4}, EVERYTHING),
    ("audio", {1, 2}, "audio"),
    ("video", {1, 3}, "video"),
    ("data", {1, 4}, "data"),
    ("subscriber", {1}, ""),
]
PUBLISHING_ROLES = ["publisher", "audio", "video", "data"]


def _rtc(token: str) -> agora.DecodedService:
    return agora.decode(token).service(agora.SERVICE_RTC)


def _at(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _row(body: dict) -> IssuedToken:
    return IssuedToken.objects.get(token_sha256=token_sha256(body["token"]))


def _issued(api, path, **body) -> dict:
    response = api.post(path, {"channel": "stage", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _refused(response, status: int, code: str, field: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert field in error["fields"]
    assert not IssuedToken.objects.exists()
    return error


# --- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [RTC, RTC_RTM])
@pytest.mark.parametrize(("role", "privileges", "rights"), ROLES)
def test_a_role_grants_exactly_its_publish_rights_for_the_tokens_life(api, path, role, privileges, rights):
    body = _issued(api, path, role=role, expires_in=900)
    rtc = _rtc(body["token"])
    assert set(rtc.privileges) == privileges
    assert set(rtc.privileges.values()) == {900}
    assert (rtc.channel, rtc.account) == ("stage", str(body["uid"]))
    assert agora.verify(body["token"], APP_CERTIFICATE)
    assert (body["role"], body["expires_in"]) == (role, 900)
    assert body["publish_expires_at"] == (body["expires_at"] if rights else None)
    row = _row(body)
    assert (row.role, row.publish_rights) == (role, rights)
    assert row.publish_expires_at == (row.expires_at if rights else None)


def test_the_rtm_part_of_a_combined_token_lasts_as_its_join(api):
    body = _issued(api, RTC_RTM, role="audio", expires_in=900, publish_expires_in=300)
    decoded = agora.decode(body["token"])
    assert decoded.service(agora.SERVICE_RTC).privileges == {1: 900, 2: 300}
    rtm = decoded.service(agora.SERVICE_RTM)
    assert (rtm.user_id, rtm.privileges) == (body["rtm_user_id"], {1: 900})


@pytest.mark.parametrize(("body", "field"), [({"role": "recorder"}, "role"), ({"role": "Audio"}, "role")])
def test_a_role_a_user_cannot_ask_for_is_400_naming_role(api, body, field):
    _refused(api.post(RTC, {"channel": "stage", **body}, format="json"), 400, "invalid", field)


@pytest.mark.parametrize("role", ["audio", "video", "data"])
def test_version_006_refuses_a_per_media_role_naming_version(api, role):
    response = api.post(RTC, {"channel": "stage", "role": role, "version": "006"}, format="json")
    error = _refused(response, 400, "invalid", "version")
    assert error["message"].startswith("version: 006 grants publishing all or nothing")


@pytest.mark.parametrize(("role", "privileges"), [("publisher", {1, 2, 3, 4}), ("subscriber", {1})])
def test_version_006_publisher_and_subscriber_keep_working(api, role, privileges):
    body = _issued(api, RTC, role=role, version="006", expires_in=600)
    decoded = agora.decode(body["token"])
    assert set(decoded.services[0].privileges) == privileges
    assert agora.verify(decoded, APP_CERTIFICATE, channel="stage", account=str(body["uid"]))
    assert body["publish_expires_at"] == (body["expires_at"] if role == "publisher" else None)


# --- time-limited speaking ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [RTC, RTC_RTM])
@pytest.mark.parametrize("role", PUBLISHING_ROLES)
def test_publish_expires_in_ends_publishing_and_the_join_privilege_lasts(api, path, role):
    body = _issued(api, path, role=role, expires_in=3600, publish_expires_in=120)
    rtc = _rtc(body["token"])
    issued = _at(body["issued_at"])
    assert rtc.privileges[agora.PRIVILEGE_JOIN_CHANNEL] == 3600
    assert {p: s for p, s in rtc.privileges.items() if p != 1} == dict.fromkeys(
        set(rtc.privileges) - {1}, 120
    )
    assert len(rtc.privileges) == (4 if role == "publisher" else 2)
    assert (body["expires_in"], _at(body["expires_at"])) == (3600, issued + 3600)
    assert _at(body["publish_expires_at"]) == issued + 120
    row = _row(body)
    assert row.publish_expires_at == row.issued_at + timedelta(seconds=120)
    assert row.expires_at == row.issued_at + timedelta(seconds=3600)


def test_publish_expires_in_may_equal_the_tokens_life_and_then_changes_nothing(api):
    body = _issued(api, RTC, role="audio", expires_in=600, publish_expires_in=600)
    assert _rtc(body["token"]).privileges == {1: 600, 2: 600}
    assert body["publish_expires_at"] == body["expires_at"]


@pytest.mark.parametrize(
    "body",
    [
        {"role": "audio", "publish_expires_in": 59},
        {"role": "audio", "publish_expires_in": 0},
        {"role": "audio", "publish_expires_in": 86401},
        {"role": "audio", "publish_expires_in": "120"},
        {"role": "audio", "publish_expires_in": 120.5},
        {"role": "audio", "publish_expires_in": True},
        {"role": "subscriber", "publish_expires_in": 120},
        {"publish_expires_in": 120},  # no role named: the main slot's default publishes nothing
        {"publish_expires_in": 120, "slot": "screen"},  # nor is the screen slot's default asked for
    ],
)
@pytest.mark.parametrize("path", [RTC, RTC_RTM])
def test_a_bad_publish_expires_in_is_400_naming_it(api, path, body):
    error = _refused(
        api.post(path, {"channel": "stage", **body}, format="json"), 400, "invalid", "publish_expires_in"
    )
    assert error["message"].startswith("publish_expires_in: ")


@pytest.mark.parametrize("path", [RTC, RTC_RTM])
def test_publishing_longer_than_the_token_ends_with_it(api, path):
    body = _issued(api, path, role="video", expires_in=600, publish_expires_in=3000)
    assert _rtc(body["token"]).privileges == {1: 600, 3: 600}
    assert body["publish_expires_at"] == body["expires_at"]
    default = _issued(api, path, role="audio", publish_expires_in=7200)  # AGORA_TOKEN_TTL: 3600
    assert _rtc(default["token"]).privileges == {1: 3600, 2: 3600}


def test_version_006_cannot_end_publishing_early_and_says_version(api):
    response = api.post(
        RTC,
        {"channel": "stage", "role": "publisher", "version": "006", "publish_expires_in": 120},
        format="json",
    )
    error = _refused(response, 400, "invalid", "version")
    assert "publish_expires_in needs 007" in error["message"]


def test_a_renewal_gives_a_new_publish_window(user):
    first_now = datetime(2030, 1, 1, 12, 0, 0).astimezone()
    ask = {"user": user, "service": "rtc", "channel": "stage", "role": "audio", "publish_expires_in": 120}
    first = services.issue_token(**ask, now=first_now)
    renewed = services.issue_token(**ask, now=first_now + timedelta(seconds=100))
    assert first.publish_expires_at == first_now + timedelta(seconds=120)
    assert renewed.publish_expires_at == first_now + timedelta(seconds=220)
    assert _rtc(renewed.token).privileges == {1: 3600, 2: 120}
    assert agora.decode(renewed.token).issued_at == int(first_now.timestamp()) + 100


# --- who may publish what -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "named"),
    [("audio", "audio"), ("video", "video"), ("data", "data"), ("publisher", "audio, video, data")],
)
def test_every_role_that_publishes_needs_the_publish_permission_and_the_refusal_names_it(
    api, user, settings, role, named
):
    settings.AGORA_PUBLISHER_POLICY = "permission"
    error = _refused(
        api.post(RTC, {"channel": "stage", "role": role}, format="json"), 403, "publisher_not_allowed", "role"
    )
    assert error["message"] == f"role: this account may not publish {named} here."
    assert error["fields"]["role"][0].startswith(f"Refused: {named}.")
    assert _issued(api, RTC, role="subscriber")["role"] == "subscriber"
    user.user_permissions.add(Permission.objects.get(codename="publish"))
    assert _issued(api, RTC, role=role)["role"] == role


@pytest.fixture
def rules(settings):
    settings.AGORA_CHANNEL_POLICY = "rules"


def test_a_rules_rights_admit_those_roles_and_refuse_more_naming_what_was_refused(api, rules):
    ChannelRule.objects.create(pattern="stage", publish_rights="audio")
    assert set(_rtc(_issued(api, RTC, role="audio")["token"]).privileges) == {1, 2}
    assert _issued(api, RTC, role="subscriber")["role"] == "subscriber"
    for role, named in [("video", "video"), ("data", "data"), ("publisher", "video, data")]:
        response = api.post(RTC, {"channel": "stage", "role": role}, format="json")
        assert response.status_code == 403, response.content
        error = response.json()["error"]
        assert (error["code"], error["message"]) == (
            "publisher_not_allowed",
            f"role: this account may not publish {named} here.",
        )
        assert error["fields"] == {
            "role": [f"Refused: {named}. The channel rules let you publish audio in 'stage' now."]
        }
    assert IssuedToken.objects.count() == 2


def test_the_rules_that_admit_the_caller_grant_their_rights_together(api, user, rules):
    from django.contrib.auth.models import Group

    hosts = Group.objects.create(name="hosts")
    ChannelRule.objects.create(pattern="stage-*", publish_rights="audio")
    ChannelRule.objects.create(pattern="stage-1", publish_rights="video,data").groups.set([hosts])
    assert api.post(RTC, {"channel": "stage-1", "role": "video"}, format="json").status_code == 403
    user.groups.add(hosts)
    for role in PUBLISHING_ROLES:
        assert _issued(api, RTC, channel="stage-1", role=role)["role"] == role
    assert api.post(RTC, {"channel": "stage-2", "role": "video"}, format="json").status_code == 403


def test_a_listen_only_rule_admits_subscribers_only(api, rules):
    ChannelRule.objects.create(pattern="stage")
    assert _issued(api, RTC)["role"] == "subscriber"
    for role in PUBLISHING_ROLES:
        assert api.post(RTC, {"channel": "stage", "role": role}, format="json").status_code == 403


# --- the screen slot's default ------------------------------------------------------------------


@pytest.mark.parametrize("path", [RTC, RTC_RTM])
def test_the_screen_slot_defaults_to_video_on_007(api, path):
    body = _issued(api, path, slot="screen")
    assert body["role"] == "video"
    assert set(_rtc(body["token"]).privileges) == {1, 3}
    assert _row(body).publish_rights == "video"


@pytest.mark.parametrize("slot", ["main", "phone", "screen-2"])
def test_other_slots_default_to_subscriber(api, slot):
    body = _issued(api, RTC, slot=slot)
    assert (body["role"], set(_rtc(body["token"]).privileges)) == ("subscriber", {1})


def test_the_screen_default_is_subscriber_where_video_is_refused_as_it_was_before(api, settings):
    assert _issued(api, RTC, slot="screen", version="006")["role"] == "subscriber"
    settings.AGORA_PUBLISHER_POLICY = "permission"
    assert _issued(api, RTC, slot="screen")["role"] == "subscriber"
    settings.AGORA_PUBLISHER_POLICY = "open"
    settings.AGORA_CHANNEL_POLICY = "rules"
    ChannelRule.objects.create(pattern="stage", publish_rights="audio")
    body = _issued(api, RTC, slot="screen")
    assert (body["role"], set(_rtc(body["token"]).privileges)) == ("subscriber", {1})
    assert _row(body).publish_rights == ""


def test_an_explicit_role_on_the_screen_slot_is_asked_for_not_defaulted(api, settings):
    settings.AGORA_PUBLISHER_POLICY = "permission"
    response = api.post(RTC, {"channel": "stage", "slot": "screen", "role": "video"}, format="json")
    assert response.json()["error"]["code"] == "publisher_not_allowed"
    settings.AGORA_PUBLISHER_POLICY = "open"
    body = _issued(api, RTC, slot="screen", role="video", publish_expires_in=120)
    assert (body["role"], _rtc(body["token"]).privileges) == ("video", {1: 3600, 3: 120})
    assert _issued(api, RTC, slot="screen", role="subscriber")["role"] == "subscriber"


# A policy of the app's own, written before per-media roles.
def speakers_only(user, channel, role):
    if role == "publisher" and not user.is_staff:
        raise TokenServiceError("not_a_speaker", "role: speakers only.", status=403, fields={"role": ["No."]})


def test_an_apps_own_policy_is_asked_about_every_publishing_role_as_a_publisher(api, settings):
    settings.AGORA_CHANNEL_POLICY = "tests.test_rights.speakers_only"
    for role in PUBLISHING_ROLES:
        response = api.post(RTC, {"channel": "stage", "role": role}, format="json")
        assert (response.status_code, response.json()["error"]["code"]) == (403, "not_a_speaker")
    assert _issued(api, RTC)["role"] == "subscriber"
    assert _issued(api, RTC, slot="screen")["role"] == "subscriber"  # the default, refused: asked again


# --- Agora's own bytes ---------------------------------------------------------------------------


@pytest.fixture
def agora_at(monkeypatch):
    """Pin agoraiotools' clock and salt to a token's own."""
    module = importlib.import_module("agoraiotools.AccessToken2")

    def pin(decoded: agora.DecodedToken):
        monkeypatch.setattr(module, "time", SimpleNamespace(time=lambda: decoded.issued_at))
        salts = SimpleNamespace(randint=lambda a, b: decoded.salt)
        monkeypatch.setattr(module, "secrets", SimpleNamespace(SystemRandom=lambda: salts))
        return module

    return pin


def test_an_audio_token_from_the_api_is_agoras_service_rtc_byte_for_byte(api, agora_at):
    body = _issued(api, RTC, role="audio", expires_in=900, publish_expires_in=300)
    theirs = agora_at(agora.decode(body["token"]))
    token = theirs.AccessToken(APP_ID, APP_CERTIFICATE, expire=900)
    service = theirs.ServiceRtc("stage", body["uid"])
    service.add_privilege(theirs.ServiceRtc.kPrivilegeJoinChannel, 900)
    service.add_privilege(theirs.ServiceRtc.kPrivilegePublishAudioStream, 300)
    token.add_service(service)
    assert token.build() == body["token"]


def test_a_time_limited_publisher_from_the_api_is_agoras_builder_byte_for_byte(api, agora_at):
    from agoraiotools.RtcTokenBuilder2 import Role_Publisher, RtcTokenBuilder2

    body = _issued(api, RTC, role="publisher", expires_in=900, publish_expires_in=120)
    agora_at(agora.decode(body["token"]))
    uid = str(body["uid"])
    theirs = RtcTokenBuilder2.build_token_with_user_account_and_privilege(
        APP_ID, APP_CERTIFICATE, "stage", uid, 900, 900, 120, 120, 120
    )
    assert theirs == body["token"]
    combined = _issued(api, RTC_RTM, role="publisher", expires_in=900, publish_expires_in=120)
    agora_at(agora.decode(combined["token"]))
    theirs = RtcTokenBuilder2.build_token_with_rtm2(
        APP_ID, APP_CERTIFICATE, "stage", uid, Role_Publisher, 900, 900, 120, 120, 120, uid, 900
    )
    assert theirs == combined["token"]


# --- schema, admin, migration ---------------------------------------------------------------


def test_the_schema_describes_the_roles_publish_expires_in_and_publish_expires_at(anon):
    schema = anon.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    assert components["RoleEnum"]["enum"] == ["publisher", "subscriber", "audio", "video", "data"]
    for name in ("RtcTokenInputRequest", "RtcRtmTokenInputRequest"):
        field = components[name]["properties"]["publish_expires_in"]
        assert (field["type"], field["minimum"], field["maximum"]) == ("integer", 60, 86400)
        assert "role" in components[name]["properties"]
    for name in ("RtcTokenOutput", "RtcRtmTokenOutput"):
        field = components[name]["properties"]["publish_expires_at"]
        assert (field["format"], field["nullable"]) == ("date-time", True)
        assert "publish_expires_at" in components[name]["required"]
    # The combinations refused together are in the schema too (what schemathesis then avoids).
    refused = [rule["not"] for rule in components["RtcTokenInputRequest"]["allOf"]]
    assert {"required": ["publish_expires_in"], "not": {"required": ["role"]}} in refused
    assert {
        "required": ["publish_expires_in", "version"],
        "properties": {"version": {"enum": ["006"]}},
    } in refused
    assert len(components["RtcRtmTokenInputRequest"]["allOf"]) == 2
    refusals = schema["paths"][RTC]["post"]["responses"]["403"]["description"]
    for code in ("publisher_not_allowed", "channel_not_allowed", "not_started", "ended"):
        assert f"`{code}`" in refusals
    # The tutorial's contract is unchanged.
    assert set(components["CompatRtcOutput"]["properties"]) == {"uid", "token"}
    assert set(components["CompatRtcInputRequest"]["properties"]) == {"channel", "isPublisher"}


def test_the_audit_admin_shows_the_rights_and_when_publishing_ends(admin_client, api):
    body = _issued(api, RTC, role="audio", expires_in=900, publish_expires_in=300)
    row = _row(body)
    page = admin_client.get(reverse("admin:tokens_issuedtoken_change", args=[row.pk])).content.decode()
    assert "Audio only" in page and "publish rights" in page.lower() and "publish expires at" in page.lower()
    listing = admin_client.get(reverse("admin:tokens_issuedtoken_changelist")).content.decode()
    assert "column-publish_rights" in listing


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_each_rules_highest_role_into_its_publish_rights_and_back():
    before, after = [("tokens", "0007_counter")], [("tokens", "0010_rights_windows")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("tokens", "ChannelRule")
        old.objects.create(pattern="stage", max_role="publisher")
        old.objects.create(pattern="lobby", max_role="subscriber")
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps.get_model("tokens", "ChannelRule")
        assert dict(new.objects.values_list("pattern", "publish_rights")) == {
            "stage": EVERYTHING,
            "lobby": "",
        }
        new.objects.create(pattern="talk", publish_rights="audio")
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps.get_model("tokens", "ChannelRule")
        roles = dict(old.objects.values_list("pattern", "max_role"))
        assert roles == {"stage": "publisher", "lobby": "subscriber", "talk": "publisher"}
    finally:
        MigrationExecutor(connection).migrate(latest)
