"""Recorder uids: POST /api/v1/tokens/recorder/ gives staff, or an account with tokens.record, a
join-only 007 token for the channel's reserved recorder uid (the uid Agora Cloud Recording's
acquire call names), audited as a recorder's; a reserved uid is drawn from the users' uid column
itself, so it never is, and never becomes, any user's uid."""

import importlib
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.db import IntegrityError, transaction
from django.urls import reverse

from tests.conftest import APP_CERTIFICATE, APP_ID, PASSWORD, client_for
from tokens import agora, services
from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity, ChannelRule, IssuedToken, token_sha256
from tokens.services import identities

pytestmark = pytest.mark.django_db

RECORDER, RTC, ME = reverse("tokens:recorder-token"), reverse("tokens:rtc-token"), reverse("tokens:me")


@pytest.fixture
def recorder_account(django_user_model):
    account = django_user_model.objects.create_user("recording-service", password=PASSWORD)
    account.user_permissions.add(Permission.objects.get(codename="record"))
    return account


@pytest.fixture
def recording(recorder_account):
    return client_for(recorder_account)


def _recorder_token(client, channel="standup", **body) -> dict:
    response = client.post(RECORDER, {"channel": channel, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_recorder_token_is_join_only_007_for_the_channels_reserved_uid(recording, recorder_account):
    body = _recorder_token(recording, expires_in=7200)
    reserved = AgoraIdentity.objects.get(channel="standup")
    assert (reserved.user, reserved.slot, reserved.uid) == (None, "recorder", body["uid"])
    assert set(body) == {
        "token",
        "app_id",
        "channel",
        "uid",
        "role",
        "version",
        "issued_at",
        "expires_at",
        "expires_in",
    }
    assert (body["app_id"], body["channel"], body["role"], body["version"], body["expires_in"]) == (
        APP_ID, "standup", "recorder", "007", 7200,
    )  # fmt: skip
    decoded = agora.decode(body["token"])
    rtc = decoded.service(agora.SERVICE_RTC)
    assert (len(decoded.services), rtc.channel, rtc.account, rtc.privileges) == (
        1, "standup", str(body["uid"]), {1: 7200},
    )  # fmt: skip
    assert agora.verify(decoded, APP_CERTIFICATE)
    row = IssuedToken.objects.get(token_sha256=token_sha256(body["token"]))
    assert (row.user, row.username, row.role, row.slot, row.uid, row.channel, row.source) == (
        recorder_account, "recording-service", "recorder", "recorder", body["uid"], "standup", "api",
    )  # fmt: skip
    assert (row.publish_rights, row.publish_expires_at, row.service) == ("", None, "rtc")


def test_one_reserved_uid_per_channel_kept_for_every_recorder_token(recording, admin_client):
    first, again = _recorder_token(recording), _recorder_token(recording)
    other = _recorder_token(recording, "retro")
    assert first["uid"] == again["uid"] != other["uid"]
    staff = admin_client.post(RECORDER, {"channel": "standup"}, content_type="application/json")
    assert staff.status_code == 201 and staff.json()["uid"] == first["uid"]
    assert AgoraIdentity.objects.filter(user=None).count() == 2


def test_the_recorder_uid_is_nobody_elses_and_not_remembered_as_the_callers(recording, recorder_account):
    own = recording.post(RTC, {"channel": "standup"}, format="json").json()["uid"]
    reserved = _recorder_token(recording)["uid"]
    assert own != reserved
    assert recording.get(ME).json()["slots"] == {"main": own}
    # The caller's own tokens keep the caller's uids afterwards (the key is remembered warm).
    assert recording.post(RTC, {"channel": "standup"}, format="json").json()["uid"] == own
    # A slot of the caller's own named "recorder" is the caller's, not the channel's.
    slot = recording.post(RTC, {"channel": "standup", "slot": "recorder"}, format="json").json()
    assert slot["uid"] not in (own, reserved)


def test_a_reserved_uid_and_a_users_uid_never_collide(monkeypatch, user, django_user_model):
    draws = iter([111, 111, 222, 222, 333])
    monkeypatch.setattr(identities, "draw_uid", lambda: next(draws))
    assert identities.reserved_identity(channel="standup").uid == 111
    assert services.get_or_create_identity(user=user).uid == 222  # 111 is the recorder's: drawn again
    assert identities.reserved_identity(channel="retro").uid == 333  # 222 is alice's: drawn again
    assert identities.reserved_identity(channel="standup").uid == 111  # kept


def test_the_database_keeps_reserved_uids_apart(user):
    AgoraIdentity.objects.create(user=None, channel="standup", slot="recorder", uid=500)
    for clash in (
        {"user": user, "slot": "main", "uid": 500},  # a user's uid equal to a recorder's
        {"user": None, "channel": "standup", "slot": "recorder", "uid": 501},  # two per channel
        {"user": user, "channel": "standup", "slot": "screen", "uid": 502},  # a reserved uid with a user
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            AgoraIdentity.objects.create(**clash)
    # A deleted user's rows (user NULL, no channel) are no reserved uids and may be many.
    AgoraIdentity.objects.create(user=None, slot="main", uid=600)
    AgoraIdentity.objects.create(user=None, slot="main", uid=601)


def test_a_user_without_the_permission_is_403_recorder_not_allowed(api, anon):
    response = api.post(RECORDER, {"channel": "standup"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "recorder_not_allowed",
        "message": "A recorder token needs a staff account or the tokens.record permission.",
        "fields": {},
    }
    assert anon.post(RECORDER, {"channel": "standup"}, format="json").status_code == 401
    assert not IssuedToken.objects.exists() and not AgoraIdentity.objects.filter(user=None).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "a/b"}, "channel"),
        ({}, "channel"),
        ({"channel": "c", "role": "publisher"}, "role"),
        ({"channel": "c", "version": "006"}, "version"),
        ({"channel": "c", "slot": "screen"}, "slot"),
        ({"channel": "c", "publish_expires_in": 120}, "publish_expires_in"),
        ({"channel": "c", "expires_in": 59}, "expires_in"),
    ],
)
def test_a_recorder_request_takes_a_channel_and_a_lifetime_only(recording, body, field):
    response = recording.post(RECORDER, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_the_channel_policy_does_not_bind_the_recorder(recording, settings):
    settings.AGORA_CHANNEL_POLICY = "rules"
    ChannelRule.objects.create(pattern="elsewhere")
    assert recording.post(RTC, {"channel": "standup"}, format="json").status_code == 403
    assert _recorder_token(recording)["role"] == "recorder"


def test_the_recorder_role_is_rtc_only_and_needs_the_permission_in_the_service_too(user, recorder_account):
    with pytest.raises(TokenServiceError) as refused:
        services.issue_token(user=recorder_account, service="rtc+rtm", channel="c", role="recorder")
    assert (refused.value.code, list(refused.value.fields)) == ("invalid", ["role"])
    with pytest.raises(TokenServiceError) as refused:
        services.issue_token(user=user, service="rtc", channel="c", role="recorder")
    assert refused.value.code == "recorder_not_allowed"
    issued = services.issue_token(
        user=recorder_account, service="rtc", channel="c", role="recorder", source="cli"
    )
    assert (issued.slot, issued.uid) == ("recorder", AgoraIdentity.objects.get(channel="c").uid)


def test_a_recorder_token_is_agoras_own_bytes_for_its_salt_and_time(recording, monkeypatch):
    body = _recorder_token(recording, expires_in=900)
    decoded = agora.decode(body["token"])
    module = importlib.import_module("agoraiotools.AccessToken2")
    monkeypatch.setattr(module, "time", SimpleNamespace(time=lambda: decoded.issued_at))
    salts = SimpleNamespace(randint=lambda a, b: decoded.salt)
    monkeypatch.setattr(module, "secrets", SimpleNamespace(SystemRandom=lambda: salts))
    from agoraiotools.RtcTokenBuilder2 import Role_Subscriber, RtcTokenBuilder2

    theirs = RtcTokenBuilder2.build_token_with_user_account(
        APP_ID, APP_CERTIFICATE, "standup", str(body["uid"]), Role_Subscriber, 900, 900
    )
    assert theirs == body["token"]


def test_the_schema_and_the_identity_admin_show_the_recorder(anon, admin_client, recording):
    schema = anon.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"][RECORDER]["post"]
    assert "Cloud Recording" in operation["description"]
    assert "`recorder_not_allowed`" in operation["responses"]["403"]["description"]
    request = schema["components"]["schemas"]["RecorderTokenInputRequest"]
    assert (set(request["properties"]), request["additionalProperties"]) == ({"channel", "expires_in"}, False)
    uid = _recorder_token(recording)["uid"]
    listing = admin_client.get(reverse("admin:tokens_agoraidentity_changelist")).content.decode()
    assert str(uid) in listing and "standup" in listing


def test_a_second_client_for_the_recorder_does_not_change_who_is_audited(recording, recorder_account):
    other = client_for(recorder_account)
    _recorder_token(recording)
    _recorder_token(other)
    assert set(IssuedToken.objects.values_list("username", "role")) == {("recording-service", "recorder")}


@pytest.mark.django_db
def test_losing_the_record_permission_stops_the_very_next_recorder_token(django_user_model):
    from django.contrib.auth.models import Permission

    from tests.conftest import PASSWORD, client_for

    bot = django_user_model.objects.create_user("bot", password=PASSWORD)
    bot.user_permissions.add(Permission.objects.get(codename="record"))
    api = client_for(bot)
    url = reverse("tokens:recorder-token")
    assert api.post(url, {"channel": "stage"}, format="json").status_code == 201
    bot.user_permissions.clear()
    assert api.post(url, {"channel": "stage"}, format="json").status_code == 403
