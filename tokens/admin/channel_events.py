"""Read-only admin for the channel events Agora reports (with their suspect-join flags and the
"Who is in the channel now" page), and what an audit row's page shows of them: who actually
joined with the uid and channel a token was issued for."""

import json
from functools import partial
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import BadRequest
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from tokens import ncs
from tokens.admin import presence as presence_views
from tokens.admin.base import ExactValueFilter, ReadOnlyAdmin, checked_date_filters, uid_term
from tokens.admin.moderation import ModerationButtons
from tokens.models import ChannelEvent, IssuedToken, SuspectJoin

# How many of a uid's events in a channel an audit row's page lists.
EVENTS_AFTER_ISSUE_LIMIT = 50


class PickedUserFilter(admin.RelatedFieldListFilter):
    """All, the user picked (click a name in the list), or uids no user of ours owns: never a
    list of every user."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.empty_value_display = "no user (a uid not issued here)"

    def field_choices(self, field, request, model_admin):
        picked = [v for v in self.lookup_val or [] if len(v) <= 19 and v.isascii() and v.isdigit()]
        users = field.related_model.objects.filter(pk__in=picked[:1])
        return [(user.pk, user.get_username()) for user in users]

    def has_output(self):
        return True


class SuspectFilter(admin.SimpleListFilter):
    """Joins flagged as suspect (any reason, or one): the flags are few, so the list reads them
    first and then only their events."""

    title = "suspect join"
    parameter_name = "suspect"
    ANY = "any"

    def lookups(self, request, model_admin):
        return [(self.ANY, "Flagged (any reason)"), *SuspectJoin.Reason.choices]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        flags = SuspectJoin.objects.all()
        if value != self.ANY:
            if value not in SuspectJoin.Reason.values:
                raise BadRequest(
                    f"suspect: must be {self.ANY} or one of {', '.join(SuspectJoin.Reason.values)}."
                )
            flags = flags.filter(reason=value)
        return queryset.filter(pk__in=flags.values("event_id"))


class ChannelEventAdmin(ModerationButtons, ReadOnlyAdmin):
    list_display = (
        "occurred_at",
        "event_type",
        "channel_link",
        "uid",
        "user_link",
        "slot",
        "client_seq",
        "received_at",
        "suspect",
    )
    list_filter = (
        "event_type",
        SuspectFilter,
        ("channel", ExactValueFilter),
        ("user", PickedUserFilter),
        "occurred_at",
    )
    date_hierarchy = "occurred_at"
    search_fields = ("uid", "channel")
    search_help_text = "Exact match on uid, channel or username."
    list_select_related = ("user",)
    # Sorting by other columns would sort the whole table; facets would count it per filter.
    sortable_by = ("occurred_at",)
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    list_per_page = 100
    fields = (
        ("occurred_at", "received_at"),
        ("event_type", "notice_id"),
        ("channel", "uid", "client_seq"),
        ("user", "slot"),
        "presence_link",
        "suspect_flags",
        "notification_json",
    )

    def get_urls(self):
        view = self.admin_site.admin_view(partial(presence_views.presence_view, self))
        return [path("presence/", view, name="tokens_channelevent_presence"), *super().get_urls()]

    def get_queryset(self, request):
        # One query for a page's flags, whatever the number of rows.
        return super().get_queryset(request).prefetch_related("suspect_flags")

    def changelist_view(self, request, extra_context=None):
        # Filtered to one channel: the object tools offer who is in it now.
        extra_context = {**(extra_context or {}), "presence_channel": request.GET.get("channel__exact")}
        return super().changelist_view(request, extra_context)

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(checked_date_filters(request, "occurred_at"))
        if changelist.query:
            changelist.date_hierarchy = None  # as the audit log's: no MIN/MAX walk after a search
        return changelist

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(channel=term)
        uid = uid_term(term)
        if uid is not None:
            match |= Q(uid=uid)
        # The user's id first (one indexed lookup), so the search stays on this table's indexes.
        user_model = get_user_model()
        owner = user_model.objects.filter(**{user_model.USERNAME_FIELD: term}).values_list("pk", flat=True)
        for pk in owner[:1]:
            match |= Q(user_id=pk)
        return queryset.filter(match), False

    @admin.display(description="channel")
    def channel_link(self, event: ChannelEvent) -> str:
        if not event.channel:
            return self.get_empty_value_display()
        query = urlencode({"channel__exact": event.channel})
        return format_html('<a href="?{}" title="Only this channel">{}</a>', query, event.channel)

    @admin.display(description="user")
    def user_link(self, event: ChannelEvent) -> str:
        if event.user is None:
            return self.get_empty_value_display()
        query = urlencode({"user__id__exact": event.user_id})
        return format_html('<a href="?{}" title="Only this user">{}</a>', query, event.user.get_username())

    @admin.display(description="suspect")
    def suspect(self, event: ChannelEvent) -> str:
        flags = sorted(event.suspect_flags.all(), key=lambda flag: flag.reason)
        links = ((reverse("admin:tokens_suspectjoin_change", args=[flag.pk]), flag.reason) for flag in flags)
        return format_html_join(", ", '<a href="{}">{}</a>', links)

    @admin.display(description="suspect join flags")
    def suspect_flags(self, event: ChannelEvent) -> str:
        flags = sorted(event.suspect_flags.all(), key=lambda flag: flag.reason)
        if not flags:
            return "none"
        return format_html_join(
            "", "<p><strong>{}</strong>: {}</p>", ((flag.get_reason_display(), flag.detail) for flag in flags)
        )

    @admin.display(description="presence")
    def presence_link(self, event: ChannelEvent) -> str:
        if not event.channel:
            return self.get_empty_value_display()
        url = f"{reverse('admin:tokens_channelevent_presence')}?{urlencode({'channel': event.channel})}"
        return format_html('<a href="{}">Who is in {} now</a>', url, event.channel)

    @admin.display(description="notification")
    def notification_json(self, event: ChannelEvent) -> str:
        text = json.dumps(event.notification, indent=2, ensure_ascii=False)
        return format_html('<pre style="margin: 0; white-space: pre-wrap">{}</pre>', text)


def channel_events_after_issue(row: IssuedToken) -> str:
    """The joins, leaves and role changes Agora reported for the row's uid in its channel
    from the row's issue time on (the first EVENTS_AFTER_ISSUE_LIMIT, oldest first)."""
    context = {"row": row, "listening": bool(settings.AGORA_NCS_SECRET)}
    if row.channel:
        # Both in whole seconds (a token's issue time, Agora's ts): a join in the second of
        # issue counts.
        since = row.issued_at
        events = list(
            ChannelEvent.objects.filter(
                uid=row.uid,
                channel=row.channel,
                event_type__in=ncs.USER_EVENT_TYPES,
                occurred_at__gte=since,
            ).order_by("occurred_at", "client_seq", "id")[: EVENTS_AFTER_ISSUE_LIMIT + 1]
        )
        query = {"q": row.uid, "channel__exact": row.channel, "occurred_at__gte": since.isoformat()}
        context.update(
            events=events[:EVENTS_AFTER_ISSUE_LIMIT],
            more=len(events) > EVENTS_AFTER_ISSUE_LIMIT,
            all_url=f"{reverse('admin:tokens_channelevent_changelist')}?{urlencode(query)}",
        )
    return render_to_string("admin/tokens/issuedtoken/channel_events.html", context)
