"""No secret on any page, DEBUG or not: Django's technical 404, 500 and DisallowedHost pages
are rendered with DEBUG on and searched for every configured secret."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import APP_CERTIFICATE
from tokens import agora
from tokens.reporting import SecretScrubbingReporter, configured_secrets, mask_secrets

pytestmark = pytest.mark.django_db

NCS_SECRET = "ncs-secret-0a1b2c3d4e5f"
CACHE_PASSWORD = "cache-pa55word-9z8y"
DATABASE_PASSWORD = "db-pa55word-7x6w"
SECRET_KEY = "a-secret-key-that-must-stay-hidden-4v3u"


@pytest.fixture
def debug_with_secrets(settings):
    settings.DEBUG = True
    settings.SECRET_KEY = SECRET_KEY
    settings.AGORA_NCS_SECRET = NCS_SECRET
    # Only rendered, never connected to: no request below reaches the cache.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "sessions": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://:{CACHE_PASSWORD}@cache.internal:6379/1",
        },
    }
    settings.BROKER_URL = f"amqp://jobs:{DATABASE_PASSWORD}@mq.internal:5672/"
    return [APP_CERTIFICATE, NCS_SECRET, CACHE_PASSWORD, DATABASE_PASSWORD, SECRET_KEY]


def _assert_no_secret(content: bytes, secrets) -> str:
    text = content.decode()
    for secret in secrets:
        assert secret not in text
    return text


def test_disallowed_host_debug_page_shows_no_secret(debug_with_secrets):
    response = Client().get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    text = _assert_no_secret(response.content, debug_with_secrets)
    # The page is Django's technical one, settings included: the secrets were there to leak.
    assert "AGORA_APP_CERTIFICATE" in text
    assert "DisallowedHost" in text


def test_technical_500_page_masks_secrets_in_settings_and_local_variables(
    debug_with_secrets, api, monkeypatch
):
    def broken(**kwargs):
        app_certificate = kwargs["app_certificate"]  # a local variable the traceback lists
        raise RuntimeError(f"engine failed ({len(app_certificate)} chars)")

    monkeypatch.setattr(agora, "build_007", broken)
    api.raise_request_exception = False
    response = api.post(reverse("tokens:rtc-token"), {"channel": "c"}, format="json")
    assert response.status_code == 500
    text = _assert_no_secret(response.content, debug_with_secrets)
    assert "engine failed (32 chars)" in text
    assert "app_certificate" in text  # the variable is listed, its value masked


def test_technical_404_page_shows_no_secret(debug_with_secrets):
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    _assert_no_secret(response.content, debug_with_secrets)


def test_options_on_the_docs_is_a_json_405_not_a_500(settings):
    settings.DEBUG = True
    response = Client(raise_request_exception=False).options(reverse("swagger-ui"))
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_text_and_html_reports_mask_secrets_in_the_exception_message(debug_with_secrets, rf):
    try:
        raise ValueError(f"connect to redis://:{CACHE_PASSWORD}@cache.internal failed")
    except ValueError as exc:
        reporter = SecretScrubbingReporter(rf.get("/"), type(exc), exc, exc.__traceback__)
    assert "redis://:********************@cache.internal" in reporter.get_traceback_text()
    _assert_no_secret(reporter.get_traceback_text().encode(), debug_with_secrets)
    _assert_no_secret(reporter.get_traceback_html().encode(), debug_with_secrets)


def test_every_configured_secret_is_known_and_url_passwords_are_masked(debug_with_secrets):
    found = configured_secrets()
    for secret in (APP_CERTIFICATE, NCS_SECRET, CACHE_PASSWORD, SECRET_KEY):
        assert secret in found
    assert (
        mask_secrets("postgres://app:s3cr%40t@db:5432/x") == "postgres://app:********************@db:5432/x"
    )
