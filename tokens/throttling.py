"""Per-user (per-IP when anonymous) request budgets, counted in the default cache."""

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle


class ScopedThrottle(ScopedRateThrottle):
    """DRF's ScopedRateThrottle, reading the rate when asked rather than once at import, so
    a changed REST_FRAMEWORK setting (tests, reloads) takes effect."""

    def get_rate(self):
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r}.") from None
