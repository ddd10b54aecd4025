"""A real DNS server on 127.0.0.1 for the tests: TXT records served from a dict (dnspython).

What ``sso.signin.txt_records`` asks in production, answered over UDP by a thread of
this process: the app is pointed at it with ``DNS_RESOLVERS`` (``SCIM_DNS_RESOLVERS``).
``records`` maps a name to its TXT strings (a name with [] exists and has no TXT record;
any other name is NXDOMAIN); ``mode`` makes it fail the way real servers do.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT

ANSWER = "answer"
SILENT = "silent"  # drops every question: the resolver times out
SERVFAIL = "servfail"


class LocalDns:
    """A UDP DNS server on 127.0.0.1 and a free port, answering from ``records``."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.mode = ANSWER
        self.questions: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="local-dns", daemon=True)
        self._thread.start()

    @property
    def resolvers(self) -> list[tuple[str, int]]:
        """What ``DNS_RESOLVERS`` holds to ask this server."""
        return [("127.0.0.1", self.port)]

    def reset(self) -> None:
        self.records.clear()
        self.questions.clear()
        self.mode = ANSWER

    def publish(self, name: str, value: str) -> None:
        """Add a TXT record at ``name`` (others there stay, as in a real zone)."""
        self.records.setdefault(name.lower().rstrip("."), []).append(value)

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self._sock.recvfrom(65535)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue
            reply = self._answer(query)
            if reply is not None:
                self._sock.sendto(reply.to_wire(), peer)

    def _answer(self, query: Any) -> Any:
        if self.mode == SILENT or not query.question:
            return None
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.questions.append(name)
        if self.mode == SERVFAIL:
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.records:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and self.records[name]:
            rdatas = [
                TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value.encode()])
                for value in self.records[name]
            ]
            reply.answer.append(dns.rrset.from_rdata_list(question.name, 60, rdatas))
        return reply


_shared: LocalDns | None = None
_lock = threading.Lock()


def shared_dns() -> LocalDns:
    """This process's server, started at first use (the ``dns`` fixture resets it per test)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = LocalDns()
        return _shared


def add_verified_domain(
    admin: Any, domain: str, connection_id: str | None = None
) -> dict[str, Any]:
    """Add ``domain`` through the admin API and verify it the way its owner would: the TXT
    record the answer names published on this process's DNS server, then ``verify``.

    ``admin`` is the organization's admin API client (``tests.support.Scim``); its app is
    pointed at the local server (tests get their config back after each test).
    """
    body: dict[str, Any] = {"domain": domain}
    if connection_id is not None:
        body["connection_id"] = connection_id
    added = admin.post("/api/v1/sso/domains", body)
    assert added.status_code == 201, added.get_json()
    record = added.get_json()["verification"]
    server = shared_dns()
    server.publish(record["name"], record["value"])
    admin.client.application.config["DNS_RESOLVERS"] = server.resolvers
    verified = admin.post(f"/api/v1/sso/domains/{added.get_json()['domain']}/verify", None)
    assert verified.status_code == 200, verified.get_json()
    assert verified.get_json()["verified"] is True
    result: dict[str, Any] = verified.get_json()
    return result
