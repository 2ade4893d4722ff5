import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

# Agora's own test credentials (from its published test vectors).
APP_ID = "970CA35de60c44645bbae8a215061b33"
APP_CERTIFICATE = "5CFd2fd1755d40ecb72977518be15d3b"
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _pinned_settings(settings):
    """Every knob the tests rely on, whatever the environment says."""
    settings.AGORA_APP_ID = APP_ID
    settings.AGORA_APP_CERTIFICATE = APP_CERTIFICATE
    settings.AGORA_APP_CERTIFICATE_SECONDARY = ""
    settings.AGORA_SIGNING_CERTIFICATE = "primary"
    settings.AGORA_TOKEN_VERSION = "007"
    settings.AGORA_COMPAT_TOKEN_VERSION = "006"
    settings.AGORA_TOKEN_TTL = 3600
    settings.AGORA_TOKEN_MAX_TTL = 86400
    settings.AGORA_PUBLISHER_POLICY = "open"
    settings.TRUSTED_PROXY_COUNT = 0
    settings.METRICS_ENABLED = False
    settings.METRICS_ALLOWED_IPS = []
    settings.DEBUG = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"tokens": "10000/min", "auth": "10000/min"},
    }
    cache.clear()  # throttle counters from an earlier test


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


def client_for(user) -> APIClient:
    """An API client holding an API token obtained through the login endpoint."""
    client = APIClient()
    response = client.post(
        reverse("tokens:auth-token"), {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


@pytest.fixture
def api(user):
    return client_for(user)


@pytest.fixture
def anon():
    return APIClient()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test keeps a screenshot of what the page showed; its path is printed."""
    report = yield
    failed = report.when == "call" and report.failed
    browser = getattr(item, "funcargs", {}).get("browser") if failed else None
    if browser is not None:
        report.sections.append(("browser", browser.screenshot(item.name)))
    return report


# Agora's REST API (moderation): a RESTful API key and short timeouts, against a fake Agora.
REST_CUSTOMER_ID = "4d7f0c2a9b8e4f31a6c5d2e1f0a9b8c7"
REST_CUSTOMER_SECRET = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"


@pytest.fixture
def fake_agora(settings):
    """A fake of Agora's REST API on 127.0.0.1 (tests/fake_agora.py), with the settings that
    point the client at it: one attempt per call, short timeouts, no backoff to speak of."""
    from tests.fake_agora import FakeAgora
    from tokens.agora_rest import client

    settings.AGORA_CUSTOMER_ID, settings.AGORA_CUSTOMER_SECRET = REST_CUSTOMER_ID, REST_CUSTOMER_SECRET
    settings.AGORA_REST_TIMEOUT = settings.AGORA_REST_CONNECT_TIMEOUT = 0.5
    settings.AGORA_REST_RETRIES = 1
    settings.AGORA_REST_BACKOFF, settings.AGORA_REST_BACKOFF_MAX = 0.0, 0.0
    settings.MODERATION_ATTEMPTS, settings.MODERATION_RETRY_DELAY = 4, 30.0
    with FakeAgora(customer_id=REST_CUSTOMER_ID, customer_secret=REST_CUSTOMER_SECRET, app_id=APP_ID) as fake:
        settings.AGORA_REST_URL = fake.url
        yield fake
        client.close()
    assert fake.errors == []
