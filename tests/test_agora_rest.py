"""The Agora REST client (tokens/agora_rest/) against a fake Agora on 127.0.0.1
(tests/fake_agora.py): what each call sends, what it makes of the answer, when it retries and
when it gives up, and that no secret leaves it in a log line, an error or an error page."""

import base64
import logging
import pickle
import threading
import traceback
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core.management import call_command
from django.views.debug import SafeExceptionReporterFilter

from tests.conftest import APP_ID
from tests.fake_agora import FakeAgora
from tests.servers import free_port
from tokens.agora_rest import client
from tokens.agora_rest.client import (
    AgoraRestError,
    BanRule,
    ChannelMode,
    ChannelUsers,
    ErrorKind,
    UserRole,
    UserStatus,
    channel_users,
    create_ban_rule,
    delete_ban_rule,
    list_ban_rules,
    rest_configured,
    rest_not_configured_reason,
    update_ban_rule,
    user_status,
)
from tokens.checks import check_agora_rest_settings
from tokens.reporting import MASK, configured_secrets, mask_secrets

CUSTOMER_ID = "4d7f0c2a9b8e4f31a6c5d2e1f0a9b8c7"
CUSTOMER_SECRET = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
CREDENTIAL = base64.b64encode(f"{CUSTOMER_ID}:{CUSTOMER_SECRET}".encode()).decode()
RULES = "/dev/v1/kicking-rule"
TIMEOUT = 0.3  # the client's read and connect timeouts here: a hang costs this much


@pytest.fixture
def rest_settings(settings):
    settings.AGORA_CUSTOMER_ID = CUSTOMER_ID
    settings.AGORA_CUSTOMER_SECRET = CUSTOMER_SECRET
    settings.AGORA_REST_TIMEOUT = TIMEOUT
    settings.AGORA_REST_CONNECT_TIMEOUT = TIMEOUT
    settings.AGORA_REST_RETRIES = 3
    settings.AGORA_REST_BACKOFF = 0.01
    settings.AGORA_REST_BACKOFF_MAX = 5.0
    return settings


@pytest.fixture
def fake(rest_settings):
    with FakeAgora(customer_id=CUSTOMER_ID, customer_secret=CUSTOMER_SECRET, app_id=APP_ID) as server:
        rest_settings.AGORA_REST_URL = server.url
        yield server
        client.close()  # its kept connections end, and the fake's threads with them
    assert server.errors == []


@pytest.fixture(autouse=True)
def slept(monkeypatch):
    """The backoff delays the client asked for, in order; none is slept for real."""
    delays = []
    monkeypatch.setattr(client, "_sleep", delays.append)
    return delays


def _error(call, *args, **kwargs) -> AgoraRestError:
    with pytest.raises(AgoraRestError) as caught:
        call(*args, **kwargs)
    return caught.value


# --- what each call sends and returns ----------------------------------------------------------


def test_create_ban_rule_sends_basic_auth_and_the_documented_fields_and_returns_the_rule_id(fake):
    rule_id = create_ban_rule(channel="room", uid=42, seconds=600, privileges=["join_channel"])
    assert rule_id == 1953
    [sent] = fake.requests
    assert (sent.method, sent.path) == ("POST", RULES)
    assert sent.headers["authorization"] == f"Basic {CREDENTIAL}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "appid": APP_ID,
        "cname": "room",
        "uid": 42,
        "time_in_seconds": 600,
        "privileges": ["join_channel"],
    }
    expires = fake.rules[rule_id]["ts"]
    assert abs(expires - (datetime.now(UTC) + timedelta(seconds=600))) < timedelta(seconds=5)


def test_create_ban_rule_in_minutes_for_an_ip_and_both_publish_privileges(fake):
    rule_id = create_ban_rule(ip="203.0.113.7", minutes=5, privileges=["publish_audio", "publish_video"])
    assert fake.requests[0].json == {
        "appid": APP_ID,
        "ip": "203.0.113.7",
        "time": 5,
        "privileges": ["publish_audio", "publish_video"],
    }
    assert fake.rules[rule_id]["cname"] is None


def test_a_kick_is_a_rule_of_zero_seconds(fake):
    create_ban_rule(channel="room", uid=42, seconds=0, privileges=["join_channel"])
    assert fake.requests[0].json["time_in_seconds"] == 0


