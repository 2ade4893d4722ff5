import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tokens import agora, choices, ncs, validators
from tokens.choices import MAIN_SLOT


class AgoraIdentity(models.Model):
    """One Agora uid of a user: the `main` slot's, or one per further stream or device
    ("screen", "phone"...), each chosen once at random and never changed or reused. Two
    clients joining with one uid would knock each other out, hence slots.

    When the user is deleted the rows stay (user becomes NULL) so the uids stay reserved and
    the audit trail keeps meaning one person per uid.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="agora_identities",
    )
    slot = models.CharField(max_length=32, default=MAIN_SLOT, editable=False)
    uid = models.PositiveBigIntegerField("Agora uid", unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "Agora identity"
        verbose_name_plural = "Agora identities"
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(uid__gte=agora.UID_MIN) & Q(uid__lte=agora.UID_MAX),
                name="agora_identity_uid_range",
            ),
            models.UniqueConstraint(fields=["user", "slot"], name="agora_identity_one_uid_per_slot"),
        ]
        permissions = [("publish", "Can request publisher RTC tokens")]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loaded_uid = self.uid

    def __str__(self) -> str:
        return f"uid {self.uid} ({self.slot})"

    def save(self, *args, **kwargs):
        if not self._state.adding and self.uid != self._loaded_uid:
            raise ValueError("an Agora uid never changes once issued")
        super().save(*args, **kwargs)
        self._loaded_uid = self.uid

    @property
    def rtm_user_id(self) -> str:
        return str(self.uid)


def token_sha256(token: str) -> str:
    """The audit log's fingerprint of a token (the token itself is never stored)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class AppendOnlyQuerySet(models.QuerySet):
    # No update() guard: deleting a user must still be able to SET_NULL the user column.
    def delete(self):
        raise TypeError(self.model.append_only_message)


class AppendOnlyModel(models.Model):
    """Rows written once and kept: saving an existing row or deleting one, a row at a time or
    through the queryset, is a TypeError saying `append_only_message`."""

    append_only_message = "this table is append-only"

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError(self.append_only_message)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError(self.append_only_message)


class IssuedToken(AppendOnlyModel):
    """One row per issued token, written in the same transaction that makes the token.

    The token itself is a bearer credential and is never stored: only its SHA-256.
    """

    Service, Role, Version, Source = choices.Service, choices.Role, choices.Version, choices.Source

    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="issued_agora_tokens",
        db_index=False,  # the (user, newest first) index below serves it
    )
    username = models.CharField(max_length=150)
    service = models.CharField(max_length=7, choices=Service.choices)
    version = models.CharField(max_length=3, choices=Version.choices)
    channel = models.CharField(max_length=64, blank=True)
    uid = models.PositiveBigIntegerField("Agora uid")
    slot = models.CharField(max_length=32, default=MAIN_SLOT)
    rtm_user_id = models.CharField("RTM user id", max_length=64, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, blank=True)
    source = models.CharField(max_length=6, choices=Source.choices)
    client_ip = models.GenericIPAddressField("client IP", null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    token_sha256 = models.CharField("token SHA-256", max_length=64)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # never searched by; one index fewer to write per token
        help_text="The admin who issued it from the admin's temporary-token page.",
    )

    append_only_message = "the token audit log is append-only"

    class Meta:
        verbose_name = "issued token"
        ordering = ["-issued_at", "-id"]
        permissions = [("issue_from_admin", "Can issue temporary tokens from the admin")]

        indexes = [
            # The admin's newest-first pages (ORDER BY issued_at DESC, id DESC LIMIT n) and
            # date drill-downs, without sorting the table.
            models.Index(fields=["-issued_at", "-id"], name="issued_token_newest_first"),
            # The admin's exact-match search. Declared here rather than with db_index, which
            # on PostgreSQL adds a LIKE index per column that no query uses.
            models.Index(fields=["username"], name="issued_token_username"),
            models.Index(fields=["channel"], name="issued_token_channel"),
            models.Index(fields=["uid"], name="issued_token_uid"),
            models.Index(fields=["token_sha256"], name="issued_token_sha256"),
            # A user's tokens newest first (the user page's link), and SET_NULL on deletion.
            models.Index(fields=["user", "-issued_at"], name="issued_token_user_newest"),
            # Tokens people issued by hand are rare among millions: filtering for them must
            # not walk the whole newest-first index. Partial, so API traffic never writes it.
            models.Index(
                fields=["-issued_at"], name="issued_token_by_hand", condition=Q(source__in=["admin", "cli"])
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(uid__gte=agora.UID_MIN) & Q(uid__lte=agora.UID_MAX),
                name="issued_token_uid_range",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("issued_at")),
                name="issued_token_expires_after_issue",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.version} for {self.username} at {self.issued_at:%Y-%m-%d %H:%M:%S}"


