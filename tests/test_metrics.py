"""GET /metrics: off by default (404, nothing recorded); on, tokens issued by service, version,
source and role, uid allocations, error responses by code and request latency per endpoint,
with bounded label values, summed over every process in multiprocess mode."""

import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.helpers import counted, parse, scrape
from tests.servers import ROOT, call, manage, running_server, server_env
from tokens import metrics, services
from tokens.checks import check_deployment, check_metrics_settings
from tokens.exceptions import error_body
from tokens.models import IssuedToken

pytestmark = pytest.mark.django_db

METRICS = reverse("tokens:metrics")
RTC, RTM, RTC_RTM = reverse("tokens:rtc-token"), reverse("tokens:rtm-token"), reverse("tokens:rtc-rtm-token")
COMPAT_RTC, COMPAT_RTM = reverse("tokens:compat-rtc-token"), reverse("tokens:compat-rtm-token")
TOKENS = "agora_tokens_issued_total"
UIDS = "agora_uids_allocated_total"
ERRORS = "agora_token_server_errors_total"
LATENCY = "agora_token_server_request_seconds"


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_ENABLED = True


@pytest.fixture
def key(user):
    from knox.models import AuthToken

    return AuthToken.objects.create(user=user)[1]


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


# --- Off ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "head", "post", "delete"])
def test_metrics_off_is_a_404_in_the_error_shape(anon, method):
    response = getattr(anon, method)(METRICS)
    assert response.status_code == 404
    if method != "head":
        assert response.json() == error_body("not_found", "No endpoint at '/metrics'.")


def test_metrics_off_records_nothing(settings, key, user):
    settings.METRICS_ENABLED = True
    before = scrape()
    settings.METRICS_ENABLED = False
    client = _client(key)
    assert client.post(RTC, {"channel": "c", "slot": "phone"}, format="json").status_code == 201
    assert client.post(RTC, {"channel": "bad/name"}, format="json").status_code == 400
    services.issue_token(user=user, service="rtm", source=IssuedToken.Source.CLI)
    assert APIClient().get("/nowhere").status_code == 404
    settings.METRICS_ENABLED = True
    after = scrape()
    changed = {
        sample: amount
        for sample, amount in after.items()
        if amount != before.get(sample, 0.0) and ("endpoint", "tokens:metrics") not in sample[1]
    }
    assert changed == {}  # only the scrape itself was timed


# --- On: the endpoint --------------------------------------------------------------------------


def test_metrics_on_answers_get_and_head_in_prometheus_text_format(metrics_on, anon):
    response = anon.get(METRICS)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f.type for f in text_string_to_metric_families(response.content.decode())}
    assert families == {
        "agora_tokens_issued": "counter",
        "agora_uids_allocated": "counter",
        "agora_suspect_joins": "counter",
        "agora_token_server_errors": "counter",
        "agora_token_server_request_seconds": "histogram",
    }
    head = anon.head(METRICS)
    assert (head.status_code, head["Content-Type"], head.content) == (200, response["Content-Type"], b"")


def test_metrics_speak_openmetrics_when_the_scraper_asks(metrics_on, anon):
    response = anon.get(METRICS, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.endswith(b"# EOF\n")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_metrics_other_methods_are_405_in_the_error_shape(metrics_on, anon, method):
    response = getattr(anon, method)(METRICS)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json() == error_body("method_not_allowed", f'Method "{method.upper()}" not allowed.')


def test_metrics_allow_list_admits_only_the_listed_clients(metrics_on, settings, anon):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "not-an-address", "2001:db8::1"]
    refused = anon.get(METRICS, REMOTE_ADDR="192.0.2.7")
    assert refused.status_code == 403
    assert refused.json() == error_body("permission_denied", "You do not have permission to do this.")
    assert anon.get(METRICS, REMOTE_ADDR="10.1.2.3").status_code == 200
    assert anon.get(METRICS, REMOTE_ADDR="2001:db8::1").status_code == 200
    # Behind a trusted proxy, the client it names is the one checked, never the proxy itself.
    settings.TRUSTED_PROXY_COUNT = 1
    assert anon.get(METRICS, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.7").status_code == 403
    assert anon.get(METRICS, REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 200


# --- On: what is counted -----------------------------------------------------------------------


def test_tokens_issued_are_counted_by_service_version_source_and_role(metrics_on, settings, key, user):
    before = scrape()
    client = _client(key)
    assert client.post(RTC, {"channel": "c", "role": "publisher"}, format="json").status_code == 201
    assert client.post(RTC, {"channel": "c", "role": "publisher"}, format="json").status_code == 201
    assert client.post(RTM, {"version": "006"}, format="json").status_code == 201
    assert client.post(RTC_RTM, {"channel": "c"}, format="json").status_code == 201
    assert client.post(COMPAT_RTC, {"channel": "c"}, format="json").status_code == 200
    assert client.post(COMPAT_RTM, {}, format="json").status_code == 200
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 201
    services.issue_token(user=user, service="rtc", channel="ops", source=IssuedToken.Source.CLI)
    assert counted(before, scrape(), TOKENS, "service", "version", "source", "role") == {
        ("rtc", "007", "api", "publisher"): 2,
        ("rtm", "006", "api", "none"): 1,
        ("rtc+rtm", "007", "api", "subscriber"): 1,
        ("rtc", "006", "compat", "subscriber"): 1,
        ("rtm", "006", "compat", "none"): 1,
        ("rtc", "007", "api", "subscriber"): 1,
        ("rtc", "007", "cli", "subscriber"): 1,
    }
    assert IssuedToken.objects.count() == 8


def test_uid_allocations_count_new_slots_only(metrics_on, key, user):
    before = scrape()
    client = _client(key)
    for slot in ("main", "main", "phone", "phone", "screen"):
        assert client.post(RTC, {"channel": "c", "slot": slot}, format="json").status_code == 201
    assert client.get(reverse("tokens:me")).status_code == 200  # main exists: nothing drawn
    assert counted(before, scrape(), UIDS, "slot_kind") == {("main",): 1, ("extra",): 2}


def test_error_responses_are_counted_by_code(metrics_on, settings, key, anon):
    before = scrape()
    client = _client(key)
    assert client.post(RTC, {"channel": "bad/name"}, format="json").status_code == 400
    assert client.post(RTC, b"{", content_type="application/json").status_code == 400
    assert anon.post(RTC, {"channel": "c"}, format="json").status_code == 401
    assert _client("nope").post(RTC, {"channel": "c"}, format="json").status_code == 401
    assert anon.get("/no/such/path").status_code == 404
    assert client.put(RTC, {}, format="json").status_code == 405
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"tokens": "1/day", "auth": "100/min"},
    }
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 201
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 429
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 429
    assert counted(before, scrape(), ERRORS, "code") == {
        ("invalid",): 1,
        ("parse_error",): 1,
        ("not_authenticated",): 1,
        ("authentication_failed",): 1,
        ("not_found",): 1,
        ("method_not_allowed",): 1,
        ("throttled",): 2,
    }


