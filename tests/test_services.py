import hashlib
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import AnonymousUser

from tests.conftest import APP_CERTIFICATE, APP_ID
from tokens import agora, services
from tokens.exceptions import TokenServiceError
from tokens.models import AgoraIdentity, IssuedToken
from tokens.services import identities

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_rtc_service_uses_the_given_now_and_records_the_row(user):
    issued = services.issue_token(
        service="rtc",
        user=user,
        channel="c",
        role="publisher",
        expires_in=300,
        version="007",
        now=NOW,
        source="cli",
    )
    decoded = agora.decode(issued.token)
    assert decoded.issued_at == int(NOW.timestamp())
    assert (issued.issued_at, issued.expires_in) == (NOW, 300)
    assert issued.app_id == APP_ID
    row = IssuedToken.objects.get()
    assert row == IssuedToken.objects.get(pk=issued.record_id)
    assert (row.issued_at, (row.expires_at - row.issued_at).total_seconds()) == (NOW, 300)
    assert (row.source, row.client_ip, row.user_agent) == ("cli", None, "")
    assert row.token_sha256 == hashlib.sha256(issued.token.encode()).hexdigest()


def test_identity_retries_when_a_drawn_uid_is_taken(user, django_user_model, monkeypatch):
    other = django_user_model.objects.create_user("bob")
    AgoraIdentity.objects.create(user=other, uid=77)
    draws = iter([76, 76, 41])  # randbelow(n) + 1: 77, 77, then 42
    monkeypatch.setattr(identities.secrets, "randbelow", lambda n: next(draws))
    assert services.get_or_create_identity(user=user).uid == 42
    assert services.get_or_create_identity(user=user).uid == 42  # and it stays


def test_identity_allocation_gives_up_with_503_when_every_draw_clashes(user, django_user_model, monkeypatch):
    AgoraIdentity.objects.create(user=django_user_model.objects.create_user("bob"), uid=5)
    monkeypatch.setattr(identities.secrets, "randbelow", lambda n: 4)
    with pytest.raises(TokenServiceError) as caught:
        services.get_or_create_identity(user=user)
    assert (caught.value.code, caught.value.status) == ("uid_allocation_failed", 503)
    assert not AgoraIdentity.objects.filter(user=user).exists()


def test_uid_draws_cover_the_whole_range(monkeypatch, user, django_user_model):
    seen = []
    real = identities.secrets.randbelow

    def spy(n):
        seen.append(n)
        return real(n)

    monkeypatch.setattr(identities.secrets, "randbelow", spy)
    services.get_or_create_identity(user=user)
    assert seen == [agora.UID_MAX]  # randbelow(2^32-1) + 1 -> 1..2^32-1


@pytest.fixture
def audit_table_refuses_inserts():
    """Make the database itself refuse every new audit row, as a full disk or a lost
    connection would, below any code that might catch the error."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON tokens_issuedtoken "
                "BEGIN SELECT RAISE(ABORT, 'audit write refused'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit write refused'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON tokens_issuedtoken "
                "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
            )


@pytest.mark.parametrize("service", ["rtc", "rtm"])
def test_no_token_leaves_when_its_audit_row_cannot_be_written(user, audit_table_refuses_inserts, service):
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="audit write refused"):
        services.issue_token(service=service, user=user, channel="c")


@pytest.mark.parametrize("path", ["/api/v1/tokens/rtc/", "/api/v1/tokens/rtm/", "/rtctoken", "/rtmtoken"])
def test_no_token_is_answered_when_its_audit_row_cannot_be_written(api, audit_table_refuses_inserts, path):
    api.raise_request_exception = False
    response = api.post(path, {"channel": "c"} if "rtc" in path else {}, format="json")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "server_error", "message": "Internal error; it has been logged.", "fields": {}}
    }


@pytest.mark.parametrize("who", ["anonymous", "inactive"])
def test_only_active_users_get_tokens(user, who):
    if who == "inactive":
        user.is_active = False
        user.save()
        caller = user
    else:
        caller = AnonymousUser()
    with pytest.raises(TokenServiceError) as caught:
        services.issue_token(service="rtm", user=caller)
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"channel": "bad/channel"}, "channel"),
        ({"channel": "c", "role": "owner"}, "role"),
        ({"channel": "c", "expires_in": 30}, "expires_in"),
        ({"channel": "c", "version": "009"}, "version"),
    ],
)
def test_services_apply_agoras_rules_themselves(user, kwargs, field):
    with pytest.raises(TokenServiceError) as caught:
        services.issue_token(service="rtc", user=user, **kwargs)
    assert (caught.value.status, list(caught.value.fields)) == (400, [field])
    assert IssuedToken.objects.count() == 0


def test_rtm_service_refuses_someone_elses_user_id(user):
    with pytest.raises(TokenServiceError) as caught:
        services.issue_token(service="rtm", user=user, rtm_user_id="123")
    assert (caught.value.code, caught.value.status) == ("rtm_user_mismatch", 403)


def test_issued_rtm_006_token_verifies_against_its_audit_row(user):
    issued = services.issue_token(service="rtm", user=user, version="006", now=NOW)
    row = IssuedToken.objects.get(pk=issued.record_id)
    assert agora.verify(issued.token, APP_CERTIFICATE, channel=row.rtm_user_id, account="")
    assert issued.expires_at == NOW.replace(day=3)