def test_update_ban_rule_puts_the_new_duration(fake):
    rule_id = create_ban_rule(uid=42, minutes=10, privileges=["join_channel"])
    update_ban_rule(rule_id, minutes=30)
    sent = fake.requests[-1]
    assert (sent.method, sent.path, sent.json) == ("PUT", RULES, {"appid": APP_ID, "id": rule_id, "time": 30})
    assert fake.rules[rule_id]["ts"] - datetime.now(UTC) > timedelta(minutes=29)
    update_ban_rule(rule_id, seconds=86430)
    assert fake.requests[-1].json == {"appid": APP_ID, "id": rule_id, "time_in_seconds": 86430}


def test_delete_ban_rule_removes_it_by_id(fake):
    rule_id = create_ban_rule(uid=42, minutes=10, privileges=["join_channel"])
    delete_ban_rule(rule_id)
    sent = fake.requests[-1]
    assert (sent.method, sent.path, sent.json) == ("DELETE", RULES, {"appid": APP_ID, "id": rule_id})
    assert fake.rules == {}


def test_list_ban_rules_reads_every_field_agora_lists(fake):
    first = create_ban_rule(channel="room", uid=42, seconds=600, privileges=["join_channel"])
    second = create_ban_rule(ip="2001:db8::1", minutes=1, privileges=["publish_video"])
    rules = list_ban_rules()
    sent = fake.requests[-1]
    assert (sent.method, sent.path, sent.query) == ("GET", RULES, {"appid": [APP_ID]})
    assert [r.id for r in rules] == [first, second]
    rule = rules[0]
    assert isinstance(rule, BanRule)
    assert (rule.channel, rule.uid, rule.ip, rule.privileges) == ("room", 42, None, ("join_channel",))
    assert rule.operation_id == first + 10_000
    assert abs(rule.expires_at - (datetime.now(UTC) + timedelta(seconds=600))) < timedelta(seconds=5)
    assert rule.created_at <= rule.updated_at < rule.expires_at
    assert (rules[1].channel, rules[1].uid, rules[1].ip) == (None, None, "2001:db8::1")


def test_channel_users_of_a_communication_channel(fake):
    fake.set_channel("room", users=[7, 8, 9])
    found = channel_users("room")
    assert found == ChannelUsers(
        channel="room", exists=True, mode=ChannelMode.COMMUNICATION, users=(7, 8, 9), total=3
    )
    assert found.uids == {7, 8, 9}
    assert fake.requests[0].path == f"/dev/v1/channel/user/{APP_ID}/room"


def test_channel_users_of_a_live_channel_and_its_hosts_alone(fake):
    fake.set_channel("stage", broadcasters=[1, 2], audience=[10, 11, 12])
    found = channel_users("stage")
    assert (found.mode, found.broadcasters, found.audience) == (
        ChannelMode.LIVE_BROADCASTING,
        (1, 2),
        (10, 11, 12),
    )
    assert (found.audience_total, found.total) == (3, 5)
    hosts = channel_users("stage", hosts_only=True)
    assert fake.requests[-1].path == f"/dev/v1/channel/user/{APP_ID}/stage/hosts_only"
    assert (hosts.broadcasters, hosts.audience, hosts.total) == ((1, 2), (), 2)


def test_channel_users_of_a_channel_nobody_is_in(fake):
    assert channel_users("empty") == ChannelUsers(channel="empty", exists=False)


def test_channel_names_are_percent_encoded_in_the_path(fake):
    fake.set_channel("room #1?", users=[5])
    assert channel_users("room #1?").users == (5,)
    assert fake.requests[0].path == f"/dev/v1/channel/user/{APP_ID}/room%20%231%3F"


def test_user_status_of_a_host_and_of_someone_absent(fake):
    fake.set_channel("stage", broadcasters=[1], audience=[10]).platform = 2
    status = user_status(1, "stage")
    assert fake.requests[0].path == f"/dev/v1/channel/user/property/{APP_ID}/1/stage"
    assert status == UserStatus(
        uid=1,
        channel="stage",
        in_channel=True,
        joined_at=datetime.fromtimestamp(1_700_000_000, tz=UTC),
        role=UserRole.HOST,
        platform=2,
    )
    assert user_status(10, "stage").role == UserRole.AUDIENCE
    assert user_status(99, "stage") == UserStatus(uid=99, channel="stage", in_channel=False)


# --- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [500, 502, 503, 504, "drop", "hang"])
def test_a_read_is_retried_after_a_server_error_a_dropped_connection_or_a_hang(fake, slept, fault):
    fake.set_channel("room", users=[7])
    fake.fail_next(1, fault)
    assert channel_users("room").users == (7,)
    assert len(fake.requests) == 2
    assert len(slept) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_a_429_or_503_is_retried_after_the_retry_after_it_names(fake, slept, status):
    fake.fail_next(1, status, retry_after="2")
    assert list_ban_rules() == []
    assert len(fake.requests) == 2
    assert slept == [2.0]


