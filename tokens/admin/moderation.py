"""Moderation in the admin: the list of actions (filters by state, kind, channel, user; lift
from there), an action's page with its Agora rules, the form that kicks, bans or mutes a user
in a channel (reached from a user, an audit row or a channel event), and "revoke everything"
on a user. Staff need the tokens.moderate permission; without Agora's REST credentials every
page says which settings are missing and nothing is sent."""

from __future__ import annotations

from functools import partial
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from tokens import validators
from tokens.admin.base import ExactValueFilter, ReadOnlyAdmin
from tokens.agora_rest import rest_not_configured_reason
from tokens.choices import LASTING_KINDS
from tokens.exceptions import TokenServiceError
from tokens.models import ModerationAction, ModerationRule
from tokens.services import moderation

MODERATE = "tokens.moderate"
# The durations the form offers, in minutes (Agora's `time`: 1..1440).
DURATIONS = [(5, "5 minutes"), (15, "15 minutes"), (60, "1 hour"), (240, "4 hours"), (1440, "24 hours")]
BUTTONS = (
    ("kick", "Kick"),
    ("ban", "Ban for …"),
    ("mute_audio", "Mute audio for …"),
    ("mute_video", "Mute video for …"),
)


def not_configured_message() -> str:
    """Why moderation is off ("" when it is on), naming the settings."""
    reason = rest_not_configured_reason()
    if not reason:
        return ""
    return (
        f"Moderation is off: {reason}. Set AGORA_CUSTOMER_ID and AGORA_CUSTOMER_SECRET to a RESTful "
        "API key from Agora Console (Developer Toolkit > RESTful API)."
    )


def moderation_buttons(*, user_id: int | None, channel: str = "") -> str:
    """Links to the moderation form for this user (every slot) in this channel, one per action,
    for the pages of a user, an audit row and a channel event."""
    if user_id is None:
        return "—"
    url = reverse("admin:tokens_moderationaction_moderate")
    links = [
        (f"{url}?{urlencode({'user': user_id, 'channel': channel, 'action': action})}", action, label)
        for action, label in BUTTONS
    ]
    return format_html_join(
        " ", '<a class="button moderation-{}" href="{}">{}</a>', ((a, u, label) for u, a, label in links)
    )


class ModerationRuleInline(admin.TabularInline):
    model = ModerationRule
    fields = ("uid", "rule_id", "created_at", "deleted_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("tokens.view_moderationaction")  # part of its action

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.action(description="Lift the selected bans and mutes", permissions=["moderate"])
def lift_selected(model_admin, request, queryset):
    lifted = refused = 0
    for action in queryset.filter(kind__in=LASTING_KINDS):
        try:
            moderation.lift_action(action=action, requested_by=request.user, source=moderation.Source.ADMIN)
            lifted += 1
        except TokenServiceError as exc:
            refused += 1
            last = exc.message
    if lifted:
        model_admin.message_user(
            request, f"{lifted} lifted (the worker removes them at Agora).", messages.SUCCESS
        )
    if refused:
        model_admin.message_user(request, f"{refused} not lifted: {last}", messages.WARNING)


class ModerationActionAdmin(ReadOnlyAdmin):
    list_display = (
        "requested_at", "kind", "channel", "username", "uid_list", "ends_at", "state", "failure",
        "requested_by_name", "source",
    )  # fmt: skip
    list_filter = ("state", "kind", "source", ("channel", ExactValueFilter), ("username", ExactValueFilter))
    list_select_related = ("lifts",)
    search_fields = ("channel", "username")
    search_help_text = "Exact match on channel or username."
    show_facets = admin.ShowFacets.NEVER
    actions = [lift_selected]
    inlines = [ModerationRuleInline]
    fields = (
        ("kind", "state", "source"),
        ("channel", "user", "username", "uids"),
        ("seconds", "ends_at", "reason"),
        ("requested_at", "requested_by", "requested_by_name"),
        ("applied_at", "failure"),
        ("lifts", "lifted_at", "lifted_by"),
        ("attempts", "next_attempt_at", "running_until"),
    )

    @admin.display(description="uids")
    def uid_list(self, action: ModerationAction) -> str:
        return ", ".join(map(str, action.uids))

    def has_moderate_permission(self, request) -> bool:
        return request.user.has_perm(MODERATE)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(channel=term) | queryset.filter(username=term), False

    def changelist_view(self, request, extra_context=None):
        problem = not_configured_message()
        if problem:
            self.message_user(request, problem, messages.WARNING)
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("moderate/", wrap(partial(moderate_view, self)), name="tokens_moderationaction_moderate"),
            path(
                "revoke/<int:user_id>/",
                wrap(partial(revoke_view, self)),
                name="tokens_moderationaction_revoke",
            ),
            *super().get_urls(),
        ]


