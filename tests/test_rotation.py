"""App Certificate rotation: AGORA_APP_CERTIFICATE_SECONDARY and AGORA_SIGNING_CERTIFICATE.

Tokens are signed with the chosen certificate, the audit row keeps its fingerprint (never the
certificate), the inspector and `manage.py inspect_token` verify against both and say which
signed, and the system checks name a broken setting and a rotation left half done."""

import io
import json
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import APP_CERTIFICATE, APP_ID
from tokens import agora, selectors
from tokens.checks import check_agora_settings, check_certificate_rotation
from tokens.models import IssuedToken, token_sha256
from tokens.services import issue_token

pytestmark = pytest.mark.django_db

SECONDARY = "4a7c1e9b2d6f40a8b3c5e7f9a1b3c5d7"
PRIMARY_FP = agora.certificate_fingerprint(APP_CERTIFICATE)
SECONDARY_FP = agora.certificate_fingerprint(SECONDARY)
RTC, RTM = reverse("tokens:rtc-token"), reverse("tokens:rtm-token")
RTC_RTM, CHAT = reverse("tokens:rtc-rtm-token"), reverse("tokens:chat-token")
COMPAT_RTC = reverse("tokens:compat-rtc-token")
INSPECT = reverse("admin:tokens_issuedtoken_inspect")
# One of every kind the API issues: 007 and 006, one service or two, Chat, the tutorial's.
REQUESTS = [
    (RTC, {"channel": "stage", "role": "publisher"}),
    (RTC, {"channel": "stage", "version": "006"}),
    (RTM, {"version": "006"}),
    (RTM, {}),
    (RTC_RTM, {"channel": "stage"}),
    (CHAT, {}),
    (COMPAT_RTC, {"channel": "stage", "isPublisher": True}),
]


def _ids(messages):
    return sorted(m.id for m in messages)


def _issue_all(api) -> list[str]:
    tokens = []
    for path, body in REQUESTS:
        response = api.post(path, body, format="json")
        assert response.status_code in (200, 201), response.json()
        tokens.append(response.json()["token"])
    return tokens


def _row(token: str) -> IssuedToken:
    return IssuedToken.objects.get(token_sha256=token_sha256(token))


def _inspected(token: str) -> dict:
    out = io.StringIO()
    call_command("inspect_token", token, stdout=out)
    return json.loads(out.getvalue())


def _signed_with_on_the_admin_page(admin_client, token: str) -> tuple[str | None, str]:
    response = admin_client.post(INSPECT, {"token": token})
    assert response.status_code == 200
    return response.context["report"]["signed_with"], response.content.decode()


# --- the drill -----------------------------------------------------------------------------------


def test_rotation_drill_old_tokens_stay_primary_new_ones_are_secondary_and_the_rows_say_so(
    api, settings, admin_client
):
    # 1. Only the primary: every token is signed with it, and its row says so.
    before = _issue_all(api)
    # 2. The secondary enabled in Console and set here; the primary still signs.
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    still_primary = _issue_all(api)
    # 3. The switch.
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"
    after = _issue_all(api)

    for token in before + still_primary:
        assert _row(token).certificate == PRIMARY_FP
        assert _inspected(token)["signed_with"] == "primary"
        assert _inspected(token)["signed_with_fingerprint"] == PRIMARY_FP
        assert _inspected(token)["signature_valid"] is True
        signed_with, page = _signed_with_on_the_admin_page(admin_client, token)
        assert signed_with == "primary"
        assert f"signed with the primary certificate ({PRIMARY_FP})" in page
    for token in after:
        assert _row(token).certificate == SECONDARY_FP
        assert _inspected(token)["signed_with"] == "secondary"
        assert _inspected(token)["signature_valid"] is True
        signed_with, page = _signed_with_on_the_admin_page(admin_client, token)
        assert signed_with == "secondary"
        assert f"signed with the secondary certificate ({SECONDARY_FP})" in page

    # The engine agrees, without the audit log: the 007 ones verify under one certificate only.
    for token, certificate in [(t, APP_CERTIFICATE) for t in before] + [(t, SECONDARY) for t in after]:
        if agora.decode(token).version == "007":
            other = SECONDARY if certificate == APP_CERTIFICATE else APP_CERTIFICATE
            assert agora.verify(token, certificate) and not agora.verify(token, other)
    # The secondary's value is nowhere in the audit table.
    values = [str(v) for row in IssuedToken.objects.values_list() for v in row]
    assert not any(SECONDARY in v or APP_CERTIFICATE in v for v in values)

    # 4. Wait out the TTL, delete the old certificate in Console, promote the new one here.
    settings.AGORA_APP_CERTIFICATE = SECONDARY
    settings.AGORA_APP_CERTIFICATE_SECONDARY = ""
    settings.AGORA_SIGNING_CERTIFICATE = "primary"
    promoted = _issue_all(api)
    for token in after + promoted:  # the same certificate signs on, under its new name
        assert _row(token).certificate == SECONDARY_FP
        assert _inspected(token)["signed_with"] == "primary"
    for token in before:  # signed with a certificate this server no longer holds
        summary = _inspected(token)
        assert (summary["signed_with"], summary["signature_valid"]) == (None, False)
        signed_with, page = _signed_with_on_the_admin_page(admin_client, token)
        assert signed_with is None
        assert f"its audit row says it was signed by {PRIMARY_FP}" in page