def test_a_429_retry_after_given_as_an_http_date_is_honoured(fake, slept):
    when = datetime.now(UTC) + timedelta(seconds=3)
    fake.fail_next(1, 429, retry_after=when.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    list_ban_rules()
    assert len(slept) == 1
    assert 1 <= slept[0] <= 3


@pytest.mark.parametrize("value", ["soon", "nan", "-5"])
def test_a_retry_after_that_is_no_number_of_seconds_falls_back_to_the_backoff(fake, slept, value):
    fake.fail_next(1, 429, retry_after=value)
    list_ban_rules()
    assert len(slept) == 1
    assert slept[0] == (0.0 if value == "-5" else pytest.approx(0.0075, abs=0.0025))


def test_a_429_asking_for_longer_than_the_backoff_cap_is_handed_back_at_once(fake, slept):
    fake.fail_next(1, 429, retry_after="120")
    error = _error(list_ban_rules)
    assert (error.kind, error.status, error.retry_after, error.retryable) == (
        ErrorKind.UNAVAILABLE,
        429,
        120,
        True,
    )
    assert error.reason == "API rate limit exceeded"
    assert len(fake.requests) == 1
    assert slept == []


def test_backoff_doubles_with_jitter_up_to_its_cap(fake, rest_settings, slept, monkeypatch):
    rest_settings.AGORA_REST_RETRIES = 4
    rest_settings.AGORA_REST_BACKOFF = 1.0
    rest_settings.AGORA_REST_BACKOFF_MAX = 3.0
    monkeypatch.setattr(client._jitter, "uniform", lambda low, high: high)  # the longest draw
    fake.fail_next(3, 500)
    list_ban_rules()
    assert slept == [1.0, 2.0, 3.0]  # 1, 2, then 4 capped to 3
    monkeypatch.setattr(client._jitter, "uniform", lambda low, high: low)  # the shortest
    fake.fail_next(3, 503, retry_after=None)
    slept.clear()
    list_ban_rules()
    assert slept == [0.5, 1.0, 1.5]


def test_every_attempt_failing_gives_up_with_the_last_error(fake, slept):
    fake.fail_next(3, 500)
    error = _error(list_ban_rules)
    assert (error.kind, error.status, error.reason, error.retryable) == (
        ErrorKind.UNAVAILABLE,
        500,
        "fault 500",
        True,
    )
    assert len(fake.requests) == 3
    assert len(slept) == 2


def test_every_attempt_timing_out_gives_up_as_a_timeout(fake, rest_settings):
    rest_settings.AGORA_REST_RETRIES = 2
    rest_settings.AGORA_REST_TIMEOUT = TIMEOUT / 2  # every request hangs: none needs longer
    fake.fail_next(2, "hang")
    error = _error(list_ban_rules)
    assert (error.kind, error.status, error.retryable) == (ErrorKind.TIMEOUT, None, True)
    assert "ReadTimeout" in error.reason
    assert len(fake.requests) == 2


def test_every_connection_dropped_gives_up_as_unavailable(fake):
    fake.fail_next(3, "drop")
    error = _error(list_ban_rules)
    assert (error.kind, error.status, error.retryable) == (ErrorKind.UNAVAILABLE, None, True)
    assert "RemoteProtocolError" in error.reason
    assert len(fake.requests) == 3


def test_nothing_listening_is_retried_then_unavailable(rest_settings, slept):
    rest_settings.AGORA_REST_URL = f"http://127.0.0.1:{free_port()}"
    error = _error(list_ban_rules)
    assert (error.kind, error.retryable) == (ErrorKind.UNAVAILABLE, True)
    assert "ConnectError" in error.reason
    assert len(slept) == 2
    client.close()


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, ErrorKind.REJECTED), (404, ErrorKind.REJECTED), (409, ErrorKind.REJECTED),
     (415, ErrorKind.REJECTED), (401, ErrorKind.AUTH), (403, ErrorKind.AUTH)],
)  # fmt: skip
def test_other_4xx_answers_are_not_retried(fake, slept, status, kind):
    fake.fail_next(1, status)
    error = _error(create_ban_rule, uid=42, minutes=10, privileges=["join_channel"])
    assert (error.kind, error.status, error.retryable) == (kind, status, False)
    assert len(fake.requests) == 1  # nor looked up: Agora refused it
    assert slept == []


