"""The audit list's date bar, without DISTINCT over the table.

Django's date hierarchy lists the years (months, days) that have rows with SELECT DISTINCT
over every matching row: seconds on tens of millions. This one reads the first and the last
matching moment (two probes of the issued_at index) and offers every year, month or day
between them; a choice with no rows gives an empty page, never a slow one.
"""

from datetime import date

from django import template
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst

register = template.Library()


def _months(first: date, last: date) -> list[date]:
    months, current = [], first.replace(day=1)
    while current <= last:
        months.append(current)
        current = current.replace(year=current.year + (current.month == 12), month=current.month % 12 + 1)
    return months


@register.inclusion_tag("admin/date_hierarchy.html")
def audit_date_hierarchy(cl):
    """Drop-in for {% date_hierarchy cl %} on a DateTimeField."""
    field = cl.date_hierarchy
    year_field, month_field, day_field = f"{field}__year", f"{field}__month", f"{field}__day"
    year, month, day = (cl.params.get(name) for name in (year_field, month_field, day_field))

    def link(filters):
        return cl.get_query_string(filters, [f"{field}__"])

    if year and month and day:
        chosen = date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {"link": link({year_field: year, month_field: month}),
                     "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT"))},
            "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }  # fmt: skip
    span = cl.queryset.aggregate(first=Min(field), last=Max(field))
    if span["first"] is None:
        return {"show": False}
    first, last = (timezone.localtime(span[k]).date() for k in ("first", "last"))
    if year and month:
        days = [first.replace(day=n) for n in range(first.day, last.day + 1)]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {"link": link({year_field: year, month_field: month, day_field: d.day}),
                 "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT"))}
                for d in days
            ],
        }  # fmt: skip
    if year:
        return {
            "show": True,
            "back": {"link": link({}), "title": "All dates"},
            "choices": [
                {"link": link({year_field: year, month_field: m.month}),
                 "title": capfirst(formats.date_format(m, "YEAR_MONTH_FORMAT"))}
                for m in _months(first, last)
            ],
        }  # fmt: skip
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: str(y)}), "title": str(y)} for y in range(first.year, last.year + 1)
        ],
    }


@register.simple_tag
def capped_count(cl) -> str:
    """The list's row count, "10,000+" when the paginator stopped counting."""
    paginator = cl.paginator
    if getattr(paginator, "capped", False):
        return f"{paginator.COUNT_CAP:,}+"
    return f"{cl.result_count:,}"
