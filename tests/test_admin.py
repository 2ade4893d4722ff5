import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tokens.models import IssuedToken
from tokens.services import issue_token

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:tokens_issuedtoken_changelist")


@pytest.fixture
def admin(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def rows(user):
    issue_token(service="rtc", user=user, channel="lobby", role="publisher")
    issue_token(service="rtc", user=user, channel="backstage", version="006")
    issue_token(service="rtm", user=user)
    return list(IssuedToken.objects.all())


def _listed(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


def test_superuser_opens_the_audit_list_and_a_row(admin, rows):
    response = admin.get(CHANGELIST)
    assert response.status_code == 200
    assert _listed(response) == {r.pk for r in rows}
    detail = admin.get(reverse("admin:tokens_issuedtoken_change", args=[rows[0].pk]))
    assert detail.status_code == 200
    assert rows[0].token_sha256 in detail.content.decode()


def test_audit_rows_are_found_by_exact_channel_uid_username_and_sha256(admin, rows, user):
    lobby = next(r for r in rows if r.channel == "lobby")
    assert _listed(admin.get(CHANGELIST, {"q": "lobby"})) == {lobby.pk}
    assert _listed(admin.get(CHANGELIST, {"q": str(lobby.uid)})) == {r.pk for r in rows}
    assert _listed(admin.get(CHANGELIST, {"q": "alice"})) == {r.pk for r in rows}
    assert _listed(admin.get(CHANGELIST, {"q": lobby.token_sha256})) == {lobby.pk}
    assert _listed(admin.get(CHANGELIST, {"q": "lob"})) == set()
    assert _listed(admin.get(CHANGELIST, {"q": "99999999999999"})) == set()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"service__exact": "rtm"}, {"rtm"}),
        ({"role__exact": "publisher"}, {"lobby"}),
        ({"version__exact": "006"}, {"backstage"}),
        ({"source__exact": "api"}, {"lobby", "backstage", "rtm"}),
    ],
)
def test_audit_list_filters(admin, rows, params, expected):
    listed = IssuedToken.objects.filter(pk__in=_listed(admin.get(CHANGELIST, params)))
    assert {r.channel or r.service for r in listed} == expected


def test_audit_log_cannot_be_added_changed_or_deleted_even_by_a_superuser(admin, rows):
    row = rows[0]
    assert admin.get(reverse("admin:tokens_issuedtoken_add")).status_code == 403
    change = reverse("admin:tokens_issuedtoken_change", args=[row.pk])
    assert admin.post(change, {"channel": "forged"}).status_code == 403
    assert admin.get(reverse("admin:tokens_issuedtoken_delete", args=[row.pk])).status_code == 403
    assert (
        admin.post(reverse("admin:tokens_issuedtoken_delete", args=[row.pk]), {"post": "yes"}).status_code
        == 403
    )
    bulk = admin.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [row.pk]})
    assert bulk.status_code in (200, 302)
    assert IssuedToken.objects.filter(pk=row.pk, channel=row.channel).exists()
    assert IssuedToken.objects.count() == 3


def test_changelist_query_count_does_not_grow_with_rows(admin, user):
    issue_token(service="rtc", user=user, channel="c")
    with CaptureQueriesContext(connection) as few:
        assert admin.get(CHANGELIST).status_code == 200
    for i in range(40):
        issue_token(service="rtc", user=user, channel=f"c{i}")
    with CaptureQueriesContext(connection) as many:
        assert admin.get(CHANGELIST).status_code == 200
    assert len(many) == len(few)


def test_staff_without_view_permission_cannot_see_the_audit_log(client, django_user_model, rows):
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 403


def test_users_admin_page_shows_the_agora_uid_read_only(admin, user, rows):
    response = admin.get(reverse("admin:auth_user_change", args=[user.pk]))
    assert response.status_code == 200
    assert str(rows[0].uid) in response.content.decode()
    identity_list = admin.get(reverse("admin:tokens_agoraidentity_changelist"), {"q": str(rows[0].uid)})
    assert [i.user for i in identity_list.context["cl"].result_list] == [user]
    assert admin.get(reverse("admin:tokens_agoraidentity_add")).status_code == 403
