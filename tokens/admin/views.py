"""The audit admin's own pages, like Agora Console's tools but tied to our users and audit trail:
a token inspector, temporary tokens, and a streamed CSV export of the filtered list. Thin
views: a form, one selector or service call, a template."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.timesince import timesince, timeuntil

from tokens import agora, clients, selectors, services, validators
from tokens.exceptions import TokenServiceError
from tokens.models import MAIN_SLOT, IssuedToken

Service, Role = IssuedToken.Service, IssuedToken.Role

PRIVILEGE_NAMES = {
    agora.SERVICE_RTC: {
        agora.PRIVILEGE_JOIN_CHANNEL: "join channel",
        agora.PRIVILEGE_PUBLISH_AUDIO: "publish audio",
        agora.PRIVILEGE_PUBLISH_VIDEO: "publish video",
        agora.PRIVILEGE_PUBLISH_DATA: "publish data",
    },
    agora.SERVICE_RTM: {agora.PRIVILEGE_RTM_LOGIN_007: "login", agora.PRIVILEGE_RTM_LOGIN_006: "login"},
}
SERVICE_NAMES = {agora.SERVICE_RTC: "RTC", agora.SERVICE_RTM: "RTM", 4: "FPA", 5: "Chat", 7: "APaaS"}


def _context(model_admin, request, title: str, **extra) -> dict:
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "has_view_permission": model_admin.has_view_permission(request),
        **extra,
    }


def _private(response):
    # The page shows a bearer credential: no cache, and no referrer to another site. Not
    # no-referrer: under it a browser's form POST says `Origin: null`, which the CSRF check
    # refuses, so the page's own form could never be sent.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


# --- inspector --------------------------------------------------------------------------------


class InspectForm(forms.Form):
    token = forms.CharField(
        max_length=4096,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 100, "autocomplete": "off", "spellcheck": "false"}),
        help_text="A 006 or 007 token. It is not stored or logged; only its SHA-256 is looked up.",
    )


def _moment(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


def _privilege_rows(decoded: agora.DecodedToken, service: agora.DecodedService) -> list[dict]:
    rows = []
    for privilege, value in sorted(service.privileges.items()):
        if decoded.version == agora.VERSION_007:
            # Seconds after issue; 0: no expiry of its own (the token's applies).
            expires = _moment(decoded.issued_at + value) if value else None
        else:
            expires = _moment(value) if value else None
        if service.type == agora.SERVICE_RTM and decoded.version == agora.VERSION_006:
            expires = _moment(decoded.expires_at)  # Agora ignores the RTM 006 privilege's own expiry
        name = PRIVILEGE_NAMES.get(service.type, {}).get(privilege, f"privilege {privilege}")
        rows.append({"id": privilege, "name": name, "expires_at": expires})
    return rows


def _report(token: str) -> dict:
    """Everything the inspector shows about a token, or a `problem` that says why it cannot."""
    try:
        summary, record = selectors.inspect(token=token)
    except TokenServiceError as exc:
        if exc.code == "invalid_token":
            reason = exc.fields.get("token", [exc.message])[0]
            return {"problem": f"This is not a 006 or 007 Agora token: {reason}."}
        return {"problem": exc.message}
    decoded = agora.decode(token)
    now = timezone.now()
    expires_at = _moment(decoded.expires_at)
    services_ = []
    for service in decoded.services:
        services_.append(
            {
                "name": SERVICE_NAMES.get(service.type, f"service {service.type}"),
                "channel": service.channel,
                "uid": service.account,
                "user_id": service.user_id,
                "privileges": _privilege_rows(decoded, service),
            }
        )
    if decoded.version == agora.VERSION_006 and record is not None:
        # 006 carries only CRCs of the channel and uid: the audit row names them.
        if record.service == Service.RTM:
            services_[0]["user_id"] = record.rtm_user_id
        else:
            services_[0]["channel"], services_[0]["uid"] = record.channel, str(record.uid)
    app_id_matches = summary["app_id_matches"]

    valid = summary["signature_valid"]
    if valid is None:
        signature = (
            "unverifiable: a 006 token carries only CRCs of its channel and uid, and no audit row names them"
        )
    elif valid:
        signature = "valid"
    elif not app_id_matches:
        signature = "invalid: issued for another App ID, so signed with another certificate"
    else:
        signature = "invalid: not signed with this server's certificate, or altered since"
    return {
        "version": decoded.version,
        "app_id": summary["app_id"],
        "app_id_matches": app_id_matches,
        "issued_at": _moment(decoded.issued_at),
        "expires_at": expires_at,
        "expired": expires_at <= now,
        "time_left": timeuntil(expires_at, now) if expires_at > now else None,
        "expired_for": timesince(expires_at, now) if expires_at <= now else None,
        "salt": decoded.salt,
        "services": services_,
        "signature_valid": valid,
        "signature": signature,
        "record": record,
    }


def inspect_view(model_admin, request):
    """Paste a token: what it says, whether it verifies here, and its audit row."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = InspectForm(request.POST or None)
    report = _report(form.cleaned_data["token"]) if request.method == "POST" and form.is_valid() else None
    context = _context(model_admin, request, "Inspect a token", form=form, report=report)
    return _private(TemplateResponse(request, "admin/tokens/issuedtoken/inspect.html", context))


