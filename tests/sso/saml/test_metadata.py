"""IdP metadata: parsing uploads, and fetching URLs without becoming an SSRF tool (no real fetch)."""

from __future__ import annotations

from typing import Any

import pytest

from sso.saml import metadata
from sso.saml.metadata import MetadataError, check_url, fetch_metadata, parse_idp_metadata
from tests.sso.saml_idp import FakeIdp
from tests.support import Scim


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any attempt to really connect fails the test; resolution answers from a table."""
    table = {
        "idp.example.test": ["93.184.216.34"],
        "intranet.example.test": ["10.0.0.7"],
        "localhost": ["127.0.0.1", "::1"],
    }
    fetched: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("unknown host")
        return table[host]

    def get(url: str, *_a: Any) -> Any:
        fetched.append(url)
        raise AssertionError(f"network fetch attempted: {url}")

    monkeypatch.setattr(metadata, "_resolve", resolve)
    monkeypatch.setattr(metadata, "_get", get)
    return fetched


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://idp.example.test/metadata", "https"),
        ("ftp://idp.example.test/metadata", "https"),
        ("file:///etc/passwd", "https"),
        ("https://127.0.0.1/metadata", "non-public"),
        ("https://localhost/metadata", "non-public"),
        ("https://[::1]/metadata", "non-public"),
        ("https://[::ffff:127.0.0.1]/metadata", "non-public"),
        ("https://10.1.2.3/metadata", "non-public"),
        ("https://192.168.0.10/metadata", "non-public"),
        ("https://172.16.5.4/metadata", "non-public"),
        ("https://169.254.169.254/latest/meta-data", "non-public"),
        ("https://0.0.0.0/metadata", "non-public"),
        ("https://intranet.example.test/metadata", "non-public"),
        ("https://user:pw@idp.example.test/metadata", "credentials"),
    ],
)
def test_metadata_url_refused(url: str, why: str, no_network: list[str]) -> None:
    """http://, loopback, private, link-local and credentials are refused before any connection."""
    with pytest.raises(MetadataError) as err:
        fetch_metadata(url)
    assert why in err.value.detail
    assert no_network == []


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 (RFC 6052)
        ("64:ff9b::a00:1", "10.0.0.1"),
        ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4 (RFC 3056)
        ("::7f00:1", "127.0.0.1"),  # IPv4-compatible (RFC 4291 §2.5.5.1)
        ("fec0::1", "fec0::1"),  # site-local (RFC 3879)
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),  # Teredo
    ],
)
def test_ipv6_forms_carrying_a_private_address_are_refused(
    monkeypatch: pytest.MonkeyPatch, address: str, carried: str, no_network: list[str]
) -> None:
    """A metadata URL whose name resolves to (or whose literal is) an IPv6 address carrying a
    private IPv4 one is refused as webhooks refuse it (one shared check: outbound_address)."""
    monkeypatch.setattr(metadata, "_resolve", lambda h, p: [address])
    for url in ("https://idp.example.test/metadata", f"https://[{address}]/metadata"):
        with pytest.raises(MetadataError) as err:
            fetch_metadata(url)
        assert f"non-public address ({carried})" in err.value.detail
    assert no_network == []


def test_nat64_of_a_public_address_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS64's answer for a public host (64:ff9b::93.184.216.34) is public."""
    monkeypatch.setattr(metadata, "_resolve", lambda h, p: ["64:ff9b::5db8:d822"])
    assert check_url("https://idp.example.test/x")[2] == ["64:ff9b::5db8:d822"]


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """One private address among public ones is enough to refuse (DNS answers vary)."""
    monkeypatch.setattr(metadata, "_resolve", lambda h, p: ["93.184.216.34", "192.168.1.5"])
    with pytest.raises(MetadataError, match="non-public"):
        check_url("https://idp.example.test/metadata")


def test_public_address_is_allowed() -> None:
    """A public name passes the checks (the connection then goes to the checked address)."""
    assert check_url("https://idp.example.test:8443/x") == (
        "idp.example.test",
        8443,
        ["93.184.216.34"],
    )


def test_redirect_to_a_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each redirect hop is checked again: a public URL bouncing to 127.0.0.1 is refused."""
    calls: list[str] = []

    def get(url: str, host: str, port: int, address: str, started: float) -> Any:
        calls.append(address)
        return 302, "https://127.0.0.1/admin", b""

    monkeypatch.setattr(metadata, "_get", get)
    with pytest.raises(MetadataError, match="non-public"):
        fetch_metadata("https://idp.example.test/metadata")
    assert calls == ["93.184.216.34"]


def test_fetch_returns_the_body_of_a_public_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 from the checked public address is the metadata."""
    monkeypatch.setattr(metadata, "_get", lambda *a: (200, None, b"<xml/>"))
    assert fetch_metadata("https://idp.example.test/metadata") == b"<xml/>"


