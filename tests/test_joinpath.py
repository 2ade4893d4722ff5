"""The join path (tokens/joinpath/): one implementation of the token contract, one statement
on a warm request, and nothing it saves costs a guarantee: a key revoked, a user deactivated
or deleted, stop on the very next request in every process, and a revoked key spends no
budget."""

import fcntl
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import caches
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.conftest import APP_CERTIFICATE
from tests.databases import sqlite_connection
from tokens import agora
from tokens.joinpath import authentication, budget
from tokens.joinpath.views import TokenView
from tokens.models import ChannelBan, Counter, IssuedToken, ModerationAction

pytestmark = pytest.mark.django_db

RTC, RTM, RTC_RTM = reverse("tokens:rtc-token"), reverse("tokens:rtm-token"), reverse("tokens:rtc-rtm-token")
COMPAT_RTC, COMPAT_RTM = reverse("tokens:compat-rtc-token"), reverse("tokens:compat-rtm-token")
CHAT, CHAT_APP = reverse("tokens:chat-token"), reverse("tokens:chat-app-token")
WARM_REQUESTS = [
    (RTC, {"channel": "room"}),
    (RTC, {"channel": "Room 7 (main)", "role": "publisher", "expires_in": 600, "version": "006"}),
    (RTM, {}),
    (RTM, {"expires_in": 120, "version": "006"}),
    (COMPAT_RTC, {"channel": "demo", "isPublisher": True}),
    (COMPAT_RTM, {}),
    (RTC_RTM, {"channel": "room", "role": "publisher", "slot": "phone"}),
    (RTC, {"channel": "room", "slot": "screen"}),
    (CHAT, {}),
    (CHAT, {"expires_in": 120, "version": "007", "slot": "phone"}),
    (RTC, {"channel": "room", "role": "audio"}),
    (RTC, {"channel": "room", "role": "video", "expires_in": 900, "publish_expires_in": 120}),
    (RTC_RTM, {"channel": "room", "role": "data", "publish_expires_in": 300}),
]
POSTGRESQL = connection.vendor == "postgresql"


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def key(user):
    return AuthToken.objects.create(user=user)[1]


@pytest.fixture
def cache_operations(monkeypatch):
    """Names of the cache API calls made, in order."""
    cache = caches["default"]
    operations = []
    for name in ("get", "set", "add", "incr", "decr", "delete", "get_many", "set_many", "touch"):
        method = getattr(cache, name)
        monkeypatch.setattr(
            cache, name, lambda *a, _m=method, _n=name, **k: operations.append(_n) or _m(*a, **k)
        )
    return operations


def test_every_token_endpoint_is_answered_by_the_one_view():
    from tokens import urls

    token_views = {p.name: p.callback.cls for p in urls.urlpatterns if getattr(p.callback, "cls", None)}
    names = ("rtc-token", "rtm-token", "rtc-rtm-token", "chat-token", "chat-app-token", "compat-rtc-token",
             "compat-rtm-token")  # fmt: skip
    for name in names:
        view = token_views[name]
        assert issubclass(view, TokenView)
        # The common case and every other one: the same dispatch and the same handler.
        assert view.dispatch is TokenView.dispatch
        assert getattr(view.post, "__wrapped__", view.post) is TokenView.post  # the schema's wrapper


def _ban(user, channel: str, privilege: str = "join_channel") -> None:
    """A live ban of `user` in `channel`, as moderation writes it (tokens/services/moderation.py)."""
    now = timezone.now()
    action = ModerationAction.objects.create(
        kind={"join_channel": "ban"}.get(privilege, "mute_audio"), channel=channel, user=user, source="api",
        seconds=600, ends_at=now + timedelta(seconds=600),
    )  # fmt: skip
    ChannelBan.objects.create(
        user=user, channel=channel, privilege=privilege, ends_at=action.ends_at, action=action
    )


