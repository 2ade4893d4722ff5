import hashlib

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from tokens import agora, choices, ncs, validators
from tokens.choices import (
    LASTING_KINDS,
    MAIN_SLOT,
    RIGHTS_CHOICES,
    RIGHTS_TEXTS,
    BanPrivilege,
    ModerationKind,
    ModerationSource,
    ModerationState,
)


class AgoraIdentity(models.Model):
    """One Agora uid of a user: the `main` slot's, or one per further stream or device
    ("screen", "phone"...), each chosen once at random and never changed or reused. Two
    clients joining with one uid would knock each other out, hence slots.

    When the user is deleted the rows stay (user becomes NULL) so the uids stay reserved and
    the audit trail keeps meaning one person per uid.

    A channel's reserved uid (its recorder's, slot `recorder`) is a row without a user that
    names its `channel`: drawn the same way from the same unique column, so it can never be a
    user's uid, nor a user's uid ever be it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="agora_identities",
    )
    slot = models.CharField(max_length=32, default=MAIN_SLOT, editable=False)
    uid = models.PositiveBigIntegerField("Agora uid", unique=True, editable=False)
    channel = models.CharField(
        max_length=64,
        blank=True,
        default="",
        editable=False,
        help_text="For a channel's reserved uid (its recorder's): the channel; empty for a user's uid.",
    )
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
            # A reserved uid belongs to a channel, never to a user.
            models.CheckConstraint(
                condition=Q(channel="") | Q(user__isnull=True), name="agora_identity_reserved_has_no_user"
            ),
            # One recorder uid per channel, however many requests race for it.
            models.UniqueConstraint(
                fields=["channel", "slot"],
                condition=~Q(channel=""),
                name="agora_identity_one_reserved_uid_per_channel",
            ),
        ]
        permissions = [
            ("publish", "Can request publisher RTC tokens"),
            ("record", "Can request recorder tokens (a channel's reserved recorder uid)"),
            ("chat_app", "Can request Agora Chat app tokens (the app server's credential; staff only)"),
        ]

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
    service = models.CharField(max_length=16, choices=Service.choices)
    version = models.CharField(max_length=3, choices=Version.choices)
    channel = models.CharField(max_length=64, blank=True)
    uid = models.PositiveBigIntegerField("Agora uid")
    slot = models.CharField(max_length=32, default=MAIN_SLOT)
    # RTM's user id, and Agora Chat's (both str(uid)); empty for RTC and Chat app tokens.
    rtm_user_id = models.CharField("RTM / Chat user id", max_length=64, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, blank=True)
    # NULL, not "": rows written before rights were recorded (their role says what they got).
    # Nullable without a default, so adding it rewrites no row of a large audit table.
    publish_rights = models.CharField(  # noqa: DJ001
        max_length=16,
        choices=RIGHTS_CHOICES,
        null=True,
        blank=True,
        help_text="What the token lets its uid publish (RTC privileges 2, 3, 4): none is join only.",
    )
    publish_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its publish privileges end (at the latest with the token); empty: none granted.",
    )
    source = models.CharField(max_length=6, choices=Source.choices)
    client_ip = models.GenericIPAddressField("client IP", null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    token_sha256 = models.CharField("token SHA-256", max_length=64)
    certificate = models.CharField(
        "signing certificate",
        max_length=15,
        blank=True,
        db_default="",  # rows written before rotation, and raw INSERTs that name no certificate
        help_text="Fingerprint (sha256: and 8 hex digits) of the App Certificate that signed it, never "
        "the certificate; empty for tokens issued before fingerprints were recorded.",
    )
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # never searched by; one index fewer to write per token
        help_text="The admin who issued it from the admin's temporary-token page.",
    )
    # Live revocation (tokens/services/moderation.py): the one change an audit row takes, made
    # through a queryset update() when its user is deactivated, deleted or revoked.
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        help_text="Who revoked it (empty with a revocation time: the server, e.g. on deletion).",
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
    user (`budget:<scope>:<window seconds>:<user id>`, counted in the join path's one statement).

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
    the groups it admits (none: every logged-in user), what it lets them publish, and when
    (a meeting window: from `starts_at`, less an early-join margin, until `ends_at`)."""

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
    moderators = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="moderated_channel_rules",
        help_text="Groups whose members may kick, ban and mute in the channels this rule matches.",
    )
    publish_rights = models.CharField(
        "may publish",
        max_length=16,
        choices=RIGHTS_CHOICES,
        blank=True,
        default="",
        help_text=(
            "What the admitted may publish: a token asking for more is refused. Every rule admits "
            "subscribers (join only)."
        ),
    )
    starts_at = models.DateTimeField(
        null=True, blank=True, help_text="Before this (less the early-join margin) the channel is refused."
    )
    ends_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Tokens end here whatever they ask (Agora then removes the user); after it, refused.",
    )
    early_join_seconds = models.PositiveIntegerField(
        "early join (seconds)",
        default=0,
        validators=[MaxValueValidator(agora.MAX_LIFETIME)],
        help_text="How long before the start tokens are given.",
    )
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pattern"]
        constraints = [
            models.CheckConstraint(
                condition=Q(publish_rights__in=RIGHTS_TEXTS), name="channel_rule_publish_rights"
            ),
            models.CheckConstraint(
                condition=(
                    Q(starts_at__isnull=True) | Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at"))
                ),
                name="channel_rule_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(early_join_seconds__lte=agora.MAX_LIFETIME), name="channel_rule_early_join_range"
            ),
        ]

    def __str__(self) -> str:
        return self.pattern

    def clean(self) -> None:
        validators.validate_channel_pattern(self.pattern)
        validators.validate_window(self.starts_at, self.ends_at, self.early_join_seconds)


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


