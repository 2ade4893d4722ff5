import base64
import hashlib
import importlib
import struct
import zlib
from types import SimpleNamespace

import pytest

from tokens import agora

# Agora's published test vectors (AgoraIO/Tools, DynamicKey/AgoraDynamicKey/python[3]/test).
APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
CHANNEL = "7d72365eb983485397e3e3f9d460bdda"
UID = 2882341273
VECTOR_007 = (
    "007eJxTYBBbsMMnKq7p9Hf/HcIX5kce9b518kCiQgSr5Zrp4X1Tu6UUGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8IMEQw"
    "MTAwMoAwBIL4CgzmKeZGxmamqUmWFsYmFqbGluapxqnGaZYpJmYGSSkpiVwMRhYWRsYmhkbmxgDCaiTj"
)
VECTOR_006_JOIN = (
    "006970CA35de60c44645bbae8a215061b33IACV0fZUBw+72cVoL9eyGGh3Q6Poi8bgjwVLnyKSJyOXR7dIfRBXoFHlEAABAAAAR/QQ"
    "AAEAAQCvKDdW"
)
VECTOR_006_PUBLISHER = (
    "006970CA35de60c44645bbae8a215061b33IACMv3I+fsRSejxy6luEwzA/1t/zbEHWfJCJ5m8ssFP/fLdIfRBXoFHlIgABAAAAR/QQAAQAAQCv"
    "KDdWAgCvKDdWAwCvKDdWBACvKDdW"
)
RTC_NAMES = {
    1: "join_channel",
    2: "publish_audio_stream",
    3: "publish_video_stream",
    4: "publish_data_stream",
}
PRIVILEGE_TS = 1446455471
NOW = 1_800_000_000
SALT = 4242
ALL_RIGHTS = {"audio", "video", "data"}


@pytest.fixture
def agora_pinned(monkeypatch):
    """Pin the clock and the salt inside agoraiotools, whose builders take neither: NOW, SALT."""
    module = importlib.import_module("agoraiotools.AccessToken2")  # the package shadows it with a class
    monkeypatch.setattr(module, "time", SimpleNamespace(time=lambda: NOW))
    monkeypatch.setattr(
        module, "secrets", SimpleNamespace(SystemRandom=lambda: SimpleNamespace(randint=lambda a, b: SALT))
    )
    return module


def _credentials():
    return {"app_id": APP_ID, "app_certificate": CERT}


def test_007_vector_is_reproduced_byte_for_byte():
    token = agora.build_007(
        app_id=APP_ID,
        app_certificate=CERT,
        issue_ts=1111111,
        expire=600,
        salt=1,
        rtc=(CHANNEL, UID, {agora.PRIVILEGE_JOIN_CHANNEL: 600}),
    )
    # Same content whatever zlib build compressed it...
    assert agora.decode(token) == agora.decode(VECTOR_007)
    # ...and byte for byte with the zlib Python ships here (1.2.x, as in Agora's run).
    assert token == VECTOR_007


def test_007_vector_decodes_to_its_inputs_and_verifies():
    decoded = agora.decode(VECTOR_007)
    assert (decoded.version, decoded.app_id, decoded.issued_at, decoded.salt) == ("007", APP_ID, 1111111, 1)
    assert decoded.expires_at == 1111111 + 600
    assert decoded.services == (
        agora.DecodedService(agora.SERVICE_RTC, {1: 600}, channel=CHANNEL, account=str(UID)),
    )
    assert agora.verify(VECTOR_007, CERT)
    assert not agora.verify(VECTOR_007, CERT.lower().replace("5", "6"))


@pytest.mark.parametrize(
    ("privileges", "expected"),
    [
        ((1,), VECTOR_006_JOIN),
        ((1, 2, 3, 4), VECTOR_006_PUBLISHER),
    ],
)
def test_006_vectors_are_reproduced_byte_for_byte(privileges, expected):
    token = agora.build_006(
        app_id=APP_ID,
        app_certificate=CERT,
        channel=CHANNEL,
        account=str(UID),
        privileges=dict.fromkeys(privileges, PRIVILEGE_TS),
        ts=1111111,
        salt=1,
    )
    assert token == expected


def test_006_vector_decodes_and_verifies_only_against_its_channel_and_uid():
    decoded = agora.decode(VECTOR_006_PUBLISHER)
    assert (decoded.version, decoded.app_id, decoded.ts, decoded.salt) == ("006", APP_ID, 1111111, 1)
    assert decoded.services[0].privileges == dict.fromkeys((1, 2, 3, 4), PRIVILEGE_TS)
    assert decoded.channel_crc == zlib.crc32(CHANNEL.encode())
    assert agora.verify(decoded, CERT, channel=CHANNEL, account=str(UID))
    assert not agora.verify(decoded, CERT, channel=CHANNEL, account=str(UID + 1))
    assert not agora.verify(decoded, CERT, channel=CHANNEL + "x", account=str(UID))
    with pytest.raises(ValueError, match="channel and account"):
        agora.verify(decoded, CERT)


