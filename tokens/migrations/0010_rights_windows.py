import django.core.validators
from django.db import migrations, models

RIGHTS_CHOICES = [
    ("", "none (listen only)"),
    ("audio", "audio"),
    ("video", "video"),
    ("audio,video", "audio and video"),
    ("data", "data"),
    ("audio,data", "audio and data"),
    ("video,data", "video and data"),
    ("audio,video,data", "audio, video and data (publisher)"),
]
ALL_RIGHTS = "audio,video,data"


def rights_from_highest_role(apps, schema_editor):
    """A rule's highest role becomes what it lets the admitted publish: publisher, everything;
    subscriber, nothing (the new field's default)."""
    ChannelRule = apps.get_model("tokens", "ChannelRule")
    ChannelRule.objects.filter(max_role="publisher").update(publish_rights=ALL_RIGHTS)


def highest_role_from_rights(apps, schema_editor):
    """Back: a rule that lets the admitted publish anything was a publisher rule."""
    ChannelRule = apps.get_model("tokens", "ChannelRule")
    ChannelRule.objects.exclude(publish_rights="").update(max_role="publisher")


class Migration(migrations.Migration):
    """Per-media publish rights (roles audio, video, data; channel rules' rights instead of a
    highest role; the rights and publish expiry of each audit row), meeting windows on channel
    rules, and reserved recorder uids (identities without a user, named by their channel).

    The audit table gains two nullable columns without defaults, so no existing row is
    rewritten (rows from before leave them NULL: their role says what they got)."""

    dependencies = [
        ("tokens", "0009_presence"),
    ]

    operations = [
        # Channel rules: the highest role becomes a set of publish rights.
        migrations.AddField(
            model_name="channelrule",
            name="publish_rights",
            field=models.CharField(
                "may publish", max_length=16, choices=RIGHTS_CHOICES, blank=True, default="",
                help_text=(
                    "What the admitted may publish: a token asking for more is refused. Every rule "
                    "admits subscribers (join only)."
                ),
            ),
        ),
        migrations.RunPython(rights_from_highest_role, highest_role_from_rights),
        migrations.RemoveField(model_name="channelrule", name="max_role"),
        # Meeting windows.
        migrations.AddField(
            model_name="channelrule",
            name="starts_at",
            field=models.DateTimeField(
                null=True, blank=True, help_text="Before this (less the early-join margin) the channel is refused."
            ),
        ),
        migrations.AddField(
            model_name="channelrule",
            name="ends_at",
            field=models.DateTimeField(
                null=True,
                blank=True,
                help_text="Tokens end here whatever they ask (Agora then removes the user); after it, refused.",
            ),
        ),
        migrations.AddField(
            model_name="channelrule",
            name="early_join_seconds",
            field=models.PositiveIntegerField(
                "early join (seconds)",
                default=0,
                validators=[django.core.validators.MaxValueValidator(86400)],
                help_text="How long before the start tokens are given.",
            ),
        ),
        migrations.AddConstraint(
            model_name="channelrule",
            constraint=models.CheckConstraint(
                condition=models.Q(publish_rights__in=[text for text, _ in RIGHTS_CHOICES]),
                name="channel_rule_publish_rights",
            ),
        ),
        migrations.AddConstraint(
            model_name="channelrule",
            constraint=models.CheckConstraint(
                condition=models.Q(starts_at__isnull=True)
                | models.Q(ends_at__isnull=True)
                | models.Q(ends_at__gt=models.F("starts_at")),
                name="channel_rule_ends_after_start",
            ),
        ),
        migrations.AddConstraint(
            model_name="channelrule",
            constraint=models.CheckConstraint(
                condition=models.Q(early_join_seconds__lte=86400), name="channel_rule_early_join_range"
            ),
        ),
        # The audit row: roles audio, video, data, recorder; the rights granted and when they end.
        migrations.AlterField(
            model_name="issuedtoken",
            name="role",
            field=models.CharField(
                max_length=10,
                blank=True,
                choices=[
                    ("publisher", "Publisher"),
                    ("subscriber", "Subscriber"),
                    ("audio", "Audio only"),
                    ("video", "Video only"),
                    ("data", "Data stream only"),
                    ("recorder", "Recorder"),
                ],
            ),
        ),
        migrations.AddField(
            model_name="issuedtoken",
            name="publish_rights",
            field=models.CharField(  # noqa: DJ001 (NULL: rows from before rights were recorded)
                max_length=16,
                choices=RIGHTS_CHOICES,
                null=True,
                blank=True,
                help_text="What the token lets its uid publish (RTC privileges 2, 3, 4): none is join only.",
            ),
        ),
        migrations.AddField(
            model_name="issuedtoken",
            name="publish_expires_at",
            field=models.DateTimeField(
                null=True,
                blank=True,
                help_text="When its publish privileges end (at the latest with the token); empty: none granted.",
            ),
        ),
        # Reserved recorder uids: identities without a user, one per channel.
        migrations.AlterModelOptions(
            name="agoraidentity",
            options={
                "ordering": ["created_at", "id"],
                "permissions": [
                    ("publish", "Can request publisher RTC tokens"),
                    ("record", "Can request recorder tokens (a channel's reserved recorder uid)"),
                ],
                "verbose_name": "Agora identity",
                "verbose_name_plural": "Agora identities",
            },
        ),
        migrations.AddField(
            model_name="agoraidentity",
            name="channel",
            field=models.CharField(
                max_length=64,
                blank=True,
                default="",
                editable=False,
                help_text="For a channel's reserved uid (its recorder's): the channel; empty for a user's uid.",
            ),
        ),
        migrations.AddConstraint(
            model_name="agoraidentity",
            constraint=models.CheckConstraint(
                condition=models.Q(channel="") | models.Q(user__isnull=True),
                name="agora_identity_reserved_has_no_user",
            ),
        ),
        migrations.AddConstraint(
            model_name="agoraidentity",
            constraint=models.UniqueConstraint(
                fields=["channel", "slot"],
                condition=~models.Q(channel=""),
                name="agora_identity_one_reserved_uid_per_channel",
            ),
        ),
    ]