class Counter(models.Model):
    """A windowed counter, updated with one atomic upsert: login attempts of one account or
    client IP (`account:<sha256>`, `ip:<address>`), and on PostgreSQL the token budget of one
    user (`budget:<scope>:<user id>`, counted in the join path's one statement).

    Kept in the database, which every process and host shares in every deployment (the
    embedded one included), so concurrent requests cannot slip past a limit. Rows past
    `resets_at` are dead and purged by `manage.py purge_expired`.
    """

    key = models.CharField(max_length=80, unique=True)
    count = models.PositiveIntegerField()
    resets_at = models.DateTimeField()

    class Meta:
        verbose_name = "counter"

    def __str__(self) -> str:
        return f"{self.key}: {self.count} until {self.resets_at:%Y-%m-%d %H:%M:%S}"


class ChannelRule(models.Model):
    """Which channels logged-in users may join, with `AGORA_CHANNEL_POLICY=rules`: a pattern,
    the groups it admits (none: every logged-in user) and the highest role it grants."""

    pattern = models.CharField(
        max_length=80,
        unique=True,
        help_text=(
            "An exact channel name, or a prefix ending in * (team-*). {uid} and {username} stand "
            "for the caller's own main uid and username: dm-{uid}-* gives each user private channels."
        ),
    )
    groups = models.ManyToManyField(
        "auth.Group", blank=True, help_text="Admitted groups; none admits every logged-in user."
    )
    max_role = models.CharField(
        "highest role",
        max_length=10,
        choices=IssuedToken.Role.choices,
        default=IssuedToken.Role.SUBSCRIBER,
        help_text="Publisher also admits subscribers.",
    )
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pattern"]

    def __str__(self) -> str:
        return self.pattern

    def clean(self) -> None:
        validators.validate_channel_pattern(self.pattern)


