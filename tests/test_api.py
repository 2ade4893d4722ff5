import hashlib
from datetime import datetime

import pytest
from django.urls import reverse

from tests.conftest import APP_CERTIFICATE, APP_ID, PASSWORD, client_for
from tokens import agora
from tokens.models import AgoraIdentity, IssuedToken

pytestmark = pytest.mark.django_db

RTC = reverse("tokens:rtc-token")
RTM = reverse("tokens:rtm-token")
ME = reverse("tokens:me")
LOGIN = reverse("tokens:auth-token")
COMPAT_RTC = reverse("tokens:compat-rtc-token")
COMPAT_RTM = reverse("tokens:compat-rtm-token")


def _ts(value: str) -> int:
    return int(datetime.fromisoformat(value).timestamp())


def _uid(user) -> int:
    return AgoraIdentity.objects.get(user=user).uid


# --- login / logout -------------------------------------------------------------------------


def test_login_returns_an_api_token_that_is_stored_only_as_a_digest(anon, user):
    response = anon.post(LOGIN, {"username": "alice", "password": PASSWORD}, format="json")
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"token", "expires_at", "username"}
    assert body["username"] == "alice"
    from knox.models import AuthToken

    stored = AuthToken.objects.get(user=user)
    assert body["token"] not in (stored.digest, stored.token_key)
    assert stored.digest == hashlib.sha512(body["token"].encode()).hexdigest()
    assert 35990 <= _ts(body["expires_at"]) - int(stored.created.timestamp()) <= 36000