def test_a_wrong_customer_secret_is_an_auth_error_after_one_request(fake, rest_settings):
    rest_settings.AGORA_CUSTOMER_SECRET = "not-the-secret-at-all"
    error = _error(list_ban_rules)
    assert (error.kind, error.status, error.reason) == (
        ErrorKind.AUTH,
        401,
        "Invalid authentication credentials",
    )
    assert len(fake.requests) == 1


def test_an_unknown_rule_id_is_rejected(fake):
    error = _error(delete_ban_rule, 4711)
    assert (error.kind, error.status, error.reason) == (ErrorKind.REJECTED, 404, "rule not found")


# --- a ban whose answer was lost is not created twice ----------------------------------------------


@pytest.mark.parametrize("fault", ["hang", "drop", 504])
def test_a_ban_carried_out_whose_answer_was_lost_is_found_not_created_again(fake, fault):
    fake.fail_next(1, fault, after_processing=True)
    rule_id = create_ban_rule(channel="room", uid=42, minutes=10, privileges=["join_channel"])
    assert list(fake.rules) == [rule_id]
    assert [(r.method, r.path) for r in fake.requests] == [("POST", RULES), ("GET", RULES)]


@pytest.mark.parametrize("fault", ["drop", 500])
def test_a_ban_that_was_not_carried_out_is_sent_again_after_the_lookup(fake, fault):
    fake.fail_next(1, fault)
    rule_id = create_ban_rule(channel="room", uid=42, minutes=10, privileges=["join_channel"])
    assert list(fake.rules) == [rule_id]
    assert [r.method for r in fake.requests] == ["POST", "GET", "POST"]


def test_the_lookup_does_not_take_an_older_rule_of_another_duration_for_the_lost_one(fake):
    older = create_ban_rule(channel="room", uid=42, minutes=1, privileges=["join_channel"])
    fake.fail_next(1, "drop")
    newer = create_ban_rule(channel="room", uid=42, minutes=1440, privileges=["join_channel"])
    assert newer != older
    assert sorted(fake.rules) == [older, newer]


def test_a_ban_refused_with_429_is_sent_again_without_a_lookup(fake, slept):
    fake.fail_next(1, 429, retry_after="1")
    create_ban_rule(uid=42, minutes=10, privileges=["join_channel"])
    assert [r.method for r in fake.requests] == ["POST", "POST"]  # Agora did not take it in
    assert slept == [1.0]


def test_a_kick_is_simply_sent_again(fake):
    fake.fail_next(1, 500)
    create_ban_rule(channel="room", uid=42, seconds=0, privileges=["join_channel"])
    assert [r.method for r in fake.requests] == ["POST", "POST"]


def test_a_ban_timing_out_at_every_attempt_is_looked_up_after_each(fake, rest_settings):
    rest_settings.AGORA_REST_RETRIES = 2
    rest_settings.AGORA_REST_TIMEOUT = TIMEOUT / 2  # every request hangs: none needs longer
    fake.fail_next(4, "hang")  # the POSTs and the lookups alike
    error = _error(create_ban_rule, uid=42, minutes=10, privileges=["join_channel"])
    assert error.kind == ErrorKind.TIMEOUT
    assert [r.method for r in fake.requests] == ["POST", "GET", "POST", "GET"]


# --- nothing is sent that Agora would refuse, or without credentials -------------------------------


