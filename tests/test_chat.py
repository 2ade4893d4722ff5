"""Agora Chat tokens: POST /api/v1/tokens/chat/ for the caller's own Chat user (str(uid) of the
slot, as RTM's id), and POST /api/v1/tokens/chat/app/, the app server's token for Chat's REST
API, for staff with tokens.chat_app only. Both 007, both audited like every other token."""

import importlib
import io
import json
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from tests.conftest import APP_CERTIFICATE, APP_ID, PASSWORD, client_for
from tokens import agora
from tokens.models import AgoraIdentity, IssuedToken, token_sha256

pytestmark = pytest.mark.django_db

CHAT, CHAT_APP = reverse("tokens:chat-token"), reverse("tokens:chat-app-token")
FINGERPRINT = agora.certificate_fingerprint(APP_CERTIFICATE)


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _staff(django_user_model, username="ops", *, is_staff=True, permission=True, **extra):
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=is_staff, **extra)
    if permission:
        user.user_permissions.add(Permission.objects.get(codename="chat_app"))
    return user


@pytest.fixture
def ops(django_user_model):
    return _staff(django_user_model)


@pytest.fixture
def ops_api(ops):
    return client_for(ops)


def _pinned_agoraiotools(monkeypatch, decoded: agora.DecodedToken) -> None:
    """agoraiotools' clock and salt set to a token's, so its builders make that token again."""
    module = importlib.import_module("agoraiotools.AccessToken2")
    monkeypatch.setattr(module, "time", SimpleNamespace(time=lambda: decoded.issued_at))
    random = SimpleNamespace(randint=lambda low, high: decoded.salt)
    monkeypatch.setattr(module, "secrets", SimpleNamespace(SystemRandom=lambda: random))


# --- a user's chat token ------------------------------------------------------------------------


