"""The audit admin's own pages, like Agora Console's tools but tied to our users and audit trail:
a token inspector, temporary tokens, and a streamed CSV export of the filtered list. Thin
views: a form, one selector or service call, a template."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.timesince import timesince, timeuntil

from tokens import agora, clients, selectors, services, validators
from tokens.exceptions import TokenServiceError, service_error_response
from tokens.models import MAIN_SLOT, IssuedToken

Service, Role = IssuedToken.Service, IssuedToken.Role


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


def _relative(moment: datetime, now: datetime) -> str:
    return f"{timeuntil(moment, now)} left" if moment > now else f"ended {timesince(moment, now)} ago"


def _label(name: str) -> str:
    return name.replace("_", " ")


def _privileges(service: dict, now: datetime) -> list[dict]:
    """Each privilege of one service of agora.inspect's summary: its id, the engine's name, when
    it ends (seconds after issue, the moment, and from now), or None for no expiry of its own."""
    rows = []
    for name, expiry in service.get("expiries", {}).items():
        ends = None if expiry["expires_at"] is None else _moment(expiry["expires_at"])
        rows.append(
            {
                "id": expiry["id"],
                "name": name,
                "label": _label(name),
                "seconds": expiry["seconds"],
                "expires_at": ends,
                "relative": None if ends is None else _relative(ends, now),
            }
        )
    return rows


def _permissions(service: dict) -> list[dict]:
    """RTM2's per-resource permissions, one row per (resource, permission)."""
    return [
        {"permission": permission, "resource": resource, "label": f"{permission} {_label(resource)}",
         "names": ", ".join(names)}
        for resource, by_permission in service.get("permissions", {}).items()
        for permission, names in by_permission.items()
    ]  # fmt: skip


def _services(summary: dict, record: IssuedToken | None, now: datetime) -> list[dict]:
    """What the page shows of each service: the engine's type name and id, whom it names, its
    privileges and their expiries, RTM2's permissions, an unknown type's raw bytes."""
    shown = []
    for service in summary["services"]:
        fields = ("channel", "account", "user_id", "room_uuid", "user_uuid", "role", "raw", "note")
        row = {"name": service["type"], "type_id": service["type_id"], **{f: service.get(f) for f in fields}}
        row["services_after"] = service.get("services_after")
        row["account_label"] = "uid" if service["type_id"] == agora.SERVICE_RTC else "account"
        row["privileges"] = _privileges(service, now)
        row["permissions"] = _permissions(service)
        row["from_audit_row"] = False
        shown.append(row)
    if summary["version"] == agora.VERSION_006 and record is not None:
        # 006 carries only CRCs of the channel and uid: the audit row names them.
        (row,) = shown
        if record.service == Service.RTM:
            row["user_id"] = record.rtm_user_id
        else:
            row["channel"], row["account"] = record.channel, str(record.uid)
        row["from_audit_row"] = True
    return shown


def _signature(summary: dict, record: IssuedToken | None) -> str:
    """What the page says of the signature: which certificate made it, or why none did."""
    valid, configured = summary["signature_valid"], summary["certificates"]
    if valid is None:
        return (
            "unverifiable: a 006 token carries only CRCs of its channel and uid, and no audit row names them"
        )
    if valid:
        label, fingerprint = summary["signed_with"], summary["signed_with_fingerprint"]
        return f"valid: signed with the {label} certificate ({fingerprint})"
    if not summary["app_id_matches"]:
        return "invalid: issued for another App ID, so signed with another certificate"
    if len(configured) == 1:
        text = "invalid: not signed with this server's certificate, or altered since"
    else:
        labels = ", ".join(configured)
        text = f"invalid: signed with none of this server's certificates ({labels}), or altered since"
    if record is not None and record.certificate and record.certificate not in configured.values():
        text += (
            f"; its audit row says it was signed by {record.certificate}, which this server no longer holds"
        )
    return text


def _report(token: str) -> dict:
    """Everything the inspector shows about a token, or a `problem` that says why it cannot."""
    try:
        summary, record = selectors.inspect(token=token)
    except TokenServiceError as exc:
        if exc.code == "invalid_token":
            reason = exc.fields.get("token", [exc.message])[0]
            return {"problem": f"This is not a 006 or 007 Agora token: {reason}."}
        return {"problem": exc.message}
    now = timezone.now()
    expires_at = _moment(summary["expires_at"])
    return {
        "version": summary["version"],
        "app_id": summary["app_id"],
        "app_id_matches": summary["app_id_matches"],
        "issued_at": _moment(summary["issued_at"]),
        "expires_at": expires_at,
        "expired": expires_at <= now,
        "time_left": timeuntil(expires_at, now) if expires_at > now else None,
        "expired_for": timesince(expires_at, now) if expires_at <= now else None,
        "salt": summary["salt"],
        "services": _services(summary, record, now),
        "signature_valid": summary["signature_valid"],
        "signed_with": summary["signed_with"],
        "fingerprint": summary["signed_with_fingerprint"],
        "certificates": summary["certificates"],
        "signing_certificate": summary["signing_certificate"],
        "signature": _signature(summary, record),
        "record": record,
    }


def _inspected_json(token: str) -> JsonResponse:
    """The inspector's answer as `manage.py inspect_token` prints it, or the error shape."""
    try:
        return JsonResponse(selectors.inspect_token(token=token), json_dumps_params={"indent": 2})
    except TokenServiceError as exc:
        return service_error_response(exc)


def inspect_view(model_admin, request):
    """Paste a token: what it says, whether it verifies here, and its audit row."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = InspectForm(request.POST or None)
    valid = request.method == "POST" and form.is_valid()
    if valid and request.POST.get("format") == "json":
        return _private(_inspected_json(form.cleaned_data["token"]))
    report = _report(form.cleaned_data["token"]) if valid else None
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
    "publish_rights", "publish_expires_at", "certificate",
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
