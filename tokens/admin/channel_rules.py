"""The channel rules' admin: the one editable admin, read by AGORA_CHANNEL_POLICY=rules."""

from django.contrib import admin

from tokens.admin.base import ListFilterLookupsOnly
from tokens.models import ChannelRule


class ChannelRuleAdmin(ListFilterLookupsOnly, admin.ModelAdmin):
    """Editable: with AGORA_CHANNEL_POLICY=rules, a change applies to the very next request."""

    list_display = ("pattern", "max_role", "admitted_groups", "moderator_groups", "note", "updated_at")
    list_filter = ("max_role",)
    search_fields = ("pattern", "note")
    filter_horizontal = ("groups", "moderators")
    fields = ("pattern", "max_role", "groups", "moderators", "note")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups", "moderators")

    @admin.display(description="moderators")
    def moderator_groups(self, rule: ChannelRule) -> str:
        return ", ".join(group.name for group in rule.moderators.all()) or "—"

    @admin.display(description="groups")
    def admitted_groups(self, rule: ChannelRule) -> str:
        return ", ".join(group.name for group in rule.groups.all()) or "every logged-in user"
