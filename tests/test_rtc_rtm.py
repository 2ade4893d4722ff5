"""One token for RTC and RTM: POST /api/v1/tokens/rtc-rtm/, a single 007 token carrying both
services the way Agora's RtcTokenBuilder2.build_token_with_rtm makes it."""

import hashlib
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.conftest import APP_CERTIFICATE, APP_ID
from tokens import agora
from tokens.models import AgoraIdentity, IssuedToken

pytestmark = pytest.mark.django_db

RTC_RTM = reverse("tokens:rtc-rtm-token")


@pytest.mark.parametrize(("role", "privileges"), [("publisher", {1, 2, 3, 4}), ("subscriber", {1})])
def test_the_combined_token_carries_both_services_for_the_slots_uid(api, user, role, privileges):
    response = api.post(
        RTC_RTM, {"channel": "Room 7", "role": role, "expires_in": 1200, "slot": "phone"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    uid = AgoraIdentity.objects.get(user=user, slot="phone").uid
    fields = ("app_id", "channel", "uid", "rtm_user_id", "role", "version", "expires_in")
    assert {k: body[k] for k in fields} == {
        "app_id": APP_ID, "channel": "Room 7", "uid": uid, "rtm_user_id": str(uid), "role": role,
        "version": "007", "expires_in": 1200,
    }  # fmt: skip

    decoded = agora.decode(body["token"])
    rtc, rtm = decoded.service(agora.SERVICE_RTC), decoded.service(agora.SERVICE_RTM)
    assert [s.type for s in decoded.services] == [agora.SERVICE_RTC, agora.SERVICE_RTM]
    assert (rtc.channel, rtc.account, set(rtc.privileges)) == ("Room 7", str(uid), privileges)
    assert (rtm.user_id, rtm.privileges) == (str(uid), {agora.PRIVILEGE_RTM_LOGIN_007: 1200})
    assert set(rtc.privileges.values()) == {1200}
    assert decoded.app_id == APP_ID
    assert decoded.expires_at - decoded.issued_at == 1200
    assert agora.verify(body["token"], APP_CERTIFICATE)
    row = IssuedToken.objects.get()
    assert (row.service, row.channel, row.uid, row.slot, row.rtm_user_id, row.role, row.version) == (
        "rtc+rtm", "Room 7", uid, "phone", str(uid), role, "007",
    )  # fmt: skip
    assert row.token_sha256 == hashlib.sha256(body["token"].encode()).hexdigest()


@pytest.mark.parametrize("publisher", [True, False])
def test_the_engine_builds_what_agoras_own_builder_builds(monkeypatch, publisher):
    """Agora's RtcTokenBuilder2.build_token_with_rtm, with its clock and salt pinned, gives the
    very same bytes as our engine (same zlib here: compared as decoded content too)."""
    import importlib

    from agoraiotools.RtcTokenBuilder2 import Role_Publisher, Role_Subscriber, RtcTokenBuilder2

    module = importlib.import_module("agoraiotools.AccessToken2")  # the package shadows it with a class
    monkeypatch.setattr(module.time, "time", lambda: 1_800_000_000)
    monkeypatch.setattr(module.secrets.SystemRandom, "randint", lambda self, a, b: 4242)

    theirs = RtcTokenBuilder2.build_token_with_rtm(
        APP_ID,
        APP_CERTIFICATE,
        "room",
        "2882341273",
        Role_Publisher if publisher else Role_Subscriber,
        600,
        600,
    )
    ours = agora.build_rtc_rtm_token(
        app_id=APP_ID, app_certificate=APP_CERTIFICATE, channel="room", uid=2882341273, publisher=publisher,
        lifetime=600, now=1_800_000_000, salt=4242,
    )  # fmt: skip
    assert agora.decode(ours.token) == agora.decode(theirs)
    assert ours.token == theirs


def test_version_006_is_refused_naming_version(api):
    response = api.post(RTC_RTM, {"channel": "room", "version": "006"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "version": ["RTC and RTM in one token needs 007; a 006 token carries one service."]
    }
    assert IssuedToken.objects.count() == 0


def test_bad_input_is_400_naming_each_field(api):
    response = api.post(
        RTC_RTM, {"role": "owner", "expires_in": 10, "channel": "a/b", "extra": 1}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"role", "expires_in", "channel", "extra"}
    assert api.post(RTC_RTM, {}, format="json").json()["error"]["fields"] == {
        "channel": ["This field is required."]
    }


def test_the_admin_filters_audit_rows_by_the_combined_service(api, admin_client):
    api.post(RTC_RTM, {"channel": "room"}, format="json")
    api.post(reverse("tokens:rtc-token"), {"channel": "room"}, format="json")
    response = admin_client.get(reverse("admin:tokens_issuedtoken_changelist"), {"service__exact": "rtc+rtm"})
    assert [row.service for row in response.context["cl"].result_list] == ["rtc+rtm"]
    assert "RTC and RTM in one token" in response.content.decode()  # the filter's choice


def test_the_commands_issue_and_inspect_a_combined_token(user, capsys):
    call_command(
        "issue_token", "alice", "rtc+rtm", "--channel", "ops", "--slot", "laptop", "--role", "publisher"
    )
    issued = json.loads(capsys.readouterr().out)
    uid = AgoraIdentity.objects.get(user=user, slot="laptop").uid
    assert (issued["uid"], issued["slot"], issued["user_id"], issued["channel"]) == (
        uid,
        "laptop",
        str(uid),
        "ops",
    )
    assert IssuedToken.objects.get().source == "cli"
    call_command("inspect_token", issued["token"])
    summary = json.loads(capsys.readouterr().out)
    assert [s["type"] for s in summary["services"]] == ["rtc", "rtm"]
    assert summary["signature_valid"] is True
    assert summary["audit_row"] == IssuedToken.objects.get().pk
