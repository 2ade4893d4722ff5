"""The users' Agora identities: a read-only admin of every uid, and the inline that lists a
user's slots on the user's page."""

from django.contrib import admin
from django.db.models import Q

from tokens.admin.base import ReadOnlyAdmin, uid_term
from tokens.models import AgoraIdentity


class AgoraIdentityAdmin(ReadOnlyAdmin):
    list_display = ("uid", "user", "slot", "channel", "created_at")
    list_select_related = ("user",)
    search_fields = ("uid", "user__username")
    search_help_text = "Exact uid or username."
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(user__username=term)
        uid = uid_term(term)
        if uid is not None:
            match |= Q(uid=uid)
        return queryset.filter(match), False


class AgoraIdentityInline(admin.TabularInline):
    model = AgoraIdentity
    fields = ("slot", "uid", "rtm_user_id", "created_at")
    readonly_fields = fields
    can_delete = False
    extra = 0
    verbose_name = "Agora slot"
    verbose_name_plural = "Agora slots (one uid each; a uid never changes)"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