def test_the_inspector_names_the_certificates_it_checks_and_the_one_that_signs(settings, user):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"
    issued = issue_token(user=user, service="rtc", channel="c")
    summary = selectors.inspect_token(token=issued.token)
    assert summary["certificates"] == {"primary": PRIMARY_FP, "secondary": SECONDARY_FP}
    assert summary["signing_certificate"] == "secondary"
    assert (summary["signed_with"], summary["audit_row_certificate"]) == ("secondary", SECONDARY_FP)


def test_a_006_token_is_told_apart_through_its_audit_row_and_unknown_without_one(settings, user):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"
    issued = issue_token(user=user, service="rtm", version="006")
    assert _inspected(issued.token)["signed_with"] == "secondary"
    IssuedToken.objects.all()._raw_delete(IssuedToken.objects.db)
    summary = _inspected(issued.token)
    assert (summary["signed_with"], summary["signature_valid"]) == (None, None)


def test_the_issuance_log_names_the_fingerprint_never_the_certificate(settings, user, caplog):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"
    with caplog.at_level(logging.INFO, logger="tokens"):
        issue_token(user=user, service="rtc", channel="c")
    assert f"certificate={SECONDARY_FP}" in caplog.text
    assert SECONDARY not in caplog.text and APP_CERTIFICATE not in caplog.text


# --- settings and their checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secondary", "signing", "check_id", "named"),
    [
        ("z" * 32, "primary", "tokens.E040", "AGORA_APP_CERTIFICATE_SECONDARY"),
        (SECONDARY[:-1], "secondary", "tokens.E040", "AGORA_APP_CERTIFICATE_SECONDARY"),
        (SECONDARY, "tertiary", "tokens.E041", "AGORA_SIGNING_CERTIFICATE"),
        ("", "secondary", "tokens.E042", "AGORA_APP_CERTIFICATE_SECONDARY"),
    ],
)
def test_a_broken_rotation_setting_is_an_error_and_token_requests_answer_503_naming_it(
    settings, api, secondary, signing, check_id, named
):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = secondary
    settings.AGORA_SIGNING_CERTIFICATE = signing
    errors = check_agora_settings()
    assert _ids(errors) == [check_id]
    assert named in errors[0].msg
    response = api.post(RTC, {"channel": "c"}, format="json")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "agora_not_configured" and named in error["message"]
    assert secondary not in error["message"] or not secondary
    assert not IssuedToken.objects.exists()
    health = Client().get(reverse("tokens:health"))
    assert (health.status_code, health.json()["agora"]) == (503, "not_configured")


def test_the_same_certificate_twice_is_a_warning(settings):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = APP_CERTIFICATE
    assert _ids(check_agora_settings()) == ["tokens.W043"]


def test_a_complete_rotation_configuration_passes(settings):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    for signing in ("primary", "secondary"):
        settings.AGORA_SIGNING_CERTIFICATE = signing
        assert check_agora_settings() == []


def test_make_serve_starts_without_a_usable_secondary_but_not_with_a_misspelt_choice(settings):
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"  # chosen, not set: 503s, as without credentials
    call_command("check_serve", stderr=io.StringIO())
    settings.AGORA_SIGNING_CERTIFICATE = "Secondary"
    with pytest.raises(CommandError, match="configuration error"):
        call_command("check_serve", stderr=io.StringIO())


# --- the database check: a rotation left half done ------------------------------------------------

DB = ["default"]


def _row_signed_by(user, fingerprint: str, *, issued_ago: int, lifetime: int = 3600) -> None:
    issued_at = timezone.now() - timedelta(seconds=issued_ago)
    IssuedToken.objects.create(
        issued_at=issued_at, expires_at=issued_at + timedelta(seconds=lifetime), user=user,
        username=user.username, service="rtc", version="007", channel="c", uid=7, source="api",
        token_sha256=f"{issued_ago:064d}", certificate=fingerprint,
    )  # fmt: skip


def test_a_secondary_that_has_not_signed_within_the_longest_ttl_is_a_warning(settings, user):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    settings.AGORA_TOKEN_MAX_TTL = 3600
    (warning,) = check_certificate_rotation(databases=DB)
    assert warning.id == "tokens.W044" and "AGORA_APP_CERTIFICATE_SECONDARY" in warning.msg
    assert "3600" in warning.msg and "AGORA_SIGNING_CERTIFICATE=secondary" in warning.hint
    _row_signed_by(user, SECONDARY_FP, issued_ago=4000)  # signed, but longer ago than the TTL
    assert _ids(check_certificate_rotation(databases=DB)) == ["tokens.W044"]
    _row_signed_by(user, SECONDARY_FP, issued_ago=3000)  # signed within it: a rollback under way
    assert check_certificate_rotation(databases=DB) == []