@pytest.mark.parametrize(("publisher", "privileges"), [(True, {1, 2, 3, 4}), (False, {1})])
def test_rtc_007_token_carries_uid_channel_privileges_and_lifetime(publisher, privileges):
    built = agora.build_rtc_token(
        app_id=APP_ID,
        app_certificate=CERT,
        channel="room 1",
        uid=4294967295,
        publisher=publisher,
        lifetime=900,
        now=NOW,
        salt=42,
    )
    decoded = agora.decode(built.token)
    rtc = decoded.service(agora.SERVICE_RTC)
    assert (built.issued_at, built.expires_at, built.expires_in) == (NOW, NOW + 900, 900)
    assert (decoded.app_id, decoded.issued_at, decoded.expires_at, decoded.salt) == (
        APP_ID,
        NOW,
        NOW + 900,
        42,
    )
    assert (rtc.channel, rtc.account) == ("room 1", "4294967295")
    assert rtc.privileges == dict.fromkeys(privileges, 900)
    assert agora.verify(built.token, CERT)
    assert built.privilege_expires_at == {"rtc": {RTC_NAMES[p]: NOW + 900 for p in sorted(privileges)}}


@pytest.mark.parametrize(("publisher", "privileges"), [(True, {1, 2, 3, 4}), (False, {1})])
def test_rtc_006_token_carries_absolute_expiry_and_verifies_for_its_uid(publisher, privileges):
    built = agora.build_rtc_token(
        app_id=APP_ID,
        app_certificate=CERT,
        channel="room 1",
        uid=7,
        publisher=publisher,
        lifetime=600,
        now=NOW,
        version="006",
    )
    decoded = agora.decode(built.token)
    assert built.expires_at == NOW + 600
    assert decoded.ts == NOW + agora.TS_006_OFFSET
    assert decoded.issued_at == NOW
    assert decoded.expires_at == NOW + 600
    assert decoded.services[0].privileges == dict.fromkeys(privileges, NOW + 600)
    assert agora.verify(decoded, CERT, channel="room 1", account="7")


def test_rtm_007_token_honours_the_lifetime():
    built = agora.build_rtm_token(app_id=APP_ID, app_certificate=CERT, user_id="12345", lifetime=120, now=NOW)
    decoded = agora.decode(built.token)
    assert built.expires_in == 120
    assert decoded.services == (agora.DecodedService(agora.SERVICE_RTM, {1: 120}, user_id="12345"),)
    assert agora.verify(built.token, CERT)


def test_rtm_006_token_is_valid_24_hours_whatever_is_asked_and_says_so():
    built = agora.build_rtm_token(
        app_id=APP_ID, app_certificate=CERT, user_id="12345", lifetime=120, now=NOW, version="006"
    )
    decoded = agora.decode(built.token)
    assert (built.issued_at, built.expires_at, built.expires_in) == (NOW, NOW + 86400, 86400)
    assert decoded.expires_at == NOW + 86400
    assert decoded.services[0].type == agora.SERVICE_RTM
    assert decoded.services[0].privileges == {agora.PRIVILEGE_RTM_LOGIN_006: NOW + 86400}
    # RTM 006 puts the user id where RTC puts the channel, and no account.
    assert agora.verify(decoded, CERT, channel="12345", account="")


def test_tutorial_style_rtm_006_token_is_reported_with_its_true_24_hour_expiry():
    token = agora.build_006(
        app_id=APP_ID,
        app_certificate=CERT,
        channel="someone",
        account="",
        privileges={agora.PRIVILEGE_RTM_LOGIN_006: NOW + 3600},
        ts=NOW + agora.TS_006_OFFSET,
        salt=5,
    )
    assert agora.decode(token).expires_at == NOW + 86400


@pytest.mark.parametrize("uid", [0, -1, 2**32, True, "42"])
def test_wildcard_and_out_of_range_uids_are_refused(uid):
    with pytest.raises(ValueError, match="uid"):
        agora.build_rtc_token(
            app_id=APP_ID, app_certificate=CERT, channel="c", uid=uid, publisher=False, lifetime=60, now=NOW
        )


@pytest.mark.parametrize("lifetime", [0, 86401, -5, 60.0])
def test_lifetimes_beyond_agoras_cap_are_refused(lifetime):
    with pytest.raises(ValueError, match="lifetime"):
        agora.build_rtm_token(app_id=APP_ID, app_certificate=CERT, user_id="1", lifetime=lifetime, now=NOW)


@pytest.mark.parametrize(
    ("app_id", "cert"),
    [("", CERT), (APP_ID, ""), (APP_ID[:-1], CERT), (APP_ID, CERT[:-1] + "g")],
)
def test_malformed_credentials_raise_instead_of_returning_an_empty_token(app_id, cert):
    with pytest.raises(ValueError, match="32 hex"):
        agora.build_rtm_token(app_id=app_id, app_certificate=cert, user_id="1", lifetime=60, now=NOW)


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        agora.build_rtm_token(
            app_id=APP_ID, app_certificate=CERT, user_id="1", lifetime=60, now=NOW, version="005"
        )


