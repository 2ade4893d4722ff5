"""Hostile input gets a 4xx in the one error shape, never a 500 (found by fuzzing)."""

import pytest
from django.test import Client
from django.urls import reverse

from tokens.models import IssuedToken

pytestmark = pytest.mark.django_db

RTC = reverse("tokens:rtc-token")
LOGIN = reverse("tokens:auth-token")


def _error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()["error"]


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000])
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
    response = api.post(RTC, {"channel": "c", "role": "x" * 100_000}, format="json")
    assert response.status_code == 400
    assert _error(response)["fields"] == {"role": ["Must be one of publisher, subscriber."]}
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
