"""README.md tells the truth: its curl session runs, as printed, against a live server."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import APP_CERTIFICATE
from tokens import agora
from tokens.models import AgoraIdentity, IssuedToken

README = Path(__file__).resolve().parent.parent / "README.md"
DEMO_PASSWORD = "demo-password-change-me"  # .env.example's DEMO_PASSWORD, which the README uses


def _session_block() -> str:
    section = README.read_text().split("## A session with curl", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_env_example_demo_password_is_the_one_the_readme_uses():
    example = (README.parent / ".env.example").read_text()
    assert f"DEMO_PASSWORD={DEMO_PASSWORD}\n" in example
    assert DEMO_PASSWORD in _session_block()


@pytest.mark.django_db(transaction=True)
def test_readme_curl_session_works_as_printed(live_server, django_user_model):
    assert shutil.which("curl") and shutil.which("python3"), "the README's session needs curl and python3"
    django_user_model.objects.create_user("demo", password=DEMO_PASSWORD)
    script = _session_block()
    assert script.startswith("BASE=http://127.0.0.1:8000\n")
    script = script.replace("BASE=http://127.0.0.1:8000", f"BASE={live_server.url}", 1)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    me, rtc, rtm, phone, logout = result.stdout.strip().splitlines()
    uid = AgoraIdentity.objects.get(user__username="demo", slot="main").uid
    assert json.loads(me) == {"username": "demo", "uid": uid, "rtm_user_id": str(uid), "slots": {"main": uid}}
    rtc, rtm = json.loads(rtc), json.loads(rtm)
    assert (rtc["channel"], rtc["uid"], rtc["role"]) == ("demo", uid, "publisher")
    assert agora.decode(rtc["token"]).service(agora.SERVICE_RTC).account == str(uid)
    assert agora.verify(rtc["token"], APP_CERTIFICATE)
    assert (rtm["user_id"], rtm["expires_in"]) == (str(uid), 600)
    assert agora.verify(rtm["token"], APP_CERTIFICATE)
    phone = json.loads(phone)
    phone_uid = AgoraIdentity.objects.get(user__username="demo", slot="phone").uid
    assert (phone["uid"], phone["rtm_user_id"], phone["channel"]) == (phone_uid, str(phone_uid), "demo")
    assert phone_uid != uid
    decoded = agora.decode(phone["token"])
    assert (
        decoded.service(agora.SERVICE_RTC).account
        == decoded.service(agora.SERVICE_RTM).user_id
        == str(phone_uid)
    )
    assert agora.verify(phone["token"], APP_CERTIFICATE)
    assert logout == "204"
    assert IssuedToken.objects.count() == 3


def test_every_environment_variable_is_in_env_example_and_the_readme():
    settings_source = (README.parent / "tokenserver" / "settings.py").read_text()
    names = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings_source))
    assert {"AGORA_APP_ID", "AGORA_APP_CERTIFICATE", "DATABASE_URL", "CACHE_URL"} <= names
    example, readme = (README.parent / ".env.example").read_text(), README.read_text()
    for name in sorted(names):
        assert re.search(rf"^#? ?{name}=", example, re.M), f"{name} missing from .env.example"
        assert f"| `{name}` |" in readme, f"{name} missing from the README's table"


def test_the_moderation_sections_example_answer_has_the_apis_fields():
    from tokens.serializers import ModerationActionOutput

    section = README.read_text().split("## Moderation", 1)[1].split("\n## ", 1)[0]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    assert list(example) == list(ModerationActionOutput().fields)
    assert "/api/v1/channels/team-red/moderation/" in section
