"""The fast path answers exactly what the DRF views answer, in at most two SQL statements
(the API-token read and the audit INSERT) and one cache operation per warm token request."""

import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.conftest import APP_CERTIFICATE
from tests.databases import sqlite_connection
from tokens import agora
from tokens.fastpath import FastInput, _FallbackError
from tokens.models import IssuedToken
from tokens.serializers import CompatRtcInput, CompatRtmInput, RtcRtmTokenInput, RtcTokenInput, RtmTokenInput

pytestmark = pytest.mark.django_db

RTC, RTM, RTC_RTM = reverse("tokens:rtc-token"), reverse("tokens:rtm-token"), reverse("tokens:rtc-rtm-token")
COMPAT_RTC, COMPAT_RTM = reverse("tokens:compat-rtc-token"), reverse("tokens:compat-rtm-token")
FAST = "tokens.fastpath.TokenFastPathMiddleware"

REQUESTS = [
    (RTC, {"channel": "room"}),
    (RTC, {"channel": "Room 7 (main)", "role": "publisher", "expires_in": 600, "version": "006"}),
    (RTM, {}),
    (RTM, {"expires_in": 120, "version": "006"}),
    (COMPAT_RTC, {"channel": "demo", "isPublisher": True}),
    (COMPAT_RTM, {}),
    (RTC_RTM, {"channel": "room", "role": "publisher", "slot": "phone"}),
    (RTC, {"channel": "room", "slot": "screen"}),
    # What the fast path leaves to DRF: each must still get DRF's own answer.
    (RTC, {}),
    (RTC, {"channel": "bad/name"}),
    (RTC, {"channel": "c", "role": "owner"}),
    (RTC, {"channel": "c", "expires_in": "60"}),
    (RTC, {"channel": "c", "expires_in": True}),
    (RTC, {"channel": "c", "extra": 1}),
    (RTM, {"expires_in": 59}),
    (RTM, []),
    (COMPAT_RTC, {"channel": "c", "isPublisher": "false"}),
    (COMPAT_RTM, {"user": "someone-else"}),
    (COMPAT_RTM, {"user": "null"}),
    (RTC_RTM, {"channel": "room", "version": "006"}),
    (RTM, {"slot": "Not A Slot"}),
]
VOLATILE = {"token", "issued_at", "expires_at"}  # a new salt and clock each time
HEADERS_COMPARED = (
    "Content-Type", "Vary", "Allow", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy",
    "Cross-Origin-Opener-Policy", "WWW-Authenticate", "Retry-After",
)  # fmt: skip


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def key(user):
    from knox.models import AuthToken

    return AuthToken.objects.create(user=user)[1]


def _answer(response) -> tuple:
    body = response.json()
    stable = {k: v for k, v in body.items() if k not in VOLATILE} if isinstance(body, dict) else body
    headers = {name: response.get(name) for name in HEADERS_COMPARED}
    return response.status_code, stable, headers, sorted(body) if isinstance(body, dict) else None


@pytest.mark.parametrize(("path", "body"), REQUESTS)
def test_the_fast_path_and_drf_answer_alike(key, settings, served_fast, path, body):
    fast = _answer(_client(key).post(path, body, format="json"))
    settings.MIDDLEWARE = [m for m in django_settings.MIDDLEWARE if m != FAST]
    reference = _answer(_client(key).post(path, body, format="json"))
    assert fast == reference
    if fast[0] < 300:
        assert served_fast == [path]  # the common case did take the fast path


def test_throttled_and_policy_refusals_are_answered_alike(key, settings, user):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"tokens": "1/day", "auth": "9/min"},
    }
    settings.AGORA_PUBLISHER_POLICY = "permission"
    answers = []
    for fast_path in (True, False):
        caches["default"].clear()
        if not fast_path:
            settings.MIDDLEWARE = [m for m in django_settings.MIDDLEWARE if m != FAST]
        client = _client(key)
        answers.append([_answer(client.post(RTC, {"channel": "c", "role": "publisher"}, format="json")),
                        _answer(client.post(RTC, {"channel": "c"}, format="json"))])  # fmt: skip
    # Retry-After, and the message that repeats it, count down: the two paths ran moments
    # apart, on either side of a second's boundary now and then.
    waits = [int(answer[1][2].pop("Retry-After")) for answer in answers]
    assert abs(waits[0] - waits[1]) <= 1
    for answer, wait in zip(answers, waits, strict=True):
        error = answer[1][1]["error"]
        assert error["message"] == f"Request was throttled. Expected available in {wait} seconds."
        error["message"] = "(the wait)"
    assert answers[0] == answers[1]
    assert [a[0] for a in answers[0]] == [403, 429]


