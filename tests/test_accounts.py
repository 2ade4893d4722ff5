"""Password guessing is limited per account and per client IP, for the API login and the admin
login alike, in the database every process shares; lockouts expire."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD
from tokens.exceptions import TokenServiceError
from tokens.services.accounts import start_login_attempt

pytestmark = pytest.mark.django_db

LOGIN = reverse("tokens:auth-token")


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT = 5
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 20
    settings.LOGIN_LOCKOUT_SECONDS = 900
    settings.TRUSTED_PROXY_COUNT = 1  # so each test can speak from many client addresses


def _login(client, username, password, ip="203.0.113.1"):
    return client.post(
        LOGIN, {"username": username, "password": password}, format="json", HTTP_X_FORWARDED_FOR=ip
    )


def test_guessing_one_account_from_ten_addresses_is_locked_after_five(anon, user):
    codes = [_login(anon, "alice", f"guess{i}", ip=f"198.51.100.{i}").status_code for i in range(10)]
    assert codes == [401] * 5 + [429] * 5
    # Locked means locked: the right password waits too, and says for how long.
    response = _login(anon, "alice", PASSWORD, ip="192.0.2.99")
    assert response.status_code == 429
    assert response.json()["error"] == {
        "code": "login_locked",
        "message": "Too many failed logins for this account; try again in 15 minutes.",
        "fields": {},
    }
    assert 890 <= int(response["Retry-After"]) <= 900


def test_one_address_guessing_many_accounts_is_locked_after_twenty(anon):
    codes = [_login(anon, f"user{i}", "guess").status_code for i in range(22)]
    assert codes == [401] * 20 + [429] * 2
    assert "this address" in _login(anon, "someone", "x").json()["error"]["message"]
    assert _login(anon, "someone", "x", ip="203.0.113.2").status_code == 401  # another address


def test_a_right_password_gives_its_attempt_back(anon, user):
    codes = [_login(anon, "alice", f"typo{i}").status_code for i in range(4)]
    codes.append(_login(anon, "alice", PASSWORD).status_code)
    # Without the refund this fifth failure would be the sixth attempt, and refused.
    codes.append(_login(anon, "alice", "typo5").status_code)
    codes.append(_login(anon, "alice", PASSWORD).status_code)  # five failures: locked
    assert codes == [401, 401, 401, 401, 200, 401, 429]


def test_lockout_expires_with_its_window(user):
    now = timezone.now()
    for _ in range(5):
        start_login_attempt(username="alice", client_ip="192.0.2.1", now=now)
    with pytest.raises(TokenServiceError) as locked:
        start_login_attempt(username="alice", client_ip="192.0.2.1", now=now + timedelta(seconds=899))
    assert (locked.value.status, locked.value.headers["Retry-After"]) == (429, "1")
    start_login_attempt(username="alice", client_ip="192.0.2.1", now=now + timedelta(seconds=900))


def test_admin_login_is_limited_the_same_way(admin_user, settings):
    client = Client()
    url = reverse("admin:login")
    codes = [
        client.post(
            url, {"username": "admin", "password": f"guess{i}"}, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}"
        ).status_code
        for i in range(6)
    ]
    assert codes == [200] * 5 + [429]  # the form answers 200 with "enter a correct password"
    response = client.post(
        url, {"username": "admin", "password": "password"}, HTTP_X_FORWARDED_FOR="192.0.2.5"
    )
    assert response.status_code == 429
    assert "Too many failed logins for this account" in response.content.decode()
    assert "_auth_user_id" not in client.session  # the right password did not log in


def test_failed_logins_are_logged_without_the_password(anon, user, caplog):
    caplog.set_level("INFO")
    for i in range(6):
        _login(anon, "alice", f"hunter2-secret-{i}")
    text = caplog.text
    assert "login failed: account 'alice' from 203.0.113.1" in text
    assert "login locked: account alice" in text
    assert "hunter2-secret" not in text


def test_the_api_login_rate_throttle_still_counts_per_address(anon, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"tokens": "9/min", "auth": "3/min"},
    }
    codes = [_login(anon, f"u{i}", "x").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert _login(anon, "u", "x", ip="203.0.113.2").status_code == 401
