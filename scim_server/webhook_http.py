"""Sending one webhook: Standard Webhooks signatures, and an outbound connection we control.

Used by ``scim-server worker`` only. Safety (a subscription URL is chosen by an
organization admin, so it is untrusted):

- ``https`` only; ``http`` only to a loopback address in development;
- the address is checked when the connection is made, on the address we
  actually connect to (so a DNS name that resolves to a private address on the
  second lookup, DNS rebinding, gets nowhere): in production no private,
  loopback, link-local, multicast or reserved address, nor an IPv6 address
  carrying one (NAT64, 6to4, Teredo, IPv4-mapped or -compatible:
  ``outbound_address``), unless the operator allows its network
  (``SCIM_WEBHOOK_ALLOWED_NETWORKS``); a literal address, in any spelling the
  system's resolver reads (``0x7f000001``, ``127.1``, a trailing dot), and
  ``localhost`` are judged already when the URL is saved;
- a 10 s timeout for the whole exchange (connect, send, status line, headers
  and the start of the body: a receiver answering a byte at a time is cut off at
  it, not at each byte's own timeout), no redirect followed (a 3xx is a
  failure), no proxy from the environment, and the response body read only up
  to ``max_response`` bytes, kept as printable text (``printable``).

A URL is stored as the URI it is sent as (``as_uri``): an IRI's host in IDNA, its
other non-ASCII characters percent-encoded; ``http.client`` cannot put anything
else on the request line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import math
import secrets
import socket
import ssl
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from scim_server import outbound_address
from scim_server.outbound_address import IPAddress, IPNetwork
from scim_server.text import ascii_host

SECRET_PREFIX = "whsec_"
USER_AGENT = "scim-server-webhooks/1"
# RFC 6761 §6.3: localhost and every name under it are the loopback address.
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


class OutboundRefusedError(Exception):
    """The URL or the address it resolves to is not one we send to."""


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body`` (the Standard Webhooks scheme)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(
    secrets_in_use: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers; one signature per secret in use (a rotated one still verifies)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_in_use),
    }


@dataclass(frozen=True)
class OutboundPolicy:
    """Where webhooks may go: from the configuration (``from_config``)."""

    development: bool = False
    allowed_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)
    timeout: float = 10.0
    max_response: int = 2048

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OutboundPolicy:
        return cls(
            development=config.get("SCIM_ENV", "development") == "development",
            allowed_networks=parse_networks(config.get("WEBHOOK_ALLOWED_NETWORKS") or ""),
            timeout=float(config.get("WEBHOOK_TIMEOUT_SECONDS", 10)),
        )

    def check_url(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, path+query) of an acceptable URL; refused clearly otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise OutboundRefusedError(f"Not a valid URL: {exc}.") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise OutboundRefusedError("The URL must be https://host/...")
        if parts.username or parts.password:
            raise OutboundRefusedError("The URL must not carry credentials.")
        if _has_space_or_control(url):
            raise OutboundRefusedError("The URL must not contain spaces or control characters.")
        if parts.scheme == "http" and not (self.development and _is_local_name(parts.hostname)):
            raise OutboundRefusedError(
                "The URL must use https (http is allowed only for localhost in development)."
            )
        named = _named_address(parts.hostname)
        if named is not None:
            self.check_address(named, name=parts.hostname)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path

    def check_address(self, address: IPAddress, *, name: str | None = None) -> None:
        """Refuse a non-public address unless allowed (development allows any).

        An IPv6 address is judged with each IPv4 address it carries
        (``outbound_address.refused``): ``64:ff9b::10.0.0.1`` reaches 10.0.0.1 through a
        NAT64 gateway. ``name``: the URL's host, when it spells the address another way."""
        if self.development:
            return
        bad = outbound_address.refused(address, self.allowed_networks)
        if bad is None:
            return
        shown = str(address) if bad == address else f"{address} (which carries {bad})"
        if name is not None and name != str(address):
            shown = f"{name} ({shown})"
        raise OutboundRefusedError(
            f"{shown} is a private, loopback, link-local or reserved address; "
            "an operator may allow its network with SCIM_WEBHOOK_ALLOWED_NETWORKS."
        )