def test_same_inputs_give_the_same_token_and_a_new_salt_gives_another():
    def build(salt):
        return agora.build_rtc_token(
            app_id=APP_ID,
            app_certificate=CERT,
            channel="c",
            uid=1,
            publisher=False,
            lifetime=60,
            now=NOW,
            salt=salt,
        ).token

    assert build(3) == build(3)
    assert build(3) != build(4)


@pytest.mark.parametrize("version", agora.VERSIONS)
def test_without_a_salt_each_token_has_its_own_random_one_in_agoras_range(version):
    def salt_of_a_new_token():
        built = agora.build_rtc_token(
            app_id=APP_ID, app_certificate=CERT, channel="c", uid=1, publisher=True, lifetime=60,
            now=NOW, version=version,
        )  # fmt: skip
        return agora.decode(built.token).salt

    salts = [salt_of_a_new_token() for _ in range(200)]
    assert all(1 <= salt <= agora.SALT_MAX for salt in salts)
    assert len(set(salts)) > 190


def test_tampered_007_token_fails_verification():
    raw = bytearray(zlib.decompress(base64.b64decode(VECTOR_007[3:])))
    at = raw.index(CHANNEL.encode())
    raw[at] ^= 0x01  # flip a bit in the signed content: the channel name
    forged = "007" + base64.b64encode(zlib.compress(bytes(raw))).decode()
    assert agora.decode(forged).services[0].channel != CHANNEL
    assert not agora.verify(forged, CERT)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "007",
        "006",
        "005abc",
        "007!!!!",
        "007" + base64.b64encode(b"not zlib").decode(),
        "007" + base64.b64encode(zlib.compress(b"\x05\x00abc")).decode(),
        VECTOR_007[:-8],
        "006" + "z" * 32 + "AAAA",
        VECTOR_006_JOIN[:-4],
        VECTOR_006_JOIN + "AAAA",
        "007\u00e9",
    ],
)
def test_malformed_tokens_raise_invalid_token_error(token):
    with pytest.raises(agora.InvalidTokenError):
        agora.decode(token)


def test_decompression_bomb_is_refused():
    bomb = "007" + base64.b64encode(zlib.compress(b"\x00" * 10_000_000)).decode()
    with pytest.raises(agora.InvalidTokenError):
        agora.decode(bomb)


def test_inspect_summarises_a_token_and_its_signature():
    summary = agora.inspect(VECTOR_007, CERT)
    assert summary == {
        "version": "007",
        "app_id": APP_ID,
        "issued_at": 1111111,
        "expires_at": 1111711,
        "salt": 1,
        "services": [
            {
                "type": "rtc",
                "type_id": 1,
                "privileges": {"1": 600},
                "expiries": {"join_channel": {"id": 1, "seconds": 600, "expires_at": 1111711}},
                "channel": CHANNEL,
                "account": str(UID),
            }
        ],
        "signature_valid": True,
    }
    assert agora.inspect(VECTOR_006_JOIN, CERT)["signature_valid"] is None
    assert agora.inspect(VECTOR_006_JOIN, CERT, channel=CHANNEL, account=str(UID))["signature_valid"] is True


# --- per-privilege expiries (RTC 007) ---------------------------------------------------------


def _rtc(publish, join_lifetime=900, version="007", **extra):
    return agora.build_rtc_token_with_privileges(
        **_credentials(), channel="stage", uid=UID, join_lifetime=join_lifetime, publish=publish,
        now=NOW, version=version, salt=SALT, **extra,
    )  # fmt: skip


def test_each_rtc_privilege_ends_on_its_own_and_the_token_with_the_join_privilege():
    built = _rtc({"audio": 300, "video": None, "data": 900})
    decoded = agora.decode(built.token)
    rtc = decoded.service(agora.SERVICE_RTC)
    # Video not granted: absent, not zero. Data may last exactly as long as the join.
    assert rtc.privileges == {1: 900, 2: 300, 4: 900}
    assert (built.version, built.issued_at, built.expires_at) == ("007", NOW, NOW + 900)
    assert decoded.expires_at == NOW + 900
    assert built.privilege_expires_at == {
        "rtc": {
            "join_channel": NOW + 900,
            "publish_audio_stream": NOW + 300,
            "publish_data_stream": NOW + 900,
        }
    }
    assert agora.verify(built.token, CERT)


def test_no_publish_rights_is_a_join_only_token():
    built = _rtc({})
    assert agora.decode(built.token).service(agora.SERVICE_RTC).privileges == {1: 900}
    assert (
        built.token
        == agora.build_rtc_token(
            **_credentials(), channel="stage", uid=UID, publisher=False, lifetime=900, now=NOW, salt=SALT
        ).token
    )


@pytest.mark.parametrize("right", sorted(ALL_RIGHTS))
def test_a_publish_privilege_may_not_outlive_the_join_privilege(right):
    with pytest.raises(ValueError, match=f"publish {right} lifetime .901 s. must not exceed the join"):
        _rtc({right: 901})


@pytest.mark.parametrize("lifetime", [0, -1, 86401, 60.0, True, "60"])
def test_a_publish_lifetime_beyond_agoras_cap_is_refused(lifetime):
    with pytest.raises(ValueError, match="publish video lifetime must"):
        _rtc({"video": lifetime}, join_lifetime=86400)