@pytest.mark.parametrize(
    "credentials",
    [{"username": "alice", "password": "wrong"}, {"username": "nobody", "password": PASSWORD}],
)
def test_login_with_bad_credentials_is_401(anon, user, credentials):
    response = anon.post(LOGIN, credentials, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_login_of_an_inactive_user_is_401(anon, user):
    user.is_active = False
    user.save()
    response = anon.post(LOGIN, {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 401


def test_login_names_missing_and_unknown_fields(anon):
    response = anon.post(LOGIN, {"username": "alice", "remember": True}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "password": ["This field is required."],
        "remember": ["Unknown field."],
    }


def test_login_ignores_a_stale_authorization_header(anon, user):
    anon.credentials(HTTP_AUTHORIZATION="Token deadbeef")
    response = anon.post(LOGIN, {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200


def test_logout_revokes_only_the_token_sent(user):
    first, second = client_for(user), client_for(user)
    assert first.delete(LOGIN).status_code == 204
    assert first.get(ME).status_code == 401
    assert second.get(ME).status_code == 200


def test_logout_without_a_token_is_401(anon):
    assert anon.delete(LOGIN).status_code == 401


def test_expired_api_token_is_refused(api, user):
    from knox.models import AuthToken

    AuthToken.objects.filter(user=user).update(
        expiry=datetime(2000, 1, 1, tzinfo=datetime.now().astimezone().tzinfo)
    )
    assert api.get(ME).status_code == 401


@pytest.mark.parametrize(
    "header", ["Token", "Token a b", "Token \x00abc", "Token " + "a" * 500, "Token \xe9\xe9"]
)
def test_malformed_authorization_headers_are_401(anon, header):
    anon.credentials(HTTP_AUTHORIZATION=header)
    response = anon.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


# --- identity ---------------------------------------------------------------------------------


def test_me_reports_the_users_one_uid(api, user):
    first = api.get(ME).json()
    second = api.get(ME).json()
    uid = _uid(user)
    expected = {"username": "alice", "uid": uid, "rtm_user_id": str(uid), "slots": {"main": uid}}
    assert first == second == expected
    assert agora.UID_MIN <= first["uid"] <= agora.UID_MAX


def test_the_uid_is_the_same_in_me_every_rtc_token_and_the_tutorial_endpoint(api, user):
    uid = api.get(ME).json()["uid"]
    for version in ("006", "007"):
        body = api.post(RTC, {"channel": "c", "version": version}, format="json").json()
        assert body["uid"] == uid
        decoded = agora.decode(body["token"])
        if version == "007":
            assert decoded.service(agora.SERVICE_RTC).account == str(uid)
        else:
            assert agora.verify(decoded, APP_CERTIFICATE, channel="c", account=str(uid))
    compat = api.post(COMPAT_RTC, {"channel": "c"}, format="json").json()
    assert compat["uid"] == uid
    assert agora.verify(compat["token"], APP_CERTIFICATE, channel="c", account=str(uid))
    rtm = api.post(RTM, {}, format="json").json()
    assert rtm["user_id"] == str(uid)


def test_200_users_get_200_distinct_uids_in_range(django_user_model):
    from tokens.services import get_or_create_identity

    users = [django_user_model.objects.create_user(f"user{i}") for i in range(200)]
    uids = {get_or_create_identity(user=u).uid for u in users}
    assert len(uids) == 200
    assert all(agora.UID_MIN <= uid <= agora.UID_MAX for uid in uids)
    assert AgoraIdentity.objects.count() == 200


# --- RTC --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["006", "007"])
@pytest.mark.parametrize(("role", "privileges"), [("publisher", {1, 2, 3, 4}), ("subscriber", {1})])
def test_rtc_token_decodes_to_exactly_what_the_response_says(api, user, version, role, privileges):
    response = api.post(
        RTC, {"channel": "Room 7 (main)", "role": role, "expires_in": 900, "version": version}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    uid = _uid(user)
    assert {k: body[k] for k in ("app_id", "channel", "uid", "role", "version", "expires_in")} == {
        "app_id": APP_ID,
        "channel": "Room 7 (main)",
        "uid": uid,
        "role": role,
        "version": version,
        "expires_in": 900,
    }
    issued_at, expires_at = _ts(body["issued_at"]), _ts(body["expires_at"])
    assert expires_at - issued_at == 900
    decoded = agora.decode(body["token"])
    assert decoded.version == version
    assert decoded.app_id == APP_ID
    assert decoded.expires_at == expires_at
    service = decoded.service(agora.SERVICE_RTC)
    assert set(service.privileges) == privileges
    if version == "007":
        assert decoded.issued_at == issued_at
        assert (service.channel, service.account) == ("Room 7 (main)", str(uid))
        assert set(service.privileges.values()) == {900}  # seconds after issue
        assert agora.verify(decoded, APP_CERTIFICATE)
    else:
        assert set(service.privileges.values()) == {expires_at}  # absolute unix time
        assert agora.verify(decoded, APP_CERTIFICATE, channel="Room 7 (main)", account=str(uid))


def test_rtc_defaults_are_subscriber_ttl_and_configured_version(api, settings):
    settings.AGORA_TOKEN_TTL = 1234
    body = api.post(RTC, {"channel": "c"}, format="json").json()
    assert (body["role"], body["version"], body["expires_in"]) == ("subscriber", "007", 1234)
    settings.AGORA_TOKEN_VERSION = "006"
    assert api.post(RTC, {"channel": "c"}, format="json").json()["version"] == "006"


def test_every_issued_token_has_exactly_one_audit_row_with_its_sha256(api, user):
    tokens = [
        api.post(RTC, {"channel": "a", "role": "publisher"}, format="json").json()["token"],
        api.post(RTC, {"channel": "b", "version": "006"}, format="json").json()["token"],
        api.post(RTM, {}, format="json").json()["token"],
        api.post(COMPAT_RTC, {"channel": "d", "isPublisher": True}, format="json").json()["token"],
        api.post(COMPAT_RTM, {}, format="json").json()["token"],
    ]
    rows = list(IssuedToken.objects.order_by("id"))
    assert [r.token_sha256 for r in rows] == [hashlib.sha256(t.encode()).hexdigest() for t in tokens]
    uid = _uid(user)
    assert [(r.service, r.channel, r.role, r.version, r.source, r.uid) for r in rows] == [
        ("rtc", "a", "publisher", "007", "api", uid),
        ("rtc", "b", "subscriber", "006", "api", uid),
        ("rtm", "", "", "007", "api", uid),
        ("rtc", "d", "publisher", "006", "compat", uid),
        ("rtm", "", "", "006", "compat", uid),
    ]
    assert all(r.user == user and r.username == "alice" for r in rows)
    assert rows[2].rtm_user_id == str(uid)
    assert all(r.client_ip == "127.0.0.1" for r in rows)


def test_audit_row_records_user_agent_truncated(api):
    api.post(RTC, {"channel": "c"}, format="json", HTTP_USER_AGENT="x" * 1000)
    assert IssuedToken.objects.get().user_agent == "x" * 256


def test_publisher_needs_the_permission_when_policy_says_so(api, user, settings):
    from django.contrib.auth.models import Permission

    settings.AGORA_PUBLISHER_POLICY = "permission"
    response = api.post(RTC, {"channel": "c", "role": "publisher"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "publisher_not_allowed"
    assert api.post(RTC, {"channel": "c"}, format="json").status_code == 201
    user.user_permissions.add(Permission.objects.get(codename="publish", content_type__app_label="tokens"))
    response = api.post(RTC, {"channel": "c", "role": "publisher"}, format="json")
    assert response.status_code == 201
    assert IssuedToken.objects.count() == 2


# --- RTM --------------------------------------------------------------------------------------


def test_rtm_007_token_is_for_the_users_own_id_and_lifetime(api, user):
    body = api.post(RTM, {"expires_in": 600}, format="json").json()
    uid = _uid(user)
    assert body["user_id"] == str(uid)
    assert body["expires_in"] == 600
    decoded = agora.decode(body["token"])
    assert decoded.service(agora.SERVICE_RTM).user_id == str(uid)
    assert decoded.service(agora.SERVICE_RTM).privileges == {1: 600}
    assert decoded.expires_at == _ts(body["expires_at"])
    assert agora.verify(decoded, APP_CERTIFICATE)


def test_rtm_006_token_reports_its_true_24_hour_life(api, user):
    body = api.post(RTM, {"expires_in": 600, "version": "006"}, format="json").json()
    assert body["expires_in"] == 86400
    assert _ts(body["expires_at"]) - _ts(body["issued_at"]) == 86400
    decoded = agora.decode(body["token"])
    assert decoded.expires_at == _ts(body["expires_at"])
    assert agora.verify(decoded, APP_CERTIFICATE, channel=str(_uid(user)), account="")
    row = IssuedToken.objects.get()
    assert (row.expires_at - row.issued_at).total_seconds() == 86400


# --- tutorial-compatible endpoints --------------------------------------------------------------


def test_compat_rtctoken_answers_with_the_tutorials_keys(api, user):
    response = api.post(COMPAT_RTC, {"channel": "lobby", "isPublisher": True}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"uid", "token"}
    decoded = agora.decode(body["token"])
    assert decoded.version == "006"
    assert set(decoded.services[0].privileges) == {1, 2, 3, 4}
    assert decoded.expires_at - decoded.issued_at == 3600


def test_compat_rtmtoken_for_own_id_or_none(api, user):
    uid = api.get(ME).json()["uid"]
    for body in ({}, {"user": str(uid)}):
        response = api.post(COMPAT_RTM, body, format="json")
        assert response.status_code == 200
        assert set(response.json()) == {"token"}
        assert agora.verify(response.json()["token"], APP_CERTIFICATE, channel=str(uid), account="")


def test_compat_rtmtoken_for_another_users_id_is_403(api, user, django_user_model):
    other = django_user_model.objects.create_user("bob")
    from tokens.services import get_or_create_identity

    other_id = get_or_create_identity(user=other).rtm_user_id
    response = api.post(COMPAT_RTM, {"user": other_id}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "rtm_user_mismatch"
    assert IssuedToken.objects.count() == 0


def test_compat_version_follows_its_own_setting(api, settings):
    settings.AGORA_COMPAT_TOKEN_VERSION = "007"
    token = api.post(COMPAT_RTC, {"channel": "c"}, format="json").json()["token"]
    assert token.startswith("007")


# --- authentication and validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", ME), ("post", RTC), ("post", RTM), ("post", COMPAT_RTC), ("post", COMPAT_RTM)],
)
def test_no_login_is_401_in_the_error_shape(anon, method, url):
    response = getattr(anon, method)(url, {"channel": "c"}, format="json")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "not_authenticated",
            "message": "Authentication credentials were not provided.",
            "fields": {},
        }
    }
    assert IssuedToken.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (RTC, {}, "channel"),
        (RTC, {"channel": ""}, "channel"),
        (RTC, {"channel": "x" * 64}, "channel"),
        (RTC, {"channel": "room/1"}, "channel"),
        (RTC, {"channel": "caf\u00e9"}, "channel"),
        (RTC, {"channel": "party \U0001f389"}, "channel"),
        (RTC, {"channel": "a\x00b"}, "channel"),
        (RTC, {"channel": 123}, "channel"),
        (RTC, {"channel": None}, "channel"),
        (RTC, {"channel": ["c"]}, "channel"),
        (RTC, {"channel": "c", "role": "admin"}, "role"),
        (RTC, {"channel": "c", "role": 1}, "role"),
        (RTC, {"channel": "c", "expires_in": 0}, "expires_in"),
        (RTC, {"channel": "c", "expires_in": 59}, "expires_in"),
        (RTC, {"channel": "c", "expires_in": 86401}, "expires_in"),
        (RTC, {"channel": "c", "expires_in": "abc"}, "expires_in"),
        (RTC, {"channel": "c", "expires_in": "600"}, "expires_in"),
        (RTC, {"channel": "c", "expires_in": 600.5}, "expires_in"),
        (RTC, {"channel": "c", "expires_in": True}, "expires_in"),
        (RTC, {"channel": "c", "expires_in": 10**30}, "expires_in"),
        (RTC, {"channel": "c", "version": "005"}, "version"),
        (RTC, {"channel": "c", "version": 7}, "version"),
        (RTC, {"channel": "c", "uid": 42}, "uid"),
        (RTM, {"user_id": "someone"}, "user_id"),
        (RTM, {"expires_in": -1}, "expires_in"),
        (RTM, {"version": "008"}, "version"),
        (COMPAT_RTC, {"channel": "c", "isPublisher": "false"}, "isPublisher"),
        (COMPAT_RTC, {"channel": "c", "uid": 5}, "uid"),
        (COMPAT_RTC, {"isPublisher": True}, "channel"),
        (COMPAT_RTM, {"user": "null"}, "user"),
        (COMPAT_RTM, {"user": " 12"}, "user"),
        (COMPAT_RTM, {"user": 12}, "user"),
        (RTC, [], "body"),
        (RTC, "channel", "body"),
        (RTC, 5, "body"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(api, url, body, field):
    response = api.post(url, body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]
    assert error["message"].startswith(f"{field}: ") or f"; {field}: " in error["message"]
    assert IssuedToken.objects.count() == 0


@pytest.mark.parametrize("raw", ['{"channel": "\\ud800"}', '{"channel": "c", "role": "\\udfff"}'])
def test_lone_surrogates_in_json_are_400_not_500(api, raw):
    response = api.post(RTC, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_channel_with_every_allowed_character_is_accepted(api):
    channel = "aZ09 !#$%&()+-:;<=.>?@[]^_{}|~,"
    response = api.post(RTC, {"channel": channel}, format="json")
    assert response.status_code == 201
    assert agora.decode(response.json()["token"]).service(agora.SERVICE_RTC).channel == channel


def test_63_byte_channel_and_one_day_lifetime_are_accepted(api):
    response = api.post(RTC, {"channel": "x" * 63, "expires_in": 86400}, format="json")
    assert response.status_code == 201
    assert response.json()["expires_in"] == 86400


def test_expires_in_is_capped_by_the_configured_maximum(api, settings):
    settings.AGORA_TOKEN_MAX_TTL = 600
    response = api.post(RTC, {"channel": "c", "expires_in": 601}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"expires_in": ["Must be within 60..600 seconds (got 601)."]}


def test_several_bad_fields_are_all_named(api):
    response = api.post(RTC, {"channel": "", "role": "x", "extra": 1}, format="json")
    assert set(response.json()["error"]["fields"]) == {"channel", "role", "extra"}


def test_non_json_body_is_400_naming_the_body(api):
    response = api.post(RTC, "not json", content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert list(error["fields"]) == ["body"]


def test_form_encoded_body_is_415(api):
    response = api.post(RTC, {"channel": "c"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_wrong_method_is_405_in_the_error_shape(api):
    response = api.get(RTC)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("app_id", "cert"),
    [("", APP_CERTIFICATE), (APP_ID, ""), ("not-hex", APP_CERTIFICATE), (APP_ID, "x" * 32)],
)
def test_missing_or_malformed_credentials_are_503_agora_not_configured(api, settings, app_id, cert):
    settings.AGORA_APP_ID, settings.AGORA_APP_CERTIFICATE = app_id, cert
    for url, body in ((RTC, {"channel": "c"}), (RTM, {}), (COMPAT_RTC, {"channel": "c"}), (COMPAT_RTM, {})):
        response = api.post(url, body, format="json")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "agora_not_configured"
    assert IssuedToken.objects.count() == 0


def test_token_requests_are_throttled_per_user(api, user, django_user_model, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"tokens": "3/min", "auth": "100/min"},
    }
    codes = [api.post(RTC, {"channel": "c"}, format="json").status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    response = api.post(RTM, {}, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    other = client_for(django_user_model.objects.create_user("bob", password=PASSWORD))
    assert other.post(RTC, {"channel": "c"}, format="json").status_code == 201


def test_login_attempts_are_throttled(anon, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"tokens": "100/min", "auth": "2/min"},
    }
    codes = [
        anon.post(
            LOGIN, {"username": "x", "password": "y"}, format="json", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}"
        ).status_code
        for i in range(3)
    ]
    # A client-sent X-Forwarded-For does not open a new budget (no trusted proxy is configured).
    assert codes == [401, 401, 429]


def test_login_throttle_keys_on_the_client_behind_trusted_proxies(anon, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"tokens": "100/min", "auth": "1/min"},
    }

    def attempt(client_address):
        body = {"username": "x", "password": "y"}
        return anon.post(LOGIN, body, format="json", HTTP_X_FORWARDED_FOR=client_address).status_code

    assert [attempt("203.0.113.1"), attempt("203.0.113.1"), attempt("203.0.113.2")] == [401, 429, 401]


# --- never store or log a token -----------------------------------------------------------------


def test_issued_tokens_are_found_nowhere_in_the_database_or_logs(api, caplog, django_db_blocker):
    from django.db import connection

    caplog.set_level("DEBUG")
    login = api.post(LOGIN, {"username": "alice", "password": PASSWORD}, format="json").json()["token"]
    secrets = [
        login,
        api.post(RTC, {"channel": "c"}, format="json").json()["token"],
        api.post(RTC, {"channel": "c", "version": "006"}, format="json").json()["token"],
        api.post(RTM, {}, format="json").json()["token"],
        api.post(COMPAT_RTM, {}, format="json").json()["token"],
    ]
    dump = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            dump.extend(repr(row) for row in cursor.fetchall())
    everything = "\n".join(dump) + caplog.text
    assert "issued rtc token" in caplog.text  # the audit log line is there...
    for secret in (*secrets, PASSWORD, APP_CERTIFICATE):
        assert secret not in everything  # ...but no token, API key, password or certificate


# --- other endpoints --------------------------------------------------------------------------


def test_health_reports_the_database_cache_and_agora_settings(anon):
    response = anon.get(reverse("tokens:health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok", "agora": "ok"}


def test_index_greets_and_links_to_the_api_and_admin(anon):
    response = anon.get(reverse("index"))
    text = response.content.decode()
    assert response.status_code == 200
    assert "Agora Auth Token Server" in text
    for url in (reverse("swagger-ui"), reverse("admin:index"), reverse("schema")):
        assert f'href="{url}"' in text


def test_unknown_path_is_a_json_404(anon):
    response = anon.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_openapi_schema_and_docs_are_served_without_login(anon):
    schema = anon.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {RTC, RTM, ME, LOGIN, COMPAT_RTC, COMPAT_RTM} <= set(paths)
    assert anon.get(reverse("swagger-ui")).status_code == 200
