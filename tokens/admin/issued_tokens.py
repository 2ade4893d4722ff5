"""The audit log's admin: read-only, searched by exact indexed matches, with the tool pages
(inspect, issue, export) and the channel events a row's token was used for."""

import re
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.main import SEARCH_VAR
from django.contrib.auth import get_user_model
from django.core.exceptions import BadRequest
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import path
from django.utils import timezone

from tokens import agora, credentials
from tokens.admin import views as admin_views
from tokens.admin.base import CappedCountPaginator, ReadOnlyAdmin, checked_date_filters, uid_term
from tokens.admin.channel_events import channel_events_after_issue
from tokens.admin.moderation import MODERATE, moderation_buttons
from tokens.models import IssuedToken, token_sha256

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{8}")


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


class CertificateFilter(admin.SimpleListFilter):
    """The tokens one App Certificate signed, by the fingerprint each row keeps: the configured
    primary and secondary, a past certificate named in the URL, or rows from before
    fingerprints were recorded."""

    title = "signing certificate"
    parameter_name = "certificate"
    NOT_RECORDED = "none"

    def lookups(self, request, model_admin):
        configured = {
            credentials.fingerprint(value): label
            for label, value in (
                (credentials.PRIMARY, settings.AGORA_APP_CERTIFICATE),
                (credentials.SECONDARY, settings.AGORA_APP_CERTIFICATE_SECONDARY),
            )
            if agora.is_hex32(value)
        }
        choices = [(fingerprint, f"{label} ({fingerprint})") for fingerprint, label in configured.items()]
        value = self.value()
        if value and value not in configured and _FINGERPRINT.fullmatch(value):
            choices.append((value, f"{value} (no longer configured)"))
        return [*choices, (self.NOT_RECORDED, "not recorded")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == self.NOT_RECORDED:
            return queryset.filter(certificate="")
        if not _FINGERPRINT.fullmatch(value):
            raise BadRequest("certificate: must be a fingerprint (sha256: and 8 hex digits) or none.")
        return queryset.filter(certificate=value)


def _looks_like_a_token(term: str) -> bool:
    return term.startswith(agora.VERSIONS) and len(term) > 64 and term.isascii()


class IssuedTokenAdmin(ReadOnlyAdmin):
    list_display = (
        "issued_at",
        "username",
        "service",
        "role",
        "publish_rights",
        "version",
        "channel",
        "uid",
        "slot",
        "source",
        "issued_by",
        "client_ip",
        "expires_at",
    )
    list_filter = (
        StatusFilter, "service", "role", "version", "source", CertificateFilter, "issued_at", UserFilter,
    )  # fmt: skip
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
        ("publish_rights", "publish_expires_at"),
        ("channel", "uid", "slot", "rtm_user_id"),
        ("client_ip", "user_agent"),
        ("token_sha256", "certificate"),
        "issued_by",
        ("revoked_at", "revoked_by"),
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

        changelist = super().get_changelist_instance(checked_date_filters(request, "issued_at"))
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
        uid = uid_term(term)
        if uid is not None:
            match |= Q(uid=uid)
        if _SHA256.fullmatch(term.lower()):
            match |= Q(token_sha256=term.lower())
        return queryset.filter(match), False

    # The row's page lists who actually joined: Agora's channel events for its uid and channel
    # after issue (channel_events.py).
    readonly_fields = ("channel_events", "moderate")

    def get_fields(self, request, obj=None):
        fields = [*super().get_fields(request, obj), "channel_events"]
        if obj is not None and obj.channel and request.user.has_perm(MODERATE):
            fields.append("moderate")
        return fields

    @admin.display(description="moderate")
    def moderate(self, row: IssuedToken) -> str:
        return moderation_buttons(user_id=row.user_id, channel=row.channel)

    @admin.display(description="joins and leaves after issue")
    def channel_events(self, row: IssuedToken) -> str:
        return channel_events_after_issue(row)
