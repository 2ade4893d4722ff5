import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

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