@pytest.mark.parametrize("join_lifetime", [0, 86401, 1.5])
def test_a_join_lifetime_beyond_agoras_cap_is_refused(join_lifetime):
    with pytest.raises(ValueError, match="join lifetime must"):
        _rtc({}, join_lifetime=join_lifetime)


def test_unknown_publish_rights_are_refused_by_name():
    with pytest.raises(ValueError, match="publish rights are audio, video, data, not screen"):
        _rtc({"audio": 60, "screen": 60})


@pytest.mark.parametrize(
    "publish",
    [
        {"audio": 900},
        {"audio": 900, "video": 900},
        {"audio": 900, "video": 900, "data": 300},
        {"audio": 600, "video": 600, "data": 600},
    ],
)
def test_version_006_refuses_per_media_rights_naming_the_version(publish):
    with pytest.raises(ValueError, match="version 006 cannot grant publish audio, video or data apart"):
        _rtc(publish, version="006")


@pytest.mark.parametrize(("publish", "publisher"), [(dict.fromkeys(ALL_RIGHTS, 900), True), ({}, False)])
def test_version_006_takes_all_or_nothing_as_the_role_builder_does(publish, publisher):
    built = _rtc(publish, version="006")
    assert built.token == agora.build_rtc_token(
        **_credentials(), channel="stage", uid=UID, publisher=publisher, lifetime=900, now=NOW, version="006",
        salt=SALT,
    ).token  # fmt: skip
    assert built.expires_at == NOW + 900
    assert set(built.privilege_expires_at["rtc"].values()) == {NOW + 900}
    assert agora.verify(built.token, CERT, channel="stage", account=str(UID))


@pytest.mark.parametrize("account", [UID, str(UID)])
def test_per_privilege_token_is_agoras_build_token_with_privilege_byte_for_byte(agora_pinned, account):
    from agoraiotools.RtcTokenBuilder2 import RtcTokenBuilder2

    # agoraiotools 0.3.4's build_token_with_uid_and_privilege calls a method its base class
    # lacks (AttributeError); the account variant packs an int uid the same way it would.
    theirs = RtcTokenBuilder2.build_token_with_user_account_and_privilege(
        APP_ID, CERT, "stage", account, 900, 900, 300, 600, 120
    )
    ours = _rtc({"audio": 300, "video": 600, "data": 120})
    assert agora.decode(ours.token) == agora.decode(theirs)
    assert ours.token == theirs  # same zlib in this process


@pytest.mark.parametrize("publish", [{"audio": 300}, {"video": 600, "data": 60}, {}])
def test_a_subset_of_rights_is_what_agoras_service_rtc_packs(agora_pinned, publish):
    # Agora's builders always add all four privileges; a subset is their ServiceRtc with fewer.
    token = agora_pinned.AccessToken(APP_ID, CERT, expire=900)
    service = agora_pinned.ServiceRtc("stage", UID)
    service.add_privilege(agora_pinned.ServiceRtc.kPrivilegeJoinChannel, 900)
    ids = {"audio": 2, "video": 3, "data": 4}
    for right, lifetime in publish.items():
        service.add_privilege(ids[right], lifetime)
    token.add_service(service)
    assert _rtc(publish).token == token.build()


def test_per_privilege_rtc_rtm_token_is_agoras_build_token_with_rtm2_byte_for_byte(agora_pinned):
    from agoraiotools.RtcTokenBuilder2 import Role_Publisher, RtcTokenBuilder2

    theirs = RtcTokenBuilder2.build_token_with_rtm2(
        APP_ID, CERT, "stage", str(UID), Role_Publisher, 900, 900, 300, 600, 120, str(UID), 900
    )
    ours = agora.build_rtc_rtm_token_with_privileges(
        **_credentials(), channel="stage", uid=UID, join_lifetime=900,
        publish={"audio": 300, "video": 600, "data": 120}, now=NOW, salt=SALT,
    )  # fmt: skip
    assert agora.decode(ours.token) == agora.decode(theirs)
    assert ours.token == theirs
    assert ours.expires_at == NOW + 900
    assert ours.privilege_expires_at == {
        "rtc": {
            "join_channel": NOW + 900,
            "publish_audio_stream": NOW + 300,
            "publish_video_stream": NOW + 600,
            "publish_data_stream": NOW + 120,
        },
        "rtm": {"login": NOW + 900},
    }


def test_per_privilege_rtc_rtm_token_keeps_the_join_rule():
    with pytest.raises(ValueError, match="must not exceed the join lifetime"):
        agora.build_rtc_rtm_token_with_privileges(
            **_credentials(), channel="stage", uid=UID, join_lifetime=60, publish={"data": 61}, now=NOW
        )


# --- Agora Chat -------------------------------------------------------------------------------


