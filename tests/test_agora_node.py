"""Agora's own npm library, agora-token (pinned in tests/node/package-lock.json), reads the
engine's tokens: every kind parses, verifies under the certificate and names the privileges and
expiries the engine reports. The tests install it with `npm ci` (cached in tests/node/
node_modules); without Node.js and npm they skip, or fail when REQUIRE_SERVICES is set (CI)."""

import importlib
import json
import subprocess
from types import SimpleNamespace

import pytest

from tests import servers
from tests.test_agora import (
    APP_ID,
    CERT,
    NOW,
    SALT,
    UID,
    VECTOR_007,
    VECTOR_EXTENDED,
    VECTOR_REPEATED,
)
from tokens import agora

LIBRARY = "agora-token 2.0.6"
CREDENTIALS = {"app_id": APP_ID, "app_certificate": CERT}

# Our DecodedService field -> the name agora-token's service classes give it, by service type.
THEIR_FIELDS = {
    agora.SERVICE_RTC: {"channel": "channel_name", "account": "uid"},
    agora.SERVICE_RTM: {"user_id": "user_id"},
    agora.SERVICE_STREAMING: {"channel": "channel_name", "account": "account"},
    agora.SERVICE_CHAT: {"user_id": "user_id"},
    agora.SERVICE_FCDN: {"channel": "channel_name", "account": "account"},
    agora.SERVICE_APAAS: {"channel": "room_uuid", "user_id": "user_uuid", "role": "role"},
    agora.SERVICE_RTM2: {"user_id": "user_id", "permissions": "permissions"},
}


@pytest.fixture(scope="module")
def node():
    return servers.npm_installed(servers.NODE_TOOLS)


