"""IdP signing certificates: keys too weak to trust are refused when trusted and at sign-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient

from sso.connections.models import SsoConnection
from sso.errors import SsoError
from sso.saml.certs import describe, load_certificate, pem_body, rsa_key_bits
from tests.sso.saml.weak_keys import WEAK_512_CERT, WeakIdp
from tests.sso.saml_idp import WS, FakeIdp, valid_response
from tests.support import Scim
from tests.support.dns_server import add_verified_domain
from tests.support.sso import SamlConnection, assert_refused, make_person, read


def _cert_pem(key: Any) -> str:
    """A self-signed certificate for ``key`` (Ed25519 signs without a hash)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _metadata_with_cert(cert_pem: str) -> str:
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.test/m">'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{pem_body(cert_pem)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
        'Location="https://idp.example.test/sso"/>'
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


@pytest.mark.parametrize(
    ("make_key", "why"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits"),
        (lambda: dsa.generate_private_key(key_size=2048), "DSA"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1"),
        (lambda: ec.generate_private_key(ec.SECP224R1()), "secp224r1"),
        (ed25519.Ed25519PrivateKey.generate, "Ed25519"),
    ],
)
def test_describe_refuses_weak_or_unusable_signing_keys(make_key: Any, why: str) -> None:
    """RSA under 2048 bits, DSA, other EC curves, other key types: invalid_config, named."""
    with pytest.raises(SsoError) as err:
        describe(_cert_pem(make_key()))
    assert err.value.reason_code == "invalid_config" and why in err.value.detail


def test_describe_refuses_a_512_bit_rsa_key() -> None:
    """The 512-bit RSA certificate (openssl-made): refused with its size."""
    with pytest.raises(SsoError) as err:
        describe(WEAK_512_CERT)
    assert err.value.reason_code == "invalid_config" and "512 bits" in err.value.detail


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: ec.generate_private_key(ec.SECP521R1()),
    ],
)
def test_describe_accepts_rsa_2048_and_the_nist_curves(make_key: Any) -> None:
    """RSA 2048+ and P-256/P-384/P-521 are trusted."""
    assert len(describe(_cert_pem(make_key()))["fingerprint"]) == 64


def test_rsa_key_bits() -> None:
    """The RSA key size of a stored certificate; None for other keys."""
    assert rsa_key_bits(WEAK_512_CERT) == 512
    assert rsa_key_bits(_cert_pem(ec.generate_private_key(ec.SECP256R1()))) is None


def test_metadata_with_a_512_bit_rsa_signing_key_is_refused(admin: Scim) -> None:
    """A 512-bit RSA key is factorable in hours: the import is refused (400), nothing stored."""
    conn = admin.post("/api/v1/sso/connections", {"protocol": "saml"}).get_json()
    resp = admin.post(
        f"/api/v1/sso/connections/{conn['id']}/metadata",
        {"xml": _metadata_with_cert(WEAK_512_CERT)},
    )
    assert resp.status_code == 400, resp.get_json()
    assert "512 bits" in resp.get_json()["detail"]
    assert admin.get(f"/api/v1/sso/connections/{conn['id']}").get_json()["certificates"] == []


def test_add_certificate_refuses_a_512_bit_rsa_key(admin: Scim) -> None:
    """POST .../certificates with a 512-bit RSA certificate: 400 naming the size."""
    conn = admin.post("/api/v1/sso/connections", {"protocol": "saml"}).get_json()
    resp = admin.post(f"/api/v1/sso/connections/{conn['id']}/certificates", {"pem": WEAK_512_CERT})
    assert resp.status_code == 400, resp.get_json()
    assert "at least 2048" in resp.get_json()["detail"]
    assert admin.get(f"/api/v1/sso/connections/{conn['id']}").get_json()["certificates"] == []


def _stored(pem: str) -> dict[str, Any]:
    """A certificate as stored before the key check existed (describe() refuses it now)."""
    cert = load_certificate(pem)
    return {
        "pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
        "subject": cert.subject.rfc4514_string(),
    }


def _weak_connection(
    app: Flask, admin: Scim, client: FlaskClient, idp: FakeIdp, certs: list[str]
) -> SamlConnection:
    resp = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Weak", "metadata_xml": idp.metadata_xml()},
    )
    assert resp.status_code == 201, resp.get_json()
    conn = SamlConnection(resp.get_json(), client)
    with read(app) as s:
        row = s.get(SsoConnection, (admin.org_id, conn.id))
        row.idp_certificates = [_stored(c) for c in certs]
        s.commit()
    add_verified_domain(admin, "example.com", conn.id)
    return conn


def _login(conn: SamlConnection, idp: FakeIdp, email: str) -> Any:
    assertion = conn.assertion(
        conn.start(),
        name_id=email,
        issuer=idp.entity_id,
        attributes={WS + "emailaddress": [email]},
    )
    return conn.post(valid_response(assertion, idp))


def _signed_in(client: FlaskClient) -> str | None:
    with client.session_transaction() as sess:
        return (sess.get("sso") or {}).get("user_id")


def test_assertion_verified_only_by_a_stored_512_bit_key_is_refused(
    app: Flask, admin: Scim, client: FlaskClient, scim: Scim
) -> None:
    """A 512-bit key stored before the check (the only one): weak_key, logged; nobody in."""
    idp = WeakIdp(entity_id=FakeIdp.entity_id, key_name="weak")
    make_person(app, scim, "ceo@example.com")
    conn = _weak_connection(app, admin, client, FakeIdp(), [WEAK_512_CERT])
    resp = _login(conn, idp, "ceo@example.com")
    record = assert_refused(app, scim.org_id, resp, "weak_key")
    assert "512" in (record.detail or "")
    assert _signed_in(client) is None


def test_a_stored_512_bit_key_beside_a_strong_one_signs_nobody_in(
    app: Flask, admin: Scim, client: FlaskClient, scim: Scim
) -> None:
    """Strong and weak keys side by side: the strong one signs in, the weak one is refused."""
    strong = FakeIdp()
    weak = WeakIdp(entity_id=strong.entity_id, key_name="weak")
    make_person(app, scim, "ceo@example.com")
    conn = _weak_connection(app, admin, client, strong, [strong.cert, WEAK_512_CERT])
    record = assert_refused(app, scim.org_id, _login(conn, weak, "ceo@example.com"), "signature")
    assert "512" in (record.detail or "")
    assert _signed_in(client) is None
    assert _login(conn, strong, "ceo@example.com").status_code == 303
    assert _signed_in(client) is not None
