"""Who is calling: client IP (proxy-aware only when configured) and user agent."""

import ipaddress
from functools import lru_cache

from django.conf import settings


def _ip(value: str) -> str | None:
    # Parsing costs ~8 us a request: addresses are remembered, but only text short enough to
    # be one (an IPv6 address with a zone fits in 64), so headers cannot fill the memory.
    return _parsed_ip(value) if len(value) <= 64 else _parse_ip(value)


@lru_cache(maxsize=4096)
def _parsed_ip(value: str) -> str | None:
    return _parse_ip(value)


def _parse_ip(value: str) -> str | None:
    # Drop an IPv6 zone ("fe80::1%eth0"): meaningless off the proxy's host, and not storable
    # in PostgreSQL's inet column.
    try:
        return str(ipaddress.ip_address(value.strip().split("%", 1)[0]))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """REMOTE_ADDR, unless TRUSTED_PROXY_COUNT proxies append to X-Forwarded-For: then the
    address the outermost trusted proxy saw. A client cannot spoof it by sending the header."""
    remote = _ip(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    # Each trusted proxy appends the address it received from; the last `proxies` entries
    # were written by our proxies, the one they name first is the client.
    return _ip(hops[-min(proxies, len(hops))]) or remote


def user_agent(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")
