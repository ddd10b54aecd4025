"""Keys the local sign-in derives from the server secret (HKDF, one per purpose)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sso.connections import sealing

ATTEMPTS = b"scim-server sign-in attempt hashes v1"
TOTP_SECRETS = b"scim-server totp secrets v1"
PENDING = b"scim-server pending enrolment v1"


def attempt_key(secret: bytes) -> bytes:
    """The HMAC key of the lockout's wrong-attempt hashes (RFC 5869 HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=ATTEMPTS).derive(secret)


def _totp_context(org_id: str, factor_id: str) -> bytes:
    return f"mfa_factors\x00{org_id}\x00{factor_id}\x00secret".encode()


def seal_totp(secret: bytes, org_id: str, factor_id: str, value: str) -> str:
    """A TOTP secret at rest: AES-256-GCM, bound to its organization and factor row."""
    return sealing.seal(
        secret, value, purpose=TOTP_SECRETS, context=_totp_context(org_id, factor_id)
    )


def open_totp(secret: bytes, org_id: str, factor_id: str, stored: str) -> str:
    """The clear TOTP secret; ``sealing.SealedSecretError`` when it does not open."""
    return sealing.unseal(
        secret, stored, purpose=TOTP_SECRETS, context=_totp_context(org_id, factor_id)
    )


def _pending_context(org_id: str, user_id: str, name: str) -> bytes:
    return f"pending\x00{org_id}\x00{user_id}\x00{name}".encode()


def seal_pending(secret: bytes, org_id: str, user_id: str, name: str, value: str) -> str:
    """A value of an unfinished enrolment, kept in the person's cookie: AES-256-GCM, bound
    to the account and the value's name (copied to another account or name, it does not open)."""
    return sealing.seal(
        secret, value, purpose=PENDING, context=_pending_context(org_id, user_id, name)
    )


def open_pending(secret: bytes, org_id: str, user_id: str, name: str, stored: str) -> str:
    """The clear value; ``sealing.SealedSecretError`` when it does not open."""
    return sealing.unseal(
        secret, stored, purpose=PENDING, context=_pending_context(org_id, user_id, name)
    )