def as_uri(url: str) -> str:
    """The URI an IRI stands for (RFC 3987 §3.1): the host in IDNA, every other non-ASCII
    character percent-encoded as UTF-8; an ASCII URL is returned unchanged.

    Done when a subscription is saved, so the URL an admin reads is the one sent."""
    if url.isascii() or _has_space_or_control(url):
        return url  # nothing to encode, or refused as it is (urlsplit would drop some)
    try:
        parts = urlsplit(url)
        userinfo, at, hostport = parts.netloc.rpartition("@")
        host, colon, port = hostport.partition(":")  # a non-ASCII host is no IPv6 literal
        if not host.isascii():
            host = ascii_host(host)
        netloc = _percent_encode(userinfo) + at + host + colon + _percent_encode(port)
        return urlunsplit(
            (
                parts.scheme,
                netloc,
                _percent_encode(parts.path),
                _percent_encode(parts.query),
                _percent_encode(parts.fragment),
            )
        )
    except (UnicodeError, ValueError) as exc:  # a lone surrogate, an impossible IDNA label
        raise OutboundRefusedError(f"Not a valid URL: {exc}.") from None


def _has_space_or_control(url: str) -> bool:
    """A space or an ASCII control: http.client refuses them on the request line (every
    delivery would fail), and urlsplit silently drops tabs and line breaks."""
    return any(c <= " " or c == "\x7f" for c in url)


def _percent_encode(part: str) -> str:
    """Non-ASCII characters as %XX (UTF-8); ASCII, including existing escapes, kept."""
    return "".join(c if c.isascii() else quote(c, safe="") for c in part)


