"""A uid per stream and device: slots. Each (user, slot) gets its own uid, drawn and kept like
the main one; at most AGORA_MAX_SLOTS per user; existing identities became `main`."""

import pytest
from django.urls import reverse

from tests.conftest import APP_CERTIFICATE
from tokens import agora
from tokens.models import AgoraIdentity, IssuedToken

pytestmark = pytest.mark.django_db

ME, RTC, RTM, RTC_RTM = (
    reverse(f"tokens:{name}") for name in ("me", "rtc-token", "rtm-token", "rtc-rtm-token")
)
COMPAT_RTC, COMPAT_RTM = reverse("tokens:compat-rtc-token"), reverse("tokens:compat-rtm-token")


def _post(api, path, body):
    response = api.post(path, body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def test_each_slot_has_its_own_uid_kept_for_every_token_of_that_slot(api, user):
    main = _post(api, RTC, {"channel": "room"})["uid"]
    screen = _post(api, RTC, {"channel": "room", "slot": "screen"})["uid"]
    phone = _post(api, RTM, {"slot": "phone"})
    assert len({main, screen, int(phone["user_id"])}) == 3
    assert _post(api, RTC, {"channel": "other", "slot": "screen"})["uid"] == screen
    assert _post(api, RTM, {"slot": "screen"})["user_id"] == str(screen)
    assert _post(api, RTC, {"channel": "room", "slot": "main"})["uid"] == main
    me = api.get(ME).json()
    assert me == {
        "username": "alice",
        "uid": main,
        "rtm_user_id": str(main),
        "slots": {"main": main, "phone": int(phone["user_id"]), "screen": screen},
    }
    assert {(i.slot, i.uid) for i in AgoraIdentity.objects.filter(user=user)} == set(me["slots"].items())


def test_every_slot_token_decodes_to_the_slots_uid_and_verifies(api):
    rtc = _post(api, RTC, {"channel": "room", "slot": "laptop", "role": "publisher", "expires_in": 900})
    decoded = agora.decode(rtc["token"]).service(agora.SERVICE_RTC)
    assert (decoded.channel, decoded.account, set(decoded.privileges)) == (
        "room",
        str(rtc["uid"]),
        {1, 2, 3, 4},
    )
    assert set(decoded.privileges.values()) == {900}
    assert agora.verify(rtc["token"], APP_CERTIFICATE)
    rtm = _post(api, RTM, {"slot": "laptop", "version": "006"})
    row = IssuedToken.objects.get(
        token_sha256=__import__("hashlib").sha256(rtm["token"].encode()).hexdigest()
    )
    assert (row.slot, str(row.uid), row.rtm_user_id) == ("laptop", rtm["user_id"], rtm["user_id"])
    assert agora.verify(rtm["token"], APP_CERTIFICATE, channel=rtm["user_id"], account="")


def test_audit_rows_record_the_slot(api):
    _post(api, RTC, {"channel": "room"})
    _post(api, RTC, {"channel": "room", "slot": "screen"})
    _post(api, COMPAT_RTC, {"channel": "room"})
    assert list(IssuedToken.objects.order_by("id").values_list("slot", flat=True)) == [
        "main",
        "screen",
        "main",
    ]


@pytest.mark.parametrize("slots", [1, 2, 4])
def test_one_slot_more_than_the_limit_is_403_too_many_slots(api, user, settings, slots):
    settings.AGORA_MAX_SLOTS = slots
    _post(api, RTC, {"channel": "room"})  # main: always there
    for i in range(slots - 1):
        _post(api, RTC, {"channel": "room", "slot": f"device-{i}"})
    response = api.post(RTC, {"channel": "room", "slot": "one-more"}, format="json")
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("too_many_slots", ["slot"])
    assert AgoraIdentity.objects.filter(user=user).count() == slots
    # Slots already held keep working.
    assert _post(api, RTM, {"slot": "main"})["user_id"]


@pytest.mark.parametrize(
    "slot",
    ["", "Screen", "screen share", "a" * 33, "écran", "screen/1", 7, None, True, ["main"]],
)
def test_bad_slot_names_are_400_naming_the_field(api, slot):
    for path in (RTC, RTM, RTC_RTM):
        body = {"slot": slot} if path == RTM else {"channel": "room", "slot": slot}
        response = api.post(path, body, format="json")
        assert response.status_code == 400, (path, slot)
        assert list(response.json()["error"]["fields"]) == ["slot"]
    assert AgoraIdentity.objects.count() == 0
    assert IssuedToken.objects.count() == 0


@pytest.mark.parametrize("slot", ["main", "a", "a" * 32, "screen", "phone-2", "0-9"])
def test_good_slot_names_are_accepted(api, slot):
    assert _post(api, RTC, {"channel": "room", "slot": slot})["uid"]


def test_the_tutorial_endpoints_take_no_slot_and_use_main(api, user):
    response = api.post(COMPAT_RTC, {"channel": "room", "slot": "screen"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"slot": ["Unknown field."]}
    main = _post(api, COMPAT_RTC, {"channel": "room"})["uid"]
    assert main == AgoraIdentity.objects.get(user=user, slot="main").uid


def test_renewal_returns_a_token_for_the_same_uid_and_slot_with_a_new_expiry_each_audited(api):
    from datetime import UTC, datetime
    from unittest import mock

    first = _post(api, RTC_RTM, {"channel": "room", "slot": "phone", "expires_in": 600})
    later = datetime.fromisoformat(first["issued_at"].replace("Z", "+00:00")).timestamp() + 540
    with mock.patch("django.utils.timezone.now", return_value=datetime.fromtimestamp(later, UTC)):
        # What a client does on token-privilege-will-expire: ask again, then renewToken().
        renewed = _post(api, RTC_RTM, {"channel": "room", "slot": "phone", "expires_in": 600})
    assert (renewed["uid"], renewed["rtm_user_id"]) == (first["uid"], first["rtm_user_id"])
    assert renewed["expires_at"] > first["expires_at"]
    assert agora.decode(renewed["token"]).issued_at == agora.decode(first["token"]).issued_at + 540
    rows = IssuedToken.objects.order_by("id")
    assert [(r.slot, r.uid, r.service) for r in rows] == [("phone", first["uid"], "rtc+rtm")] * 2
    assert rows[1].expires_at > rows[0].expires_at


def test_users_admin_page_lists_the_slots_read_only(admin_client, api, user):
    _post(api, RTC, {"channel": "room"})
    screen = _post(api, RTC, {"channel": "room", "slot": "screen"})["uid"]
    page = admin_client.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()
    assert "Agora slots" in page
    assert "screen" in page and str(screen) in page
    assert 'name="agora_identities-0-uid"' not in page  # shown, not editable


def test_existing_identities_become_the_main_slot_with_their_uid(django_db_blocker, transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before, after = (
        [("tokens", "0002_login_attempt_counter")],
        [("tokens", "0003_slots_channel_rules_combined_tokens")],
    )
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    user_model = old_apps.get_model("auth", "User")
    identity_model = old_apps.get_model("tokens", "AgoraIdentity")
    token_model = old_apps.get_model("tokens", "IssuedToken")
    users = [user_model.objects.create(username=f"u{i}") for i in range(3)]
    uids = {identity_model.objects.create(user=u, uid=4_000_000_000 + i).uid for i, u in enumerate(users)}
    gone = identity_model.objects.create(user=None, uid=7)  # a deleted user's uid stays reserved
    from django.utils import timezone

    now = timezone.now()
    token_model.objects.create(
        issued_at=now, expires_at=now + timezone.timedelta(hours=1), user=users[0], username="u0",
        service="rtc", version="007", channel="c", uid=4_000_000_000, role="subscriber", source="api",
        token_sha256="0" * 64,
    )  # fmt: skip
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new_apps = executor.loader.project_state(after).apps
    identities = new_apps.get_model("tokens", "AgoraIdentity").objects.all()
    assert {(i.uid, i.slot) for i in identities} == {(uid, "main") for uid in uids} | {(gone.uid, "main")}
    assert {i.user_id: i.uid for i in identities if i.user_id} == {
        u.pk: 4_000_000_000 + n for n, u in enumerate(users)
    }
    assert new_apps.get_model("tokens", "IssuedToken").objects.get().slot == "main"
    # Leave the schema as the other tests expect it: every migration applied.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