# --- temporary tokens -------------------------------------------------------------------------


class IssueForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="The user the token is for: their uid is used.")
    slot = forms.CharField(
        max_length=32,
        initial=MAIN_SLOT,
        validators=[validators.validate_slot],
        help_text="main, screen, phone...",
    )
    service = forms.ChoiceField(choices=Service.choices, initial=Service.RTC)
    channel = forms.CharField(max_length=64, required=False, help_text="For RTC and RTC+RTM.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.SUBSCRIBER)
    expires_in = forms.IntegerField(
        label="Lifetime (seconds)",
        initial=3600,
        min_value=validators.MIN_LIFETIME,
        max_value=agora.MAX_LIFETIME,
    )
    version = forms.ChoiceField(
        choices=[("", "default"), (agora.VERSION_007, "007"), (agora.VERSION_006, "006")], required=False
    )

    def clean_username(self):
        model = get_user_model()
        try:
            return model.objects.get(**{model.USERNAME_FIELD: self.cleaned_data["username"]})
        except model.DoesNotExist:
            raise forms.ValidationError("No such user.") from None


def issue_view(model_admin, request):
    """Issue a token for a user's uid, shown once; audited with source admin and the issuer."""
    if not request.user.has_perm("tokens.issue_from_admin"):
        raise PermissionDenied
    form = IssueForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            issued = services.issue_token(
                user=data["username"],
                service=data["service"],
                channel=data["channel"],
                role=data["role"],
                expires_in=data["expires_in"],
                version=data["version"] or None,
                slot=data["slot"],
                source=IssuedToken.Source.ADMIN,
                issued_by=request.user,
                client_ip=clients.client_ip(request),
                user_agent=clients.user_agent(request),
            )
        except TokenServiceError as exc:
            field = next(iter(exc.fields), None)
            form.add_error(field if field in form.fields else None, exc.message)
    context = _context(model_admin, request, "Issue a temporary token", form=form, issued=issued)
    return _private(TemplateResponse(request, "admin/tokens/issuedtoken/issue.html", context))


# --- export -----------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "id", "issued_at", "expires_at", "username", "user_id", "service", "version", "channel", "uid", "slot",
    "rtm_user_id", "role", "source", "client_ip", "user_agent", "token_sha256", "issued_by_id",
    "publish_rights", "publish_expires_at",
)  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() returns what it was given (csv.writer into a stream)."""

    def write(self, value):
        return value


def _cell(value):
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value  # a channel or user agent must not run as a spreadsheet formula
    return value


def export_view(model_admin, request):
    """The list's rows, as CSV, with its filters and search, streamed in chunks: memory stays
    flat whatever the number of rows."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    changelist = model_admin.get_changelist_instance(request)
    rows = changelist.queryset.values_list(*EXPORT_COLUMNS).iterator(chunk_size=2000)
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(EXPORT_COLUMNS)
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="issued-tokens-{stamp}.csv"'
    return response
