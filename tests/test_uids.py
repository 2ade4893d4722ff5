"""uids that 32-bit clients can hold: AGORA_UID_MAX bounds new draws; `manage.py check` warns
about existing uids above it; tokens at the edges of the range decode and verify."""

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.conftest import APP_CERTIFICATE
from tokens import agora
from tokens.checks import check_uids_within_uid_max
from tokens.models import AgoraIdentity
from tokens.services import identities

pytestmark = pytest.mark.django_db

SIGNED_MAX = 2**31 - 1


def test_new_uids_are_drawn_within_agora_uid_max(settings, monkeypatch, user):
    settings.AGORA_UID_MAX = SIGNED_MAX
    asked = []
    real = identities.secrets.randbelow
    monkeypatch.setattr(identities.secrets, "randbelow", lambda n: asked.append(n) or real(n))
    uid = identities.get_or_create_identity(user=user).uid
    assert asked == [SIGNED_MAX] and 1 <= uid <= SIGNED_MAX
    monkeypatch.setattr(identities.secrets, "randbelow", lambda n: n - 1)  # the highest draw
    assert identities.get_or_create_identity(user=user, slot="screen").uid == SIGNED_MAX


@pytest.mark.parametrize("uid", [1, SIGNED_MAX, 2**31, 2**32 - 1])
def test_tokens_for_uids_at_the_edges_decode_and_verify(api, user, uid):
    AgoraIdentity.objects.create(user=user, uid=uid)
    for path, body in [
        (reverse("tokens:rtc-token"), {"channel": "edge", "version": "007"}),
        (reverse("tokens:rtc-token"), {"channel": "edge", "version": "006"}),
        (reverse("tokens:rtm-token"), {"version": "007"}),
        (reverse("tokens:rtm-token"), {"version": "006"}),
        (reverse("tokens:rtc-rtm-token"), {"channel": "edge"}),
        (reverse("tokens:compat-rtc-token"), {"channel": "edge"}),
    ]:
        answer = api.post(path, body, format="json").json()
        token = answer["token"]
        decoded = agora.decode(token)
        if decoded.version == "006":
            rtm = "user_id" in answer and "channel" not in body
            channel, account = (str(uid), "") if rtm else ("edge", str(uid))
            assert agora.verify(token, APP_CERTIFICATE, channel=channel, account=account), path
            assert decoded.account_crc == agora._crc(account)
        else:
            assert agora.verify(token, APP_CERTIFICATE), path
            rtc, rtm = decoded.service(agora.SERVICE_RTC), decoded.service(agora.SERVICE_RTM)
            assert rtc is None or rtc.account == str(uid)
            assert rtm is None or rtm.user_id == str(uid)
        assert answer.get("uid", uid) == uid


def test_check_warns_when_existing_uids_exceed_agora_uid_max(settings, user, django_user_model, capsys):
    AgoraIdentity.objects.create(user=user, uid=2**31)
    AgoraIdentity.objects.create(user=django_user_model.objects.create_user("bob"), uid=5)
    assert check_uids_within_uid_max() == []  # the default allows every uid
    settings.AGORA_UID_MAX = SIGNED_MAX
    warnings = check_uids_within_uid_max()
    assert [w.id for w in warnings] == ["tokens.W014"]
    assert warnings[0].msg.startswith("1 existing uid(s) are above AGORA_UID_MAX (2147483647)")
    call_command("check")
    assert "tokens.W014" in capsys.readouterr().err


@pytest.mark.parametrize("value", [0, -1, 2**32])
def test_agora_uid_max_out_of_range_is_an_error(settings, value):
    from tokens.checks import check_agora_settings

    settings.AGORA_UID_MAX = value
    assert [e.id for e in check_agora_settings()] == ["tokens.E013"]