class ModerationAction(models.Model):
    """One moderation request (kick, ban, mute, lift), written before Agora is asked and carried
    out by a task (tokens/tasks.py) until applied or given up: who asked, when, whom (a user's
    every slot uid, or one uid), which channel, how long, Agora's rule ids (`rules`), and the
    state with the reason it failed."""

    Kind, State, Source = ModerationKind, ModerationState, ModerationSource

    requested_at = models.DateTimeField(default=timezone.now)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        help_text="Empty: the server itself (a revocation on deletion, a leaked token).",
    )
    requested_by_name = models.CharField("requested by (name)", max_length=150, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    channel = models.CharField(max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="agora_moderation_actions",
        db_index=False,  # the (user, newest first) index below serves it
        help_text="Whom it is about; empty for a uid no user owns, or a user since deleted.",
    )
    username = models.CharField(max_length=150, blank=True)
    uids = models.JSONField("Agora uids", default=list, help_text="Every uid it applies to.")
    seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long a ban or mute lasts; 0 for a kick."
    )
    ends_at = models.DateTimeField(null=True, blank=True, help_text="When a ban or mute ends.")
    reason = models.CharField(max_length=200, blank=True)
    lifts = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="lifted_by_actions",
        help_text="The ban or mute a lift undoes.",
    )
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    failure = models.CharField("failure reason", max_length=300, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # The task machinery (tokens/tasks.py): attempts started, the task due to run the next
    # one, when it is due, and how long a running attempt holds the action (its lease: past
    # it, the attempt is taken for dead and the worker's recovery enqueues another).
    attempts = models.PositiveSmallIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    running_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "moderation action"
        ordering = ["-requested_at", "-id"]
        permissions = [("moderate", "Can kick, ban and mute users in Agora channels")]
        indexes = [
            models.Index(fields=["-requested_at", "-id"], name="moderation_newest_first"),
            models.Index(fields=["channel", "-requested_at"], name="moderation_channel"),
            models.Index(fields=["user", "-requested_at"], name="moderation_user"),
            # What the worker's recovery looks at: the few actions still pending.
            models.Index(fields=["next_attempt_at"], name="moderation_pending", condition=Q(state="pending")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind__in=[kind.value for kind in LASTING_KINDS])
                | (Q(seconds__gt=0) & Q(ends_at__isnull=False)),
                name="moderation_ban_has_duration",
            ),
            models.CheckConstraint(
                condition=~Q(kind="lift") | Q(lifts__isnull=False), name="moderation_lift_names_its_ban"
            ),
        ]

    def __str__(self) -> str:
        who = self.username or ", ".join(map(str, self.uids))
        return f"{self.get_kind_display()} {who} in {self.channel!r} ({self.get_state_display()})"

    @property
    def lasting(self) -> bool:
        """A ban or a mute (it has a duration and can be lifted)."""
        return self.kind in LASTING_KINDS


class ModerationRule(models.Model):
    """One of Agora's ban rules an action made, one per uid (Agora's rules are per uid and
    channel): its id stored as soon as Agora answers it, so no retry makes a second one and a
    lift can delete it."""

    action = models.ForeignKey(ModerationAction, on_delete=models.CASCADE, related_name="rules")
    uid = models.PositiveBigIntegerField("Agora uid")
    rule_id = models.PositiveBigIntegerField("Agora rule id", null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="When a lift removed it at Agora.")

    class Meta:
        verbose_name = "Agora ban rule"
        ordering = ["action", "uid"]
        constraints = [
            models.UniqueConstraint(fields=["action", "uid"], name="moderation_rule_one_per_uid"),
        ]

    def __str__(self) -> str:
        return f"rule {self.rule_id or '(none yet)'} for uid {self.uid}"


class ChannelBan(models.Model):
    """A ban or mute the join path enforces while it lasts: no token for `channel` (a ban) or
    no publisher token (a mute) for `user`, read by the audit row's statement itself
    (tokens/joinpath/statements.py). Written with its action, deleted when lifted, purged once
    ended: a small table of live bans, so the join path's probe stays one index lookup however
    long the moderation history grows."""

    Privilege = BanPrivilege

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # the (user, channel, ends_at) index below serves it
    )
    channel = models.CharField(max_length=64)
    privilege = models.CharField(max_length=13, choices=Privilege.choices)
    ends_at = models.DateTimeField()
    action = models.ForeignKey(ModerationAction, on_delete=models.CASCADE, related_name="channel_bans")

    class Meta:
        verbose_name = "channel ban"
        indexes = [models.Index(fields=["user", "channel", "ends_at"], name="channel_ban_probe")]
        constraints = [
            models.UniqueConstraint(fields=["action", "privilege"], name="channel_ban_one_per_action"),
        ]

    def __str__(self) -> str:
        return f"{self.get_privilege_display()} {self.channel!r} until {self.ends_at:%Y-%m-%d %H:%M:%S}"


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
