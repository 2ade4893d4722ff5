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


class SuspectReason(models.TextChoices):
    """Why a join reported by Agora looks like a leaked or shared token (a SuspectJoin)."""

    NEVER_ISSUED = "never_issued", "uid never issued an RTC token here"
    NO_LIVE_TOKEN = "no_live_token", "no unexpired token for the channel at join time"
    DUPLICATE_CLIENT = "duplicate_client", "uid already in the channel on another client"


# Computed once: an enum's `.values` builds a new list on every use.
ROLES = tuple(Role.values)
SERVICES = tuple(Service.values)
