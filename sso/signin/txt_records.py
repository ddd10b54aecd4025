"""The TXT records at a DNS name (dnspython): what proves an organization owns an e-mail domain.

Asked of the system's resolver, or of the servers ``SCIM_DNS_RESOLVERS`` names (a
split-horizon network, the tests' local server). No cache: a record just published is
seen at the next attempt, as far as the resolvers' own caches allow.
"""

from __future__ import annotations

import dns.exception
import dns.nameserver
import dns.resolver


class DnsLookupError(Exception):
    """The question got no answer (timeout, failing servers): nothing is known either way."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def txt_values(name: str, resolvers: list[tuple[str, int]], timeout: float) -> list[str] | None:
    """The TXT strings at ``name`` (a record's strings joined); [] for none; None: no such name.

    Raises :class:`DnsLookupError` when no server answered the question.
    """
    try:
        resolver = dns.resolver.Resolver(configure=not resolvers)
    except dns.exception.DNSException as exc:  # no /etc/resolv.conf, or an unreadable one
        raise DnsLookupError(f"no DNS resolver is configured ({exc})") from None
    if resolvers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in resolvers]
    resolver.timeout = resolver.lifetime = float(timeout)
    try:
        answer = resolver.resolve(name, "TXT", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return None
    except dns.resolver.LifetimeTimeout:
        raise DnsLookupError(f"the DNS lookup timed out after {timeout} s") from None
    except dns.resolver.NoNameservers as exc:  # SERVFAIL, REFUSED from every server
        raise DnsLookupError(f"no DNS server answered ({_first_error(exc)})") from None
    except dns.exception.DNSException as exc:
        raise DnsLookupError(f"the DNS lookup failed ({exc.__class__.__name__})") from None
    if answer.rrset is None:
        return []
    return [
        b"".join(rdata.strings).decode("utf-8", "replace")
        for rdata in answer.rrset
        if hasattr(rdata, "strings")
    ]


def _first_error(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    for _server, _tcp, _port, error, *_rest in errors:
        return str(error)
    return "SERVFAIL"
