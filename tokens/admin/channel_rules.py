"""The channel rules' admin: the one editable admin, read by AGORA_CHANNEL_POLICY=rules."""

from django.contrib import admin
from django.utils import timezone

from tokens.admin.base import ListFilterLookupsOnly
from tokens.models import ChannelRule


def _moment(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")


class ChannelRuleAdmin(ListFilterLookupsOnly, admin.ModelAdmin):
    """Editable: with AGORA_CHANNEL_POLICY=rules, a change applies to the very next request."""

    list_display = (
        "pattern",
        "publish_rights",
        "window",
        "admitted_groups",
        "moderator_groups",
        "note",
        "updated_at",
    )
    list_filter = ("publish_rights",)
    search_fields = ("pattern", "note")
    filter_horizontal = ("groups", "moderators")
    fieldsets = (
        (None, {"fields": ("pattern", "publish_rights", "groups", "moderators", "note")}),
        (
            "Meeting window (optional)",
            {
                "fields": (("starts_at", "ends_at"), "early_join_seconds"),
                "description": (
                    "Tokens are given from the start (less the early-join margin) until the end, "
                    "and end at the end whatever they ask: Agora then removes the user. Before: "
                    "403 not_started; after: 403 ended."
                ),
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups", "moderators")

    @admin.display(description="groups")
    def admitted_groups(self, rule: ChannelRule) -> str:
        return ", ".join(group.name for group in rule.groups.all()) or "every logged-in user"

    @admin.display(description="moderators")
    def moderator_groups(self, rule: ChannelRule) -> str:
        return ", ".join(group.name for group in rule.moderators.all()) or "—"

    @admin.display(description="window", ordering="starts_at")
    def window(self, rule: ChannelRule) -> str:
        if rule.starts_at is None and rule.ends_at is None:
            return "always"
        start = "…" if rule.starts_at is None else _moment(rule.starts_at)
        end = "…" if rule.ends_at is None else _moment(rule.ends_at)
        early = f", join {rule.early_join_seconds} s early" if rule.early_join_seconds else ""
        return f"{start} to {end}{early}"
