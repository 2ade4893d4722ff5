import pytest
from django.test import RequestFactory

from tokens.clients import client_ip


@pytest.mark.parametrize(
    ("proxies", "forwarded", "remote", "expected"),
    [
        (0, "6.6.6.6", "10.0.0.1", "10.0.0.1"),  # no trusted proxy: the header is ignored
        (1, "203.0.113.9", "10.0.0.1", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "10.0.0.1", "203.0.113.9"),  # client-forged first hop
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "10.0.0.1", "203.0.113.9"),
        (1, "not-an-ip", "10.0.0.1", "10.0.0.1"),
        (1, " , ", "10.0.0.1", "10.0.0.1"),
        (3, "203.0.113.9", "10.0.0.1", "203.0.113.9"),
        (1, "2001:db8::1", "10.0.0.1", "2001:db8::1"),
        (1, "fe80::1%eth0", "10.0.0.1", "fe80::1"),
    ],
)
def test_client_ip_trusts_forwarded_for_only_from_configured_proxies(
    settings, proxies, forwarded, remote, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR=remote)
    assert client_ip(request) == expected
