"""Read-only audit admin (for everyone, superusers included) and the user's Agora uid."""

import re

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Q

from tokens import agora
from tokens.models import AgoraIdentity, IssuedToken

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never added, changed or deleted through the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _uid_term(term: str) -> int | None:
    # Length first: int() of a huge digit string is slow and, past 4300 digits, an error.
    if len(term) <= 10 and term.isascii() and term.isdigit() and agora.UID_MIN <= int(term) <= agora.UID_MAX:
        return int(term)
    return None


@admin.register(IssuedToken)
class IssuedTokenAdmin(ReadOnlyAdmin):
    list_display = (
        "issued_at",
        "username",
        "service",
        "role",
        "version",
        "channel",
        "uid",
        "source",
        "client_ip",
        "expires_at",
    )
    list_filter = ("service", "role", "version", "source", "issued_at")
    date_hierarchy = "issued_at"
    # The search below does exact, indexed matches on these, so it stays fast on millions of
    # rows (icontains would scan the table).
    search_fields = ("username", "channel", "uid", "token_sha256")
    search_help_text = "Exact match on username, channel, uid or token SHA-256."
    # Only the row's own columns are shown (username is a snapshot), so the changelist runs
    # the same queries whatever the number of rows; no unfiltered COUNT(*) of the whole table.
    show_full_result_count = False
    list_per_page = 100
    fields = (
        ("issued_at", "expires_at"),
        ("user", "username"),
        ("service", "version", "role", "source"),
        ("channel", "uid", "rtm_user_id"),
        ("client_ip", "user_agent"),
        "token_sha256",
    )

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        if changelist.query:
            # A search narrows to a few indexed rows; the date bar's MIN/MAX over them would
            # walk the whole issued_at index when nothing matches (seen at 1M rows: 0.2 s).
            changelist.date_hierarchy = None
        return changelist

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(username=term) | Q(channel=term)
        uid = _uid_term(term)
        if uid is not None:
            match |= Q(uid=uid)
        if _SHA256.fullmatch(term.lower()):
            match |= Q(token_sha256=term.lower())
        return queryset.filter(match), False


@admin.register(AgoraIdentity)
class AgoraIdentityAdmin(ReadOnlyAdmin):
    list_display = ("uid", "user", "created_at")
    list_select_related = ("user",)
    search_fields = ("uid", "user__username")
    search_help_text = "Exact uid or username."
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(user__username=term)
        uid = _uid_term(term)
        if uid is not None:
            match |= Q(uid=uid)
        return queryset.filter(match), False


class AgoraIdentityInline(admin.StackedInline):
    model = AgoraIdentity
    fields = ("uid", "rtm_user_id", "created_at")
    readonly_fields = fields
    can_delete = False
    extra = 0
    verbose_name_plural = "Agora identity (uid never changes)"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


User = get_user_model()
if admin.site.is_registered(User):
    user_admin_class = type(admin.site._registry[User])
    admin.site.unregister(User)
else:  # pragma: no cover - a custom user model without an admin
    user_admin_class = UserAdmin


@admin.register(User)
class UserWithAgoraAdmin(user_admin_class):
    inlines = [*user_admin_class.inlines, AgoraIdentityInline]
