"""The OpenAPI schema describes the server: a bounded schemathesis run (every check) over it,
unauthenticated and authenticated, against a live server, finds nothing."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def generous_limits(settings):
    # The run sends hundreds of requests: budgets and guessing limits must not turn them into 429s.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"tokens": "100000/min", "auth": "100000/min"},
    }
    settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT = settings.LOGIN_FAILURE_LIMIT_PER_IP = 100000
    # Moderation on (the requests only store actions: no worker runs, nothing reaches Agora).
    settings.AGORA_CUSTOMER_ID, settings.AGORA_CUSTOMER_SECRET = "fuzz-customer", "fuzz-secret"
    settings.AGORA_REST_URL = "http://127.0.0.1:9"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "api-token"])
def test_schemathesis_finds_no_failure(live_server, user, generous_limits, authenticated, tmp_path):
    from django.contrib.auth.models import Permission
    from knox.models import AuthToken

    assert SCHEMATHESIS.exists() or shutil.which("schemathesis"), "schemathesis is in requirements-dev.txt"
    command = [
        str(SCHEMATHESIS), "run", live_server.url + reverse("schema"), "--checks", "all",
        "--max-examples", "20", "--seed", "20261128", "--workers", "1", "--request-timeout", "20",
    ]  # fmt: skip
    if authenticated:
        _, key = AuthToken.objects.create(user=user)
        user.user_permissions.add(Permission.objects.get(codename="moderate"))  # the moderation API too
        # Logout would revoke the key the rest of the run uses; the anonymous run covers it.
        command += ["--header", f"Authorization: Token {key}", "--exclude-method", "DELETE"]
    # Run from a scratch folder: schemathesis keeps a cache where it runs.
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert "failure" not in summary and "error" not in summary, result.stdout[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert cases and int(cases[1]) >= 200 and cases[1] == cases[2], result.stdout[-3000:]