@pytest.mark.parametrize(("path", "body"), REQUESTS[:8])
def test_warm_token_request_is_two_sql_statements_and_one_cache_operation(
    key, served_fast, django_assert_max_num_queries, monkeypatch, path, body
):
    client = _client(key)
    assert client.post(path, body, format="json").status_code in (200, 201)  # cold: draws the uid
    cache = caches["default"]
    operations = []
    for name in ("get", "set", "add", "incr", "delete", "get_many", "set_many", "touch"):
        method = getattr(cache, name)
        monkeypatch.setattr(
            cache, name, lambda *a, _m=method, _n=name, **k: operations.append(_n) or _m(*a, **k)
        )
    with django_assert_max_num_queries(2) as queries:
        response = client.post(path, body, format="json")
    assert response.status_code in (200, 201)
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT", "INSERT"]
    assert len(operations) == 1
    assert served_fast == [path, path]


def test_a_token_from_the_fast_path_is_what_it_says_and_has_its_row(key, user, served_fast):
    body = (
        _client(key).post(RTC, {"channel": "c", "role": "publisher", "expires_in": 300}, format="json").json()
    )
    decoded = agora.decode(body["token"])
    rtc = decoded.service(agora.SERVICE_RTC)
    assert (rtc.channel, rtc.account, set(rtc.privileges)) == ("c", str(body["uid"]), {1, 2, 3, 4})
    assert set(rtc.privileges.values()) == {300}
    assert agora.verify(body["token"], APP_CERTIFICATE)
    row = IssuedToken.objects.get()
    assert (row.user, row.uid, row.channel, row.source, row.role) == (
        user,
        body["uid"],
        "c",
        "api",
        "publisher",
    )
    assert served_fast == [RTC]


@pytest.mark.parametrize(
    "change",
    ["revoke", "deactivate", "delete", "expire"],
)
def test_a_revoked_token_or_deactivated_user_stops_on_the_very_next_request(key, user, change):
    from datetime import timedelta

    from django.utils import timezone
    from knox.models import AuthToken

    client = _client(key)
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 201
    if change == "revoke":
        AuthToken.objects.all().delete()
    elif change == "deactivate":
        user.is_active = False
        user.save()
    elif change == "delete":
        user.delete()
    else:
        AuthToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))
    response = client.post(RTC, {"channel": "c"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


# --- FastInput accepts exactly what the serializer accepts ------------------------------------

_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.text(max_size=70),
    st.sampled_from(["c", "Room 7", "publisher", "subscriber", "006", "007", "null", " x", "main", "screen"]),
    st.integers(55, 90000), st.lists(st.integers(), max_size=2),
)  # fmt: skip
_keys = st.sampled_from(["channel", "role", "expires_in", "version", "isPublisher", "user", "slot", "other"])


@pytest.mark.parametrize(
    "serializer_class", [RtcTokenInput, RtmTokenInput, RtcRtmTokenInput, CompatRtcInput, CompatRtmInput]
)
@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(st.dictionaries(_keys, _values, max_size=5), _values))
def test_fast_input_agrees_with_the_serializer(serializer_class, data):
    serializer = serializer_class(data=json.loads(json.dumps(data)))
    try:
        fast = FastInput(serializer_class)(data)
    except _FallbackError:
        fast = None
    if serializer.is_valid():
        assert fast == dict(serializer.validated_data)
    else:
        assert fast is None


def test_sqlite_writers_take_turns_on_a_file_lock(tmp_path):
    """Audit INSERTs into a SQLite file queue on `<name>.write-lock` (tokens/db.py): while one
    writer holds it, another cannot take it; reads and in-memory databases do not use it."""
    import fcntl
    import os

    from tokens.db import _write_lock

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

    with _write_lock(conn, False):
        assert not lock_path.exists()  # a read takes no lock
    with _write_lock(conn, True):
        assert lock_path.exists() and not lock_is_free()
    assert lock_is_free()
    with pytest.raises(RuntimeError), _write_lock(conn, True):
        raise RuntimeError  # a failed statement releases it too
    assert lock_is_free()

    before = set(Path.cwd().iterdir())
    with _write_lock(sqlite_connection(":memory:", alias="write-lock-test"), True):
        assert set(Path.cwd().iterdir()) == before
