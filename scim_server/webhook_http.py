"""Sending one webhook: Standard Webhooks signatures, and an outbound connection we control.

Used by ``scim-server worker`` only. Safety (a subscription URL is chosen by an
organization admin, so it is untrusted):

- ``https`` only; ``http`` only to a loopback address in development;
- the address is checked when the connection is made, on the address we
  actually connect to (so a DNS name that resolves to a private address on the
  second lookup, DNS rebinding, gets nowhere): in production no private,
  loopback, link-local, multicast or reserved address unless the operator
  allows its network (``SCIM_WEBHOOK_ALLOWED_NETWORKS``);
- a 10 s timeout, no redirect followed (a 3xx is a failure), no proxy from the
  environment, and the response body read only up to ``max_response`` bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import secrets
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
USER_AGENT = "scim-server-webhooks/1"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
        if any(c in url for c in "\r\n\x00 "):
            raise OutboundRefusedError("The URL must not contain spaces or control characters.")
        if parts.scheme == "http" and not (self.development and _is_local_name(parts.hostname)):
            raise OutboundRefusedError(
                "The URL must use https (http is allowed only for localhost in development)."
            )
        literal = _ip_literal(parts.hostname)
        if literal is not None:
            self.check_address(literal)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path

    def check_address(self, address: IPAddress) -> None:
        """Refuse a non-public address unless allowed (development allows any)."""
        if self.development or address.is_global:
            return
        if any(address in network for network in self.allowed_networks):
            return
        raise OutboundRefusedError(
            f"{address} is a private, loopback, link-local or reserved address; "
            "an operator may allow its network with SCIM_WEBHOOK_ALLOWED_NETWORKS."
        )


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """``SCIM_WEBHOOK_ALLOWED_NETWORKS``: comma-separated CIDR networks."""
    try:
        return tuple(ipaddress.ip_network(v.strip()) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise ValueError(f"SCIM_WEBHOOK_ALLOWED_NETWORKS: {exc}") from None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_local_name(host: str) -> bool:
    literal = _ip_literal(host)
    if literal is not None:
        return literal.is_loopback
    return host.lower() == "localhost" or host.lower().endswith(".localhost")


def connect_checked(host: str, port: int, policy: OutboundPolicy, *, plain: bool) -> socket.socket:
    """Resolve, check each address against the policy, connect to the first allowed one.

    Plain http goes to loopback addresses only, whatever the name resolves to.
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
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(policy.timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    if last_error is not None:
        raise last_error
    raise OutboundRefusedError(refused or f"{host} has no address")


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, policy: OutboundPolicy) -> None:
        super().__init__(host, port, timeout=policy.timeout)
        self.policy = policy

    def connect(self) -> None:
        self.sock = connect_checked(self.host, self.port, self.policy, plain=True)


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, policy: OutboundPolicy) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=policy.timeout, context=self.tls)
        self.policy = policy

    def connect(self) -> None:
        sock = connect_checked(self.host, self.port, self.policy, plain=False)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Answer:
    """What the receiver said (status, the start of its body) and how long it took."""

    status: int
    body: str
    latency_ms: int


def post(url: str, body: bytes, headers: Mapping[str, str], policy: OutboundPolicy) -> Answer:
    """POST ``body``; the receiver's answer, or an exception (refused, network, timeout)."""
    scheme, host, port, path = policy.check_url(url)
    connection_class = _CheckedHTTPSConnection if scheme == "https" else _CheckedHTTPConnection
    conn = connection_class(host, port, policy)
    started = time.monotonic()
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        response = conn.getresponse()
        text = response.read(policy.max_response).decode("utf-8", "replace")
        return Answer(response.status, text, int((time.monotonic() - started) * 1000))
    finally:
        conn.close()
