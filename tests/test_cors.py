"""Browser clients on other origins: CORS for the API paths, from the environment's allowed
origins only; requests without an Origin (native apps, curl, servers) are never refused."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

RTC = reverse("tokens:rtc-token")
APP = "https://app.example.com"


@pytest.fixture(autouse=True)
def _origins(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    settings.CORS_ALLOWED_ORIGIN_REGEXES = [r"^https://[a-z0-9-]+\.preview\.example\.com$"]


def _preflight(client, origin, path=RTC):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


@pytest.mark.parametrize("origin", [APP, "https://pr-42.preview.example.com"])
def test_a_preflight_from_an_allowed_origin_is_answered_with_authorization_and_content_type(anon, origin):
    response = _preflight(anon, origin)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == origin
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("origin", ["https://evil.example", "http://app.example.com", "null"])
def test_a_preflight_from_another_origin_gets_no_cors_grant(anon, origin):
    response = _preflight(anon, origin)
    assert "Access-Control-Allow-Origin" not in response


def test_the_actual_request_from_an_allowed_origin_carries_the_grant(api):
    response = api.post(RTC, {"channel": "room"}, format="json", HTTP_ORIGIN=APP)
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == APP


def test_requests_without_an_origin_are_never_refused_for_lacking_one(api):
    response = api.post(RTC, {"channel": "room"}, format="json")
    assert response.status_code == 201
    assert "Access-Control-Allow-Origin" not in response


def test_by_default_no_origin_is_allowed(anon, settings):
    settings.CORS_ALLOWED_ORIGINS = []
    settings.CORS_ALLOWED_ORIGIN_REGEXES = []
    assert "Access-Control-Allow-Origin" not in _preflight(anon, APP)


def test_the_admin_is_not_opened_to_other_origins(anon):
    assert "Access-Control-Allow-Origin" not in _preflight(anon, APP, reverse("admin:login"))


def test_without_an_origin_the_api_answer_still_says_it_varies_by_origin(api, anon):
    # As django-cors-headers answers it (tokens.middleware.CorsMiddleware skips only its
    # reading of request.headers): a cache in front must not serve it to a browser origin.
    response = api.post(RTC, {"channel": "room"}, format="json")
    assert "origin" in [v.strip().lower() for v in response["Vary"].split(",")]
    assert "origin" not in anon.get(reverse("admin:login")).get("Vary", "").lower()
