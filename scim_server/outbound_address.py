"""Which IP addresses a server may connect to when a tenant's admin chose the URL.

One judgement for every outbound connection an admin can aim (webhooks through
``webhook_http.OutboundPolicy``, the OIDC back channel through it too, and the SAML
metadata URL, ``sso.saml.metadata``), so the rules cannot drift apart.

``ipaddress``'s ``is_global`` judges an IPv6 address on its own prefix, but several IPv6
forms carry an IPv4 address that a translator, a relay or the kernel delivers to, and
Python 3.11 calls some of them global whatever they carry: ``64:ff9b::10.0.0.1`` (NAT64),
``2002:a9fe:a9fe::1`` (6to4 of 169.254.169.254), ``::127.0.0.1`` (IPv4-compatible). Here an
address is judged together with every IPv4 address it embeds (``reached``): all of them
must be public.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOW_32_BITS = 0xFFFFFFFF
# IPv6 prefixes whose last 32 bits are the IPv4 address the packet ends up at.
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1
# RFC 8215: not globally reachable, so refused itself; its last 32 bits are read too (the
# common /96 layout), so an operator allowing the prefix still needs the IPv4 network.
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1, deprecated
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 §2.1 (SIIT)

SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")  # RFC 3879: deprecated, never global
# Forms that only carry an IPv4 address to it (mapped, translated, NAT64's well-known prefix,
# IPv4-compatible, 6to4): judged by that IPv4 address alone, on every Python version (3.12.4
# and 3.13 changed what is_global says of some of them).
_CARRIERS = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # RFC 4291 §2.5.5.2, IPv4-mapped
    IPV4_TRANSLATED,
    NAT64_WELL_KNOWN,
    IPV4_COMPATIBLE,
    ipaddress.IPv6Network("2002::/16"),  # RFC 3056 §2, 6to4
)


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (none for an IPv4 address).

    A Teredo address (RFC 4380 §4, 2001::/32) names two: its server and its client."""
    if isinstance(address, ipaddress.IPv4Address):
        return ()
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    for prefix in (NAT64_WELL_KNOWN, NAT64_LOCAL_USE, IPV4_COMPATIBLE, IPV4_TRANSLATED):
        if address in prefix and not _unspecified_or_loopback(address):
            found.append(ipaddress.IPv4Address(int(address) & _LOW_32_BITS))
    return tuple(dict.fromkeys(found))


def _unspecified_or_loopback(address: ipaddress.IPv6Address) -> bool:
    """``::`` and ``::1``: in ::/96 but no IPv4-compatible address (RFC 4291 §2.5.5.1)."""
    return int(address) <= 1


def reached(address: IPAddress) -> tuple[IPAddress, ...]:
    """The address and each IPv4 address it embeds: what a connection to it may reach."""
    return (address, *embedded_ipv4(address))


def refused(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> IPAddress | None:
    """The first of ``reached(address)`` neither public nor in an ``allowed`` network
    (an operator's exception), or None when the address may be connected to."""
    networks = tuple(allowed)
    for each in reached(address):
        if not _public_alone(each) and not any(each in network for network in networks):
            return each
    return None


def _public_alone(address: IPAddress) -> bool:
    """The address by its own prefix (what it embeds is judged apart)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in SITE_LOCAL or address in NAT64_LOCAL_USE:
            return False  # the operator allows its network, or nobody
        if any(address in carrier for carrier in _CARRIERS) and embedded_ipv4(address):
            return True  # judged by the IPv4 address it carries (embedded_ipv4)
    return address.is_global and not address.is_multicast