def test_chat_user_token_names_the_user_and_lasts_its_lifetime():
    built = agora.build_chat_user_token(**_credentials(), user_id="alice_1", lifetime=600, now=NOW, salt=SALT)
    decoded = agora.decode(built.token)
    assert (built.version, built.issued_at, built.expires_at) == ("007", NOW, NOW + 600)
    assert (decoded.issued_at, decoded.expires_at, decoded.salt) == (NOW, NOW + 600, SALT)
    assert decoded.services == (agora.DecodedService(agora.SERVICE_CHAT, {1: 600}, user_id="alice_1"),)
    assert built.privilege_expires_at == {"chat": {"user": NOW + 600}}
    assert agora.verify(built.token, CERT)


def test_chat_app_token_carries_the_app_privilege_and_no_user():
    built = agora.build_chat_app_token(**_credentials(), lifetime=3600, now=NOW, salt=SALT)
    decoded = agora.decode(built.token)
    assert decoded.services == (agora.DecodedService(agora.SERVICE_CHAT, {2: 3600}, user_id=""),)
    assert (built.expires_at, built.privilege_expires_at) == (NOW + 3600, {"chat": {"app": NOW + 3600}})
    assert agora.verify(built.token, CERT)


def test_chat_tokens_are_agoras_chat_token_builder_byte_for_byte(agora_pinned):
    from agoraiotools.ChatTokenBuilder2 import ChatTokenBuilder2

    user = agora.build_chat_user_token(**_credentials(), user_id="alice_1", lifetime=600, now=NOW, salt=SALT)
    app = agora.build_chat_app_token(**_credentials(), lifetime=600, now=NOW, salt=SALT)
    theirs_user = ChatTokenBuilder2.build_user_token(APP_ID, CERT, "alice_1", 600)
    theirs_app = ChatTokenBuilder2.build_app_token(APP_ID, CERT, 600)
    assert (agora.decode(user.token), agora.decode(app.token)) == (
        agora.decode(theirs_user),
        agora.decode(theirs_app),
    )
    assert (user.token, app.token) == (theirs_user, theirs_app)


@pytest.mark.parametrize(
    ("privilege", "vector"),
    [
        # AgoraIO/Tools python3/test/AccessToken2Test.py: test_service_chat_user, test_service_chat_app
        (
            1,
            "007eJxTYNAIsnbS3v/A5t2TC6feR15r+6cq8bqAvfaW+tk/Vzz+p6xTYLA0N3B2NDZNSTUzSDYxMTMxTUpKTLVINDI0NTAz"
            "TDI2dv8iwBDBxMDAyADCrEDMCOZzMRhZWBgZmxgamRsDAB+lHrg=",
        ),
        (
            2,
            "007eJxTYNDNaz3snC8huEfHWdz6s98qltq4zqy9fl99Uh0FDvy6F6DAYGlu4OxobJqSamaQbGJiZmKalJSYapFoZGhqYGaY"
            "ZGzs/kWAIYKJgYGRAYRZgZgJzGdgAACt8hhr",
        ),
    ],
)
def test_chat_tokens_reproduce_agoras_published_vectors(privilege, vector):
    if privilege == agora.PRIVILEGE_CHAT_USER:
        token = agora.build_chat_user_token(
            **_credentials(), user_id=str(UID), lifetime=600, now=1111111, salt=1
        )
    else:
        token = agora.build_chat_app_token(**_credentials(), lifetime=600, now=1111111, salt=1)
    assert agora.decode(token.token) == agora.decode(vector)
    assert token.token == vector  # with the zlib Python ships here (1.2.x, as in Agora's run)
    assert agora.verify(vector, CERT)


@pytest.mark.parametrize("lifetime", [0, 86401, 60.0])
def test_chat_lifetimes_follow_agoras_cap(lifetime):
    with pytest.raises(ValueError, match="lifetime"):
        agora.build_chat_app_token(**_credentials(), lifetime=lifetime, now=NOW)
    with pytest.raises(ValueError, match="lifetime"):
        agora.build_chat_user_token(**_credentials(), user_id="a", lifetime=lifetime, now=NOW)


def test_chat_user_token_needs_a_user_id():
    with pytest.raises(ValueError, match="user_id"):
        agora.build_chat_user_token(**_credentials(), user_id="", lifetime=60, now=NOW)


# --- the inspector reads every service type ----------------------------------------------------

# AgoraIO/Tools python3/test/AccessToken2Test.py, built by their C++ port (issue 1111111, salt 1,
# 600 s): test_parse_extended_services_from_cpp (Streaming, FCDN, RTM2 with permissions) and
# test_extended_service_numeric_uid_conversion (Streaming and FCDN three times each).
VECTOR_EXTENDED = (
    "007eJxTYPj86Lzdz79M25wNn/lMfvu+TkfmdpiviKvChm8ZV3SWndytwGBpbuDsaGyakmpmkGxiYmZimpSUmGqRaGRoamBmmGRs7P5F"
    "gCGCiYGBkYGBgRkImYAsEJ8JTCowmKeYGxmbmaYmWVoYm1iYGluapxqnGqdZppiYGSSlpCRyMRhZWBgZmxgamRuzUaSbA6gXopuToSS1"
    "uCS+tDi1iJkB4jQmoGBuanFxYnqqbiKCmcTIAIEcDMUlRamJubqJLGD1jAxsDCD9uokAO/VDvQ=="
)
VECTOR_REPEATED = (
    "007eJxTYLi93GuuUHrO9Fr71KVJKqfDby8RezlVfGLMO77DIl79U40UGCzNDZwdjU1TUs0Mkk1MzExMk5ISUy0SjQxNDcwMk4yN3b8I"
    "MEQwMTAwMjAwsDEwA2lGMF+BwTzF3MjYzDQ1ydLC2MTC1NjSPNU41TjNMsXEzCApJSWRi8HIwsLI2MTQyNwYpI+JSH0MQFuYoLYQq4eP"
    "obikKDUxVzcxOTm/NK+EjUx3spHkTjaS3cnDkJackgdzJQBJb19X"
)