@pytest.fixture
def bans_elsewhere(user, django_user_model):
    """Bans the statement must look past: the caller's in other channels, a mute, another
    user's in the caller's channels, and one that has ended."""
    other = django_user_model.objects.create_user("mallory")
    for channel in ("room", "Room 7 (main)", "demo"):
        _ban(other, channel)
    _ban(user, "elsewhere")
    _ban(user, "room", "publish_video")
    ChannelBan.objects.filter(user=user, channel="room").update(ends_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize(("path", "body"), WARM_REQUESTS)
def test_a_warm_token_request_is_one_statement(
    key, bans_elsewhere, cache_operations, django_assert_num_queries, path, body
):
    client = _client(key)
    assert client.post(path, body, format="json").status_code in (200, 201)  # cold: reads the key
    cache_operations.clear()
    with django_assert_num_queries(1) as queries:
        response = client.post(path, body, format="json")
    assert response.status_code in (200, 201)
    (statement,) = [q["sql"] for q in queries.captured_queries]
    # A channel's token: the ban check rides on the same statement.
    assert ('"tokens_channelban"' in statement) is ("channel" in body)
    if POSTGRESQL:  # the key, the budget and the audit row in one round trip; no cache at all
        assert statement.startswith("WITH caller") and "INSERT INTO" in statement
        assert cache_operations == []
    else:  # the audit row re-reading the key; the budget is one cache operation
        assert statement.startswith('INSERT INTO "tokens_issuedtoken"') and '"knox_authtoken"' in statement
        assert cache_operations == ["incr"]


def test_a_token_from_a_warm_request_is_what_it_says_and_has_its_row(key, user):
    client = _client(key)
    client.post(RTC, {"channel": "c"}, format="json")
    body = client.post(RTC, {"channel": "c", "role": "publisher", "expires_in": 300}, format="json").json()
    rtc = agora.decode(body["token"]).service(agora.SERVICE_RTC)
    assert (rtc.channel, rtc.account, set(rtc.privileges)) == ("c", str(body["uid"]), {1, 2, 3, 4})
    assert set(rtc.privileges.values()) == {300}
    assert agora.verify(body["token"], APP_CERTIFICATE)
    row = IssuedToken.objects.get(
        token_sha256=__import__("hashlib").sha256(body["token"].encode()).hexdigest()
    )
    assert (row.user, row.username, row.uid, row.channel, row.role) == (
        user,
        "alice",
        body["uid"],
        "c",
        "publisher",
    )


def _change(change: str, user) -> None:
    if change == "revoke":
        AuthToken.objects.all().delete()
    elif change == "deactivate":
        user.is_active = False
        user.save()
    elif change == "delete":
        user.delete()
    else:
        AuthToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize("change", ["revoke", "deactivate", "delete", "expire"])
@pytest.mark.parametrize("body", [{"channel": "c"}, {"channel": "bad/name"}, {"channel": "c", "extra": 1}])
def test_a_key_this_process_remembers_stops_on_the_very_next_request(key, user, change, body):
    client = _client(key)
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 201
    assert authentication.caching_allowed()  # the next request takes the key from memory
    rows = IssuedToken.objects.count()
    _change(change, user)
    response = client.post(RTC, body, format="json")
    assert response.status_code == 401, response.json()
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Token"
    assert IssuedToken.objects.count() == rows  # no token, no row


def test_a_key_revoked_in_another_process_spends_none_of_its_owners_budget(key, user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"tokens": "3/hour"}}
    caches["default"].clear()
    Counter.objects.all().delete()
    stolen, own = _client(key), _client(AuthToken.objects.create(user=user)[1])
    assert stolen.post(RTC, {"channel": "c"}, format="json").status_code == 201  # 1 of 3
    AuthToken.objects.filter(digest=authentication.hash_token(key)).delete()  # revoked elsewhere
    for _ in range(5):
        assert stolen.post(RTC, {"channel": "c"}, format="json").status_code == 401
    assert own.post(RTC, {"channel": "c"}, format="json").status_code == 201  # 2 of 3
    assert own.post(RTC, {"channel": "c"}, format="json").status_code == 201  # 3 of 3
    assert own.post(RTC, {"channel": "c"}, format="json").status_code == 429


def test_refusals_count_against_the_budget_and_a_spent_budget_outranks_them(key, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"tokens": "2/hour"}}
    caches["default"].clear()
    Counter.objects.all().delete()
    client = _client(key)
    assert client.post(RTC, {"channel": "bad/name"}, format="json").status_code == 400  # 1 of 2
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 201  # 2 of 2
    response = client.post(RTC, {"channel": "bad/name"}, format="json")
    assert response.status_code == 429  # DRF's order: the budget before the body
    assert int(response["Retry-After"]) > 0
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 429
    assert IssuedToken.objects.count() == 1


def test_a_session_login_takes_the_same_path(admin_client, admin_user):
    response = admin_client.post(RTC, {"channel": "c"}, content_type="application/json")
    assert response.status_code == 201
    row = IssuedToken.objects.get()
    assert (row.user, row.channel) == (admin_user, "c")


def test_a_session_login_needs_its_csrf_token(admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(RTC, {"channel": "c"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert not IssuedToken.objects.exists()


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"HTTP_ACCEPT": "text/html"}, 406), ({"HTTP_ACCEPT": "application/json; indent=2"}, 201)],
)
def test_content_negotiation_is_drfs(key, headers, status):
    response = _client(key).post(RTC, {"channel": "c"}, format="json", **headers)
    assert response.status_code == status
    if status == 201:
        assert response.content.startswith(b'{\n  "token"')


@pytest.mark.skipif(POSTGRESQL, reason="the writers' lock is SQLite's")
def test_sqlite_writers_take_turns_on_a_file_lock(tmp_path):
    """Audit INSERTs into a SQLite file queue on `<name>.write-lock` (tokenserver/databases/
    sqlite3/): while one writer holds it, another cannot take it; in-memory databases take none."""
    conn = sqlite_connection(tmp_path / "db.sqlite3", alias="write-lock-test")
    lock_path = tmp_path / "db.sqlite3.write-lock"

    def lock_is_free() -> bool:
        other = os.open(lock_path, os.O_RDWR | os.O_CREAT)  # another process's descriptor
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(other)
        return True

    with conn.write_lock():
        assert lock_path.exists() and not lock_is_free()
    assert lock_is_free()
    with pytest.raises(RuntimeError), conn.write_lock():
        raise RuntimeError  # a failed statement releases it too
    assert lock_is_free()
    before = set(Path.cwd().iterdir())
    with sqlite_connection(":memory:", alias="write-lock-test").write_lock():
        assert set(Path.cwd().iterdir()) == before