def test_admin_api_refuses_private_metadata_url(admin: Scim, no_network: list[str]) -> None:
    """Through the API: 400 with the reason, no connection created, nothing fetched."""
    for url in ("http://idp.example.test/m", "https://127.0.0.1/m", "https://10.0.0.1/m"):
        resp = admin.post("/api/v1/sso/connections", {"protocol": "saml", "metadata_url": url})
        assert resp.status_code == 400 and resp.get_json()["detail"], url
    assert admin.get("/api/v1/sso/connections").get_json()["connections"] == []
    assert no_network == []


def test_admin_api_imports_from_url(admin: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    """A public HTTPS metadata URL is fetched (here: served by the test) and kept on the connection."""
    idp = FakeIdp()
    monkeypatch.setattr(metadata, "_get", lambda *a: (200, None, idp.metadata_xml().encode()))
    conn = admin.post("/api/v1/sso/connections", {"protocol": "saml"}).get_json()
    url = "https://idp.example.test/federationmetadata.xml"
    resp = admin.post(f"/api/v1/sso/connections/{conn['id']}/metadata", {"url": url})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["metadata_url"] == url
    assert resp.get_json()["idp_sso_url"] == idp.sso_url


def test_parse_metadata_with_several_certificates() -> None:
    """Rotation: every signing certificate in the metadata is trusted, each with its expiry."""
    idp = FakeIdp()
    parsed = parse_idp_metadata(
        idp.metadata_xml(extra_certs=(FakeIdp(key_name="n").cert,)).encode()
    )
    assert parsed.entity_id == idp.entity_id and parsed.sso_url == idp.sso_url
    assert len(parsed.certificates) == 2
    assert all(c["not_after"] and c["fingerprint"] for c in parsed.certificates)


@pytest.mark.parametrize(
    ("xml", "why"),
    [
        (b"<md:EntitiesDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata'/>", "found 0"),
        (b"not xml", "refused"),
        (b"<a>" + b"x" * (1024 * 1024 + 1) + b"</a>", "refused"),
    ],
)
def test_parse_metadata_refuses(xml: bytes, why: str) -> None:
    """Metadata without an IdP, not XML, or over 1 MiB: a clear error."""
    with pytest.raises(MetadataError, match=why):
        parse_idp_metadata(xml)


def test_parse_metadata_needs_redirect_binding_and_certificate() -> None:
    """An IdP without an HTTP-Redirect SSO URL or without a signing certificate is refused."""
    idp = FakeIdp()
    no_redirect = idp.metadata_xml().replace("HTTP-Redirect", "HTTP-Artifact")
    with pytest.raises(MetadataError, match="HTTP-Redirect"):
        parse_idp_metadata(no_redirect.encode())
    no_cert = idp.metadata_xml().replace('use="signing"', 'use="encryption"')
    with pytest.raises(MetadataError, match="signing certificate"):
        parse_idp_metadata(no_cert.encode())


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("https:javascript:alert(1)", "host name"),
        ("https:///x", "host name"),
        ("https://idp.example.test@evil.example/sso", "no user name"),
        ("https://user:pw@idp.example.test/sso", "no user name"),
        ("https://idp.example.test/s so", "spaces or control"),
        ("https://idp.example.test/s&#x9;so", "spaces or control"),
        ("https://idp.example.test/s&#x85;so", "spaces or control"),
        ("https://idp.example.test:99999/sso", "cannot be read"),
    ],
)
def test_sso_url_must_name_a_host_without_userinfo_or_spaces(location: str, why: str) -> None:
    """A SingleSignOnService Location that passes the scheme test but names no host (or hides
    it, or has whitespace or control characters) is refused with the reason."""
    xml = FakeIdp(sso_url=location).metadata_xml()
    with pytest.raises(MetadataError, match=why):
        parse_idp_metadata(xml.encode())


def test_admin_api_refuses_an_sso_url_without_a_host(admin: Scim) -> None:
    """Location="https:javascript:alert(1)" through the admin API: 400, nothing stored."""
    conn = admin.post("/api/v1/sso/connections", {"protocol": "saml"}).get_json()
    resp = admin.post(
        f"/api/v1/sso/connections/{conn['id']}/metadata",
        {"xml": FakeIdp(sso_url="https:javascript:alert(1)").metadata_xml()},
    )
    assert resp.status_code == 400, resp.get_json()
    assert "host name" in resp.get_json()["detail"]
    assert admin.get(f"/api/v1/sso/connections/{conn['id']}").get_json()["idp_sso_url"] is None
