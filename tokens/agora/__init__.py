"""The token engine: build, decode and verify Agora 006 and 007 tokens.

Pure functions, deterministic given their inputs (pass `now` and `salt`); no ORM, no settings.
The one place that knows the formats; its building module is the only one that imports
agora_token_builder (006, AccessToken) and agoraiotools (007, AccessToken2, Agora's own Python
port). Callers use this package's names (`from tokens import agora`):

  formats   versions, service types and privileges, their names, Agora's limits
  building  RTC (per-privilege expiries), RTM, RTC+RTM and Chat tokens -> BuiltToken
  decoding  decode, verify, inspect every 007 service type; which certificate signed a token

Times are unix seconds. 007 carries the issue time and lifetimes relative to it; 006 carries
absolute expiry times and a `ts` that Agora's builders set to issue time + 24 h, after which
Agora rejects the token (so a 006 token lives at most 24 h, and RTM 006 exactly 24 h: Agora
ignores the RTM login privilege's own expiry).
"""

from tokens.agora.building import (
    BuiltToken,
    build_006,
    build_007,
    build_chat_app_token,
    build_chat_user_token,
    build_rtc_rtm_token,
    build_rtc_rtm_token_with_privileges,
    build_rtc_token,
    build_rtc_token_with_privileges,
    build_rtm_token,
)
from tokens.agora.decoding import (
    DecodedService,
    DecodedToken,
    PrivilegeExpiry,
    certificate_fingerprint,
    decode,
    identify_certificate,
    inspect,
    privilege_expiries,
    privilege_name,
    verify,
)

# Not public: tests/test_uids.py checks 006 CRCs with it.
from tokens.agora.decoding import _crc as _crc
from tokens.agora.formats import (
    MAX_LIFETIME,
    PRIVILEGE_CHAT_APP,
    PRIVILEGE_CHAT_USER,
    PRIVILEGE_JOIN_CHANNEL,
    PRIVILEGE_NAMES,
    PRIVILEGE_NAMES_006,
    PRIVILEGE_PUBLISH_AUDIO,
    PRIVILEGE_PUBLISH_DATA,
    PRIVILEGE_PUBLISH_VIDEO,
    PRIVILEGE_RTM_LOGIN_006,
    PRIVILEGE_RTM_LOGIN_007,
    PUBLISH_AUDIO,
    PUBLISH_DATA,
    PUBLISH_RIGHTS,
    PUBLISH_VIDEO,
    PUBLISHER_PRIVILEGES,
    RTM2_PERMISSION_NAMES,
    RTM2_RESOURCE_NAMES,
    SALT_MAX,
    SERVICE_APAAS,
    SERVICE_CHAT,
    SERVICE_CONVOAI,
    SERVICE_FCDN,
    SERVICE_FPA,
    SERVICE_NAMES,
    SERVICE_RTC,
    SERVICE_RTM,
    SERVICE_RTM2,
    SERVICE_STREAMING,
    SERVICE_STT,
    SUBSCRIBER_PRIVILEGES,
    TS_006_OFFSET,
    UID_MAX,
    UID_MIN,
    VERSION_006,
    VERSION_007,
    VERSIONS,
    InvalidTokenError,
    is_hex32,
    new_salt,
)

__all__ = [
    "MAX_LIFETIME",
    "PRIVILEGE_CHAT_APP",
    "PRIVILEGE_CHAT_USER",
    "PRIVILEGE_JOIN_CHANNEL",
    "PRIVILEGE_NAMES",
    "PRIVILEGE_NAMES_006",
    "PRIVILEGE_PUBLISH_AUDIO",
    "PRIVILEGE_PUBLISH_DATA",
    "PRIVILEGE_PUBLISH_VIDEO",
    "PRIVILEGE_RTM_LOGIN_006",
    "PRIVILEGE_RTM_LOGIN_007",
    "PUBLISHER_PRIVILEGES",
    "PUBLISH_AUDIO",
    "PUBLISH_DATA",
    "PUBLISH_RIGHTS",
    "PUBLISH_VIDEO",
    "RTM2_PERMISSION_NAMES",
    "RTM2_RESOURCE_NAMES",
    "SALT_MAX",
    "SERVICE_APAAS",
    "SERVICE_CHAT",
    "SERVICE_CONVOAI",
    "SERVICE_FCDN",
    "SERVICE_FPA",
    "SERVICE_NAMES",
    "SERVICE_RTC",
    "SERVICE_RTM",
    "SERVICE_RTM2",
    "SERVICE_STREAMING",
    "SERVICE_STT",
    "SUBSCRIBER_PRIVILEGES",
    "TS_006_OFFSET",
    "UID_MAX",
    "UID_MIN",
    "VERSIONS",
    "VERSION_006",
    "VERSION_007",
    "BuiltToken",
    "DecodedService",
    "DecodedToken",
    "InvalidTokenError",
    "PrivilegeExpiry",
    "build_006",
    "build_007",
    "build_chat_app_token",
    "build_chat_user_token",
    "build_rtc_rtm_token",
    "build_rtc_rtm_token_with_privileges",
    "build_rtc_token",
    "build_rtc_token_with_privileges",
    "build_rtm_token",
    "certificate_fingerprint",
    "decode",
    "identify_certificate",
    "inspect",
    "is_hex32",
    "new_salt",
    "privilege_expiries",
    "privilege_name",
    "verify",
]
