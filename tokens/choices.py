"""The shared vocabulary of tokens: what a token is for, who may publish, which format, where
it was issued. A leaf module: models, validators, serializers and services all import it, and
it imports nothing of the project but the token engine's version names."""

from django.db import models

from tokens import agora

MAIN_SLOT = "main"


class Service(models.TextChoices):
    RTC = "rtc", "RTC (voice/video)"
    RTM = "rtm", "RTM (messaging)"
    RTC_RTM = "rtc+rtm", "RTC and RTM in one token"


class Role(models.TextChoices):
    PUBLISHER = "publisher", "Publisher"
    SUBSCRIBER = "subscriber", "Subscriber"


class Version(models.TextChoices):
    V006 = agora.VERSION_006, "006 (AccessToken)"
    V007 = agora.VERSION_007, "007 (AccessToken2)"


class Source(models.TextChoices):
    API = "api", "API"
    COMPAT = "compat", "Tutorial-compatible endpoint"
    ADMIN = "admin", "Admin"
    CLI = "cli", "Management command"


# Computed once: an enum's `.values` builds a new list on every use.
ROLES = tuple(Role.values)
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