def test_signing_with_the_secondary_while_primary_tokens_live_is_fine_and_after_they_expire_a_warning(
    settings, user
):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"
    _row_signed_by(user, PRIMARY_FP, issued_ago=600, lifetime=3600)  # still valid
    assert check_certificate_rotation(databases=DB) == []
    IssuedToken.objects.all()._raw_delete(IssuedToken.objects.db)
    _row_signed_by(user, "", issued_ago=600, lifetime=3600)  # from before fingerprints: the primary's
    assert check_certificate_rotation(databases=DB) == []
    IssuedToken.objects.all()._raw_delete(IssuedToken.objects.db)
    _row_signed_by(user, PRIMARY_FP, issued_ago=7200, lifetime=3600)  # expired an hour ago
    (warning,) = check_certificate_rotation(databases=DB)
    assert warning.id == "tokens.W045"
    assert "delete" in warning.hint.lower() and "AGORA_APP_CERTIFICATE" in warning.hint


def test_the_rotation_check_is_a_database_check_that_plain_check_does_not_run(
    settings, user, django_assert_num_queries
):
    from django.core.checks import Tags, registry

    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    assert Tags.database in check_certificate_rotation.tags
    assert check_certificate_rotation in registry.registry.get_checks()
    with django_assert_num_queries(0):
        assert check_certificate_rotation(databases=None) == []
    settings.AGORA_APP_CERTIFICATE_SECONDARY = ""
    with django_assert_num_queries(0):
        assert check_certificate_rotation(databases=DB) == []  # no rotation: nothing to ask


def test_manage_py_check_with_the_database_prints_the_rotation_warning(settings, user):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    err = io.StringIO()
    call_command("check", "--database", "default", stdout=io.StringIO(), stderr=err)
    assert "tokens.W044" in err.getvalue()
    plain = io.StringIO()
    call_command("check", stdout=io.StringIO(), stderr=plain)
    assert "tokens.W044" not in plain.getvalue()


# --- the secondary is a secret like the primary ---------------------------------------------------


def test_the_secondary_is_masked_on_error_pages_in_settings_and_local_variables(settings, api, monkeypatch):
    from tokens import reporting

    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"
    settings.DEBUG = True
    assert SECONDARY in reporting.configured_secrets()

    def broken(**kwargs):
        certificate = kwargs["app_certificate"]  # a local variable the traceback lists
        raise RuntimeError(f"engine failed with {certificate}")

    monkeypatch.setattr(agora, "build_007", broken)
    api.raise_request_exception = False
    response = api.post(RTC, {"channel": "c"}, format="json")
    assert response.status_code == 500
    text = response.content.decode()
    assert "AGORA_APP_CERTIFICATE_SECONDARY" in text  # the settings were on the page
    assert SECONDARY not in text and SECONDARY.lower() not in text


def test_the_app_id_and_secondary_never_reach_the_inspectors_json(settings, user):
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    issued = issue_token(user=user, service="rtc", channel="c")
    text = json.dumps(selectors.inspect_token(token=issued.token))
    assert SECONDARY not in text and APP_CERTIFICATE not in text
    assert APP_ID in text  # the App ID is no secret


# --- the audit list -------------------------------------------------------------------------------

LIST = reverse("admin:tokens_issuedtoken_changelist")


def test_the_audit_list_filters_by_signing_certificate_and_the_row_page_shows_it(
    settings, user, admin_client
):
    issue_token(user=user, service="rtc", channel="old")
    settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY
    settings.AGORA_SIGNING_CERTIFICATE = "secondary"
    issue_token(user=user, service="rtc", channel="new")
    _row_signed_by(user, "", issued_ago=60)  # from before fingerprints were kept

    def channels(value):
        response = admin_client.get(LIST, {"certificate": value})
        assert response.status_code == 200
        return [row.channel for row in response.context["cl"].result_list], response.content.decode()

    assert channels(PRIMARY_FP)[0] == ["old"]
    assert channels(SECONDARY_FP)[0] == ["new"]
    assert channels("none")[0] == ["c"]
    found, page = channels(SECONDARY_FP)
    assert f"primary ({PRIMARY_FP})" in page and f"secondary ({SECONDARY_FP})" in page
    settings.AGORA_APP_CERTIFICATE, settings.AGORA_APP_CERTIFICATE_SECONDARY = SECONDARY, ""
    settings.AGORA_SIGNING_CERTIFICATE = "primary"
    found, page = channels(PRIMARY_FP)  # a past certificate, named in the URL
    assert found == ["old"] and f"{PRIMARY_FP} (no longer configured)" in page
    admin_client.raise_request_exception = False
    assert admin_client.get(LIST, {"certificate": "sha256:nothex!!"}).status_code == 400
    row = IssuedToken.objects.get(channel="new")
    page = admin_client.get(reverse("admin:tokens_issuedtoken_change", args=[row.pk])).content.decode()
    assert SECONDARY_FP in page and SECONDARY not in page
