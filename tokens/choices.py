"""The shared vocabulary of tokens: what a token is for, who may publish what, which format,
where it was issued. A leaf module: models, validators, serializers and services all import it,
and it imports nothing of the project but the token engine's names."""

from collections.abc import Iterable

from django.db import models

from tokens import agora

MAIN_SLOT = "main"
# The slot of a channel's reserved recorder uid (an AgoraIdentity without a user).
RECORDER_SLOT = "recorder"


class Service(models.TextChoices):
    RTC = "rtc", "RTC (voice/video)"
    RTM = "rtm", "RTM (messaging)"
    RTC_RTM = "rtc+rtm", "RTC and RTM in one token"
    CHAT = "chat", "Agora Chat (a user)"
    CHAT_APP = "chat-app", "Agora Chat app (the app server's)"


class Role(models.TextChoices):
    PUBLISHER = "publisher", "Publisher"
    SUBSCRIBER = "subscriber", "Subscriber"
    AUDIO = "audio", "Audio only"
    VIDEO = "video", "Video only"
    DATA = "data", "Data stream only"
    # A channel's reserved recorder uid, join only (POST /api/v1/tokens/recorder/).
    RECORDER = "recorder", "Recorder"


class Version(models.TextChoices):
    V006 = agora.VERSION_006, "006 (AccessToken)"
    V007 = agora.VERSION_007, "007 (AccessToken2)"


class Source(models.TextChoices):
    API = "api", "API"
    COMPAT = "compat", "Tutorial-compatible endpoint"
    ADMIN = "admin", "Admin"
    CLI = "cli", "Management command"


# The publish rights a token may carry, in the order they are written and shown (each an RTC
# privilege of its own in 007: audio 2, video 3, data 4).
PUBLISH_RIGHTS = (agora.PUBLISH_AUDIO, agora.PUBLISH_VIDEO, agora.PUBLISH_DATA)
ALL_RIGHTS = frozenset(PUBLISH_RIGHTS)
NO_RIGHTS: frozenset[str] = frozenset()

# What each role publishes. The recorder publishes nothing.
ROLE_RIGHTS: dict[str, frozenset[str]] = {
    Role.PUBLISHER: ALL_RIGHTS,
    Role.SUBSCRIBER: NO_RIGHTS,
    Role.AUDIO: frozenset({agora.PUBLISH_AUDIO}),
    Role.VIDEO: frozenset({agora.PUBLISH_VIDEO}),
    Role.DATA: frozenset({agora.PUBLISH_DATA}),
    Role.RECORDER: NO_RIGHTS,
}


def rights_text(rights: Iterable[str]) -> str:
    """A set of publish rights as stored and shown: "audio,video,data", "video", "" (none)."""
    chosen = set(rights)
    return ",".join(right for right in PUBLISH_RIGHTS if right in chosen)


def rights_of(text: str) -> frozenset[str]:
    """The publish rights a stored text names."""
    return frozenset(text.split(",")) if text else NO_RIGHTS


# Every set of rights, as text: what a rights column may hold.
RIGHTS_TEXTS = tuple(
    rights_text(right for bit, right in enumerate(PUBLISH_RIGHTS) if mask >> bit & 1)
    for mask in range(1 << len(PUBLISH_RIGHTS))
)


def _rights_label(text: str) -> str:
    names = text.split(",") if text else []
    if not names:
        return "none (listen only)"
    if len(names) == len(PUBLISH_RIGHTS):
        return "audio, video and data (publisher)"
    return " and ".join(names)


RIGHTS_CHOICES = [(text, _rights_label(text)) for text in RIGHTS_TEXTS]


class SuspectReason(models.TextChoices):
    """Why a join reported by Agora looks like a leaked or shared token (a SuspectJoin)."""

    NEVER_ISSUED = "never_issued", "uid never issued an RTC token here"
    NO_LIVE_TOKEN = "no_live_token", "no unexpired token for the channel at join time"
    DUPLICATE_CLIENT = "duplicate_client", "uid already in the channel on another client"


# Computed once: an enum's `.values` builds a new list on every use.
ROLES = tuple(Role.values)
# What a user may ask for by name (the recorder's token has an endpoint of its own).
USER_ROLES = tuple(role for role in ROLES if role != Role.RECORDER)
USER_ROLE_CHOICES = [(role, Role(role).label) for role in USER_ROLES]  # what a request may ask for
SERVICES = tuple(Service.values)


# --- moderation -----------------------------------------------------------------------------


class ModerationKind(models.TextChoices):
    """What a moderation action does; a ban or mute lasts its duration, a kick only removes."""

    KICK = "kick", "Kick"
    BAN = "ban", "Ban (join)"
    MUTE_AUDIO = "mute_audio", "Mute audio (publish audio)"
    MUTE_VIDEO = "mute_video", "Mute video (publish video)"
    LIFT = "lift", "Lift a ban"


class ModerationState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed"
    LIFTED = "lifted", "Lifted"


class ModerationSource(models.TextChoices):
    ADMIN = "admin", "Admin"
    API = "api", "API"
    CLI = "cli", "Management command"
    REVOCATION = "revocation", "Revocation (user deactivated, deleted or revoked)"
    SYSTEM = "system", "Server (e.g. a leaked token)"


class BanPrivilege(models.TextChoices):
    """What a ban takes away, by Agora's names (tokens.agora_rest.Privilege)."""

    JOIN_CHANNEL = "join_channel", "join the channel"
    PUBLISH_AUDIO = "publish_audio", "publish audio"
    PUBLISH_VIDEO = "publish_video", "publish video"


# The privilege each lasting kind takes away (a kick takes join_channel for no time).
KIND_PRIVILEGE = {
    ModerationKind.KICK: BanPrivilege.JOIN_CHANNEL,
    ModerationKind.BAN: BanPrivilege.JOIN_CHANNEL,
    ModerationKind.MUTE_AUDIO: BanPrivilege.PUBLISH_AUDIO,
    ModerationKind.MUTE_VIDEO: BanPrivilege.PUBLISH_VIDEO,
}
LASTING_KINDS = (ModerationKind.BAN, ModerationKind.MUTE_AUDIO, ModerationKind.MUTE_VIDEO)