def test_request_latency_is_a_histogram_per_endpoint(metrics_on, settings, key):
    before = scrape()
    client = _client(key)
    for _ in range(3):
        assert client.post(RTC, {"channel": "c"}, format="json").status_code == 201
    assert client.post(COMPAT_RTM, {}, format="json").status_code == 200
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 201
    assert APIClient().get(reverse("tokens:health")).status_code == 200
    after = scrape()
    assert counted(before, after, LATENCY + "_count", "endpoint", "method", "status") == {
        ("tokens:rtc-token", "POST", "201"): 4,
        ("tokens:compat-rtm-token", "POST", "200"): 1,
        ("tokens:health", "GET", "200"): 1,
        ("tokens:metrics", "GET", "200"): 1,  # the first scrape, timed once it was answered
    }
    rtc = {"endpoint": "tokens:rtc-token", "method": "POST", "status": "201"}
    assert delta(before, after, LATENCY + "_bucket", le="+Inf", **rtc) == 4
    assert 0 < delta(before, after, LATENCY + "_sum", **rtc) < 60
    buckets = [value(after, LATENCY + "_bucket", le=str(b), **rtc) for b in metrics.LATENCY_BUCKETS]
    assert buckets == sorted(buckets)  # cumulative, as Prometheus reads them


def test_label_values_stay_bounded_whatever_the_request(metrics_on, anon, key):
    before = scrape()
    for i in range(20):
        anon.get(f"/random-{i}")
        anon.generic(f"BREW{i}", f"/api/v1/tokens/rtc/{i}")
    anon.generic("BREW", RTC)  # a known path, an unknown method
    _client(key).post(RTC + "?x=1", {"channel": "c"}, format="json")  # a query string is not a path
    changed = counted(before, scrape(), LATENCY + "_count", "endpoint", "method", "status")
    assert changed == {
        ("unmatched", "GET", "404"): 20,
        ("unmatched", "other", "404"): 20,
        ("tokens:rtc-token", "other", "405"): 1,
        ("tokens:rtc-token", "POST", "201"): 1,
        ("tokens:metrics", "GET", "200"): 1,
    }


def test_a_metric_that_cannot_be_recorded_never_costs_a_token(metrics_on, monkeypatch, key, caplog):
    class Unwritable:
        def labels(self, *values):
            raise FileNotFoundError("PROMETHEUS_MULTIPROC_DIR is gone")

    for children in ("_tokens_issued", "_uids_allocated", "_errors", "_request_seconds"):
        monkeypatch.setattr(metrics, children, metrics._Children(Unwritable()))
    monkeypatch.setattr(metrics, "_failure_logged", False)
    client = _client(key)
    assert client.post(RTC, {"channel": "c"}, format="json").status_code == 201
    assert client.post(RTC, {"channel": "bad/name"}, format="json").status_code == 400
    assert IssuedToken.objects.count() == 1
    failures = [r for r in caplog.records if r.name == "tokens.metrics"]
    assert [r.levelname for r in failures] == ["ERROR"]  # logged once, not once a request


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (JsonResponse(error_body("too_large", "x"), status=413), "too_large"),
        (JsonResponse({"error": {"code": "Not A Code; DROP"}}, status=400), "other"),
        (JsonResponse({"error": {"code": "x" * 80}}, status=400), "other"),
        (JsonResponse({"error": "flat"}, status=400), "other"),
        (JsonResponse([1, 2], safe=False, status=400), "other"),
        (HttpResponse("<h1>Bad</h1>", status=400), "other"),
        (HttpResponse(b"\xff{", status=400, content_type="application/json"), "other"),
    ],
)
def test_an_error_code_is_read_only_from_the_error_shape(response, code):
    assert metrics.error_code(response) == code