def _after(issued_at, seconds):
    return {"seconds": seconds, "expires_at": issued_at + seconds}


def _expiries(issued_at, **seconds_by_name):
    """The inspector's `expiries` for privileges 1, 2, ... in the order given."""
    return {
        name: {"id": privilege, **_after(issued_at, seconds)}
        for privilege, (name, seconds) in enumerate(seconds_by_name.items(), 1)
    }


def test_inspector_reads_streaming_fcdn_and_rtm2_from_agoras_vector():
    summary = agora.inspect(VECTOR_EXTENDED, CERT)
    assert (summary["issued_at"], summary["expires_at"], summary["signature_valid"]) == (
        1111111,
        1111711,
        True,
    )
    assert summary["services"] == [
        {
            "type": "streaming",
            "type_id": 3,
            "privileges": {"1": 600, "2": 600},
            "expiries": _expiries(1111111, publish_mix_stream=600, publish_raw_stream=600),
            "channel": CHANNEL,
            "account": str(UID),
        },
        {
            "type": "fcdn",
            "type_id": 6,
            "privileges": {"1": 600, "2": 600},
            "expiries": _expiries(1111111, publish=600, play=600),
            "channel": CHANNEL,
            "account": str(UID),
        },
        {
            "type": "rtm2",
            "type_id": 8,
            "privileges": {"1": 600},
            "expiries": _expiries(1111111, login=600),
            "user_id": "test_user",
            "permissions": {
                "message_channels": {"read": ["message-a", "message-b"]},
                "stream_channels": {"write": ["stream-a"]},
                "users": {"read": ["user-a"]},
            },
        },
    ]
    rtm2 = agora.decode(VECTOR_EXTENDED).service(agora.SERVICE_RTM2)
    assert rtm2.permissions == {
        0: {0: ("message-a", "message-b")},
        1: {1: ("stream-a",)},
        4: {0: ("user-a",)},
    }


def test_inspector_keeps_repeated_services_in_token_order():
    decoded = agora.decode(VECTOR_REPEATED)
    assert [(s.type, s.account, set(s.privileges)) for s in decoded.services] == [
        (3, str(UID), {1}),
        (3, "", {2}),  # uid 0: the wildcard, signed as ""
        (3, "stream-account", {1, 2}),
        (6, str(UID), {1}),
        (6, "", {2}),
        (6, "fcdn-account", {1, 2}),
    ]
    assert decoded.complete
    assert agora.verify(VECTOR_REPEATED, CERT)


def test_inspector_reads_rtc_and_rtm_from_agoras_builder(agora_pinned):
    from agoraiotools.RtcTokenBuilder2 import Role_Publisher, RtcTokenBuilder2

    token = RtcTokenBuilder2.build_token_with_rtm2(
        APP_ID, CERT, "stage", "42", Role_Publisher, 900, 800, 700, 600, 500, "someone", 400
    )
    summary = agora.inspect(token, CERT)
    assert (summary["issued_at"], summary["expires_at"], summary["salt"]) == (NOW, NOW + 900, SALT)
    assert summary["services"] == [
        {
            "type": "rtc",
            "type_id": 1,
            "privileges": {"1": 800, "2": 700, "3": 600, "4": 500},
            "expiries": _expiries(
                NOW,
                join_channel=800,
                publish_audio_stream=700,
                publish_video_stream=600,
                publish_data_stream=500,
            ),
            "channel": "stage",
            "account": "42",
        },
        {
            "type": "rtm",
            "type_id": 2,
            "privileges": {"1": 400},
            "expiries": _expiries(NOW, login=400),
            "user_id": "someone",
        },
    ]
    assert summary["signature_valid"] is True


def test_inspector_reads_chat_from_agoras_builder(agora_pinned):
    from agoraiotools.ChatTokenBuilder2 import ChatTokenBuilder2

    user = agora.inspect(ChatTokenBuilder2.build_user_token(APP_ID, CERT, "alice_1", 600), CERT)
    app = agora.inspect(ChatTokenBuilder2.build_app_token(APP_ID, CERT, 300), CERT)
    chat = {"type": "chat", "type_id": 5}
    assert user["services"] == [
        {**chat, "privileges": {"1": 600}, "expiries": _expiries(NOW, user=600), "user_id": "alice_1"}
    ]
    assert app["services"] == [
        {
            **chat,
            "privileges": {"2": 300},
            "expiries": {"app": {"id": 2, **_after(NOW, 300)}},
            "user_id": "",
        }
    ]
    assert user["signature_valid"] is app["signature_valid"] is True


