"""The admin as Agora's console, tied to our users: the token inspector, temporary tokens, the
streamed CSV export, the active/expired and per-user filters, and a list that stays cheap."""

import csv
import hashlib
import importlib
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import APP_CERTIFICATE, APP_ID
from tokens import agora
from tokens.models import AgoraIdentity, IssuedToken
from tokens.services import issue_token

pytestmark = pytest.mark.django_db

LIST = reverse("admin:tokens_issuedtoken_changelist")
INSPECT = reverse("admin:tokens_issuedtoken_inspect")
ISSUE = reverse("admin:tokens_issuedtoken_issue")
EXPORT = reverse("admin:tokens_issuedtoken_export")


def _staff(django_user_model, *codenames):
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(staff)
    return client


def _inspect(client, token):
    response = client.post(INSPECT, {"token": token})
    assert response.status_code == 200
    return response.context["report"], response.content.decode()


# --- inspector --------------------------------------------------------------------------------


def test_a_token_from_the_api_shows_what_its_audit_row_says_and_a_valid_signature(admin_client, api):
    body = api.post(
        reverse("tokens:rtc-token"), {"channel": "Room 7", "role": "publisher"}, format="json"
    ).json()
    report, page = _inspect(admin_client, body["token"])
    row = IssuedToken.objects.get()
    assert report["record"] == row
    assert (
        report["signature_valid"] is True and "Signature valid: signed with the primary certificate" in page
    )
    assert (report["version"], report["app_id"], report["app_id_matches"]) == ("007", APP_ID, True)
    assert report["issued_at"] == row.issued_at and report["expires_at"] == row.expires_at
    assert not report["expired"] and report["time_left"]
    (rtc,) = report["services"]
    assert (rtc["name"], rtc["type_id"], rtc["channel"], rtc["account"]) == (
        "rtc",
        1,
        row.channel,
        str(row.uid),
    )
    assert [(p["name"], p["expires_at"]) for p in rtc["privileges"]] == [
        (name, row.expires_at)
        for name in ("join_channel", "publish_audio_stream", "publish_video_stream", "publish_data_stream")
    ]
    assert report["signed_with"] == "primary" and report["record"].certificate == report["fingerprint"]
    assert reverse("admin:tokens_issuedtoken_change", args=[row.pk]) in page
    assert report["salt"] == agora.decode(body["token"]).salt


def test_a_006_token_is_verified_against_its_audit_row(admin_client, api):
    body = api.post(reverse("tokens:rtm-token"), {"version": "006"}, format="json").json()
    report, _ = _inspect(admin_client, body["token"])
    assert report["signature_valid"] is True
    assert report["services"][0]["user_id"] == body["user_id"]
    IssuedToken.objects.all()._raw_delete(IssuedToken.objects.db)  # the row is gone: cannot verify
    report, page = _inspect(admin_client, body["token"])
    assert report["signature_valid"] is None and "unverifiable" in page


def test_a_token_signed_with_another_certificate_shows_an_invalid_signature(admin_client, user):
    token = agora.build_rtc_token(
        app_id=APP_ID, app_certificate="f" * 32, channel="c", uid=7, publisher=False,
        lifetime=600, now=int(timezone.now().timestamp()),
    ).token  # fmt: skip
    report, page = _inspect(admin_client, token)
    assert report["signature_valid"] is False and "Signature invalid" in page
    assert report["record"] is None


def test_a_tampered_token_shows_an_invalid_signature(admin_client, api):
    token = api.post(reverse("tokens:rtc-token"), {"channel": "c"}, format="json").json()["token"]
    decoded = agora.decode(token)
    forged = agora.build_007(
        app_id=APP_ID, app_certificate="0" * 32, issue_ts=decoded.issued_at, expire=86400, salt=decoded.salt,
        rtc=("c", 7, {1: 86400}),
    )  # fmt: skip
    # Someone's own token, its content replaced and the old signature kept:
    signature_len = len(decoded.signature)
    import base64
    import zlib

    raw = zlib.decompress(base64.b64decode(forged[3:]))
    original = zlib.decompress(base64.b64decode(token[3:]))
    tampered = (
        "007"
        + base64.b64encode(zlib.compress(original[: 2 + signature_len] + raw[2 + signature_len :])).decode()
    )
    report, page = _inspect(admin_client, tampered)
    assert report["signature_valid"] is False and "altered" in page


