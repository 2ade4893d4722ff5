"""The channel event admin's "Who is in the channel now" page: presence from the stored events,
the suspect flags of those present, and, with REST credentials, the same set beside Agora's own
channel user list. A thin view: a form, one service call, a template."""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from tokens import agora_rest, ncs
from tokens.models import SuspectJoin
from tokens.services import presence


class ChannelForm(forms.Form):
    channel = forms.CharField(
        max_length=ncs.MAX_CHANNEL,
        strip=False,  # a space is a legal, significant character in a channel name
        help_text="The exact channel name.",
    )


def _flags(participants) -> dict[int, list[str]]:
    """event id -> the reasons its join was flagged, for the joins shown (one query)."""
    flagged: dict[int, list[str]] = {}
    joins = [p.event_id for p in participants]
    if joins:
        rows = SuspectJoin.objects.filter(event_id__in=joins).values_list("event_id", "reason")
        for event_id, reason in rows.order_by("event_id", "reason"):
            flagged.setdefault(event_id, []).append(reason)
    return flagged


def _rows(found: presence.Presence, flags: dict, agora: presence.AgoraComparison | None = None) -> list[dict]:
    return [
        {
            "participant": p,
            "username": found.username(p),
            "flags": flags.get(p.event_id, []),
            "agora_role": agora.agora_role(p.uid) if agora is not None else None,
        }
        for p in found.participants
    ]


def presence_view(model_admin, request):
    """Who is in a channel now; POST compares with Agora's list (with REST credentials)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    data = request.POST if request.method == "POST" else request.GET
    form = ChannelForm(data if "channel" in data else None)
    context = {"form": form, "rest_problem": agora_rest.rest_not_configured_reason()}
    if form.is_bound and form.is_valid():
        channel = form.cleaned_data["channel"]
        comparison = None
        if request.method == "POST" and not context["rest_problem"]:
            try:
                comparison = presence.compare_with_agora(channel=channel)
            except agora_rest.AgoraRestError as exc:
                context["agora_error"] = str(exc)
        found = comparison.presence if comparison is not None else presence.channel_presence(channel=channel)
        context.update(
            channel=channel,
            presence=found,
            rows=_rows(found, _flags(found.participants), comparison),
            comparison=comparison,
        )
        if comparison is not None:
            only_ours = {p.uid for p in comparison.only_ours}
            context.update(
                only_ours=[row for row in context["rows"] if row["participant"].uid in only_ours],
                only_agora=[
                    {"uid": uid, "owner": comparison.owners.get(uid), "role": comparison.agora_role(uid)}
                    for uid in comparison.only_agora
                ],
            )
    title = f"Who is in {context['channel']!r} now" if "channel" in context else "Who is in a channel now"
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "has_view_permission": True,
        **context,
    }
    response = TemplateResponse(request, "admin/tokens/channelevent/presence.html", context)
    response["Cache-Control"] = "no-store"  # presence changes by the second
    return response
