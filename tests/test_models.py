import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tokens.models import AgoraIdentity, IssuedToken
from tokens.services import get_or_create_identity, issue_token

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("uid", [0, 2**32])
def test_database_refuses_uids_outside_1_to_2_32_minus_1(user, uid):
    with pytest.raises(IntegrityError), transaction.atomic():
        AgoraIdentity.objects.create(user=user, uid=uid)


def test_largest_uid_fits_the_column(user):
    AgoraIdentity.objects.create(user=user, uid=2**32 - 1)
    assert AgoraIdentity.objects.get(user=user).uid == 4294967295


def test_database_refuses_a_second_identity_for_a_user_and_a_shared_uid(user, django_user_model):
    AgoraIdentity.objects.create(user=user, uid=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        AgoraIdentity.objects.create(user=user, uid=11)
    other = django_user_model.objects.create_user("bob")
    with pytest.raises(IntegrityError), transaction.atomic():
        AgoraIdentity.objects.create(user=other, uid=10)


def test_a_uid_never_changes_once_issued(user):
    identity = get_or_create_identity(user=user)
    identity.uid += 1
    with pytest.raises(ValueError, match="never changes"):
        identity.save()
    assert AgoraIdentity.objects.get(user=user).uid == identity.uid - 1


def test_deleting_a_user_keeps_the_uid_reserved_and_the_audit_trail(user):
    issued = issue_token(service="rtc", user=user, channel="c")
    uid = issued.uid
    user.delete()
    identity = AgoraIdentity.objects.get(uid=uid)
    row = IssuedToken.objects.get()
    assert identity.user is None
    assert (row.user, row.username, row.uid) == (None, "alice", uid)


def _assert_append_only(row, message: str) -> None:
    """`row` (channel "c", the only one of its model) can be neither changed nor deleted, a row
    at a time or through the queryset, each refusal a TypeError matching `message`."""
    model = type(row)
    row.channel = "forged"
    with pytest.raises(TypeError, match=message):
        row.save()
    with pytest.raises(TypeError, match=message):
        row.delete()
    with pytest.raises(TypeError, match=message):
        model.objects.all().delete()
    assert model.objects.get().channel == "c"


def test_audit_rows_cannot_be_changed_or_deleted_in_code(user):
    issued = issue_token(service="rtc", user=user, channel="c")
    _assert_append_only(IssuedToken.objects.get(pk=issued.record_id), "append-only")


def test_channel_events_cannot_be_changed_or_deleted_in_code():
    from django.utils import timezone

    from tokens.models import ChannelEvent

    event = ChannelEvent.objects.create(
        notice_id="n1", event_type=ChannelEvent.EventType.BROADCASTER_JOIN, channel="c", uid=7,
        occurred_at=timezone.now(), notification={"noticeId": "n1"},
    )  # fmt: skip
    _assert_append_only(event, "channel events are append-only")


def test_database_refuses_an_audit_row_that_expires_before_it_is_issued(user):
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        IssuedToken.objects.create(
            issued_at=now, expires_at=now, username="x", service="rtc", version="007",
            uid=1, source="api", token_sha256="0" * 64,
        )  # fmt: skip
