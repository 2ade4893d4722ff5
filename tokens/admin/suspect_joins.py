"""Read-only admin for the suspect joins: joins Agora reported that the issuance log cannot
account for (a uid never issued here, no live token for the channel, a second client)."""

from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from tokens.admin.base import (
    CappedCountPaginator,
    ExactValueFilter,
    ReadOnlyAdmin,
    checked_date_filters,
    uid_term,
)
from tokens.admin.channel_events import PickedUserFilter
from tokens.models import SuspectJoin


class SuspectJoinAdmin(ReadOnlyAdmin):
    list_display = (
        "detected_at",
        "reason",
        "channel_link",
        "uid",
        "user_link",
        "slot",
        "join_link",
        "detail",
    )
    list_filter = (
        "reason",
        ("channel", ExactValueFilter),
        ("user", PickedUserFilter),
        "detected_at",
    )
    date_hierarchy = "detected_at"
    search_fields = ("uid", "channel")
    search_help_text = "Exact match on uid, channel or username."
    list_select_related = ("user",)
    sortable_by = ("detected_at",)
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 100
    fields = (
        ("detected_at", "reason"),
        ("channel", "uid"),
        ("user", "slot"),
        ("joined_at", "event"),
        "presence_link",
        "detail",
    )

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(checked_date_filters(request, "detected_at"))
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
        user_model = get_user_model()
        owner = user_model.objects.filter(**{user_model.USERNAME_FIELD: term}).values_list("pk", flat=True)
        for pk in owner[:1]:
            match |= Q(user_id=pk)
        return queryset.filter(match), False

    @admin.display(description="channel")
    def channel_link(self, flag: SuspectJoin) -> str:
        query = urlencode({"channel__exact": flag.channel})
        return format_html('<a href="?{}" title="Only this channel">{}</a>', query, flag.channel)

    @admin.display(description="user")
    def user_link(self, flag: SuspectJoin) -> str:
        if flag.user is None:
            return self.get_empty_value_display()
        query = urlencode({"user__id__exact": flag.user_id})
        return format_html('<a href="?{}" title="Only this user">{}</a>', query, flag.user.get_username())

    @admin.display(description="join (Agora)")
    def join_link(self, flag: SuspectJoin) -> str:
        url = reverse("admin:tokens_channelevent_change", args=[flag.event_id])
        return format_html('<a href="{}">{}</a>', url, f"{flag.joined_at:%Y-%m-%d %H:%M:%S}")

    @admin.display(description="presence")
    def presence_link(self, flag: SuspectJoin) -> str:
        url = f"{reverse('admin:tokens_channelevent_presence')}?{urlencode({'channel': flag.channel})}"
        return format_html('<a href="{}">Who is in {} now</a>', url, flag.channel)