@pytest.mark.parametrize(
    "setting", ["AGORA_CUSTOMER_ID", "AGORA_CUSTOMER_SECRET", "AGORA_APP_ID", "AGORA_REST_URL"]
)
def test_without_a_setting_nothing_is_sent_and_the_error_names_it(fake, settings, setting):
    setattr(settings, setting, "")
    assert not rest_configured()
    assert setting in rest_not_configured_reason()
    error = _error(list_ban_rules)
    assert (error.kind, error.retryable) == (ErrorKind.NOT_CONFIGURED, False)
    assert setting in error.reason
    assert fake.requests == []
    assert fake.connections == 0


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"uid": 42, "privileges": ["join_channel"]}, "seconds or as minutes"),
        ({"uid": 42, "seconds": 60, "minutes": 1, "privileges": ["join_channel"]}, "exactly one"),
        ({"uid": 42, "seconds": 9, "privileges": ["join_channel"]}, "10..86430"),
        ({"uid": 42, "seconds": 86431, "privileges": ["join_channel"]}, "10..86430"),
        ({"uid": 42, "minutes": 1441, "privileges": ["join_channel"]}, "1..1440"),
        ({"uid": 42, "minutes": -1, "privileges": ["join_channel"]}, "1..1440"),
        ({"uid": 42, "minutes": 1.5, "privileges": ["join_channel"]}, "1..1440"),
        ({"uid": 42, "minutes": True, "privileges": ["join_channel"]}, "1..1440"),
        ({"uid": 0, "minutes": 1, "privileges": ["join_channel"]}, "uid"),
        ({"uid": 2**32, "minutes": 1, "privileges": ["join_channel"]}, "uid"),
        ({"uid": "42", "minutes": 1, "privileges": ["join_channel"]}, "uid"),
        ({"channel": "a/b", "minutes": 1, "privileges": ["join_channel"]}, "'/'"),
        ({"channel": "x" * 64, "minutes": 1, "privileges": ["join_channel"]}, "63 bytes"),
        ({"ip": "0", "minutes": 1, "privileges": ["join_channel"]}, "ip"),
        ({"minutes": 1, "privileges": ["join_channel"]}, "channel, a uid or an ip"),
        ({"uid": 42, "minutes": 1, "privileges": []}, "at least one"),
        ({"uid": 42, "minutes": 1, "privileges": ["kick"]}, "among"),
        ({"uid": 42, "minutes": 1, "privileges": ["publish_audio", "publish_audio"]}, "each once"),
    ],
)
def test_a_ban_agora_would_refuse_or_clamp_is_refused_before_sending(fake, kwargs, names):
    error = _error(create_ban_rule, **kwargs)
    assert (error.kind, error.status, error.retryable) == (ErrorKind.INVALID, None, False)
    assert names in error.reason
    assert fake.requests == []


@pytest.mark.parametrize(
    ("call", "args", "kwargs"),
    [
        (update_ban_rule, (0,), {"minutes": 1}),
        (update_ban_rule, (1,), {"minutes": 1441}),
        (update_ban_rule, (1,), {}),
        (delete_ban_rule, (-3,), {}),
        (delete_ban_rule, ("12",), {}),
        (channel_users, ("",), {}),
        (user_status, (0, "room"), {}),
        (user_status, (1, "bad/name"), {}),
    ],
)
def test_other_calls_check_their_input_before_sending(fake, call, args, kwargs):
    assert _error(call, *args, **kwargs).kind == ErrorKind.INVALID
    assert fake.requests == []


# --- no secret leaves the client ---------------------------------------------------------------------


def test_no_log_line_error_or_repr_carries_the_secret_or_the_authorization_header(
    fake, rest_settings, caplog
):
    caplog.set_level(logging.DEBUG)  # httpx's and httpcore's own debug lines included
    create_ban_rule(uid=42, minutes=10, privileges=["join_channel"])
    fake.fail_next(1, 500)
    list_ban_rules()
    errors = []
    fake.fail_next(3, "drop")
    errors.append(_error(list_ban_rules))
    fake.fail_next(1, 400)
    errors.append(_error(delete_ban_rule, 1))
    # Agora echoing the credentials back in an error message: the reason scrubs them.
    fake.handle = lambda recorded: (400, {"message": f"bad: {recorded.headers['authorization']}"})
    errors.append(_error(list_ban_rules))
    assert errors[-1].reason == "bad: Basic ********"
    rest_settings.AGORA_REST_RETRIES = 1
    fake.fail_next(1, "hang")
    errors.append(_error(list_ban_rules))
    rest_settings.AGORA_CUSTOMER_SECRET = ""
    errors.append(_error(list_ban_rules))

    lines = [record.getMessage() + str(record.exc_text or "") for record in caplog.records]
    # Method, path, status, attempt:
    assert any("POST /dev/v1/kicking-rule: 200 (attempt 1/3" in line for line in lines)
    assert any("GET /dev/v1/kicking-rule: 200 (attempt 2/3" in line for line in lines)
    assert any("retrying in" in line for line in lines)
    assert any(line.startswith("HTTP Request:") for line in lines)  # httpx's own lines were captured
    texts = lines + [t for e in errors for t in (str(e), repr(e), "".join(traceback.format_exception(e)))]
    for text in texts:
        assert CUSTOMER_SECRET not in text
        assert CREDENTIAL not in text
        assert "Basic " + CREDENTIAL[:8] not in text
    assert "Basic" in fake.requests[0].headers["authorization"]  # it was sent, only not shown


