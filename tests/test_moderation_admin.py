"""Moderation in the admin (tokens/admin/moderation.py): the buttons on a user, an audit row and a
channel event, the form they lead to, the moderation list and its lift action, "revoke
everything", deactivation in the admin's name, and the message naming the settings when
Agora's REST credentials are missing."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from tests.conftest import PASSWORD
from tests.helpers import run_tasks
from tokens.models import ChannelBan, ChannelEvent, IssuedToken, ModerationAction
from tokens.services import identities, issuance, moderation

pytestmark = pytest.mark.django_db

MODERATE = reverse("admin:tokens_moderationaction_moderate")
LIST = reverse("admin:tokens_moderationaction_changelist")


@pytest.fixture
def staff(django_user_model, client):
    """A staff member who may view the audit log and moderate, logged in to the admin."""
    member = django_user_model.objects.create_user("sam", password=PASSWORD, is_staff=True)
    codenames = ["moderate", "view_moderationaction", "view_issuedtoken", "view_channelevent", "view_user"]
    member.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(member)
    return member


@pytest.fixture
def row(user):
    identities.get_or_create_identity(user=user, slot="phone")
    issued = issuance.issue_token(user=user, service="rtc", channel="room", expires_in=600)
    return IssuedToken.objects.get(pk=issued.record_id)


def test_an_audit_rows_page_offers_kick_ban_and_mute_for_its_user_in_its_channel(
    fake_agora, client, staff, row
):
    page = client.get(reverse("admin:tokens_issuedtoken_change", args=[row.pk])).content.decode()
    for action in ("kick", "ban", "mute_audio", "mute_video"):
        assert f"{MODERATE}?user={row.user_id}&amp;channel=room&amp;action={action}" in page


def test_a_channel_events_page_offers_them_too(fake_agora, client, staff, user):
    event = ChannelEvent.objects.create(
        notice_id="n1", event_type=103, channel="room", uid=5, user=user, occurred_at=timezone.now(),
        notification={},
    )  # fmt: skip
    page = client.get(reverse("admin:tokens_channelevent_change", args=[event.pk])).content.decode()
    assert f"{MODERATE}?user={user.pk}&amp;channel=room&amp;action=kick" in page


def test_the_form_bans_every_slot_in_the_admins_name(fake_agora, client, staff, row, user):
    response = client.post(
        f"{MODERATE}?user={user.pk}", {"channel": "room", "action": "ban", "minutes": "15", "reason": "abuse"}
    )
    action = ModerationAction.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{action.pk}/change/")
    assert (action.kind, action.seconds, action.source, action.requested_by) == ("ban", 900, "admin", staff)
    assert len(action.uids) == 2
    run_tasks()
    page = client.get(response["Location"]).content.decode()
    assert "Applied" in page and str(action.rules.first().rule_id) in page


def test_the_form_names_a_missing_duration(fake_agora, client, staff, user):
    response = client.post(f"{MODERATE}?user={user.pk}", {"channel": "room", "action": "mute_audio"})
    assert response.status_code == 200
    assert "needs its duration in minutes" in response.content.decode()
    assert not ModerationAction.objects.exists()


def test_staff_without_the_permission_cannot_moderate(fake_agora, client, staff, user):
    staff.user_permissions.remove(Permission.objects.get(codename="moderate"))
    assert client.get(f"{MODERATE}?user={user.pk}").status_code == 403
    assert client.post(f"{MODERATE}?user={user.pk}", {"channel": "room", "action": "kick"}).status_code == 403
    assert not ModerationAction.objects.exists()


def test_without_rest_credentials_the_admin_says_which_settings_and_sends_nothing(
    settings, client, staff, user
):
    settings.AGORA_CUSTOMER_ID = ""
    page = client.get(f"{MODERATE}?user={user.pk}&channel=room").content.decode()
    assert "Moderation is off: AGORA_CUSTOMER_ID is not set" in page and "disabled" in page
    client.post(f"{MODERATE}?user={user.pk}", {"channel": "room", "action": "kick"})
    assert not ModerationAction.objects.exists()
    assert "AGORA_CUSTOMER_ID is not set" in client.get(LIST).content.decode()


def test_the_list_filters_by_state_channel_and_user_and_lifts(
    fake_agora, client, staff, user, django_user_model
):
    other = django_user_model.objects.create_user("mallory")
    ban = moderation.moderate(channel="room", kind="ban", user=user, minutes=5)
    moderation.moderate(channel="hall", kind="kick", user=other)
    filtered = client.get(
        LIST, {"channel__exact": "room", "state__exact": "pending", "username__exact": "alice"}
    )
    assert [a.pk for a in filtered.context["cl"].result_list] == [ban.pk]
    response = client.post(LIST, {"action": "lift_selected", "_selected_action": [ban.pk]})
    assert response.status_code == 302
    ban.refresh_from_db()
    assert ban.state == "lifted" and ban.lifted_by == staff and not ChannelBan.objects.exists()


def test_revoke_everything_asks_first_then_takes_it_all_back(fake_agora, client, staff, row, user):
    AuthToken.objects.create(user=user)
    url = reverse("admin:tokens_moderationaction_revoke", args=[user.pk])
    page = client.get(url).content.decode()
    assert "“room” until" in page and AuthToken.objects.filter(user=user).exists()
    client.post(url)
    assert not AuthToken.objects.filter(user=user).exists()
    ban = ModerationAction.objects.get()
    assert (ban.channel, ban.source, ban.requested_by) == ("room", "revocation", staff)
    row.refresh_from_db()
    assert row.revoked_by == staff and row.revoked_at is not None
    page = client.get(reverse("admin:tokens_issuedtoken_change", args=[row.pk])).content.decode()
    assert "Revoked at" in page and "sam" in page


def test_deactivating_a_user_in_the_admin_revokes_in_the_admins_name(
    fake_agora, admin_client, admin_user, row, user
):
    page = admin_client.get(reverse("admin:auth_user_change", args=[user.pk]))
    form = page.context["adminform"].form
    data = {
        k: v for k, v in form.initial.items() if v is not None and k not in ("groups", "user_permissions")
    }
    data.update(
        is_active="", date_joined_0="2026-01-01", date_joined_1="00:00:00", last_login_0="", last_login_1=""
    )
    data.update({f"agora_identities-{k}": v for k, v in {"TOTAL_FORMS": "0", "INITIAL_FORMS": "0"}.items()})
    response = admin_client.post(reverse("admin:auth_user_change", args=[user.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert not user.is_active
    row.refresh_from_db()
    assert row.revoked_by == admin_user
    assert ModerationAction.objects.get().requested_by == admin_user
    assert row.expires_at - timezone.now() <= timedelta(seconds=600)


def test_the_user_lists_action_revokes_everything_for_each_user_chosen(
    fake_agora, admin_client, admin_user, row, user
):
    AuthToken.objects.create(user=user)
    response = admin_client.post(
        reverse("admin:auth_user_changelist"), {"action": "revoke_everything", "_selected_action": [user.pk]}
    )
    assert response.status_code == 302
    assert not AuthToken.objects.filter(user=user).exists()
    assert ModerationAction.objects.get().requested_by == admin_user
    row.refresh_from_db()
    assert row.revoked_by == admin_user