def printable(text: str) -> str:
    """``text`` (a receiver's answer, an error naming it) fit to store and show: control
    characters other than tab and line breaks as U+FFFD. PostgreSQL refuses a NUL in text,
    and the delivery log is read in a terminal and a browser."""
    if text.isprintable():
        return text
    return "".join(
        c if c in "\t\r\n" or unicodedata.category(c) not in ("Cc", "Cs") else "\ufffd"
        for c in text
    )


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """``SCIM_WEBHOOK_ALLOWED_NETWORKS``: comma-separated CIDR networks."""
    try:
        return tuple(ipaddress.ip_network(v.strip()) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise ValueError(f"SCIM_WEBHOOK_ALLOWED_NETWORKS: {exc}") from None


# What inet_aton reads: digits, hex ("0x7f000001") and dots. Checked first, as glibc's
# inet_aton also takes "1.2.3.4 anything" (the space ends it).
_IPV4_LEGACY_CHARS = frozenset("0123456789abcdefxABCDEFX.")


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host names literally, read as the system's resolver reads it.

    getaddrinfo takes the forms inet_aton does (one number ``2130706433``, hex
    ``0x7f000001``, octal ``0177.0.0.1``, short ``127.1``, ``0``) and a name's one
    trailing dot: each is the address it connects to, so each is judged as that address."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    host = host.removesuffix(".")
    if not host or not _IPV4_LEGACY_CHARS.issuperset(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _is_localhost(host: str) -> bool:
    """RFC 6761 §6.3: ``localhost`` and names under it (a trailing dot too) are loopback."""
    name = host.lower().removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def _named_address(host: str) -> IPAddress | None:
    """The address a host stands for without a lookup: a literal, or loopback for localhost."""
    literal = _ip_literal(host)
    if literal is None and _is_localhost(host):
        return LOOPBACK
    return literal


def _is_local_name(host: str) -> bool:
    literal = _ip_literal(host)
    if literal is not None:
        return literal.is_loopback
    return _is_localhost(host)


class Deadline:
    """When an exchange must be over: each socket wait is given what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; ``TimeoutError`` once none is."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete answer within {self.seconds:g} s")
        return left


class _DeadlineBound:
    """Before each send and read, the socket's timeout shrinks to what is left of the deadline
    (a socket's own timeout is per call: a receiver sending a byte at a time resets it)."""

    deadline: Deadline | None = None

    def _shrink(self) -> None:
        if self.deadline is not None:
            self.settimeout(self.deadline.left())  # type: ignore[attr-defined]

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._shrink()
        return int(super().recv_into(*args, **kwargs))  # type: ignore[misc]

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self._shrink()
        return bytes(super().recv(*args, **kwargs))  # type: ignore[misc]

    def send(self, *args: Any, **kwargs: Any) -> int:
        self._shrink()
        return int(super().send(*args, **kwargs))  # type: ignore[misc]

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        # sendall's timeout bounds the whole call (Python 3.5+), not each chunk.
        self._shrink()
        super().sendall(*args, **kwargs)  # type: ignore[misc]


class DeadlineSocket(_DeadlineBound, socket.socket):
    """A socket bound by its ``deadline`` once set (also the mailer's: ``scim_server.mailer``)."""


class DeadlineSSLSocket(_DeadlineBound, ssl.SSLSocket):
    """The TLS socket of an ``SSLContext`` whose ``sslsocket_class`` it is, bound the same way."""


def connect_checked(
    host: str, port: int, policy: OutboundPolicy, *, plain: bool, deadline: Deadline | None = None
) -> socket.socket:
    """Resolve, check each address against the policy, connect to the first allowed one.

    Plain http goes to loopback addresses only, whatever the name resolves to. With a
    ``deadline``, connecting and every later send and read end by it (the name's lookup,
    done by the system's resolver, is not bounded by it).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from None
    refused: str | None = None
    last_error: OSError | None = None
    for family, socktype, proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        try:
            if plain and not address.is_loopback:
                raise OutboundRefusedError(f"http is only for loopback addresses, not {address}")
            policy.check_address(address)
        except OutboundRefusedError as exc:
            refused = str(exc)
            continue
        sock = (
            socket.socket(family, socktype, proto)
            if deadline is None
            else DeadlineSocket(family, socktype, proto)
        )
        try:
            sock.settimeout(policy.timeout if deadline is None else deadline.left())
            sock.connect(sockaddr)
        except OSError as exc:  # TimeoutError too: the deadline passed
            sock.close()
            last_error = exc
            continue
        if isinstance(sock, DeadlineSocket):
            sock.deadline = deadline
        return sock
    if last_error is not None:
        raise last_error
    raise OutboundRefusedError(refused or f"{host} has no address")


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, policy: OutboundPolicy, deadline: Deadline) -> None:
        super().__init__(host, port, timeout=policy.timeout)
        self.policy = policy
        self.deadline = deadline

    def connect(self) -> None:
        self.sock = connect_checked(
            self.host, self.port, self.policy, plain=True, deadline=self.deadline
        )


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, policy: OutboundPolicy, deadline: Deadline) -> None:
        self.tls = ssl.create_default_context()
        self.tls.sslsocket_class = DeadlineSSLSocket
        super().__init__(host, port, timeout=policy.timeout, context=self.tls)
        self.policy = policy
        self.deadline = deadline

    def connect(self) -> None:
        sock = connect_checked(
            self.host, self.port, self.policy, plain=False, deadline=self.deadline
        )
        sock.settimeout(self.deadline.left())  # the TLS handshake
        tls_sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        tls_sock.deadline = self.deadline  # type: ignore[attr-defined]
        self.sock = tls_sock


@dataclass(frozen=True)
class Answer:
    """What the receiver said (status, the start of its body) and how long it took;
    ``retry_after``: the seconds its ``Retry-After`` header asked for (``retry_after``),
    None without a usable one."""

    status: int
    body: str
    latency_ms: int
    retry_after: int | None = None


# A receiver's Retry-After is honoured within these bounds: at least a second (a date in
# the past, or 0), at most the longest backoff (an hour), so one receiver cannot park a
# delivery past its retry window with a single answer.
RETRY_AFTER_MIN = 1
RETRY_AFTER_MAX = 3600


def retry_after(value: str | None, now: float) -> int | None:
    """The delay a ``Retry-After`` value asks for, in whole seconds clamped to
    ``RETRY_AFTER_MIN``..``RETRY_AFTER_MAX``; None when absent or not one of its two forms.

    RFC 9110 §10.2.3: ``delay-seconds`` (digits) or an ``HTTP-date`` (``now``: the epoch
    seconds it is counted from)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = RETRY_AFTER_MAX if len(value) > 9 else int(value)
    else:
        try:
            # RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and asctime forms
            # (always GMT: a date without a zone is read as UTC).
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = math.ceil(when.timestamp() - now)
    return min(max(seconds, RETRY_AFTER_MIN), RETRY_AFTER_MAX)


def post(url: str, body: bytes, headers: Mapping[str, str], policy: OutboundPolicy) -> Answer:
    """POST ``body``; the receiver's answer, or an exception (refused, network, timeout).

    The whole exchange ends by ``policy.timeout`` (``TimeoutError`` past it)."""
    scheme, host, port, path = policy.check_url(as_uri(url))
    connection_class = _CheckedHTTPSConnection if scheme == "https" else _CheckedHTTPConnection
    started = time.monotonic()
    conn = connection_class(host, port, policy, Deadline(policy.timeout))
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        response = conn.getresponse()
        text = printable(response.read(policy.max_response).decode("utf-8", "replace"))
        return Answer(
            response.status,
            text,
            int((time.monotonic() - started) * 1000),
            retry_after(response.getheader("Retry-After"), time.time()),
        )
    except TimeoutError:  # the deadline, or a socket wait given what was left of it
        raise TimeoutError(f"no complete answer within {policy.timeout:g} s") from None
    finally:
        conn.close()