class ChannelEvent(AppendOnlyModel):
    """One RTC channel event Agora reported (Notifications), stored once per noticeId: who
    actually joined and left which channel, with the uid traced to our user and slot."""

    class EventType(models.IntegerChoices):
        CHANNEL_CREATE = ncs.CHANNEL_CREATE, "channel created"
        CHANNEL_DESTROY = ncs.CHANNEL_DESTROY, "channel destroyed"
        BROADCASTER_JOIN = ncs.BROADCASTER_JOIN, "broadcaster joined"
        BROADCASTER_LEAVE = ncs.BROADCASTER_LEAVE, "broadcaster left"
        AUDIENCE_JOIN = ncs.AUDIENCE_JOIN, "audience joined"
        AUDIENCE_LEAVE = ncs.AUDIENCE_LEAVE, "audience left"
        COMMUNICATION_JOIN = ncs.COMMUNICATION_JOIN, "user joined (communication)"
        COMMUNICATION_LEAVE = ncs.COMMUNICATION_LEAVE, "user left (communication)"
        ROLE_TO_BROADCASTER = ncs.ROLE_TO_BROADCASTER, "role changed to broadcaster"
        ROLE_TO_AUDIENCE = ncs.ROLE_TO_AUDIENCE, "role changed to audience"

    notice_id = models.CharField("notice id", max_length=ncs.MAX_NOTICE_ID)
    # Types Agora adds later are stored too, shown by number.
    event_type = models.PositiveIntegerField(choices=EventType.choices)
    channel = models.CharField(max_length=ncs.MAX_CHANNEL, blank=True)
    uid = models.PositiveBigIntegerField("Agora uid", null=True, blank=True)  # none: channel events
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agora_channel_events",
        db_index=False,  # the (user, occurred_at) index below serves it
        help_text="The owner of the uid when the event arrived; empty for a uid this server never issued.",
    )
    slot = models.CharField(max_length=32, blank=True)
    client_seq = models.PositiveBigIntegerField(
        "client sequence", null=True, blank=True, help_text="Agora's order of one user's events."
    )
    occurred_at = models.DateTimeField(help_text="When it happened at Agora (the payload's ts).")
    received_at = models.DateTimeField(default=timezone.now)
    notification = models.JSONField(help_text="The whole notification as Agora sent it.")

    append_only_message = "channel events are append-only"

    class Meta:
        verbose_name = "channel event"
        ordering = ["-occurred_at", "-id"]
        indexes = [
            # The admin's newest-first pages and date drill-downs.
            models.Index(fields=["-occurred_at", "-id"], name="channel_event_newest_first"),
            # An audit row's joins and leaves: uid U in channel C from time T on; and the
            # admin's exact uid search.
            models.Index(fields=["uid", "channel", "occurred_at"], name="channel_event_uid_channel"),
            # The admin's channel search and filter, its event type and user filters.
            models.Index(fields=["channel", "-occurred_at"], name="channel_event_channel"),
            models.Index(fields=["event_type", "-occurred_at"], name="channel_event_type"),
            models.Index(fields=["user", "-occurred_at"], name="channel_event_user"),
            # A channel's last create or destroy, where its presence starts again: one probe
            # whatever the channel's traffic. Not a partial index on those two types: with the
            # types bound as parameters SQLite cannot prove the query matches its condition.
            models.Index(fields=["channel", "event_type", "-occurred_at"], name="channel_event_channel_type"),
        ]
        constraints = [
            # Agora resends a notification until answered: each is stored once. A constraint
            # rather than unique=True, which on PostgreSQL adds a LIKE index nothing uses.
            models.UniqueConstraint(fields=["notice_id"], name="channel_event_one_per_notice"),
            models.CheckConstraint(
                condition=Q(uid__isnull=True) | Q(uid__lte=ncs.UID_MAX),
                name="channel_event_uid_range",
            ),
        ]

    def __str__(self) -> str:
        who = "" if self.uid is None else f" uid {self.uid}"
        return (
            f"{self.get_event_type_display()} {self.channel!r}{who} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"
        )


class SuspectJoin(AppendOnlyModel):
    """A join Agora reported that looks like a leaked or shared token, and why: a uid this
    server never issued an RTC token for, a uid without an unexpired token for the channel at
    join time, or a uid already in the channel on another client. Written when the join
    arrives (tokens/services/suspects.py); one row per (join, reason)."""

    Reason = choices.SuspectReason

    event = models.ForeignKey(
        ChannelEvent,
        on_delete=models.CASCADE,
        related_name="suspect_flags",
        db_index=False,  # the (event, reason) constraint below serves it
        help_text="The join Agora reported.",
    )
    reason = models.CharField(max_length=16, choices=Reason.choices)
    # The join's own fields, copied so the list filters and sorts without a join.
    channel = models.CharField(max_length=ncs.MAX_CHANNEL)
    uid = models.PositiveBigIntegerField("Agora uid")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # the (user, newest first) index below serves it
        help_text="The owner of the uid; empty for a uid this server never issued.",
    )
    slot = models.CharField(max_length=32, blank=True)
    joined_at = models.DateTimeField(help_text="When the join happened at Agora (the payload's ts).")
    detected_at = models.DateTimeField(default=timezone.now)
    detail = models.CharField(max_length=500, blank=True, help_text="What the rule found.")

    append_only_message = "suspect joins are append-only"

    class Meta:
        verbose_name = "suspect join"
        ordering = ["-detected_at", "-id"]
        indexes = [
            models.Index(fields=["-detected_at", "-id"], name="suspect_join_newest_first"),
            models.Index(fields=["reason", "-detected_at"], name="suspect_join_reason"),
            models.Index(fields=["channel", "-detected_at"], name="suspect_join_channel"),
            models.Index(fields=["uid", "-detected_at"], name="suspect_join_uid"),
            models.Index(fields=["user", "-detected_at"], name="suspect_join_user"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event", "reason"], name="suspect_join_one_per_reason"),
            models.CheckConstraint(condition=Q(uid__lte=ncs.UID_MAX), name="suspect_join_uid_range"),
        ]

    def __str__(self) -> str:
        return f"{self.reason}: uid {self.uid} in {self.channel!r} at {self.joined_at:%Y-%m-%d %H:%M:%S}"