def test_a_chat_token_is_for_the_callers_own_chat_user_and_has_its_audit_row(api, user):
    response = api.post(CHAT, {"expires_in": 600}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    uid = AgoraIdentity.objects.get(user=user, slot="main").uid
    row = IssuedToken.objects.get()
    assert body == {
        "token": body["token"], "app_id": APP_ID, "user_id": str(uid), "issued_at": _iso(row.issued_at),
        "expires_at": _iso(row.expires_at), "expires_in": 600,
    }  # fmt: skip
    decoded = agora.decode(body["token"])
    assert decoded.services == (agora.DecodedService(agora.SERVICE_CHAT, {1: 600}, user_id=str(uid)),)
    assert (decoded.app_id, decoded.expires_at - decoded.issued_at) == (APP_ID, 600)
    assert agora.verify(body["token"], APP_CERTIFICATE)
    assert (row.user, row.service, row.version, row.uid, row.slot, row.rtm_user_id) == (
        user, "chat", "007", uid, "main", str(uid),
    )  # fmt: skip
    assert (row.channel, row.role, row.source, row.certificate) == ("", "", "api", FINGERPRINT)
    assert row.token_sha256 == token_sha256(body["token"])
    assert int(row.issued_at.timestamp()) == decoded.issued_at


def test_a_chat_token_lasts_the_default_lifetime_and_its_user_id_is_the_slots(api, user):
    main = api.post(CHAT, {}, format="json").json()
    phone = api.post(CHAT, {"slot": "phone"}, format="json").json()
    assert main["expires_in"] == 3600
    uids = dict(AgoraIdentity.objects.filter(user=user).values_list("slot", "uid"))
    assert (main["user_id"], phone["user_id"]) == (str(uids["main"]), str(uids["phone"]))
    assert agora.decode(phone["token"]).service(agora.SERVICE_CHAT).user_id == str(uids["phone"])
    me = api.get(reverse("tokens:me")).json()
    assert me["rtm_user_id"] == main["user_id"]  # derived from the account the way RTM's is


def test_a_chat_token_from_the_api_is_agoras_chat_token_builder2_byte_for_byte(api, monkeypatch):
    from agoraiotools.ChatTokenBuilder2 import ChatTokenBuilder2

    body = api.post(CHAT, {"expires_in": 900}, format="json").json()
    _pinned_agoraiotools(monkeypatch, agora.decode(body["token"]))
    theirs = ChatTokenBuilder2.build_user_token(APP_ID, APP_CERTIFICATE, body["user_id"], 900)
    assert agora.decode(theirs) == agora.decode(body["token"])
    assert theirs == body["token"]


@pytest.mark.parametrize("path", [CHAT, CHAT_APP])
def test_a_006_chat_token_is_refused_naming_version(path, ops_api):
    response = ops_api.post(path, {"version": "006"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("invalid", ["version"])
    assert "007" in error["fields"]["version"][0]
    assert not IssuedToken.objects.exists()
    assert ops_api.post(path, {"version": "007"}, format="json").status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [({"channel": "c"}, "channel"), ({"expires_in": 30}, "expires_in"), ({"slot": "Bad Slot"}, "slot")],
)
def test_bad_chat_requests_are_refused_by_name(api, body, field):
    response = api.post(CHAT, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not IssuedToken.objects.exists()


def test_a_chat_token_needs_a_login(anon):
    response = anon.post(CHAT, {}, format="json")
    assert response.status_code == 401
    assert not IssuedToken.objects.exists()


# --- the app token ------------------------------------------------------------------------------


def test_staff_with_the_permission_get_a_chat_app_token_audited_under_their_own_uid(ops_api, ops):
    response = ops_api.post(CHAT_APP, {"expires_in": 600}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    row = IssuedToken.objects.get()
    assert body == {
        "token": body["token"], "app_id": APP_ID, "issued_at": _iso(row.issued_at),
        "expires_at": _iso(row.expires_at), "expires_in": 600,
    }  # fmt: skip
    decoded = agora.decode(body["token"])
    assert decoded.services == (agora.DecodedService(agora.SERVICE_CHAT, {2: 600}, user_id=""),)
    assert agora.verify(body["token"], APP_CERTIFICATE)
    uid = AgoraIdentity.objects.get(user=ops, slot="main").uid
    assert (row.user, row.username, row.service, row.uid, row.rtm_user_id, row.channel, row.role) == (
        ops, "ops", "chat-app", uid, "", "", "",
    )  # fmt: skip
    assert (row.version, row.source, row.certificate) == ("007", "api", FINGERPRINT)


def test_a_chat_app_token_from_the_api_is_agoras_chat_token_builder2_byte_for_byte(ops_api, monkeypatch):
    from agoraiotools.ChatTokenBuilder2 import ChatTokenBuilder2

    body = ops_api.post(CHAT_APP, {}, format="json").json()
    _pinned_agoraiotools(monkeypatch, agora.decode(body["token"]))
    assert ChatTokenBuilder2.build_app_token(APP_ID, APP_CERTIFICATE, 3600) == body["token"]


@pytest.mark.parametrize(
    "who",
    ["a plain user", "staff without the permission", "the permission without staff"],
)
def test_a_chat_app_token_is_refused_to_anyone_but_staff_with_the_permission(django_user_model, user, who):
    if who == "a plain user":
        caller = user
    elif who == "staff without the permission":
        caller = _staff(django_user_model, permission=False)
    else:
        caller = _staff(django_user_model, is_staff=False)
    response = client_for(caller).post(CHAT_APP, {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "chat_app_not_allowed"
    assert not IssuedToken.objects.exists()


def test_superusers_get_chat_app_tokens_by_api_token_and_by_admin_session(django_user_model, admin_client):
    boss = django_user_model.objects.create_superuser("boss", password=PASSWORD)
    assert client_for(boss).post(CHAT_APP, {}, format="json").status_code == 201
    assert admin_client.post(CHAT_APP, {}, content_type="application/json").status_code == 201
    assert IssuedToken.objects.filter(service="chat-app").count() == 2


@pytest.mark.parametrize("change", ["staff flag", "permission"])
def test_losing_staff_or_the_permission_stops_the_very_next_app_token(ops_api, ops, change):
    assert ops_api.post(CHAT_APP, {}, format="json").status_code == 201
    if change == "staff flag":
        ops.is_staff = False
        ops.save()
    else:
        ops.user_permissions.clear()
    response = ops_api.post(CHAT_APP, {}, format="json")
    assert response.status_code == 403
    assert IssuedToken.objects.count() == 1


# --- the other ways in: commands, the admin, the schema ------------------------------------------


def _call(*args) -> dict:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


def test_issue_token_issues_chat_tokens_and_refuses_the_app_token_to_a_plain_user(user, ops):
    chat = _call("issue_token", "alice", "chat")
    uid = AgoraIdentity.objects.get(user=user, slot="main").uid
    assert chat["user_id"] == str(uid) and "channel" not in chat
    app = _call("issue_token", "ops", "chat-app", "--expires-in", "600")
    assert "user_id" not in app and app["expires_in"] == 600
    assert agora.decode(app["token"]).service(agora.SERVICE_CHAT).privileges == {2: 600}
    assert list(IssuedToken.objects.values_list("service", "source")) == [
        ("chat-app", "cli"),
        ("chat", "cli"),
    ]
    with pytest.raises(CommandError, match=r"tokens\.chat_app"):
        call_command("issue_token", "alice", "chat-app", stdout=io.StringIO())


def test_the_schema_documents_both_chat_endpoints(anon):
    schema = anon.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, output, fields, asked in [
        (CHAT, "ChatTokenOutput", ["token", "app_id", "user_id", "issued_at", "expires_at", "expires_in"],
         {"expires_in", "version", "slot"}),
        (CHAT_APP, "ChatAppTokenOutput", ["token", "app_id", "issued_at", "expires_at", "expires_in"],
         {"expires_in", "version"}),
    ]:  # fmt: skip
        post = schema["paths"][path]["post"]
        created = post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
        assert created.endswith(f"/{output}")
        assert list(schema["components"]["schemas"][output]["properties"]) == fields
        assert {"400", "401", "403", "429", "503"} <= set(post["responses"])
        request = post["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        properties = schema["components"]["schemas"][request]["properties"]
        version = properties["version"]["allOf"][0]["$ref"].rsplit("/", 1)[1]
        assert schema["components"]["schemas"][version]["enum"] == ["007"]
        assert "Agora Chat" in post["description"]
        assert set(properties) == asked
        assert schema["components"]["schemas"][request]["additionalProperties"] is False
