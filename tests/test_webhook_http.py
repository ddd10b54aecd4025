"""Outbound webhook HTTP: Standard Webhooks signatures, and where a production server may send."""

from __future__ import annotations

import ipaddress

import pytest
from standardwebhooks import Webhook

from scim_server.webhook_http import (
    OutboundPolicy,
    OutboundRefusedError,
    new_secret,
    post,
    signed_headers,
)
from tests.support.webhooks import webhook_receiver

PRODUCTION = OutboundPolicy(development=False)


def test_signature_verifies_with_standardwebhooks():
    """The reference library accepts our headers; a changed body is rejected."""
    import time

    secret = new_secret()
    body = b'{"type":"user.created"}'
    headers = signed_headers([secret], "evt_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {"type": "user.created"}
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(b'{"type":"user.deleted"}', headers)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",  # plain http to a public name
        "https://127.0.0.1/in",
        "https://10.0.0.5/in",
        "https://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "https://[::1]/in",
        "https://[fe80::1]/in",
        "https://192.168.1.1/in",
        "http://localhost:8080/in",  # http only in development
    ],
)
def test_production_refuses_urls_before_connecting(url):
    """Literal private, loopback and link-local addresses, and plain http, are refused."""
    with pytest.raises(OutboundRefusedError):
        PRODUCTION.check_url(url)


def test_a_name_resolving_to_loopback_is_refused_at_connect_time():
    """The check is on the address connected to: a public-looking name that resolves to a
    loopback address (DNS rebinding) is refused, and nothing reaches the server."""
    with webhook_receiver() as receiver:
        url = f"https://localhost:{receiver.port}/in"
        PRODUCTION.check_url(url)  # a name: nothing to refuse before resolving it
        with pytest.raises(OutboundRefusedError, match="loopback"):
            post(url, b"{}", {}, PRODUCTION)
        assert receiver.received == []


def test_an_allowed_network_may_be_reached():
    """An operator's SCIM_WEBHOOK_ALLOWED_NETWORKS lets production reach that network (not http)."""
    allowed = OutboundPolicy(allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    allowed.check_url("https://10.1.2.3/in")
    with pytest.raises(OutboundRefusedError):
        allowed.check_url("https://192.168.1.1/in")
    with pytest.raises(OutboundRefusedError, match="https"):
        allowed.check_url("http://10.1.2.3/in")


def test_development_allows_http_to_localhost_only():
    """Development: http to a loopback name or address, never to another host."""
    dev = OutboundPolicy(development=True)
    dev.check_url("http://localhost:8000/in")
    dev.check_url("http://127.0.0.1:8000/in")
    with pytest.raises(OutboundRefusedError):
        dev.check_url("http://hooks.example.com/in")


def test_the_response_body_is_truncated():
    """Only max_response bytes of the receiver's answer are read and kept."""
    with webhook_receiver(500) as receiver:
        answer = post(receiver.url, b"{}", {}, OutboundPolicy(development=True, max_response=100))
    assert answer.status == 500 and answer.body == "x" * 100
