"""The token engine's vocabulary: versions, service types, privileges and their names as
Agora's sources spell them (AgoraIO/Tools' AccessToken2 in each language port, and Agora's npm
package agora-token), the limits Agora sets, and is_hex32 and new_salt."""

from __future__ import annotations

import re
import secrets

VERSION_006 = "006"
VERSION_007 = "007"
VERSIONS = (VERSION_006, VERSION_007)

UID_MIN = 1  # uid 0 is Agora's wildcard (any uid may use the token): never issued
UID_MAX = 2**32 - 1
MAX_LIFETIME = 86400  # Agora caps a token's life at 24 h
TS_006_OFFSET = 86400  # 006 builders stamp ts = issue time + 24 h

# 007 service types, as AgoraIO/Tools' AccessToken2 ports define them (ConvoAI and STT: in
# Agora's npm package agora-token 2.0.6).
SERVICE_RTC = 1
SERVICE_RTM = 2
SERVICE_STREAMING = 3  # publish a mixed or a raw stream
SERVICE_FPA = 4  # Full-path Accelerator: login
SERVICE_CHAT = 5  # Agora Chat: a user's or the app server's token
SERVICE_FCDN = 6  # Fusion CDN: publish, play
SERVICE_APAAS = 7  # APaaS (its builder was "education" before): room user, user, app
SERVICE_RTM2 = 8  # RTM login with per-resource read/write permissions
SERVICE_CONVOAI = 9  # Conversational AI agents: no privilege of its own
SERVICE_STT = 10  # real-time speech to text: no privilege of its own
PRIVILEGE_JOIN_CHANNEL = 1
PRIVILEGE_PUBLISH_AUDIO = 2
PRIVILEGE_PUBLISH_VIDEO = 3
PRIVILEGE_PUBLISH_DATA = 4
PRIVILEGE_RTM_LOGIN_007 = 1
PRIVILEGE_RTM_LOGIN_006 = 1000
PRIVILEGE_CHAT_USER = 1  # a chat user's token
PRIVILEGE_CHAT_APP = 2  # the app server's token for Chat's REST API

PUBLISHER_PRIVILEGES = (
    PRIVILEGE_JOIN_CHANNEL,
    PRIVILEGE_PUBLISH_AUDIO,
    PRIVILEGE_PUBLISH_VIDEO,
    PRIVILEGE_PUBLISH_DATA,
)
SUBSCRIBER_PRIVILEGES = (PRIVILEGE_JOIN_CHANNEL,)

# The publish rights a caller grants by name, each an RTC privilege with its own expiry (007).
PUBLISH_AUDIO = "audio"
PUBLISH_VIDEO = "video"
PUBLISH_DATA = "data"
PUBLISH_RIGHTS = {
    PUBLISH_AUDIO: PRIVILEGE_PUBLISH_AUDIO,
    PUBLISH_VIDEO: PRIVILEGE_PUBLISH_VIDEO,
    PUBLISH_DATA: PRIVILEGE_PUBLISH_DATA,
}

# Names as Agora's sources spell them (AgoraIO/Tools, AccessToken2 in every language port).
SERVICE_NAMES = {
    SERVICE_RTC: "rtc",
    SERVICE_RTM: "rtm",
    SERVICE_STREAMING: "streaming",
    SERVICE_FPA: "fpa",
    SERVICE_CHAT: "chat",
    SERVICE_FCDN: "fcdn",
    SERVICE_APAAS: "apaas",
    SERVICE_RTM2: "rtm2",
    SERVICE_CONVOAI: "convoai",
    SERVICE_STT: "stt",
}
PRIVILEGE_NAMES: dict[int, dict[int, str]] = {
    SERVICE_RTC: {
        PRIVILEGE_JOIN_CHANNEL: "join_channel",
        PRIVILEGE_PUBLISH_AUDIO: "publish_audio_stream",
        PRIVILEGE_PUBLISH_VIDEO: "publish_video_stream",
        PRIVILEGE_PUBLISH_DATA: "publish_data_stream",
    },
    SERVICE_RTM: {PRIVILEGE_RTM_LOGIN_007: "login"},
    SERVICE_STREAMING: {1: "publish_mix_stream", 2: "publish_raw_stream"},
    SERVICE_FPA: {1: "login"},
    SERVICE_CHAT: {PRIVILEGE_CHAT_USER: "user", PRIVILEGE_CHAT_APP: "app"},
    SERVICE_FCDN: {1: "publish", 2: "play"},
    SERVICE_APAAS: {1: "room_user", 2: "user", 3: "app"},
    SERVICE_RTM2: {1: "login"},
    SERVICE_CONVOAI: {},  # Agora's builder grants the service with no privilege
    SERVICE_STT: {},  # likewise
}
PRIVILEGE_NAMES_006 = {
    SERVICE_RTC: PRIVILEGE_NAMES[SERVICE_RTC],
    SERVICE_RTM: {PRIVILEGE_RTM_LOGIN_006: "login"},
}
# RTM2's permissions: resource type -> permission type -> resource names.
RTM2_RESOURCE_NAMES = {
    0: "message_channels",
    1: "stream_channels",
    2: "group_channels",
    3: "server_groups",
    4: "users",
}
RTM2_PERMISSION_NAMES = {0: "read", 1: "write"}

# Agora's builders draw salts from 1..99999999; so do we.
SALT_MAX = 99_999_999

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


class InvalidTokenError(ValueError):
    """The string is not a well-formed 006 or 007 token."""


def is_hex32(value: object) -> bool:
    """True when value is a 32-character hex string (the form of an App ID and certificate)."""
    return isinstance(value, str) and _HEX32.fullmatch(value) is not None


def new_salt() -> int:
    """A random salt in Agora's range, from the OS's CSPRNG."""
    return secrets.randbelow(SALT_MAX) + 1
