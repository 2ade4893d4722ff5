import hashlib
import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from tokens.models import IssuedToken

pytestmark = pytest.mark.django_db


def _run() -> str:
    out = io.StringIO()
    call_command("ensure_demo_user", stdout=out)
    return out.getvalue()


def test_demo_user_is_created_once_and_its_printed_token_works(settings):
    settings.DEBUG = True
    settings.DEMO_USERNAME, settings.DEMO_PASSWORD = "demo", "demo-password-change-me"
    first = _run()
    assert "Demo account created" in first
    assert "password:  demo-password-change-me" in first
    second = _run()
    assert "Demo account exists" in second
    assert get_user_model().objects.filter(username="demo").count() == 1
    uids = {re.search(r"Agora uid: (\d+)", text).group(1) for text in (first, second)}
    assert len(uids) == 1
    key = re.search(r"API token: (\w+)", second).group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(reverse("tokens:me")).json()["uid"] == int(uids.pop())


def test_demo_user_whose_password_changed_is_not_reset(settings):
    settings.DEBUG = True
    settings.DEMO_USERNAME, settings.DEMO_PASSWORD = "demo", "first-password"
    _run()
    settings.DEMO_PASSWORD = "second-password"
    text = _run()
    assert "second-password" not in text
    assert get_user_model().objects.get(username="demo").check_password("first-password")


def test_demo_user_is_refused_outside_debug(settings):
    settings.DEBUG = False
    settings.DEMO_PASSWORD = "x"
    with pytest.raises(CommandError, match="development only"):
        _run()


def test_demo_user_needs_a_password(settings):
    settings.DEBUG = True
    settings.DEMO_PASSWORD = ""
    with pytest.raises(CommandError, match="DEMO_PASSWORD"):
        _run()


def _call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("version", ["006", "007"])
def test_issue_token_command_issues_an_audited_cli_token_that_inspect_verifies(user, version):
    body = json.loads(
        _call(
            "issue_token",
            "alice",
            "rtc",
            "--channel",
            "ops room",
            "--role",
            "publisher",
            "--token-version",
            version,
        )
    )
    row = IssuedToken.objects.get()
    assert (row.source, row.channel, row.role, row.version) == ("cli", "ops room", "publisher", version)
    assert row.token_sha256 == hashlib.sha256(body["token"].encode()).hexdigest()
    summary = json.loads(_call("inspect_token", body["token"]))
    assert summary["signature_valid"] is True
    assert summary["audit_row"] == row.pk
    assert set(summary["services"][0]["privileges"]) == {"1", "2", "3", "4"}


def test_inspect_token_flags_a_token_signed_elsewhere(user, settings):
    body = json.loads(_call("issue_token", "alice", "rtm"))
    settings.AGORA_APP_CERTIFICATE = "f" * 32
    assert json.loads(_call("inspect_token", body["token"]))["signature_valid"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("issue_token", "nobody", "rtm"), "No user"),
        (("issue_token", "alice", "rtc"), "--channel"),
        (("issue_token", "alice", "rtc", "--channel", "a/b"), "channel"),
        (("issue_token", "alice", "rtm", "--expires-in", "5"), "expires_in"),
        (("inspect_token", "007garbage"), "token"),
    ],
)
def test_commands_turn_bad_input_into_command_errors(user, args, message):
    with pytest.raises(CommandError, match=message):
        _call(*args)
    assert IssuedToken.objects.count() == 0


def test_purge_expired_deletes_only_expired_api_tokens_and_spent_login_counters(user):
    from datetime import timedelta

    from django.utils import timezone
    from knox.models import AuthToken

    from tokens.models import Counter

    AuthToken.objects.create(user=user, expiry=timedelta(seconds=-1))
    AuthToken.objects.create(user=user)
    now = timezone.now()
    Counter.objects.create(key="ip:192.0.2.1", count=3, resets_at=now - timedelta(seconds=1))
    Counter.objects.create(key="ip:192.0.2.2", count=3, resets_at=now + timedelta(minutes=5))
    output = _call("purge_expired")
    assert "Deleted 1 expired API token(s), 1 spent login counter(s) and 0 ended ban(s)." in output
    assert AuthToken.objects.count() == 1
    assert list(Counter.objects.values_list("key", flat=True)) == ["ip:192.0.2.2"]


def _check_serve() -> str:
    err = io.StringIO()
    call_command("check_serve", stdout=io.StringIO(), stderr=err)
    return err.getvalue()


def test_check_serve_is_silent_when_the_configuration_is_sound():
    assert _check_serve() == ""


def test_check_serve_lets_a_server_without_agora_credentials_start_and_says_why_it_will_refuse(settings):
    settings.AGORA_APP_ID = ""
    settings.AGORA_APP_CERTIFICATE = ""
    said = _check_serve()
    assert "tokens.E001" in said and "tokens.E002" in said
    assert "/healthz answer 503" in said


def test_check_serve_stops_a_server_with_any_other_configuration_error(settings):
    settings.AGORA_APP_ID = ""  # servable on its own, but not beside a misspelt policy
    settings.AGORA_PUBLISHER_POLICY = "permision"
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 configuration error"):
        call_command("check_serve", stdout=io.StringIO(), stderr=err)
    assert "tokens.E007" in err.getvalue() and "tokens.E001" in err.getvalue()