def _agora_token_reads(node: str, tokens: list[str], certificate: str = CERT) -> list[dict]:
    """What agora-token's AccessToken2 makes of each token (tests/node/verify_token.js)."""
    result = subprocess.run(
        [node, "verify_token.js"],
        cwd=servers.NODE_TOOLS,
        input=json.dumps({"certificate": certificate, "tokens": tokens}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["library"] == LIBRARY
    return answer["tokens"]


def _as_they_read_it(service: agora.DecodedService) -> dict:
    """One service of ours in agora-token's shape: {type, privileges, its own fields}."""
    shape = {"type": service.type, "privileges": {str(k): v for k, v in service.privileges.items()}}
    for ours, theirs in THEIR_FIELDS.get(service.type, {}).items():
        value = getattr(service, ours)
        if ours == "role":
            value %= 1 << 16  # agora-token reads the signed role with readUInt16LE: -1 is 65535
        elif ours == "permissions":
            value = {str(r): {str(p): list(names) for p, names in by.items()} for r, by in value.items()}
        shape[theirs] = value
    return shape


def _assert_they_read_what_we_decode(token: str, theirs: dict) -> agora.DecodedToken:
    ours = agora.decode(token)
    assert theirs["parsed"] is True
    assert (theirs["app_id"], theirs["issue_ts"], theirs["salt"]) == (ours.app_id, ours.issued_at, ours.salt)
    assert theirs["expire"] == ours.expires_at - ours.issued_at
    # agora-token, like Agora's other parsers, stops quietly at a service type it does not know.
    assert theirs["services"] == [_as_they_read_it(s) for s in ours.services if s.raw is None]
    assert theirs["signature_valid"] is True
    return ours


def _their_expiries(theirs: dict) -> dict[str, dict[str, int]]:
    """Service name -> privilege name -> unix time, from agora-token's seconds after issue."""
    expiries: dict[str, dict[str, int]] = {}
    for service in theirs["services"]:
        names = agora.PRIVILEGE_NAMES[service["type"]]
        by_name = expiries.setdefault(agora.SERVICE_NAMES[service["type"]], {})
        for privilege, seconds in service["privileges"].items():
            by_name[names[int(privilege)]] = theirs["issue_ts"] + seconds
    return expiries


def _at(**seconds: int) -> dict[str, int]:
    return {name: NOW + after for name, after in seconds.items()}


def _new_kinds() -> dict[str, tuple[agora.BuiltToken, dict]]:
    """Each new kind of token, with the privilege expiries asked for."""
    rtc = {"channel": "stage", "uid": UID, "now": NOW, "salt": SALT, **CREDENTIALS}
    everything = _at(
        join_channel=900, publish_audio_stream=900, publish_video_stream=900, publish_data_stream=900
    )
    return {
        "rtc, audio and data apart": (
            agora.build_rtc_token_with_privileges(
                **rtc, join_lifetime=900, publish={"audio": 300, "video": None, "data": 600}
            ),
            {"rtc": _at(join_channel=900, publish_audio_stream=300, publish_data_stream=600)},
        ),
        "rtc, every right apart": (
            agora.build_rtc_token_with_privileges(
                **rtc, join_lifetime=900, publish={"audio": 300, "video": 600, "data": 120}
            ),
            {
                "rtc": _at(
                    join_channel=900,
                    publish_audio_stream=300,
                    publish_video_stream=600,
                    publish_data_stream=120,
                )
            },
        ),
        "rtc, join only": (
            agora.build_rtc_token_with_privileges(**rtc, join_lifetime=60, publish={}),
            {"rtc": _at(join_channel=60)},
        ),
        "rtc+rtm, video apart": (
            agora.build_rtc_rtm_token_with_privileges(**rtc, join_lifetime=900, publish={"video": 450}),
            {"rtc": _at(join_channel=900, publish_video_stream=450), "rtm": _at(login=900)},
        ),
        "rtc publisher": (agora.build_rtc_token(**rtc, publisher=True, lifetime=900), {"rtc": everything}),
        "rtc+rtm subscriber": (
            agora.build_rtc_rtm_token(**rtc, publisher=False, lifetime=900),
            {"rtc": _at(join_channel=900), "rtm": _at(login=900)},
        ),
        "chat user": (
            agora.build_chat_user_token(**CREDENTIALS, user_id="alice_1", lifetime=600, now=NOW, salt=SALT),
            {"chat": _at(user=600)},
        ),
        "chat app": (
            agora.build_chat_app_token(**CREDENTIALS, lifetime=3600, now=NOW, salt=SALT),
            {"chat": _at(app=3600)},
        ),
    }


def test_agora_token_reads_each_new_kind_with_its_privileges_and_expiries(node):
    kinds = _new_kinds()
    read = _agora_token_reads(node, [built.token for built, _ in kinds.values()])
    for (kind, (built, asked)), theirs in zip(kinds.items(), read, strict=True):
        _assert_they_read_what_we_decode(built.token, theirs)
        assert (theirs["issue_ts"], theirs["salt"]) == (NOW, SALT), kind
        assert _their_expiries(theirs) == asked == built.privilege_expires_at, kind
        # The token ends with its longest privilege: the join (RTC), the one privilege (Chat).
        last = max(end for by_name in asked.values() for end in by_name.values())
        assert theirs["issue_ts"] + theirs["expire"] == built.expires_at == last, kind


def test_agora_token_reads_the_per_privilege_token_as_the_engine_built_it(node):
    built, _ = _new_kinds()["rtc+rtm, video apart"]
    (theirs,) = _agora_token_reads(node, [built.token])
    assert theirs["services"] == [
        {"type": 1, "privileges": {"1": 900, "3": 450}, "channel_name": "stage", "uid": str(UID)},
        {"type": 2, "privileges": {"1": 900}, "user_id": str(UID)},
    ]
    assert (theirs["issue_ts"], theirs["expire"], theirs["signature_valid"]) == (NOW, 900, True)


def test_agora_token_refuses_each_new_kind_under_another_certificate(node):
    tokens = [built.token for built, _ in _new_kinds().values()]
    other = "0123456789abcdef0123456789abcdef"
    assert [t["signature_valid"] for t in _agora_token_reads(node, tokens, other)] == [False] * len(tokens)
    assert not any(agora.verify(token, other) for token in tokens)


def _agora_built(monkeypatch) -> list[str]:
    """Tokens of every other service type, from agoraiotools' builders and Agora's vectors."""
    from agoraiotools.apaas_token_builder import ApaasTokenBuilder
    from agoraiotools.fpa_token_builder import FpaTokenBuilder

    module = importlib.import_module("agoraiotools.AccessToken2")
    monkeypatch.setattr(module, "time", SimpleNamespace(time=lambda: NOW))
    tokens = [
        VECTOR_007,
        VECTOR_EXTENDED,  # Streaming, FCDN, RTM2 with permissions
        VECTOR_REPEATED,  # Streaming and FCDN three times each
        FpaTokenBuilder.build_token(APP_ID, CERT),
        ApaasTokenBuilder.build_room_user_token(APP_ID, CERT, "room-1", "user-1", 2, 600),
        ApaasTokenBuilder.build_user_token(APP_ID, CERT, "user-1", 600),  # role -1
    ]
    for service_type in (agora.SERVICE_CONVOAI, agora.SERVICE_STT, 11):  # 11: none defined yet
        token = module.AccessToken(APP_ID, CERT, issue_ts=NOW, expire=600)
        rtc = module.ServiceRtc("stage", 42)
        rtc.add_privilege(1, 600)
        token.add_service(rtc)
        token.add_service(module.Service(service_type))
        tokens.append(token.build())
    return tokens


def test_agora_token_and_the_inspector_read_every_other_service_type_alike(node, monkeypatch):
    tokens = _agora_built(monkeypatch)
    for token, theirs in zip(tokens, _agora_token_reads(node, tokens), strict=True):
        ours = _assert_they_read_what_we_decode(token, theirs)
        assert agora.verify(token, CERT)
        assert ours.complete == (ours.services[-1].type != 11)
    types = {s["type"] for theirs in _agora_token_reads(node, tokens) for s in theirs["services"]}
    assert types == set(agora.SERVICE_NAMES)  # every type the engine names, agora-token reads


# --- what the API issues: Chat tokens, and tokens on either certificate ---------------------------


@pytest.mark.django_db
def test_agora_token_reads_the_chat_tokens_the_api_issues(node, django_user_model):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from tests.conftest import APP_CERTIFICATE, PASSWORD, client_for

    staff = django_user_model.objects.create_user("ops", password=PASSWORD, is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="chat_app"))
    api = client_for(staff)
    user = api.post(reverse("tokens:chat-token"), {"expires_in": 600}, format="json").json()
    app = api.post(reverse("tokens:chat-app-token"), {"expires_in": 900}, format="json").json()
    theirs_user, theirs_app = _agora_token_reads(node, [user["token"], app["token"]], APP_CERTIFICATE)
    for body, theirs, privilege in ((user, theirs_user, "1"), (app, theirs_app, "2")):
        ours = agora.decode(body["token"])
        assert theirs["parsed"] and theirs["signature_valid"] is True
        assert (theirs["app_id"], theirs["issue_ts"], theirs["salt"]) == (
            body["app_id"],
            ours.issued_at,
            ours.salt,
        )
        assert theirs["expire"] == body["expires_in"]
        assert theirs["services"] == [
            {
                "type": agora.SERVICE_CHAT,
                "privileges": {privilege: body["expires_in"]},
                "user_id": body.get("user_id", ""),
            }
        ]
    assert _their_expiries(theirs_user) == {"chat": {"user": theirs_user["issue_ts"] + 600}}
    assert _their_expiries(theirs_app) == {"chat": {"app": theirs_app["issue_ts"] + 900}}


@pytest.mark.django_db
def test_agora_token_verifies_each_token_under_the_certificate_its_audit_row_names(node, api, settings):
    from django.urls import reverse

    from tests.conftest import APP_CERTIFICATE
    from tokens.models import IssuedToken, token_sha256

    secondary = "4a7c1e9b2d6f40a8b3c5e7f9a1b3c5d7"
    paths = [("tokens:rtc-token", {"channel": "stage"}), ("tokens:rtc-rtm-token", {"channel": "stage"}),
             ("tokens:rtm-token", {}), ("tokens:chat-token", {})]  # fmt: skip
    old = [api.post(reverse(name), body, format="json").json()["token"] for name, body in paths]
    settings.AGORA_APP_CERTIFICATE_SECONDARY = secondary
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"
    new = [api.post(reverse(name), body, format="json").json()["token"] for name, body in paths]
    for certificate, valid in ((APP_CERTIFICATE, old), (secondary, new)):
        fingerprint = agora.certificate_fingerprint(certificate)
        assert {IssuedToken.objects.get(token_sha256=token_sha256(t)).certificate for t in valid} == {
            fingerprint
        }
        read = _agora_token_reads(node, old + new, certificate)
        assert [t["signature_valid"] for t in read] == [token in valid for token in old + new]


# --- the API's new kinds of token ---------------------------------------------------------------

RIGHT_NAMES = {
    "audio": "publish_audio_stream",
    "video": "publish_video_stream",
    "data": "publish_data_stream",
}


def _api_kinds(user, recorder) -> list[tuple[dict, set[str]]]:
    """A token of each new kind, issued through the API: (the answer, the rights it grants)."""
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    from tests.conftest import client_for
    from tokens.models import ChannelRule

    rtc, rtc_rtm = reverse("tokens:rtc-token"), reverse("tokens:rtc-rtm-token")
    api = client_for(user)
    asks = [
        (rtc, {"channel": "stage", "role": "audio", "expires_in": 900}),
        (rtc, {"channel": "stage", "role": "video", "expires_in": 900, "publish_expires_in": 300}),
        (rtc, {"channel": "stage", "role": "data", "expires_in": 900}),
        (rtc, {"channel": "stage", "role": "publisher", "expires_in": 3600, "publish_expires_in": 120}),
        (rtc, {"channel": "stage", "slot": "screen"}),
        (rtc_rtm, {"channel": "stage", "role": "audio", "expires_in": 1800, "publish_expires_in": 600}),
        (rtc, {"channel": "window", "role": "publisher", "expires_in": 7200}),  # ends with its window
        (rtc_rtm, {"channel": "window", "role": "video", "expires_in": 7200, "publish_expires_in": 300}),
    ]
    ChannelRule.objects.create(pattern="stage", publish_rights="audio,video,data")
    ChannelRule.objects.create(
        pattern="window", publish_rights="audio,video,data", ends_at=timezone.now() + timedelta(minutes=20)
    )
    answers = []
    for path, body in asks:
        response = api.post(path, body, format="json")
        assert response.status_code == 201, response.content
        answers.append(response.json())
    response = client_for(recorder).post(
        reverse("tokens:recorder-token"), {"channel": "stage"}, format="json"
    )
    assert response.status_code == 201, response.content
    answers.append(response.json())
    roles = {"audio": {"audio"}, "video": {"video"}, "data": {"data"}, "publisher": set(RIGHT_NAMES)}
    return [(answer, roles.get(answer["role"], set())) for answer in answers]


def _unix(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


@pytest.mark.django_db
def test_agora_token_reads_each_new_kind_the_api_issues_as_its_answer_says(
    node, user, settings, django_user_model
):
    """Per-media roles, publish_expires_in, RTC+RTM, the screen slot's default, a meeting
    window's end and the recorder's token: agora-token parses each, verifies its signature and
    reads the privileges and expiries the answer states."""
    from tests.conftest import APP_CERTIFICATE, PASSWORD

    settings.AGORA_CHANNEL_POLICY = "rules"
    recorder = django_user_model.objects.create_user("recorder", password=PASSWORD, is_staff=True)
    kinds = _api_kinds(user, recorder)
    read = _agora_token_reads(node, [answer["token"] for answer, _ in kinds], APP_CERTIFICATE)
    for (answer, rights), theirs in zip(kinds, read, strict=True):
        assert theirs["parsed"] is True and theirs["signature_valid"] is True, answer["role"]
        assert theirs["issue_ts"] == _unix(answer["issued_at"])
        assert theirs["issue_ts"] + theirs["expire"] == _unix(answer["expires_at"])
        expiries = _their_expiries(theirs)
        join = _unix(answer["expires_at"])
        publish = {RIGHT_NAMES[right]: _unix(answer["publish_expires_at"]) for right in rights}
        assert expiries["rtc"] == {"join_channel": join, **publish}, answer
        assert theirs["services"][0]["channel_name"] == answer["channel"]
        assert theirs["services"][0]["uid"] == str(answer["uid"])
        if "rtm_user_id" in answer:
            assert expiries["rtm"] == {"login": join}
            assert theirs["services"][1]["user_id"] == answer["rtm_user_id"]
        else:
            assert len(theirs["services"]) == 1
    by_role = [answer["role"] for answer, _ in kinds]
    assert by_role == [
        "audio",
        "video",
        "data",
        "publisher",
        "video",
        "audio",
        "publisher",
        "video",
        "recorder",
    ]
    windowed = kinds[6][0]
    assert windowed["expires_in"] <= 1200 and windowed["publish_expires_at"] == windowed["expires_at"]
    # Publishing that ends before the join: the privileges differ, as asked.
    limited = _their_expiries(read[3])["rtc"]
    assert limited["join_channel"] - limited["publish_audio_stream"] == 3600 - 120
