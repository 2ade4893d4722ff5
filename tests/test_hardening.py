"""Hostile input gets a 4xx in the one error shape, never a 500 (found by fuzzing)."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.servers import chunked_rtm_request, raw_http
from tokens.models import IssuedToken

pytestmark = pytest.mark.django_db

RTC = reverse("tokens:rtc-token")
LOGIN = reverse("tokens:auth-token")


def _error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()["error"]


# Deeper than Python's recursion limit (1000), within the 16 KiB body cap.
@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, '{"a":' * 1500 + "1" + "}" * 1500])
@pytest.mark.parametrize("url", [LOGIN, RTC])
def test_json_nested_past_the_recursion_limit_is_400(api, url, nested):
    response = api.post(url, nested, content_type="application/json")
    assert response.status_code == 400
    assert _error(response)["code"] == "parse_error"


def test_body_over_the_upload_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post(RTC, {"channel": "c" * 2000}, format="json")
    assert response.status_code == 413
    assert _error(response)["code"] == "too_large"


def test_nul_and_control_bytes_in_the_user_agent_are_not_stored(api):
    response = api.post(RTC, {"channel": "c"}, format="json", HTTP_USER_AGENT="curl\x00/8\x07.0")
    assert response.status_code == 201
    assert IssuedToken.objects.get().user_agent == "curl/8.0"


def test_ipv6_zone_in_forwarded_for_is_dropped(api, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    response = api.post(RTC, {"channel": "c"}, format="json", HTTP_X_FORWARDED_FOR="fe80::1%" + "x" * 40)
    assert response.status_code == 201
    assert IssuedToken.objects.get().client_ip == "fe80::1"


def test_invalid_choice_error_does_not_echo_a_huge_input(api):
    response = api.post(RTC, {"channel": "c", "role": "x" * 15_000}, format="json")
    assert response.status_code == 400
    choices = "publisher, subscriber, audio, video, data"
    assert _error(response)["fields"] == {"role": [f"Must be one of {choices}."]}
    assert len(response.content) < 500


def test_unknown_field_names_are_shortened_in_the_error(api):
    response = api.post(RTC, {"channel": "c", "k" * 10_000: 1}, format="json")
    assert list(_error(response)["fields"]) == ["k" * 64 + "…"]


@pytest.mark.parametrize(
    "url", ["/admin/tokens/issuedtoken/?username__exact=%00", "/api/v1/me/?x=%00", "/%00"]
)
def test_nul_bytes_in_the_url_are_400(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid"


@pytest.mark.parametrize(
    "url", ["admin:tokens_issuedtoken_changelist", "admin:tokens_agoraidentity_changelist"]
)
def test_admin_search_with_thousands_of_digits_finds_nothing_without_error(admin_client, url):
    response = admin_client.get(reverse(url), {"q": "1" * 5000})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize("header", ["Token bad", "Token", "Bearer x"])
def test_schema_and_docs_ignore_a_stale_authorization_header(anon, header):
    anon.credentials(HTTP_AUTHORIZATION=header)
    assert anon.get(reverse("schema")).status_code == 200
    assert anon.get(reverse("swagger-ui")).status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "headers", "status"),
    [
        ("post", "schema", {}, 405),
        ("get", "schema", {"HTTP_ACCEPT": "text/html"}, 406),
        ("delete", "swagger-ui", {}, 405),
        ("get", "swagger-ui", {"HTTP_ACCEPT": "application/json"}, 406),
    ],
)
def test_schema_and_docs_errors_are_json(anon, method, url, headers, status):
    response = getattr(anon, method)(reverse(url), **headers)
    assert response.status_code == status
    assert _error(response)["code"] in ("method_not_allowed", "not_acceptable")


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_index_answers_other_methods_with_a_json_405(method):
    response = getattr(Client(enforce_csrf_checks=True), method)(reverse("index"))
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"


def test_csrf_failure_is_a_json_403():
    response = Client(enforce_csrf_checks=True).post(reverse("admin:login"), {"username": "x"})
    assert response.status_code == 403
    assert _error(response)["code"] == "csrf_failed"


# --- bounded work for any body ----------------------------------------------------------------


def test_a_body_over_16_kib_is_refused_unread_with_413(anon):
    body = "{" + ",".join(f'"k{i}":1' for i in range(245_000)) + "}"  # the 2.4 MB reproduction
    response = anon.post(LOGIN, body, content_type="application/json")
    assert response.status_code == 413
    assert _error(response) == {
        "code": "too_large",
        "message": "body: the request body is too large (at most 16384 bytes).",
        "fields": {"body": ["At most 16384 bytes."]},
    }


def test_unknown_fields_are_named_up_to_five_with_a_count_of_the_rest(anon):
    body = "{" + ",".join(f'"k{i}":1' for i in range(1500)) + "}"  # just under 16 KiB
    assert len(body) < 16384
    response = anon.post(LOGIN, body, content_type="application/json")
    assert response.status_code == 400
    fields = _error(response)["fields"]
    assert fields == {
        "username": ["This field is required."],
        "password": ["This field is required."],
        **{f"k{i}": ["Unknown field."] for i in range(5)},
        "body": ["1495 more unknown fields."],
    }
    assert len(response.content) < 1000


def test_a_chunked_body_is_refused_with_411_not_read_as_empty(api):
    response = api.post(
        reverse("tokens:rtm-token"),
        '{"expires_in":60,"version":"006"}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 411
    assert _error(response)["code"] == "length_required"
    assert IssuedToken.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_raw_chunked_request_to_a_live_server_is_411(live_server, user):
    from knox.models import AuthToken

    _, key = AuthToken.objects.create(user=user)
    response = raw_http(live_server.url, chunked_rtm_request(key))
    assert response.startswith(b"HTTP/1.1 411"), response[:200]
    assert IssuedToken.objects.count() == 0


# --- no 5xx from any method on any path -------------------------------------------------------

METHODS = ["get", "head", "post", "put", "patch", "delete", "options", "trace"]
PATHS = [
    "/",
    "/healthz",
    "/api/v1/auth/token/",
    "/api/v1/me/",
    "/api/v1/tokens/rtc/",
    "/api/v1/tokens/rtm/",
    "/rtctoken",
    "/rtmtoken",
    "/api/schema/",
    "/api/docs/",
    "/admin/",
    "/admin/login/",
    "/admin/logout/",
    "/admin/tokens/issuedtoken/",
    "/admin/tokens/issuedtoken/1/change/",
    "/admin/tokens/agoraidentity/",
    "/admin/auth/user/",
    "/static/admin/css/base.css",
    "/no/such/path",
]


@pytest.mark.parametrize("who", ["anonymous", "api token", "staff session"])
@pytest.mark.parametrize("method", METHODS)
def test_no_method_on_any_path_is_a_5xx_and_every_405_is_json(who, method, user, admin_user):
    from tests.conftest import client_for

    client = {"anonymous": Client, "api token": lambda: client_for(user), "staff session": Client}[who]()
    if who == "staff session":
        client.force_login(admin_user)
    client.raise_request_exception = False
    for path in PATHS:
        response = client.generic(method.upper(), path)
        assert response.status_code < 500, (method, path, response.status_code)
        if response.status_code == 405 and method == "head":  # no body, but the error's type
            assert response["Content-Type"] == "application/json", path
        elif response.status_code == 405:
            assert _error(response)["code"] == "method_not_allowed", (method, path)


@pytest.mark.parametrize("method", ["trace", "put", "patch", "get"])
def test_a_method_a_token_endpoint_does_not_serve_is_405_before_authentication(anon, method):
    for path in (LOGIN, RTC, "/rtctoken"):
        if (path, method) == (LOGIN, "get"):
            continue
        response = anon.generic(method.upper(), path)
        assert response.status_code == 405, (method, path)
        assert _error(response)["code"] == "method_not_allowed"


# --- the admin's URL filters ------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "issued_at__year=9999",
        "issued_at__year=9999&issued_at__month=12&issued_at__day=31",
        "issued_at__year=0",
        "issued_at__year=2026&issued_at__month=13",
        "issued_at__year=99999999999999999999",
        "issued_at__gte=99999-01-01",
        "issued_at__gte=2026-01-01&issued_at__lt=10000-01-01",
    ],
)
def test_out_of_range_admin_date_filters_are_400_or_empty_never_500(admin_client, query):
    admin_client.raise_request_exception = False
    response = admin_client.get(f"/admin/tokens/issuedtoken/?{query}")
    assert response.status_code in (200, 302, 400), response.status_code
    if response.status_code == 200:
        assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize(
    "query",
    [
        "user_agent__regex=^(a%2B)%2B$",
        "token_sha256__startswith=ab",
        "user__password__startswith=p",
        "id__gt=0",
    ],
)
def test_admin_url_lookups_are_limited_to_the_lists_own_filters(admin_client, query):
    admin_client.raise_request_exception = False
    response = admin_client.get(f"/admin/tokens/issuedtoken/?{query}")
    assert response.status_code == 400
    assert _error(response)["code"] == "bad_request"


def test_the_lists_own_filters_still_work_from_the_url(admin_client):
    response = admin_client.get(
        "/admin/tokens/issuedtoken/?service__exact=rtc&role__exact=publisher&version__exact=007"
        "&source__exact=api&issued_at__year=2026&issued_at__month=11&issued_at__day=28"
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/admin/tokens/agoraidentity/?uid__gt=1",
        "/admin/auth/user/?username__regex=^(a%2B)%2B$",
        "/admin/auth/user/?password__startswith=md5",
    ],
)
def test_other_admin_lists_refuse_url_lookups_they_do_not_offer(admin_client, url):
    admin_client.raise_request_exception = False
    assert admin_client.get(url).status_code == 400


def test_the_user_lists_own_filters_still_work(admin_client):
    response = admin_client.get("/admin/auth/user/?is_staff__exact=1&is_active__exact=1&groups__id__exact=1")
    assert response.status_code == 200