def test_inspector_reads_fpa_whose_login_has_no_expiry_of_its_own(agora_pinned):
    from agoraiotools.fpa_token_builder import FpaTokenBuilder

    summary = agora.inspect(FpaTokenBuilder.build_token(APP_ID, CERT), CERT)
    assert summary["expires_at"] == NOW + 86400
    assert summary["services"] == [
        {
            "type": "fpa",
            "type_id": 4,
            "privileges": {"1": 0},
            "expiries": {"login": {"id": 1, "seconds": None, "expires_at": None}},
        }
    ]
    assert summary["signature_valid"] is True


def test_inspector_reads_apaas_with_its_role_from_agoras_builder(agora_pinned):
    from agoraiotools.apaas_token_builder import ApaasTokenBuilder

    token = ApaasTokenBuilder.build_room_user_token(APP_ID, CERT, "room-1", "user-1", 2, 600)
    summary = agora.inspect(token, CERT)
    assert summary["services"] == [
        {
            "type": "rtm",
            "type_id": 2,
            "privileges": {"1": 600},
            "expiries": _expiries(NOW, login=600),
            "user_id": "user-1",
        },
        {
            "type": "chat",
            "type_id": 5,
            "privileges": {"1": 600},
            "expiries": _expiries(NOW, user=600),
            "user_id": hashlib.md5(b"user-1").hexdigest(),  # noqa: S324 (Agora's chat user id for APaaS)
        },
        {
            "type": "apaas",
            "type_id": 7,
            "privileges": {"1": 600},
            "expiries": _expiries(NOW, room_user=600),
            "room_uuid": "room-1",
            "user_uuid": "user-1",
            "role": 2,
        },
    ]
    assert summary["signature_valid"] is True
    # A user token names no room and keeps Agora's default role, -1 (a signed 16-bit field).
    (user,) = agora.inspect(ApaasTokenBuilder.build_user_token(APP_ID, CERT, "user-1", 600), CERT)["services"]
    assert (user["room_uuid"], user["user_uuid"], user["role"]) == ("", "user-1", -1)
    assert user["expiries"] == {"user": {"id": 2, **_after(NOW, 600)}}


@pytest.mark.parametrize(("service_type", "name"), [(9, "convoai"), (10, "stt")])
def test_inspector_reads_convoai_and_stt_services(agora_pinned, service_type, name):
    # As agora-token 2.0.6's ConvoAITokenBuilder / SttTokenBuilder build them: RTC, RTM and the
    # service itself with no privilege (its payload: the privilege map alone, like FPA's).
    token = agora_pinned.AccessToken(APP_ID, CERT, issue_ts=NOW, expire=600)
    rtc = agora_pinned.ServiceRtc("stage", 42)
    rtc.add_privilege(1, 600)
    token.add_service(rtc)
    token.add_service(agora_pinned.Service(service_type))
    summary = agora.inspect(token.build(), CERT)
    assert [s["type"] for s in summary["services"]] == ["rtc", name]
    assert summary["services"][1] == {"type": name, "type_id": service_type, "privileges": {}, "expiries": {}}
    assert summary["signature_valid"] is True


def _future_service(module, service_type):
    """A service type no builder defines yet, with fields of its own after its privileges."""

    class Future(module.Service):
        def pack(self):
            return super().pack() + module.pack_string(b"future") + module.pack_uint32(7)

    service = Future(service_type)
    service.add_privilege(1, 600)
    return service


def _payload_of_future_service():
    return struct.pack("<HHI", 1, 1, 600) + struct.pack("<H", 6) + b"future" + struct.pack("<I", 7)


def test_an_unknown_service_type_is_reported_as_unknown_instead_of_failing(agora_pinned):
    token = agora_pinned.AccessToken(APP_ID, CERT, issue_ts=NOW, expire=600)
    rtc = agora_pinned.ServiceRtc("stage", 42)
    rtc.add_privilege(1, 600)
    token.add_service(rtc)
    token.add_service(_future_service(agora_pinned, 11))
    token = token.build()

    decoded = agora.decode(token)
    assert decoded.services[0] == agora.DecodedService(1, {1: 600}, channel="stage", account="42")
    assert decoded.services[1] == agora.DecodedService(11, {}, raw=_payload_of_future_service())
    assert (decoded.declared_services, decoded.complete) == (2, False)
    summary = agora.inspect(token, CERT)
    unknown = summary["services"][1]
    assert (unknown["type"], unknown["type_id"], unknown["raw"]) == (
        "unknown",
        11,
        _payload_of_future_service().hex(),
    )
    assert unknown["services_after"] == 0
    assert "carries no length" in unknown["note"]
    assert summary["signature_valid"] is True
    assert not agora.verify(token, CERT.lower())


