"""Read-only audit admin (for everyone, superusers included) and the user's Agora uid."""

import re
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial

from django.contrib import admin
from django.contrib.admin.views.main import SEARCH_VAR
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import BadRequest
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.html import format_html

from tokens import agora
from tokens.admin import views as admin_views
from tokens.models import AgoraIdentity, ChannelRule, IssuedToken, token_sha256

_SHA256 = re.compile(r"[0-9a-f]{64}")


_FIELD_FILTER_LOOKUPS = ("exact", "isnull", "id__exact", "gte", "lt")


class ListFilterLookupsOnly:
    """A changelist's URL may filter by what its list_filter and date bar offer, nothing else:
    Django's default also lets any column be filtered with any lookup (regexes included)."""

    def lookup_allowed(self, lookup, value, request=None):
        allowed = set()
        for entry in self.list_filter:
            if isinstance(entry, str):
                allowed.update(f"{entry}__{suffix}" for suffix in _FIELD_FILTER_LOOKUPS)
            elif isinstance(entry, tuple | list):
                allowed.update(f"{entry[0]}__{suffix}" for suffix in _FIELD_FILTER_LOOKUPS)
            else:  # a SimpleListFilter
                allowed.add(entry.parameter_name)
        if self.date_hierarchy:
            allowed.update(f"{self.date_hierarchy}__{part}" for part in ("year", "month", "day"))
        return lookup in allowed


class ReadOnlyAdmin(ListFilterLookupsOnly, admin.ModelAdmin):
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


# Date parts the date bar may ask for, and the range a day, month or year after them fits in.
_DATE_PARTS = {"year": (1, 9998), "month": (1, 12), "day": (1, 31)}


def _checked_date_filters(request, field: str):
    """The request with its date filters on `field` validated (400 naming the parameter when
    out of range or unparsable) and made time-zone aware, so the changelist never computes
    a date past year 9999 or compares against a naive one."""
    query = request.GET.copy()
    for part, (low, high) in _DATE_PARTS.items():
        name = f"{field}__{part}"
        for value in query.getlist(name):
            if not (len(value) <= 4 and value.isascii() and value.isdigit() and low <= int(value) <= high):
                raise BadRequest(f"{name}: must be a whole number within {low}..{high}.")
    for name in (f"{field}__gte", f"{field}__lt"):
        values = []
        for value in query.getlist(name):
            moment = parse_datetime(value) if len(value) <= 40 else None
            if moment is None:
                day = parse_date(value) if len(value) <= 10 else None
                moment = datetime(day.year, day.month, day.day) if day else None
            if moment is None or not 1 <= moment.year <= 9998:
                raise BadRequest(f"{name}: must be a date or date-time within years 1..9998.")
            values.append(str(moment if moment.tzinfo else moment.replace(tzinfo=UTC)))
        if values:
            query.setlist(name, values)
    request.GET = query
    return request


