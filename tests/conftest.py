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
