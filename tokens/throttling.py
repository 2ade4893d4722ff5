"""Per-user (per-IP when anonymous) request budgets, counted in the default cache."""

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from tokens.clients import client_ip


class ScopedThrottle(ScopedRateThrottle):
    """DRF's ScopedRateThrottle, with two changes: anonymous callers are keyed by the same
    client IP the audit log records (DRF's own default trusts a client-sent
    X-Forwarded-For, which would let anyone dodge the login throttle), and the rate is read
    when asked rather than once at import, so a changed setting takes effect."""

    def get_ident(self, request):
        return client_ip(request) or "unknown"

    def get_rate(self):
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}.") from None