# --- Settings checks ---------------------------------------------------------------------------


def test_metrics_checks_name_a_bad_allow_list_and_an_unusable_directory(settings, tmp_path):
    assert check_metrics_settings() == []
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "10.0.0.300"]
    assert [(e.id, "10.0.0.300" in e.msg) for e in check_metrics_settings()] == [("tokens.E021", True)]
    settings.METRICS_ALLOWED_IPS = []
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path / "missing")
    assert check_metrics_settings() == []  # metrics off: nothing is written there
    settings.METRICS_ENABLED = True
    assert [e.id for e in check_metrics_settings()] == ["tokens.E020"]
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    assert check_metrics_settings() == []


def test_deploy_check_asks_for_a_multiprocess_directory_and_an_allow_list(settings, tmp_path):
    ids = {m.id for m in check_deployment()}
    assert not ids & {"tokens.W022", "tokens.W023"}
    settings.METRICS_ENABLED = True
    assert {"tokens.W022", "tokens.W023"} <= {m.id for m in check_deployment()}
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert not {m.id for m in check_deployment()} & {"tokens.W022", "tokens.W023"}


# --- Several processes -------------------------------------------------------------------------

_RECORD = """
import django
django.setup()
from django.test import Client
from tokens import metrics
for _ in range({tokens}):
    metrics.count_token(service="rtc", version="007", source="api", role="publisher")
metrics.count_uid(main=True)
assert Client().get("/nowhere").status_code == 404
"""
_SCRAPE = """
import django
django.setup()
from django.test import Client
response = Client().get("/metrics")
assert response.status_code == 200, response.content
print(response.content.decode())
"""


def _python(env: dict, script: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.django_db(False)
def test_a_scrape_adds_up_every_process_in_multiprocess_mode(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = server_env(
        DJANGO_SETTINGS_MODULE="tokenserver.settings",
        DJANGO_ALLOWED_HOSTS="testserver",
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        METRICS_ENABLED="true",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    )
    with ThreadPoolExecutor(max_workers=2) as pool:  # two processes at once
        list(pool.map(lambda tokens: _python(env, _RECORD.format(tokens=tokens)), (2, 3)))
    assert len(list(directory.glob("counter_*.db"))) == 2  # one file per process
    samples = parse(_python(env, _SCRAPE))  # a third process, which recorded nothing itself
    assert value(samples, TOKENS, service="rtc", version="007", source="api", role="publisher") == 5
    assert value(samples, UIDS, slot_kind="main") == 2
    assert value(samples, ERRORS, code="not_found") == 2
    unmatched = {"endpoint": "unmatched", "method": "GET", "status": "404"}
    assert value(samples, LATENCY + "_count", **unmatched) == 2
    assert value(samples, LATENCY + "_bucket", le="+Inf", **unmatched) == 2


@pytest.mark.django_db(False)
def test_every_worker_of_a_production_server_reports_the_whole_servers_counts(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = server_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        METRICS_ENABLED="true",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        # Up to 400 requests of one user: the per-process budget (120/min) is not what is tested.
        THROTTLE_TOKENS_RATE="100000/min",
    )
    manage(env, "migrate", "--no-input", "-v", "0")
    script = (
        "from django.contrib.auth.models import User; from knox.models import AuthToken; "
        "print(AuthToken.objects.create(user=User.objects.create_user('w'))[1])"
    )
    key = manage(env, "shell", "-v", "0", "-c", script).strip().splitlines()[-1]
    headers = {"Authorization": f"Token {key}"}

    def issue(_):
        return call(base, "POST", RTC, '{"channel": "c"}', headers)[0]

    with running_server(env, workers=2) as base, ThreadPoolExecutor(max_workers=8) as pool:
        sent = 0
        # Until both workers have issued tokens: only then does each one's own count fall short.
        while len(list(directory.glob("counter_*.db"))) < 2 and sent < 400:
            assert set(pool.map(issue, range(20))) == {201}
            sent += 20
        assert len(list(directory.glob("counter_*.db"))) == 2
        for _ in range(4):  # whichever worker answers the scrape
            with urllib.request.urlopen(base + METRICS, timeout=10) as response:  # noqa: S310 (our own server)
                samples = parse(response.read().decode())
            assert (
                value(samples, TOKENS, service="rtc", version="007", source="api", role="subscriber") == sent
            )
            rtc = {"endpoint": "tokens:rtc-token", "method": "POST", "status": "201"}
            assert value(samples, LATENCY + "_count", **rtc) == sent
            assert value(samples, UIDS, slot_kind="main") == 1
