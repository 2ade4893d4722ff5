import threading

import pytest
from django.db import connection, connections

from tokens.models import AgoraIdentity, IssuedToken
from tokens.services import get_or_create_identity, issue_token

# Real concurrent transactions need a server database; CI runs this file on PostgreSQL
# (`make test-postgres`). SQLite serialises writers, so there is no race to show.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test-postgres)"),
]

THREADS = 8


def _race(work):
    barrier = threading.Barrier(THREADS)
    results, errors = [], []

    def run(i):
        try:
            barrier.wait(timeout=10)
            results.append(work(i))
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    return results


def test_concurrent_first_requests_of_one_user_agree_on_one_uid(user):
    uids = _race(lambda i: get_or_create_identity(user=user).uid)
    assert len(set(uids)) == 1
    assert AgoraIdentity.objects.filter(user=user).count() == 1


def test_concurrent_token_requests_each_write_one_audit_row(user):
    issued = _race(lambda i: issue_token(service="rtc", user=user, channel=f"c{i}"))
    assert len({i.uid for i in issued}) == 1
    assert IssuedToken.objects.count() == THREADS
    assert set(IssuedToken.objects.values_list("channel", flat=True)) == {f"c{i}" for i in range(THREADS)}


def test_concurrent_wrong_passwords_never_get_more_checks_than_the_limit(user, settings):
    from tokens.exceptions import TokenServiceError
    from tokens.services.accounts import start_login_attempt

    settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT = 3

    def attempt(i):
        try:
            start_login_attempt(username="alice", client_ip=f"198.51.100.{i}")
        except TokenServiceError as exc:
            return exc.code
        return "checked"

    outcomes = _race(attempt)
    assert sorted(outcomes) == ["checked"] * 3 + ["login_locked"] * (THREADS - 3)


def test_concurrent_resends_of_one_agora_notification_store_it_once(settings):
    import json

    from tokens import ncs
    from tokens.models import ChannelEvent
    from tokens.services.channel_events import record_channel_event

    def resend(i):
        body = {
            "noticeId": "2000001428:4330:107",
            "productId": 1,
            "eventType": 103,
            "notifyMs": 1772366400000 + i,  # Agora updates notifyMs on every resend
            "payload": {"channelName": "lobby", "uid": 12121212, "clientSeq": 1, "ts": 1772366400},
        }
        return record_channel_event(notification=ncs.parse(json.dumps(body).encode())).value

    outcomes = _race(resend)
    assert sorted(outcomes) == ["duplicate"] * (THREADS - 1) + ["stored"]
    assert ChannelEvent.objects.count() == 1
