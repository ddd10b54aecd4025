"""Which addresses an admin-chosen URL may reach: each IPv6 form judged with the IPv4 it carries."""

from __future__ import annotations

import ipaddress

import pytest

from scim_server.outbound_address import embedded_ipv4, refused


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("::ffff:10.0.0.1", ["10.0.0.1"]),  # RFC 4291 §2.5.5.2, IPv4-mapped
        ("::ffff:0:a00:1", ["10.0.0.1"]),  # RFC 2765 §2.1, IPv4-translated
        ("::7f00:1", ["127.0.0.1"]),  # RFC 4291 §2.5.5.1, IPv4-compatible
        ("64:ff9b::a9fe:a9fe", ["169.254.169.254"]),  # RFC 6052 §2.1, NAT64 well-known
        ("64:ff9b:1::a00:1", ["10.0.0.1"]),  # RFC 8215, NAT64 local-use (as a /96)
        ("2002:a9fe:a9fe::1", ["169.254.169.254"]),  # RFC 3056 §2, 6to4
        # RFC 4380 §4, Teredo: the server, then the client (its bits inverted on the wire)
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ["65.54.227.120", "192.0.2.45"]),
        ("2606:4700::1111", []),
        ("8.8.8.8", []),
        ("::1", []),
    ],
)
def test_embedded_ipv4(address: str, carried: list[str]) -> None:
    """Each IPv6 form that a translator, relay or the kernel delivers to an IPv4 address."""
    found = embedded_ipv4(ipaddress.ip_address(address))
    assert [str(a) for a in found] == carried


@pytest.mark.parametrize(
    ("address", "bad"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
        ("169.254.169.254", "169.254.169.254"),
        ("0.0.0.0", "0.0.0.0"),
        ("224.0.0.251", "224.0.0.251"),  # multicast: is_global says True
        ("::1", "::1"),
        ("::", "::"),
        ("fe80::1", "fe80::1"),
        ("fc00::1", "fc00::1"),
        ("fec0::1", "fec0::1"),  # RFC 3879 site-local: is_global says True on 3.11
        ("ff0e::1", "ff0e::1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::7f00:1", "127.0.0.1"),
        ("64:ff9b::a00:1", "10.0.0.1"),
        ("64:ff9b:1::808:808", "64:ff9b:1::808:808"),  # local-use: never global (RFC 8215 §3)
        ("2002:a00:1::1", "10.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
        # public
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # DNS64's answer for a public host
        ("2002:808:808::1", None),
    ],
)
def test_refused(address: str, bad: str | None) -> None:
    """The first address reached that is not public (the IPv6 one, or the IPv4 it carries)."""
    got = refused(ipaddress.ip_address(address))
    assert (None if got is None else str(got)) == bad


def test_allowed_networks_cover_each_address_reached() -> None:
    """An operator's network lets its addresses through, in any IPv6 form carrying them;
    every address reached must be public or allowed."""
    ten = (ipaddress.ip_network("10.0.0.0/8"),)
    assert refused(ipaddress.ip_address("64:ff9b::a00:1"), ten) is None
    assert refused(ipaddress.ip_address("::ffff:10.0.0.1"), ten) is None
    teredo = ipaddress.ip_address("2001:0:a00:1:8000:63bf:3fff:fdd2")  # server 10.0.0.1
    assert str(refused(teredo, ten)) == str(teredo)
    with_teredo = (*ten, ipaddress.ip_network("2001::/32"))
    assert str(refused(teredo, with_teredo)) == "192.0.2.45"