def test_a_token_for_another_app_id_says_so(admin_client):
    other = "0123456789abcdef0123456789abcdef"
    token = agora.build_rtm_token(
        app_id=other, app_certificate="1" * 32, user_id="9", lifetime=600, now=int(timezone.now().timestamp())
    ).token
    report, page = _inspect(admin_client, token)
    assert report["app_id_matches"] is False
    assert f"This token is for App ID {other}, not this server" in page
    assert "issued for another App ID" in page


def test_an_expired_token_says_how_long_ago(admin_client, user):
    issued = issue_token(
        user=user, service="rtc", channel="c", expires_in=60, now=timezone.now() - timedelta(hours=3)
    )
    report, page = _inspect(admin_client, issued.token)
    assert report["expired"] and report["signature_valid"] is True
    assert "expired 2\xa0hours, 59\xa0minutes ago" in page


@pytest.mark.parametrize("garbage", ["hello", "007!!!", "006" + "z" * 40, "007" + "A" * 300, "x" * 4096])
def test_garbage_gets_a_clear_message_not_an_error_page(admin_client, garbage):
    report, page = _inspect(admin_client, garbage)
    assert report["problem"].startswith("This is not a 006 or 007 Agora token:")
    assert 'id="inspect-problem"' in page


def test_the_inspector_needs_the_view_permission_and_keeps_the_token_out_of_caches(django_user_model, api):
    client = _staff(django_user_model)
    assert client.get(INSPECT).status_code == 403
    staff = django_user_model.objects.get(username="staff")
    staff.user_permissions.add(Permission.objects.get(codename="view_issuedtoken"))
    response = client.post(INSPECT, {"token": "007abc"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    # Never no-referrer: a browser then posts the form with `Origin: null`, a CSRF failure
    # (tests/test_browser.py posts it for real).
    assert response["Referrer-Policy"] == "same-origin"
    assert Client().get(INSPECT).status_code == 302  # anonymous: to the login page


def test_pasting_a_whole_token_into_the_audit_search_finds_its_row(admin_client, api):
    token = api.post(reverse("tokens:rtc-token"), {"channel": "c"}, format="json").json()["token"]
    api.post(reverse("tokens:rtc-token"), {"channel": "c"}, format="json")
    response = admin_client.get(LIST, {"q": f"  {token} ", "service__exact": "rtc"})
    assert response.status_code == 302
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert token not in response["Location"] and f"q={digest}" in response["Location"]
    found = admin_client.get(response["Location"]).context["cl"].result_list
    assert [row.token_sha256 for row in found] == [digest]


def _every_service_type() -> dict[str, str]:
    """A token of each service type Agora's builders define, and one of a type none defines yet."""
    from agoraiotools.apaas_token_builder import ApaasTokenBuilder
    from agoraiotools.fpa_token_builder import FpaTokenBuilder

    from tests.test_agora import VECTOR_EXTENDED

    module = importlib.import_module("agoraiotools.AccessToken2")
    now = int(timezone.now().timestamp())
    tokens = {
        "streaming, fcdn and rtm2": VECTOR_EXTENDED,  # Agora's, from 1970: expired long ago
        "fpa": FpaTokenBuilder.build_token(APP_ID, APP_CERTIFICATE),
        "apaas": ApaasTokenBuilder.build_room_user_token(APP_ID, APP_CERTIFICATE, "room-1", "user-1", 2, 600),
        "chat user": agora.build_chat_user_token(
            app_id=APP_ID, app_certificate=APP_CERTIFICATE, user_id="alice_1", lifetime=600, now=now
        ).token,
        "chat app": agora.build_chat_app_token(
            app_id=APP_ID, app_certificate=APP_CERTIFICATE, lifetime=900, now=now
        ).token,
    }
    for service_type, name in (
        (agora.SERVICE_CONVOAI, "convoai"),
        (agora.SERVICE_STT, "stt"),
        (11, "unknown"),
    ):
        token = module.AccessToken(APP_ID, APP_CERTIFICATE, issue_ts=now, expire=600)
        rtc = module.ServiceRtc("stage", 42)
        rtc.add_privilege(agora.PRIVILEGE_JOIN_CHANNEL, 600)
        token.add_service(rtc)
        token.add_service(module.Service(service_type))
        tokens[name] = token.build()
    return tokens


EVERY_SERVICE_TYPE = _every_service_type()


@pytest.mark.parametrize("kind", EVERY_SERVICE_TYPE)
def test_the_inspector_shows_every_service_type_with_its_privileges_and_their_expiries(admin_client, kind):
    token = EVERY_SERVICE_TYPE[kind]
    report, page = _inspect(admin_client, token)
    engine = agora.inspect(token, APP_CERTIFICATE)
    assert report["signature_valid"] is True and report["signed_with"] == "primary"
    assert [(s["name"], s["type_id"]) for s in report["services"]] == [
        (s["type"], s["type_id"]) for s in engine["services"]
    ]
    now = timezone.now()
    for shown, decoded in zip(report["services"], engine["services"], strict=True):
        assert f"{decoded['type']} (service type {decoded['type_id']})" in page
        if "raw" in decoded:  # a type none of Agora's builders defines: its bytes, not an error page
            assert shown["raw"] == decoded["raw"] and decoded["raw"] in page
            assert "cannot be read" in page
            continue
        expected = [
            (expiry["id"], name, expiry["seconds"], expiry["expires_at"])
            for name, expiry in decoded.get("expiries", {}).items()
        ]
        assert [
            (p["id"], p["name"], p["seconds"], p["expires_at"] and int(p["expires_at"].timestamp()))
            for p in shown["privileges"]
        ] == expected
        for privilege in shown["privileges"]:
            assert f"{privilege['label']} ({privilege['id']})" in page
            if privilege["expires_at"] is None:
                assert privilege["relative"] is None  # FPA's login: no expiry of its own
                continue
            assert f"{privilege['seconds']} s after issue" in page  # relative to the issue...
            assert f"until {privilege['expires_at']:%Y-%m-%d %H:%M:%S} UTC" in page  # ...and absolute
            if privilege["expires_at"] > now:
                assert privilege["relative"].endswith(" left")
            else:
                assert privilege["relative"].startswith("ended ") and privilege["relative"].endswith(" ago")
            assert privilege["relative"] in page


def test_the_inspector_shows_rtm2_permissions_and_apaas_roles(admin_client):
    report, page = _inspect(admin_client, EVERY_SERVICE_TYPE["streaming, fcdn and rtm2"])
    rtm2 = report["services"][2]
    assert [(p["permission"], p["resource"], p["names"]) for p in rtm2["permissions"]] == [
        ("read", "message_channels", "message-a, message-b"),
        ("write", "stream_channels", "stream-a"),
        ("read", "users", "user-a"),
    ]
    assert "<th>read message channels</th><td>message-a, message-b</td>" in page
    assert (report["services"][0]["channel"], report["services"][0]["account"]) == (
        "7d72365eb983485397e3e3f9d460bdda", "2882341273",
    )  # fmt: skip
    apaas, _ = _inspect(admin_client, EVERY_SERVICE_TYPE["apaas"])
    # Agora's room user token: RTM and Chat logins beside the APaaS room, user and role.
    assert [(s["name"], s["room_uuid"], s["role"]) for s in apaas["services"]] == [
        ("rtm", None, None), ("chat", None, None), ("apaas", "room-1", 2),
    ]  # fmt: skip


@pytest.mark.parametrize("kind", EVERY_SERVICE_TYPE)
def test_the_inspectors_json_and_inspect_token_say_what_the_engine_decodes(admin_client, kind):
    import json

    from django.core.management import call_command

    token = EVERY_SERVICE_TYPE[kind]
    response = admin_client.post(INSPECT, {"token": token, "format": "json"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    from_admin = response.json()
    out = io.StringIO()
    call_command("inspect_token", token, stdout=out)
    from_command = json.loads(out.getvalue())
    assert from_admin == from_command
    assert from_admin["services"] == agora.inspect(token, APP_CERTIFICATE)["services"]
    assert (from_admin["signed_with"], from_admin["signature_valid"]) == ("primary", True)
    assert token not in response.content.decode()  # the summary, never the token itself


def test_the_inspectors_json_for_garbage_is_the_error_shape(admin_client):
    response = admin_client.post(INSPECT, {"token": "007garbage", "format": "json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_token"


# --- temporary tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "channel"), [("rtc", "ops"), ("rtm", ""), ("rtc+rtm", "ops"), ("chat", "")]
)
def test_an_admin_issues_a_temporary_token_for_a_users_slot_shown_once_and_audited(
    admin_client, admin_user, user, service, channel
):
    response = admin_client.post(
        ISSUE,
        {"username": "alice", "slot": "laptop", "service": service, "channel": channel, "role": "publisher",
         "expires_in": 900, "version": ""},
    )  # fmt: skip
    assert response.status_code == 200
    issued = response.context["issued"]
    page = response.content.decode()
    assert issued.token in page and 'id="copy-token"' in page
    assert "no-store" in response["Cache-Control"]
    uid = AgoraIdentity.objects.get(user=user, slot="laptop").uid
    row = IssuedToken.objects.get()
    assert (row.user, row.uid, row.slot, row.service, row.source, row.issued_by) == (
        user, uid, "laptop", service, "admin", admin_user,
    )  # fmt: skip
    assert row.expires_at - row.issued_at == timedelta(seconds=900)
    assert agora.decode(issued.token).version == "007"
    assert agora.verify(issued.token, APP_CERTIFICATE)

    # Shown once: the audit list and the row show who issued it, never the token.
    listing = admin_client.get(LIST).content.decode()
    assert issued.token not in listing and admin_user.username in listing
    assert (
        issued.token
        not in admin_client.get(reverse("admin:tokens_issuedtoken_change", args=[row.pk])).content.decode()
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"username": "nobody"}, "username"), ({"channel": "bad/name"}, "channel"),
     ({"slot": "Bad Slot"}, "slot"), ({"expires_in": 30}, "expires_in"),
     ({"service": "rtc+rtm", "version": "006"}, "version"), ({"channel": ""}, "channel")],
)  # fmt: skip
def test_bad_temporary_token_requests_are_shown_on_the_form(admin_client, user, changes, field):
    data = {"username": "alice", "slot": "main", "service": "rtc", "channel": "ops", "role": "subscriber",
            "expires_in": 600, "version": "", **changes}  # fmt: skip
    response = admin_client.post(ISSUE, data)
    assert response.status_code == 200
    assert response.context["issued"] is None
    assert field in response.context["form"].errors
    assert IssuedToken.objects.count() == 0


def test_temporary_tokens_need_their_own_permission(django_user_model, user):
    viewer = _staff(django_user_model, "view_issuedtoken")
    assert viewer.get(ISSUE).status_code == 403
    assert 'href="/admin/tokens/issuedtoken/issue/"' not in viewer.get(LIST).content.decode()
    issuer = django_user_model.objects.get(username="staff")
    issuer.user_permissions.add(Permission.objects.get(codename="issue_from_admin"))
    assert viewer.get(ISSUE).status_code == 200


# --- export -----------------------------------------------------------------------------------


def _csv(response) -> list[dict]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_streams_the_filtered_and_searched_rows(admin_client, user, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    for channel in ("lobby", "stage"):
        issue_token(user=user, service="rtc", channel=channel, role="publisher")
        issue_token(user=bob, service="rtc", channel=channel)
    issue_token(user=user, service="rtm", user_agent='=HYPERLINK("http://x")')
    everything = _csv(admin_client.get(EXPORT))
    assert len(everything) == 5
    from tokens.admin.views import EXPORT_COLUMNS

    assert tuple(everything[0]) == EXPORT_COLUMNS
    assert EXPORT_COLUMNS[:3] == ("id", "issued_at", "expires_at") and "token_sha256" in EXPORT_COLUMNS

    assert [r["id"] for r in everything] == [
        str(pk) for pk in IssuedToken.objects.values_list("pk", flat=True)
    ]
    publishers = _csv(admin_client.get(EXPORT, {"role__exact": "publisher", "q": "lobby"}))
    assert [(r["username"], r["channel"], r["role"]) for r in publishers] == [("alice", "lobby", "publisher")]
    rtm = _csv(admin_client.get(EXPORT, {"service__exact": "rtm"}))
    assert rtm[0]["user_agent"] == '\'=HYPERLINK("http://x")'  # not a formula in a spreadsheet
    assert rtm[0]["issued_at"].endswith("Z")
    assert _csv(admin_client.get(EXPORT, {"user": str(bob.pk)})) and all(
        r["username"] == "bob" for r in _csv(admin_client.get(EXPORT, {"user": str(bob.pk)}))
    )


def test_the_export_needs_the_view_permission_and_refuses_foreign_filters(django_user_model, admin_client):
    assert _staff(django_user_model).get(EXPORT).status_code == 403
    admin_client.raise_request_exception = False
    assert admin_client.get(EXPORT, {"user_agent__regex": "a"}).status_code == 400


def test_the_list_links_to_the_export_with_its_filters(admin_client):
    page = admin_client.get(LIST, {"service__exact": "rtc"}).content.decode()
    assert f'href="{EXPORT}?service__exact=rtc"' in page
    assert f'href="{INSPECT}"' in page and f'href="{ISSUE}"' in page


# --- filters and the list at scale -----------------------------------------------------------


def test_the_active_and_expired_filter(admin_client, user):
    now = timezone.now()
    issue_token(user=user, service="rtc", channel="old", expires_in=60, now=now - timedelta(hours=2))
    issue_token(user=user, service="rtc", channel="new", expires_in=3600)
    active = admin_client.get(LIST, {"status": "active"}).context["cl"].result_list
    expired = admin_client.get(LIST, {"status": "expired"}).context["cl"].result_list
    assert [r.channel for r in active] == ["new"] and [r.channel for r in expired] == ["old"]


def test_a_users_page_links_to_that_users_tokens(admin_client, user, django_user_model):
    bob = django_user_model.objects.create_user("bob")
    issue_token(user=user, service="rtc", channel="mine")
    issue_token(user=bob, service="rtc", channel="his")
    page = admin_client.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()
    assert f'href="{LIST}?user={user.pk}"' in page
    response = admin_client.get(LIST, {"user": str(user.pk)})
    assert [r.channel for r in response.context["cl"].result_list] == ["mine"]
    assert "alice" in response.content.decode()  # the filter names the user it shows


def test_the_list_runs_no_distinct_and_no_uncapped_count(admin_client, user, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(3):
        issue_token(user=user, service="rtc", channel=f"c{i}")
    for params in (
        {},
        {"issued_at__year": str(timezone.now().year)},
        {"service__exact": "rtc", "status": "active"},
    ):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(LIST, params).status_code == 200
        sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
        assert "DISTINCT" not in sql
        counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
        assert counts and all("LIMIT 10001" in s.upper() for s in counts), counts


def test_the_row_count_stops_at_its_cap(admin_client, user, monkeypatch):
    from tokens.admin.base import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 3)
    for i in range(5):
        issue_token(user=user, service="rtc", channel=f"c{i}")
    page = admin_client.get(LIST).content.decode()
    assert "3+ issued tokens" in page
    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 10)
    assert "5 issued tokens" in admin_client.get(LIST).content.decode()