class StatusFilter(admin.SimpleListFilter):
    """Active (not yet expired) or expired, by expires_at. Active tokens were issued within the
    longest lifetime Agora allows, which bounds the scan to the newest rows of the index."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(
                expires_at__gt=now, issued_at__gt=now - timedelta(seconds=agora.MAX_LIFETIME)
            )
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        return queryset


class UserFilter(admin.SimpleListFilter):
    """One user's tokens (linked from the user's page). Lists no users of its own: there may be
    millions; it names the one chosen."""

    title = "user"
    parameter_name = "user"

    def lookups(self, request, model_admin):
        value = self.value()
        if not (value and value.isascii() and value.isdigit() and len(value) <= 18):
            return []
        user = get_user_model().objects.filter(pk=int(value)).first()
        return [(value, user.get_username() if user else f"deleted user #{value}")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise BadRequest("user: must be a user id.")
        return queryset.filter(user_id=int(value))


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows (one bounded query) instead of COUNT(*) over every row that
    matches: on tens of millions of rows a full count alone takes seconds."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.COUNT_CAP + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.COUNT_CAP


def _looks_like_a_token(term: str) -> bool:
    return term.startswith(agora.VERSIONS) and len(term) > 64 and term.isascii()


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
        "slot",
        "source",
        "issued_by",
        "client_ip",
        "expires_at",
    )
    list_filter = (StatusFilter, "service", "role", "version", "source", "issued_at", UserFilter)
    date_hierarchy = "issued_at"
    # The search below does exact, indexed matches on these, so it stays fast on millions of
    # rows (icontains would scan the table).
    search_fields = ("username", "channel", "uid", "token_sha256")
    search_help_text = (
        "Exact match on username, channel, uid or token SHA-256 — or paste a whole token: "
        "it is replaced by its SHA-256 before the search."
    )
    # Only the row's own columns are shown (username is a snapshot, issued_by is joined), so
    # the changelist runs the same few queries whatever the number of rows: no COUNT(*) of
    # the table (a capped count), and a date bar that reads two index ends, not a DISTINCT.
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_select_related = ("issued_by",)
    list_per_page = 50  # rendering, not the queries, is what a page costs (bench/RESULTS.md)
    fields = (
        ("issued_at", "expires_at"),
        ("user", "username"),
        ("service", "version", "role", "source"),
        ("channel", "uid", "slot", "rtm_user_id"),
        ("client_ip", "user_agent"),
        "token_sha256",
        "issued_by",
    )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "inspect/", wrap(partial(admin_views.inspect_view, self)), name="tokens_issuedtoken_inspect"
            ),
            path("issue/", wrap(partial(admin_views.issue_view, self)), name="tokens_issuedtoken_issue"),
            path(
                "export.csv", wrap(partial(admin_views.export_view, self)), name="tokens_issuedtoken_export"
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        term = request.GET.get(SEARCH_VAR, "").strip()
        if _looks_like_a_token(term):
            # A pasted token leaves the URL (history, bookmarks, logs) at once: its hash searches.
            query = request.GET.copy()
            query[SEARCH_VAR] = token_sha256(term)
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        extra_context = {
            **(extra_context or {}),
            "can_issue_tokens": request.user.has_perm("tokens.issue_from_admin"),
            "export_query": request.GET.urlencode(),
        }
        return super().changelist_view(request, extra_context)

    def get_changelist_instance(self, request):

        changelist = super().get_changelist_instance(_checked_date_filters(request, "issued_at"))
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

    # The row's page lists who actually joined: Agora's channel events for its uid and channel
    # after issue (tokens/admin/channel_events.py).
    readonly_fields = ("channel_events",)

    def get_fields(self, request, obj=None):
        return [*super().get_fields(request, obj), "channel_events"]

    @admin.display(description="joins and leaves after issue")
    def channel_events(self, row: IssuedToken) -> str:
        from tokens.admin.channel_events import channel_events_after_issue

        return channel_events_after_issue(row)


@admin.register(AgoraIdentity)
class AgoraIdentityAdmin(ReadOnlyAdmin):
    list_display = ("uid", "user", "slot", "created_at")
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


@admin.register(ChannelRule)
class ChannelRuleAdmin(ListFilterLookupsOnly, admin.ModelAdmin):
    """Editable: with AGORA_CHANNEL_POLICY=rules, a change applies to the very next request."""

    list_display = ("pattern", "max_role", "admitted_groups", "note", "updated_at")
    list_filter = ("max_role",)
    search_fields = ("pattern", "note")
    filter_horizontal = ("groups",)
    fields = ("pattern", "max_role", "groups", "note")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description="groups")
    def admitted_groups(self, rule: ChannelRule) -> str:
        return ", ".join(group.name for group in rule.groups.all()) or "every logged-in user"


User = get_user_model()
if admin.site.is_registered(User):
    user_admin_class = type(admin.site._registry[User])
    admin.site.unregister(User)
else:  # pragma: no cover - a custom user model without an admin
    user_admin_class = UserAdmin


@admin.register(User)
class UserWithAgoraAdmin(ListFilterLookupsOnly, user_admin_class):
    inlines = [*user_admin_class.inlines, AgoraIdentityInline]
    readonly_fields = (*user_admin_class.readonly_fields, "agora_tokens")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [*fieldsets, ("Agora", {"fields": ("agora_tokens",)})]

    @admin.display(description="Issued tokens")
    def agora_tokens(self, user) -> str:
        url = reverse("admin:tokens_issuedtoken_changelist") + f"?user={user.pk}"
        return format_html(
            '<a href="{}" id="user-agora-tokens">This user\u2019s tokens in the audit log</a>', url
        )


# Registers the channel events' admin (it builds on the classes above).
from tokens.admin import channel_events  # noqa: E402, F401
