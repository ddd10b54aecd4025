"""Outbound webhook HTTP: Standard Webhooks signatures, and where a production server may send."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import pytest
from standardwebhooks import Webhook

from scim_server.webhook_http import (
    OutboundPolicy,
    OutboundRefusedError,
    connect_checked,
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


def _resolving_to(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    """``name`` resolves to ``address`` (any other name as the system resolves it)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host != name:
            return real(host, port, *args, **kwargs)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
        return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_resolving_to_loopback_is_refused_at_connect_time(monkeypatch):
    """The check is on the address connected to: a public-looking name that resolves to a
    loopback address (DNS rebinding) is refused, and nothing reaches the server."""
    _resolving_to(monkeypatch, "hooks.example.test", "127.0.0.1")
    with webhook_receiver() as receiver:
        url = f"https://hooks.example.test:{receiver.port}/in"
        PRODUCTION.check_url(url)  # a name: nothing to refuse before resolving it
        with pytest.raises(OutboundRefusedError, match="loopback"):
            post(url, b"{}", {}, PRODUCTION)
        assert receiver.received == []


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 (RFC 6052)
        ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4 (RFC 3056)
        ("::a00:1", "10.0.0.1"),  # IPv4-compatible (RFC 4291 §2.5.5.1)
    ],
)
def test_a_name_resolving_to_an_ipv6_form_of_a_private_address_is_refused(
    monkeypatch, address, carried
):
    """DNS64 or a hostile zone answering with an IPv6 address that carries a private IPv4
    one: refused at connect time, before any connection (``connect_checked``)."""
    _resolving_to(monkeypatch, "hooks.example.test", address)
    connected: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda sock, addr: connected.append(addr))
    with pytest.raises(OutboundRefusedError, match=re.escape(f"which carries {carried}")):
        connect_checked("hooks.example.test", 443, PRODUCTION, plain=False)
    assert connected == []


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 as one number
        "0x7f000001",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "0",
        "10.1",  # 10.0.0.1
        "169.254.169.254.",  # a trailing dot
        "[::7f00:1]",
        "[64:ff9b::a9fe:a9fe]",
        "[fec0::1]",
        "localhost",
        "LOCALHOST.",
        "admin.localhost",
    ],
)
def test_production_refuses_every_spelling_of_a_private_address_on_save(host):
    """Whatever spelling getaddrinfo reads as a private address (or RFC 6761's localhost)
    is refused by ``check_url``, before the subscription is stored."""
    with pytest.raises(OutboundRefusedError, match="private, loopback"):
        PRODUCTION.check_url(f"https://{host}/in")


@pytest.mark.parametrize(
    "host",
    ["134744072", "0x8080808", "8.8.8.8.", "hooks.example.com", "hooks.example.com.", "1e100.net"],
)
def test_production_takes_public_spellings_and_names(host):
    """A public address in any spelling, and names (resolved and checked later), pass."""
    assert PRODUCTION.check_url(f"https://{host}/in")[1] == host


def test_an_allowed_network_covers_the_ipv4_address_an_ipv6_one_carries():
    """SCIM_WEBHOOK_ALLOWED_NETWORKS=10.0.0.0/8 also lets 10.x through NAT64 or IPv4-mapped."""
    allowed = OutboundPolicy(allowed_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    allowed.check_address(ipaddress.ip_address("64:ff9b::a00:1"))
    allowed.check_address(ipaddress.ip_address("::ffff:10.1.2.3"))
    with pytest.raises(OutboundRefusedError, match=re.escape("which carries 192.168.0.1")):
        allowed.check_address(ipaddress.ip_address("64:ff9b::c0a8:1"))


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
    dev.check_url("http://127.1:8000/in")
    dev.check_url("http://api.localhost.:8000/in")
    dev.check_url("https://0x7f000001/in")
    with pytest.raises(OutboundRefusedError):
        dev.check_url("http://hooks.example.com/in")


def test_the_response_body_is_truncated():
    """Only max_response bytes of the receiver's answer are read and kept."""
    with webhook_receiver(500) as receiver:
        answer = post(receiver.url, b"{}", {}, OutboundPolicy(development=True, max_response=100))
    assert answer.status == 500 and answer.body == "x" * 100