def test_error_pages_mask_the_customer_secret_and_the_basic_credential(rest_settings):
    assert {CUSTOMER_SECRET, CREDENTIAL} <= set(configured_secrets())
    shown = mask_secrets(f"secret={CUSTOMER_SECRET} header=Basic {CREDENTIAL}")
    assert shown == f"secret={MASK} header=Basic {MASK}"
    safe = SafeExceptionReporterFilter().get_safe_settings()
    assert safe["AGORA_CUSTOMER_SECRET"] == MASK


# --- the kept client, settings read at each call ---------------------------------------------------


def test_one_kept_client_and_connection_serve_every_call(fake):
    kept = client._client()
    list_ban_rules()
    create_ban_rule(uid=42, minutes=10, privileges=["join_channel"])
    list_ban_rules()
    assert client._client() is kept
    assert fake.connections == 1
    client.close()
    assert client._client() is not kept


def test_threads_share_the_one_kept_client(fake, monkeypatch):
    made = []

    class Counted(httpx.Client):
        def __init__(self, **kwargs):
            made.append(self)
            super().__init__(**kwargs)

    client.close()
    monkeypatch.setattr(client.httpx, "Client", Counted)
    results, start = [], threading.Barrier(8)

    def call():
        start.wait(timeout=5)
        results.append(list_ban_rules())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == [[]] * 8
    assert len(made) == 1


def test_settings_are_read_at_each_call(fake, rest_settings):
    list_ban_rules()
    with FakeAgora(customer_id="other-id", customer_secret="other-secret", app_id=APP_ID) as other:
        rest_settings.AGORA_REST_URL = other.url + "/"
        rest_settings.AGORA_CUSTOMER_ID = "other-id"
        rest_settings.AGORA_CUSTOMER_SECRET = "other-secret"
        list_ban_rules()
        client.close()
    assert len(fake.requests) == 1
    expected = "Basic " + base64.b64encode(b"other-id:other-secret").decode()
    assert [r.headers["authorization"] for r in other.requests] == [expected]


def test_an_error_survives_pickling_for_a_task_queue():
    error = AgoraRestError(ErrorKind.UNAVAILABLE, "fault 500", status=500, retry_after=2.0)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert (copy.kind, copy.reason, copy.status, copy.retry_after, copy.retryable) == (
        ErrorKind.UNAVAILABLE, "fault 500", 500, 2.0, True,
    )  # fmt: skip
    assert str(copy) == "Agora REST unavailable (HTTP 500): fault 500"


# --- system checks ---------------------------------------------------------------------------------


def _ids(messages):
    return sorted(m.id for m in messages)


def test_check_passes_with_credentials_and_the_default_knobs(rest_settings):
    rest_settings.AGORA_REST_URL = "https://api.agora.io"
    assert check_agora_rest_settings() == []


def test_check_warns_that_moderation_is_off_without_the_customer_id_or_secret(settings, capsys):
    settings.AGORA_CUSTOMER_ID = ""
    settings.AGORA_CUSTOMER_SECRET = ""
    [warning] = check_agora_rest_settings()
    assert (warning.id, warning.level) == ("tokens.W030", logging.WARNING)
    assert "AGORA_CUSTOMER_ID" in warning.msg and "AGORA_CUSTOMER_SECRET" in warning.msg
    call_command("check")  # a warning: the check passes and says so
    assert "tokens.W030" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("AGORA_REST_URL", "api.agora.io", "tokens.E031"),
        ("AGORA_REST_URL", "ftp://api.agora.io", "tokens.E031"),
        ("AGORA_REST_URL", "https://id:secret@api.agora.io", "tokens.E031"),
        ("AGORA_REST_URL", "https://api.agora.io:port", "tokens.E031"),
        ("AGORA_REST_URL", "https://api.agora.io/?x=1", "tokens.E031"),
        ("AGORA_REST_TIMEOUT", 0, "tokens.E032"),
        ("AGORA_REST_CONNECT_TIMEOUT", -1.0, "tokens.E032"),
        ("AGORA_REST_RETRIES", 0, "tokens.E033"),
        ("AGORA_REST_BACKOFF", -0.5, "tokens.E034"),
        ("AGORA_REST_BACKOFF_MAX", -1, "tokens.E034"),
    ],
)
def test_check_names_each_malformed_knob_as_an_error(rest_settings, name, value, check_id):
    setattr(rest_settings, name, value)
    errors = check_agora_rest_settings()
    assert _ids(errors) == [check_id]
    assert errors[0].level == logging.ERROR
    assert name in errors[0].msg