# --- the tool pages ----------------------------------------------------------------------------


class ModerateForm(forms.Form):
    channel = forms.CharField(max_length=validators.MAX_NAME_BYTES, strip=False)
    action = forms.ChoiceField(choices=[(a, label.replace(" for …", "")) for a, label in BUTTONS])
    minutes = forms.TypedChoiceField(
        choices=[("", "—"), *DURATIONS], coerce=int, empty_value=None, required=False,
        help_text="How long a ban or mute lasts; a kick takes none.",
    )  # fmt: skip
    reason = forms.CharField(max_length=200, required=False)


def _context(model_admin, request, title: str, **extra) -> dict:
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "has_view_permission": model_admin.has_view_permission(request),
        "not_configured": not_configured_message(),
        **extra,
    }


def _target(request):
    value = request.GET.get("user", "")
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise PermissionDenied  # no user named: nothing to moderate
    return get_object_or_404(get_user_model(), pk=int(value))


def moderate_view(model_admin, request):
    """Kick, ban or mute one user (every slot uid) in one channel."""
    if not request.user.has_perm(MODERATE):
        raise PermissionDenied
    target = _target(request)
    initial = {"channel": request.GET.get("channel", ""), "action": request.GET.get("action", "kick")}
    form = ModerateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid() and not not_configured_message():
        data = form.cleaned_data
        try:
            action = moderation.moderate(
                channel=data["channel"], kind=data["action"], user=target, minutes=data["minutes"],
                reason=data["reason"], requested_by=request.user, source=moderation.Source.ADMIN,
            )  # fmt: skip
        except TokenServiceError as exc:
            field = next(iter(exc.fields), None)
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            model_admin.message_user(
                request, f"{action}: queued; the worker carries it out at Agora.", messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:tokens_moderationaction_change", args=[action.pk]))
    context = _context(
        model_admin, request, f"Moderate {target.get_username()}", form=form, target=target,
        uids=moderation.uids_of(target),
    )  # fmt: skip
    return TemplateResponse(request, "admin/tokens/moderationaction/moderate.html", context)


def revoke_view(model_admin, request, user_id: int):
    """Revoke everything a user holds, after a confirmation."""
    if not request.user.has_perm(MODERATE):
        raise PermissionDenied
    target = get_object_or_404(get_user_model(), pk=user_id)
    if request.method == "POST":
        done = moderation.revoke_everything(
            user=target, requested_by=request.user, reason="revoked in the admin"
        )
        report_revocation(model_admin, request, target, done)
        return HttpResponseRedirect(
            reverse("admin:tokens_moderationaction_changelist") + f"?username__exact={target.get_username()}"
        )
    plan = moderation.revocation_plan(user=target)
    context = _context(
        model_admin, request, f"Revoke everything {target.get_username()} holds", target=target, plan=plan
    )
    return TemplateResponse(request, "admin/tokens/moderationaction/revoke.html", context)


def report_revocation(model_admin, request, target, done: moderation.Revocation) -> None:
    """The admin's message after a revocation: what was taken back, and what could not be."""
    name = target.get_username()
    model_admin.message_user(
        request,
        f"{name}: {done.api_keys} API key(s) revoked, {len(done.actions)} channel ban(s) queued, "
        f"{done.tokens} token(s) marked revoked.",
        messages.SUCCESS,
    )
    if done.skipped:
        model_admin.message_user(
            request, f"No Agora bans sent for {name}: {not_configured_message()}", messages.WARNING
        )


def revoke_link(user_id: int) -> str:
    url = reverse("admin:tokens_moderationaction_revoke", args=[user_id])
    return format_html('<a class="button" id="revoke-everything" href="{}">Revoke everything…</a>', url)


class ModerationButtons:
    """For a model admin whose rows name a `user` and a `channel` (channel events): the row's
    page also offers to kick, ban or mute that user there, to staff who may moderate."""

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "moderate"]

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if obj is not None and obj.user_id and obj.channel and request.user.has_perm(MODERATE):
            fields.append("moderate")
        return fields

    @admin.display(description="moderate")
    def moderate(self, obj) -> str:
        return moderation_buttons(user_id=obj.user_id, channel=obj.channel)
