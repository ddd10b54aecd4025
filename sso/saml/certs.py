"""X.509 helpers: the SP key pair of a SAML connection, and what admins see of IdP certificates."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID

from sso.errors import SsoError

SP_KEY_BITS = 3072
SP_CERT_YEARS = 10  # the SP certificate only names our key; rotating it means new IdP config
# An IdP signing key we agree to trust (NIST SP 800-131A: RSA under 2048 bits is disallowed
# for signatures). Below SIGNIN_MIN_RSA_BITS a stored key (trusted before the check) signs
# nobody in: 512 bits is factored in hours, 768 has been publicly.
MIN_RSA_BITS = 2048
SIGNIN_MIN_RSA_BITS = 1024
EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


def generate_sp_keypair(common_name: str) -> tuple[str, str]:
    """A fresh RSA key and a self-signed certificate (PEM), for signing AuthnRequests."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=SP_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "sso")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * SP_CERT_YEARS))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


_PEM_BODY = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


def load_certificate(text: str) -> x509.Certificate:
    """A certificate from PEM or bare base64 (as metadata carries it in ds:X509Certificate)."""
    match = _PEM_BODY.search(text)
    body = match.group(1) if match else text
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except ValueError as err:
        raise SsoError("invalid_config", f"not an X.509 certificate: {err}") from None


def _check_signing_key(cert: x509.Certificate) -> None:
    """Refuse a key an attacker could break or that we would not verify with: RSA under
    2048 bits, DSA, an EC curve other than P-256/P-384/P-521."""
    try:
        key = cert.public_key()
    except ValueError as err:  # a key cryptography cannot read (unknown curve...)
        raise SsoError("invalid_config", f"certificate key cannot be read: {err}") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise SsoError(
                "invalid_config",
                f"the certificate's RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} "
                "are required",
            )
    elif isinstance(key, dsa.DSAPublicKey):
        raise SsoError("invalid_config", "DSA signing keys are not accepted; use RSA or EC")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise SsoError(
                "invalid_config",
                f"EC curve {key.curve.name} is not accepted; use P-256, P-384 or P-521",
            )
    else:
        raise SsoError(
            "invalid_config", f"{type(key).__name__} signing keys are not accepted; use RSA or EC"
        )


def describe(text: str) -> dict[str, Any]:
    """The stored form of an IdP certificate: PEM, expiry and SHA-256 fingerprint.

    Refuses (``invalid_config``) a signing key too weak to trust (``_check_signing_key``):
    metadata import and an added certificate both come through here.
    """
    cert = load_certificate(text)
    _check_signing_key(cert)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {
        "pem": pem,
        "not_after": cert.not_valid_after_utc.isoformat(),
        "fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
        "subject": cert.subject.rfc4514_string()[:300],
    }


def expiry_view(stored: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What the admin API shows of a certificate (not the PEM): expiry, days left, expired."""
    now = now or datetime.now(UTC)
    not_after = datetime.fromisoformat(stored["not_after"])
    return {
        "fingerprint": stored["fingerprint"],
        "subject": stored.get("subject"),
        "not_after": stored["not_after"],
        "days_left": (not_after - now).days,
        "expired": not_after <= now,
    }


def pem_body(pem: str) -> str:
    """The base64 body of a PEM certificate, one line (for metadata and python3-saml settings)."""
    match = _PEM_BODY.search(pem)
    return "".join((match.group(1) if match else pem).split())


@lru_cache(maxsize=1024)
def rsa_key_bits(pem: str) -> int | None:
    """The RSA key size of a stored certificate (None: not RSA, or unreadable), read once per
    certificate: the sign-in checks it on every response."""
    try:
        key = load_certificate(pem).public_key()
    except (SsoError, ValueError):
        return None
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None
