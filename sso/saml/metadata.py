"""IdP metadata: read an uploaded document, or fetch one from the IdP's HTTPS URL without SSRF.

A metadata URL is typed by an organization's admin and fetched by our server,
so it must not become a way to read our internal network: HTTPS only, every
address the name resolves to must be public, the connection goes to the
address we checked (no second DNS answer), and size and time are bounded.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from scim_server import outbound_address
from scim_server.errors import DomainError
from sso.errors import SsoError
from sso.saml import xml_guard
from sso.saml.certs import describe

MAX_METADATA_BYTES = 1024 * 1024
CONNECT_TIMEOUT = 5.0
DEADLINE = 10.0  # seconds for the whole fetch, redirects included
MAX_REDIRECTS = 3
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
REDIRECT_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"


class MetadataError(DomainError):
    """The metadata (or its URL) cannot be used; the detail says why, for the admin."""

    status = 400


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso_url: str
    certificates: list[dict[str, Any]]  # sso.saml.certs.describe() of each signing certificate


def parse_idp_metadata(xml: bytes, entity_id: str | None = None) -> IdpMetadata:
    """The IdP entity id, HTTP-Redirect SSO URL and signing certificates (several in rotation)."""
    try:
        root = xml_guard.parse(xml, limit=MAX_METADATA_BYTES)
    except SsoError as err:
        raise MetadataError(f"metadata refused: {err.detail}") from None
    entities = [root] if root.tag == f"{{{MD}}}EntityDescriptor" else []
    entities += root.findall(f".//{{{MD}}}EntityDescriptor")
    idps = [e for e in entities if e.find(f"{{{MD}}}IDPSSODescriptor") is not None]
    if entity_id is not None:
        idps = [e for e in idps if e.get("entityID") == entity_id]
    if len(idps) != 1:
        names = [e.get("entityID") for e in idps][:5]
        raise MetadataError(
            f"expected one identity provider in the metadata, found {len(idps)} {names or ''}"
        )
    entity = idps[0]
    descriptor = entity.find(f"{{{MD}}}IDPSSODescriptor")
    assert descriptor is not None  # idps holds only entities that have one
    sso_url = next(
        (
            s.get("Location")
            for s in descriptor.findall(f"{{{MD}}}SingleSignOnService")
            if s.get("Binding") == REDIRECT_BINDING and s.get("Location")
        ),
        None,
    )
    if not sso_url or urlsplit(sso_url).scheme != "https":
        raise MetadataError("no HTTPS SingleSignOnService with the HTTP-Redirect binding")
    _check_sso_url(sso_url)
    certificates: dict[str, dict[str, Any]] = {}
    for key in descriptor.findall(f"{{{MD}}}KeyDescriptor"):
        if key.get("use") not in (None, "signing"):
            continue
        for node in key.iter(f"{{{DS}}}X509Certificate"):
            try:
                info = describe(node.text or "")
            except SsoError as err:
                raise MetadataError(f"bad certificate in metadata: {err.detail}") from None
            certificates[info["fingerprint"]] = info
    if not certificates:
        raise MetadataError("no signing certificate in the metadata")
    return IdpMetadata(str(entity.get("entityID") or ""), sso_url, list(certificates.values()))


def _check_sso_url(url: str) -> None:
    """Where browsers are sent to sign in: an https URL naming a host, nothing else.

    ``https:javascript:alert(1)`` or ``https:///x`` pass a scheme test but name no host (a
    browser may resolve them against our own origin); userinfo (``https://idp@evil``) hides
    the real host from the admin; whitespace or control characters are read differently by
    browsers and by us."""
    if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in url):
        raise MetadataError(
            "the SingleSignOnService Location contains spaces or control characters"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed on access: a bad port raises here
    except ValueError as err:
        raise MetadataError(f"the SingleSignOnService Location cannot be read: {err}") from None
    if not parts.hostname or "@" in parts.netloc:
        raise MetadataError(
            "the SingleSignOnService Location must be https://host/..., with a host name "
            "and no user name or password"
        )


def _resolve(host: str, port: int) -> list[str]:
    """Every address the name resolves to (tests replace this)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_address(address: str) -> None:
    """Refuse anything but a public unicast address (loopback, private, link-local ...),
    judged as webhooks are (``outbound_address``): an IPv6 address carrying an IPv4 one
    (NAT64, 6to4, Teredo, IPv4-mapped or -compatible) by that IPv4 address too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    bad = outbound_address.refused(ip)
    if bad is not None:
        raise MetadataError(f"the metadata URL points to a non-public address ({bad})")


def check_url(url: str) -> tuple[str, int, list[str]]:
    """HTTPS, no credentials, and every resolved address public: (host, port, addresses)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443  # parsed on access: a port past 65535 raises here
    except ValueError as err:  # a broken IPv6 literal ("https://[::1/"), a bad port
        raise MetadataError(f"the metadata URL cannot be read: {err}") from None
    if parts.scheme != "https":
        raise MetadataError("the metadata URL must use https://")
    if not parts.hostname or parts.username or parts.password:
        raise MetadataError("the metadata URL must name a host, without credentials")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = _resolve(parts.hostname, port)
        except (OSError, UnicodeError) as err:  # UnicodeError: a name IDNA cannot encode
            raise MetadataError(f"cannot resolve {parts.hostname}: {err}") from None
    if not addresses:
        raise MetadataError(f"{parts.hostname} has no address")
    for address in addresses:
        check_address(address)
    return parts.hostname, port, addresses


def fetch_metadata(url: str) -> bytes:
    """GET the metadata: at most 1 MiB, 10 seconds, 3 redirects, each hop checked again."""
    started = time.monotonic()
    for _hop in range(MAX_REDIRECTS + 1):
        host, port, addresses = check_url(url)
        status, location, body = _get(url, host, port, addresses[0], started)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        if status != 200:
            raise MetadataError(f"the metadata URL answered HTTP {status}")
        return body
    raise MetadataError("too many redirects")


def _get(
    url: str, host: str, port: int, address: str, started: float
) -> tuple[int, str | None, bytes]:
    """One request to the checked address, TLS verified against the host name."""
    import certifi
    import urllib3

    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pool = urllib3.HTTPSConnectionPool(
        address,
        port,
        server_hostname=host,
        assert_hostname=host,
        cert_reqs="CERT_REQUIRED",
        ca_certs=certifi.where(),
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=CONNECT_TIMEOUT),
        retries=False,
    )
    try:
        resp = pool.urlopen(
            "GET",
            path,
            headers={
                "Host": host if port == 443 else f"{host}:{port}",
                "Accept": "application/xml",
            },
            redirect=False,
            preload_content=False,
        )
        chunks, size = [], 0
        for chunk in resp.stream(64 * 1024):
            size += len(chunk)
            if size > MAX_METADATA_BYTES:
                raise MetadataError(f"metadata larger than {MAX_METADATA_BYTES} bytes")
            if time.monotonic() - started > DEADLINE:
                raise MetadataError(f"metadata fetch took longer than {DEADLINE:.0f} seconds")
            chunks.append(chunk)
        resp.release_conn()
        return resp.status, resp.headers.get("Location"), b"".join(chunks)
    except urllib3.exceptions.HTTPError as err:
        raise MetadataError(f"metadata fetch failed: {err}") from None
    finally:
        pool.close()
