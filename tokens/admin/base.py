"""What the model admins share: the read-only mixin, the lookups a changelist's URL may use,
the capped paginator, the date-filter and uid-term checks, and the exact-value filter."""

from datetime import UTC, datetime
from functools import cached_property

from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR
from django.core.exceptions import BadRequest
from django.core.paginator import Paginator
from django.utils.dateparse import parse_date, parse_datetime

from tokens import agora

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


def uid_term(term: str) -> int | None:
    """The uid a search term names (a whole number within Agora's uid range), or None."""
    # Length first: int() of a huge digit string is slow and, past 4300 digits, an error.
    if len(term) <= 10 and term.isascii() and term.isdigit() and agora.UID_MIN <= int(term) <= agora.UID_MAX:
        return int(term)
    return None


# Date parts the date bar may ask for, and the range a day, month or year after them fits in.
_DATE_PARTS = {"year": (1, 9998), "month": (1, 12), "day": (1, 31)}


def checked_date_filters(request, field: str):
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


class ExactValueFilter(admin.FieldListFilter):
    """A box for one exact value: a column with unbounded values (channel names) gets no
    SELECT DISTINCT over millions of rows, only an indexed equality."""

    template = "admin/tokens/exact_value_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.parameter_name = f"{field_path}__exact"
        values = params.get(self.parameter_name) or []
        self.value = values[-1] if values else None
        # The list's other parameters ride along when the box is submitted.
        skip = {self.parameter_name, PAGE_VAR, ERROR_FLAG}
        self.hidden = [(k, v) for k, vs in request.GET.lists() if k not in skip for v in vs]
        super().__init__(field, request, params, model, model_admin, field_path)

    def expected_parameters(self):
        return [self.parameter_name]

    def choices(self, changelist):
        yield {
            "selected": self.value is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "All",
        }
        if self.value is not None:
            yield {
                "selected": True,
                "query_string": changelist.get_query_string({self.parameter_name: self.value}),
                "display": self.value or "(none)",
            }
