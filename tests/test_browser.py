"""The admin's audit tools and Swagger UI in a real browser: headless Chromium (Debian's chromium,
driven through Debian's chromedriver by Selenium) against a live server, clicking and typing
what a person would, the pages' own JavaScript included (the copy button, Swagger UI).

Skipped when chromium or chromedriver is missing (CHROMIUM and CHROMEDRIVER name other
executables), failed instead when REQUIRE_SERVICES is set, as in CI."""

import base64
import hashlib
import json
import os
import shutil
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.urls import reverse
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import APP_CERTIFICATE, APP_ID, PASSWORD
from tests.helpers import run_tasks
from tests.servers import call, missing
from tokens import agora
from tokens.models import AgoraIdentity, IssuedToken, ModerationAction
from tokens.services import issuance

pytestmark = pytest.mark.django_db(transaction=True)

# A closed network: no background requests, no updates, no first-run pages.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)  # fmt: skip
WAIT_SECONDS = 30  # per wait: generous for a loaded two-core machine, still bounded
OTHER_CERTIFICATE = "0123456789abcdef0123456789abcdef"
PRIMARY_FINGERPRINT = agora.certificate_fingerprint(APP_CERTIFICATE)
SIGNED_BY_PRIMARY = f"Signature valid: signed with the primary certificate ({PRIMARY_FINGERPRINT})."


def _executable(variable: str, name: str) -> str | None:
    path = os.environ.get(variable) or shutil.which(name)
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


CHROMIUM, CHROMEDRIVER = _executable("CHROMIUM", "chromium"), _executable("CHROMEDRIVER", "chromedriver")
NOT_FOUND = None
if not (CHROMIUM and CHROMEDRIVER):
    NOT_FOUND = (
        "the browser tests need Debian's chromium and chromium-driver "
        f"(found chromium: {CHROMIUM or 'no'}, chromedriver: {CHROMEDRIVER or 'no'}; "
        "`apt-get install chromium chromium-driver`, or set CHROMIUM and CHROMEDRIVER)"
    )
if NOT_FOUND and not os.environ.get("REQUIRE_SERVICES"):
    # One skip for the module, one line in the summary; where they are required (CI), the
    # `chromium` fixture fails each test instead.
    pytest.skip(NOT_FOUND, allow_module_level=True)