def test_the_budget_is_counted_where_the_audit_row_is_written():
    assert budget.statements.budget_in_statement() is POSTGRESQL


BANNED_REQUESTS = [
    (RTC, {"channel": "room"}, "join_channel"),
    (RTC_RTM, {"channel": "room", "slot": "phone"}, "join_channel"),
    (COMPAT_RTC, {"channel": "room"}, "join_channel"),
    (RTC, {"channel": "room", "role": "publisher"}, "publish_audio"),
    (COMPAT_RTC, {"channel": "room", "isPublisher": True}, "publish_video"),
    (RTC, {"channel": "room", "role": "audio"}, "publish_audio"),
]


@pytest.mark.parametrize(("path", "body", "privilege"), BANNED_REQUESTS)
def test_a_banned_warm_request_is_403_without_a_row_and_its_success_path_gains_no_statement(
    key, user, django_assert_num_queries, path, body, privilege
):
    client = _client(key)
    assert client.post(path, {**body, "channel": "other"}, format="json").status_code in (200, 201)  # warm
    _ban(user, "room", privilege)
    rows = IssuedToken.objects.count()
    response = client.post(path, body, format="json")
    assert response.status_code == 403, response.json()
    error = response.json()["error"]
    assert error["code"] == "banned" and "'room'" in error["message"] and "channel" in error["fields"]
    assert IssuedToken.objects.count() == rows  # no token, no row
    with django_assert_num_queries(1):  # another channel: still the one statement
        assert client.post(path, {**body, "channel": "other"}, format="json").status_code in (200, 201)
    if privilege != "join_channel":  # a mute: subscriber tokens still issue
        subscriber = {k: v for k, v in body.items() if k not in ("role", "isPublisher")}
        assert client.post(path, subscriber, format="json").status_code in (200, 201)


def test_a_mute_refuses_only_tokens_that_would_publish_what_it_mutes(key, user):
    client = _client(key)
    _ban(user, "room", "publish_audio")
    assert client.post(RTC, {"channel": "room", "role": "video"}, format="json").status_code == 201
    assert client.post(RTC, {"channel": "room", "role": "data"}, format="json").status_code == 201
    refused = client.post(RTC, {"channel": "room", "role": "publisher"}, format="json")
    assert refused.status_code == 403 and "muted (audio)" in refused.json()["error"]["message"]


MOUNT = "tokens.joinpath.mount.JoinPathMiddleware"
HEADERS = (
    "Content-Type",
    "Allow",
    "Vary",
    "X-Frame-Options",
    "WWW-Authenticate",
    "Retry-After",
)


def _answer(response) -> tuple:
    assert response["Content-Length"] == str(len(response.content))
    body = response.json()
    if isinstance(body, dict):
        # the token and the times differ per request (a second may tick between the two); their
        # presence is compared, not their values
        clocked = ("token", "issued_at", "expires_at", "publish_expires_at")
        body = {k: (k if k in clocked else v) for k, v in body.items()}
    return response.status_code, body, {name: response.get(name) for name in HEADERS}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        *WARM_REQUESTS,
        (RTC, {}),
        (RTC, {"channel": "bad/name"}),
        (RTM, []),
        (COMPAT_RTM, {"user": "x"}),
        (CHAT_APP, {}),  # a 403 for a plain user, mounted or routed
    ],
)
def test_the_mount_serves_api_keys_with_the_very_view_the_urlconf_has(key, settings, monkeypatch, path, body):
    """The mount (tokens/joinpath/mount.py) calls the URLconf's own view, ahead of the layers an
    API key does not use: the answer is the one the URLconf gives, and those layers never run."""
    from django.contrib.sessions.middleware import SessionMiddleware

    ran = []
    monkeypatch.setattr(SessionMiddleware, "process_request", lambda self, request: ran.append(request.path))
    mounted = _answer(_client(key).post(path, body, format="json"))
    assert ran == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MOUNT]
    monkeypatch.undo()
    routed = _answer(_client(key).post(path, body, format="json"))
    assert mounted == routed


def test_requests_without_an_api_key_take_the_urlconf_to_the_same_view(admin_client, monkeypatch):
    from tokens.joinpath import mount

    monkeypatch.setattr(
        mount.JoinPathMiddleware, "__call__", lambda self, request: self.get_response(request)
    )
    assert admin_client.post(RTC, {"channel": "c"}, content_type="application/json").status_code == 201
    recorder = reverse("tokens:recorder-token")
    assert set(mount.token_views()) == {RTC, RTM, RTC_RTM, CHAT, CHAT_APP, recorder, COMPAT_RTC, COMPAT_RTM}