def test_an_unknown_service_before_known_ones_ends_the_decoding_there(agora_pinned):
    # Agora packs services in type order, so an unknown type 0 comes first and hides the RTC
    # service after it (as in AgoraIO/Tools' test_parse_stops_at_unknown_service_type).
    token = agora_pinned.AccessToken(APP_ID, CERT, issue_ts=NOW, expire=600)
    token.add_service(_future_service(agora_pinned, 0))
    rtc = agora_pinned.ServiceRtc("stage", 42)
    rtc.add_privilege(1, 600)
    token.add_service(rtc)
    token = token.build()

    (unknown,) = agora.decode(token).services
    assert unknown.type == 0
    assert unknown.raw.startswith(_payload_of_future_service())
    assert b"stage" in unknown.raw  # the RTC service is in there, unreadable
    summary = agora.inspect(token, CERT)
    assert summary["services"][0]["services_after"] == 1
    assert summary["signature_valid"] is True


def test_an_altered_unknown_service_fails_verification(agora_pinned):
    token = agora_pinned.AccessToken(APP_ID, CERT, issue_ts=NOW, expire=600)
    token.add_service(_future_service(agora_pinned, 11))
    raw = bytearray(zlib.decompress(base64.b64decode(token.build()[3:])))
    raw[raw.index(b"future")] ^= 0x01
    forged = "007" + base64.b64encode(zlib.compress(bytes(raw))).decode()
    assert agora.decode(forged).services[0].raw.endswith(b"guture" + struct.pack("<I", 7))
    assert not agora.verify(forged, CERT)


def test_inspector_reports_006_expiries_as_absolute_times():
    summary = agora.inspect(VECTOR_006_PUBLISHER, CERT, channel=CHANNEL, account=str(UID))
    issued_at = 1111111 - agora.TS_006_OFFSET  # 006 carries ts = issue + 24 h
    (rtc,) = summary["services"]
    assert rtc["type"] == "rtc"
    assert rtc["expiries"] == {
        name: {"id": privilege, "seconds": PRIVILEGE_TS - issued_at, "expires_at": PRIVILEGE_TS}
        for privilege, name in RTC_NAMES.items()
    }
    assert summary["signature_valid"] is True


def test_inspector_reports_that_rtm_006_ends_with_the_token():
    built = agora.build_006(
        **_credentials(), channel="someone", account="", privileges={1000: NOW + 60}, ts=NOW + 86400, salt=5
    )
    (rtm,) = agora.inspect(built, CERT, channel="someone", account="")["services"]
    assert rtm["expiries"] == {"login": {"id": 1000, "seconds": 86400, "expires_at": NOW + 86400}}


# --- certificate rotation --------------------------------------------------------------------

OTHER_CERT = "0123456789abcdef0123456789abcdef"
THIRD_CERT = "fedcba9876543210fedcba9876543210"
CANDIDATES = {"primary": CERT, "secondary": OTHER_CERT}


@pytest.mark.parametrize(
    ("signer", "label"), [(CERT, "primary"), (OTHER_CERT, "secondary"), (THIRD_CERT, None)]
)
def test_the_certificate_that_signed_a_007_token_is_named(signer, label):
    rtc = agora.build_rtc_token_with_privileges(
        app_id=APP_ID, app_certificate=signer, channel="c", uid=7, join_lifetime=60, publish={"audio": 30},
        now=NOW,
    )  # fmt: skip
    chat = agora.build_chat_app_token(app_id=APP_ID, app_certificate=signer, lifetime=60, now=NOW)
    assert agora.identify_certificate(rtc.token, CANDIDATES) == label
    assert agora.identify_certificate(agora.decode(chat.token), CANDIDATES) == label


@pytest.mark.parametrize(
    ("signer", "label"), [(CERT, "primary"), (OTHER_CERT, "secondary"), (THIRD_CERT, None)]
)
def test_the_certificate_that_signed_a_006_token_is_named_given_its_channel_and_uid(signer, label):
    built = agora.build_rtc_token(
        app_id=APP_ID, app_certificate=signer, channel="c", uid=7, publisher=True, lifetime=60, now=NOW,
        version="006",
    )  # fmt: skip
    assert agora.identify_certificate(built.token, CANDIDATES, channel="c", account="7") == label
    # Another channel or uid: no certificate signed that.
    assert agora.identify_certificate(built.token, CANDIDATES, channel="c", account="8") is None
    with pytest.raises(ValueError, match="channel and account"):
        agora.identify_certificate(built.token, {})


def test_rotation_skips_malformed_candidates_and_answers_none_for_none():
    assert agora.identify_certificate(VECTOR_007, {"old": "not a certificate", "new": CERT}) == "new"
    assert agora.identify_certificate(VECTOR_007, {}) is None


def test_certificate_fingerprint_is_short_labelled_and_not_the_certificate():
    assert agora.certificate_fingerprint(CERT) == "sha256:6ffeb987"  # sha256(CERT)[:8]
    assert agora.certificate_fingerprint(OTHER_CERT) != agora.certificate_fingerprint(CERT)
    # The spelling signs (HMAC over the bytes), so another spelling is another key.
    assert not agora.verify(VECTOR_007, CERT.lower())
    assert agora.certificate_fingerprint(CERT.lower()) != agora.certificate_fingerprint(CERT)
    with pytest.raises(ValueError, match="32 hex"):
        agora.certificate_fingerprint("secret")