class Browser:
    """One Chromium tab on the live server, with explicit, bounded waits."""

    def __init__(self, driver: webdriver.Chrome, base: str, screenshots: Path) -> None:
        self.driver, self.base, self.screenshots = driver, base, screenshots

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def wait(self, condition, message: str = ""):
        # A page that re-renders (Swagger UI is React) may replace an element between two looks.
        ignored = (NoSuchElementException, StaleElementReferenceException)
        return WebDriverWait(self.driver, WAIT_SECONDS, ignored_exceptions=ignored).until(condition, message)

    def find(self, css: str):
        """The first visible element `css` matches, once there is one."""
        return self.wait(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css)), css)

    def find_all(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.find(css).text.strip()

    def click_link(self, text: str) -> None:
        self.wait(expected_conditions.element_to_be_clickable((By.LINK_TEXT, text)), text).click()

    def follow(self, path: str) -> None:
        """Click the link to `path` (the admin's buttons show their text in capitals)."""
        self.find(f'a[href="{path}"]').click()
        self.wait_for_url(path)

    def wait_for_url(self, fragment: str) -> None:
        self.wait(expected_conditions.url_contains(fragment), f"URL with {fragment!r}")

    def read(self, script: str):
        """What `script` returns once the page has loaded and it returns something."""
        return self.wait(
            lambda driver: (
                driver.execute_script("return document.readyState") == "complete"
                and driver.execute_script(script)
            ),
            script,
        )

    def clipboard(self, write: str | None = None) -> str:
        """What the clipboard holds (after writing `write` to it, when given)."""
        script = """
            const [text, done] = arguments;
            (text === null ? Promise.resolve() : navigator.clipboard.writeText(text))
                .then(() => navigator.clipboard.readText()).then(done, (error) => done("ERROR " + error));
        """
        return self.driver.execute_async_script(script, write)

    def log_in(self, username: str, password: str) -> None:
        """Through the admin's login form, as a person does."""
        self.open(reverse("admin:login") + "?next=" + reverse("admin:index"))
        self.find("#id_username").send_keys(username)
        self.find("#id_password").send_keys(password, Keys.ENTER)
        self.find("#user-tools")

    def screenshot(self, name: str) -> str:
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return f"screenshot of {self.driver.current_url}: {path}"


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """One headless Chromium for this module, with a profile of its own."""
    if NOT_FOUND:
        missing(NOT_FOUND)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    # A driver path given: Selenium Manager (which would download one) never runs.
    instance = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    instance.set_page_load_timeout(2 * WAIT_SECONDS)
    instance.set_script_timeout(WAIT_SECONDS)
    yield instance
    instance.quit()


@pytest.fixture
def browser(chromium, live_server, tmp_path):
    """The module's Chromium as a new visitor of the live server: no cookies, no storage, the
    clipboard allowed."""
    chromium.get("about:blank")
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": live_server.url, "storageTypes": "all"})
    chromium.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": live_server.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    return Browser(chromium, live_server.url, tmp_path)


@pytest.fixture
def admin_browser(browser, admin_user):
    browser.log_in(admin_user.username, "password")  # pytest-django's admin_user
    return browser


def _api_key(base: str, username: str) -> str:
    status, _, body = call(
        base, "POST", reverse("tokens:auth-token"), json.dumps({"username": username, "password": PASSWORD})
    )
    assert status == 200, body
    return body["token"]


def _issue(base: str, path: str, key: str, **fields) -> dict:
    """A token from the real API, over HTTP."""
    status, _, body = call(base, "POST", path, json.dumps(fields), {"Authorization": f"Token {key}"})
    assert status == 201, body
    return body


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# Readers: one script each, since every WebDriver call is a round trip of tens of milliseconds.
_FIELD_NAME = "(element) => [...element.classList].find((c) => c.startsWith('field-')).slice(6)"


def _rows(browser: Browser) -> list[dict[str, str]]:
    """The audit list's rows, each as {column: text}."""
    return browser.read(f"""
        const name = {_FIELD_NAME};
        return [...document.querySelectorAll("#result_list tbody tr")].map((row) => Object.fromEntries(
            [...row.querySelectorAll("[class*=field-]")].map((cell) => [name(cell), cell.innerText.trim()])));
    """)


def _row_fields(browser: Browser) -> dict[str, str]:
    """A read-only row page's fields, {name: text}."""
    return browser.read(f"""
        const name = {_FIELD_NAME};
        const boxes = document.querySelectorAll(".fieldBox, .form-row:not(:has(.fieldBox))");
        return Object.fromEntries([...boxes].map((box) =>
            [name(box), box.querySelector(".readonly").innerText.trim()]));
    """)


def _inspect(browser: Browser, token: str) -> None:
    browser.open(reverse("admin:tokens_issuedtoken_changelist"))
    browser.follow(reverse("admin:tokens_issuedtoken_inspect"))
    browser.find("#id_token").send_keys(token)
    browser.find("#inspect-form input[type=submit]").click()


def _inspected_services(browser: Browser) -> list[dict[str, str]]:
    """The inspector's table for each service in the token, {heading: text}."""
    return browser.read("""
        return [...document.querySelectorAll("table.inspect-service")].map((table) => Object.fromEntries(
            [...table.rows].map((row) => [row.cells[0].innerText.trim(), row.cells[1].innerText.trim()])));
    """)


def _grafted(token: str, content_from: str) -> str:
    """`token`'s signature on another token's content: a token someone edited and re-encoded,
    keeping the signature it came with."""
    keep = 2 + len(agora.decode(token).signature)  # length-prefixed signature, then what it signs
    original = zlib.decompress(base64.b64decode(token[3:]))
    edited = zlib.decompress(base64.b64decode(content_from[3:]))
    return "007" + base64.b64encode(zlib.compress(original[:keep] + edited[keep:])).decode()


# --- the audit list and a row ------------------------------------------------------------------


def test_the_audit_list_shows_its_rows_filters_by_service_and_finds_a_pasted_token(
    admin_browser, live_server, user
):
    key = _api_key(live_server.url, "alice")
    rtc = _issue(live_server.url, reverse("tokens:rtc-token"), key, channel="Room 7", role="publisher")
    _issue(live_server.url, reverse("tokens:rtm-token"), key)
    browser = admin_browser
    browser.open(reverse("admin:index"))
    browser.click_link("Issued tokens")
    browser.find("#result_list")
    assert [(r["service"], r["channel"], r["username"]) for r in _rows(browser)] == [
        ("RTM (messaging)", "-", "alice"),
        ("RTC (voice/video)", "Room 7", "alice"),
    ]

    browser.click_link("RTM (messaging)")  # the service filter
    browser.wait_for_url("service__exact=rtm")
    assert [r["service"] for r in _rows(browser)] == ["RTM (messaging)"]

    browser.open(reverse("admin:tokens_issuedtoken_changelist"))
    browser.find("#searchbar").send_keys(rtc["token"], Keys.ENTER)
    browser.wait_for_url(f"q={_sha256(rtc['token'])}")
    assert rtc["token"] not in browser.driver.current_url  # the token left the URL at once
    assert browser.find("#searchbar").get_attribute("value") == _sha256(rtc["token"])
    assert [(r["service"], r["channel"], r["role"]) for r in _rows(browser)] == [
        ("RTC (voice/video)", "Room 7", "Publisher")
    ]


def test_a_rows_page_shows_its_fields_and_never_the_token(admin_browser, live_server, user):
    key = _api_key(live_server.url, "alice")
    body = _issue(live_server.url, reverse("tokens:rtc-token"), key, channel="Room 7", slot="phone")
    row = IssuedToken.objects.get()
    browser = admin_browser
    browser.open(reverse("admin:tokens_issuedtoken_changelist"))
    browser.find("#result_list tbody tr th a").click()
    browser.wait_for_url(reverse("admin:tokens_issuedtoken_change", args=[row.pk]))
    fields = _row_fields(browser)
    assert {name: fields[name] for name in ("username", "channel", "uid", "slot", "role", "source")} == {
        "username": "alice", "channel": "Room 7", "uid": str(body["uid"]), "slot": "phone",
        "role": "Subscriber", "source": "API",
    }  # fmt: skip
    assert fields["token_sha256"] == _sha256(body["token"])
    assert body["token"] not in browser.driver.page_source
    assert not browser.find_all("input[type=submit]")  # read-only: nothing to save or delete


# --- the inspector ---------------------------------------------------------------------------


def test_a_token_from_the_api_in_the_inspector_shows_its_audit_rows_fields_and_a_valid_signature(
    admin_browser, live_server, user
):
    key = _api_key(live_server.url, "alice")
    body = _issue(live_server.url, reverse("tokens:rtc-token"), key, channel="Room 7", role="publisher")
    row = IssuedToken.objects.get()
    browser = admin_browser
    _inspect(browser, body["token"])

    assert browser.text("#inspect-signature") == SIGNED_BY_PRIMARY
    assert browser.text("#inspect-version") == "007"
    assert browser.text("#inspect-app-id-value") == f"{APP_ID} (this server's)"
    assert browser.text("#inspect-issued-at") == _utc(row.issued_at)
    assert browser.text("#inspect-expires-at").startswith(_utc(row.expires_at) + " — ")
    expiry = f"until {row.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC (3600 s after issue; "
    assert browser.text("h2.inspect-service-name") == "rtc (service type 1)"
    (rtc,) = _inspected_services(browser)
    privileges = (
        "join channel (1)",
        "publish audio stream (2)",
        "publish video stream (3)",
        "publish data stream (4)",
    )
    assert set(rtc) == {"Channel", "uid", *privileges}  # the driver hands keys back sorted
    assert (rtc["Channel"], rtc["uid"]) == ("Room 7", str(row.uid))
    for name in privileges:
        assert rtc[name].startswith(expiry) and rtc[name].endswith(" left)"), rtc[name]

    # Its audit row, one click away, says the same.
    browser.click_link(f"#{row.pk}: {row}")
    browser.wait_for_url(reverse("admin:tokens_issuedtoken_change", args=[row.pk]))
    fields = _row_fields(browser)
    assert (fields["channel"], fields["uid"]) == (rtc["Channel"], rtc["uid"])
    assert fields["version"] == "007 (AccessToken2)" and fields["role"] == "Publisher"


@pytest.mark.parametrize("forgery", ["signed with another certificate", "tampered"])
def test_a_forged_token_in_the_inspector_shows_an_invalid_signature(
    admin_browser, live_server, user, forgery
):
    key = _api_key(live_server.url, "alice")
    body = _issue(live_server.url, reverse("tokens:rtc-token"), key, channel="Room 7", role="publisher")
    decoded = agora.decode(body["token"])
    same_fields = {
        "app_id": APP_ID, "channel": "Room 7", "uid": body["uid"], "publisher": True,
        "now": decoded.issued_at, "salt": decoded.salt,
    }  # fmt: skip
    if forgery == "signed with another certificate":
        token = agora.build_rtc_token(app_certificate=OTHER_CERTIFICATE, lifetime=3600, **same_fields).token
    else:  # its life stretched to 24 hours, the signature kept
        longer = agora.build_rtc_token(app_certificate=OTHER_CERTIFICATE, lifetime=86400, **same_fields).token
        token = _grafted(body["token"], longer)
    assert agora.decode(token).service(agora.SERVICE_RTC).account == str(body["uid"])

    _inspect(admin_browser, token)
    assert admin_browser.text("#inspect-signature") == (
        "Signature invalid: not signed with this server's certificate, or altered since."
    )
    assert admin_browser.text("#inspect-audit-row") == "none (not issued by this server, or altered)"
    assert _inspected_services(admin_browser)[0]["uid"] == str(body["uid"])


@pytest.mark.parametrize("garbage", ["hello", "007" + "A" * 300])
def test_garbage_in_the_inspector_gets_a_clear_message_not_an_error_page(admin_browser, garbage):
    _inspect(admin_browser, garbage)
    assert admin_browser.text("#inspect-problem").startswith("This is not a 006 or 007 Agora token: ")
    assert admin_browser.driver.title.startswith("Inspect a token")
    assert admin_browser.find("#id_token").get_attribute("value") == garbage
    with pytest.raises(NoSuchElementException):
        admin_browser.driver.find_element(By.ID, "inspect-report")


# --- temporary tokens ---------------------------------------------------------------------------


def test_a_temporary_token_is_issued_copied_to_the_clipboard_and_audited(admin_browser, admin_user, user):
    browser = admin_browser
    browser.open(reverse("admin:tokens_issuedtoken_changelist"))
    browser.follow(reverse("admin:tokens_issuedtoken_issue"))
    browser.find("#id_username").send_keys("alice")
    slot = browser.find("#id_slot")
    slot.clear()
    slot.send_keys("laptop")
    Select(browser.find("#id_service")).select_by_visible_text("RTC and RTM in one token")
    browser.find("#id_channel").send_keys("ops")
    Select(browser.find("#id_role")).select_by_visible_text("Publisher")
    lifetime = browser.find("#id_expires_in")
    lifetime.clear()
    lifetime.send_keys("900")
    browser.find("#issue-form input[type=submit]").click()

    token = browser.find("#issued-token-value").get_attribute("value")
    assert agora.verify(token, APP_CERTIFICATE)
    assert browser.clipboard(write="something else") == "something else"
    browser.find("#copy-token").click()
    browser.wait(
        expected_conditions.text_to_be_present_in_element((By.ID, "copy-status"), "Copied."), "Copied."
    )
    assert browser.clipboard() == token

    row = IssuedToken.objects.get()
    assert (row.token_sha256, row.user, row.slot, row.service, row.channel, row.role) == (
        _sha256(token), user, "laptop", "rtc+rtm", "ops", "publisher",
    )  # fmt: skip
    assert row.uid == AgoraIdentity.objects.get(user=user, slot="laptop").uid
    assert (row.source, row.issued_by) == ("admin", admin_user)
    assert (row.expires_at - row.issued_at).total_seconds() == 900

    # Pasted from the clipboard into the inspector, it is the token of that row.
    browser.click_link(f"Its audit row (#{row.pk})")
    assert _row_fields(browser)["issued_by"] == admin_user.username
    browser.open(reverse("admin:tokens_issuedtoken_inspect"))
    browser.find("#id_token").send_keys(Keys.CONTROL, "v")
    browser.find("#inspect-form input[type=submit]").click()
    assert browser.text("#inspect-signature") == SIGNED_BY_PRIMARY
    assert browser.text("#inspect-audit-row").startswith(f"#{row.pk}: ")


# --- moderation -------------------------------------------------------------------------------


def test_a_kick_from_an_audit_row_is_sent_to_agora_and_shown_applied(
    admin_browser, admin_user, user, fake_agora
):
    issued = issuance.issue_token(user=user, service="rtc", channel="ops room", source="cli")
    browser = admin_browser
    browser.open(reverse("admin:tokens_issuedtoken_change", args=[issued.record_id]))
    browser.find("a.moderation-kick").click()
    browser.wait_for_url(reverse("admin:tokens_moderationaction_moderate"))
    assert browser.find("#id_channel").get_attribute("value") == "ops room"
    assert Select(browser.find("#id_action")).first_selected_option.get_attribute("value") == "kick"
    browser.find("#id_reason").send_keys("abuse in the room")
    browser.find("#moderate-form input[type=submit]").click()

    action = browser.wait(lambda _: ModerationAction.objects.first(), "the action's row")
    browser.wait_for_url(reverse("admin:tokens_moderationaction_change", args=[action.pk]))
    assert browser.text(".fieldBox.field-state .readonly") == "Pending"
    assert fake_agora.requests == []  # the worker asks Agora, not the page
    run_tasks()
    browser.open(reverse("admin:tokens_moderationaction_change", args=[action.pk]))
    fields = [browser.text(f".fieldBox.field-{name} .readonly") for name in ("state", "kind", "requested_by")]
    assert fields == ["Applied", "Kick", admin_user.username]
    [sent] = [r.json for r in fake_agora.requests_to("POST", "/dev/v1/kicking-rule")]
    assert (sent["cname"], sent["uid"], sent["time_in_seconds"]) == ("ops room", issued.uid, 0)
    rule_id = browser.read("return document.querySelector('td.field-rule_id')?.innerText")
    assert rule_id.strip() == str(action.rules.get().rule_id)


# --- Swagger UI -------------------------------------------------------------------------------


def test_swagger_ui_try_it_out_issues_an_rtc_token_with_an_api_token(browser, live_server, user):
    key = _api_key(live_server.url, "alice")
    browser.open(reverse("swagger-ui"))
    operation = "#operations-api-api_v1_tokens_rtc_create"
    browser.find(operation)

    def api_token_scheme():  # the schema's header scheme, not the session cookie
        (scheme,) = [c for c in browser.find_all(".modal-ux .auth-container") if "knoxApiToken" in c.text]
        return scheme

    browser.find(".auth-wrapper button.authorize").click()
    browser.find(".modal-ux .auth-container input")
    api_token_scheme().find_element(By.CSS_SELECTOR, "input").send_keys(f"Token {key}")
    api_token_scheme().find_element(By.CSS_SELECTOR, "button.authorize").click()
    browser.wait(lambda _: "Logout" in api_token_scheme().text, "the API token scheme authorized")
    browser.find(".modal-ux button.btn-done").click()

    browser.find(f"{operation} .opblock-summary").click()
    browser.find(f"{operation} button.try-out__btn").click()
    body = browser.find(f"{operation} textarea.body-param__text")
    body.send_keys(Keys.CONTROL, "a")
    body.send_keys(Keys.DELETE)
    body.send_keys('{"channel": "swagger"}')
    browser.find(f"{operation} button.execute").click()

    status = f"{operation} .live-responses-table .response .response-col_status"
    browser.wait(expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, status), "201"), "201")
    answer = json.loads(browser.text(f"{operation} .live-responses-table .response-col_description pre"))
    row = IssuedToken.objects.get()
    assert (answer["channel"], answer["uid"], answer["role"]) == ("swagger", row.uid, "subscriber")
    assert agora.verify(answer["token"], APP_CERTIFICATE)
    assert (row.token_sha256, row.user, row.channel, row.service, row.source) == (
        _sha256(answer["token"]), user, "swagger", "rtc", "api",
    )  # fmt: skip
