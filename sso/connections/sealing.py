"""Secrets at rest: keys derived from the server secret, never the server secret itself.

Two kinds of secret live in the database and must be useless in a dump or a
backup: the OIDC provider's signing keys (``sso.provider.keys``, PKCS#8 with a
purpose-bound password) and each SSO connection's own secrets, the OIDC client
secret and the SAML SP private key (here: AES-256-GCM).

A sealed value is ``enc:v1:`` + base64url(nonce ‖ ciphertext ‖ tag). The
version prefix lets the scheme change later; anything without the ``enc:``
prefix is a value written before encryption existed (read as it is, and sealed
by the next write or ``scim-server sso encrypt-secrets``). The associated data
binds a ciphertext to its organization, connection and field: copied to another
row or column, it no longer opens.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from scim_server.config import development_key

PREFIX = "enc:"
V1 = "enc:v1:"
_NONCE_BYTES = 12  # NIST SP 800-38D §8.2.2: 96-bit random nonces
# HKDF "info" (RFC 5869 §3.2): distinct from the signing keys' "scim-server oauth signing keys v1".
CONNECTION_SECRETS = b"scim-server sso connection secrets v1"


class SealedSecretError(RuntimeError):
    """A sealed value that cannot be opened: wrong server secret, tampered, or moved."""


def encryption_secret(app: Any) -> bytes:
    """What encrypts secrets at rest: SCIM_SECRET_KEY, else (development) a key file.

    The process's random development SECRET_KEY would make yesterday's secrets
    unreadable after a restart, so it is never used here. ``OAUTH_KEY_SECRET``
    in the app config is SCIM_SECRET_KEY (``scim_server.config``); tests set it.
    """
    configured = app.config.get("OAUTH_KEY_SECRET")
    if configured:
        return str(configured).encode()
    return development_key(app.instance_path, "oauth-keys.secret")


def current_secret() -> bytes:
    """The encryption secret of the running application (request or CLI app context)."""
    from flask import current_app

    return encryption_secret(current_app)


def _key(secret: bytes, purpose: bytes) -> AESGCM:
    # RFC 5869: the server secret is input keying material; each purpose gets its own key.
    # Derived per call (about 10 µs): nothing derived from the secret is kept in the process.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
    return AESGCM(derived)


def is_sealed(stored: str | None) -> bool:
    return bool(stored) and str(stored).startswith(PREFIX)


def seal(secret: bytes, plaintext: str, *, purpose: bytes, context: bytes) -> str:
    """Encrypt ``plaintext``; ``context`` (associated data) must be given again to open it."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _key(secret, purpose).encrypt(nonce, plaintext.encode(), context)
    return V1 + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(secret: bytes, stored: str, *, purpose: bytes, context: bytes) -> str:
    """The plaintext of a sealed value; ``SealedSecretError`` if it does not open."""
    if not stored.startswith(V1):
        raise SealedSecretError(f"unknown encryption scheme {stored[:8]!r}")
    try:
        raw = base64.urlsafe_b64decode(stored[len(V1) :].encode())
    except (binascii.Error, ValueError):
        raise SealedSecretError("the sealed value is not valid base64") from None
    if len(raw) <= _NONCE_BYTES:
        raise SealedSecretError("the sealed value is truncated")
    try:
        plain = _key(secret, purpose).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context)
    except InvalidTag:
        raise SealedSecretError("authentication failed") from None
    return plain.decode()


# -- SSO connection secrets -----------------------------------------------------------


def _connection_context(org_id: str, connection_id: str, field: str) -> bytes:
    return f"sso_connections\x00{org_id}\x00{connection_id}\x00{field}".encode()


def seal_connection_secret(
    secret: bytes, org_id: str, connection_id: str, field: str, value: str
) -> str:
    """The stored form of a connection's ``field`` (``client_secret``, ``sp_private_key``)."""
    return seal(
        secret,
        value,
        purpose=CONNECTION_SECRETS,
        context=_connection_context(org_id, connection_id, field),
    )


def open_connection_secret(
    secret: bytes, org_id: str, connection_id: str, field: str, stored: str
) -> str:
    """The clear value of a sealed connection secret; ``SealedSecretError`` with the likely cause.

    Legacy clear values are the caller's to recognise (``is_sealed``).
    """
    try:
        return unseal(
            secret,
            stored,
            purpose=CONNECTION_SECRETS,
            context=_connection_context(org_id, connection_id, field),
        )
    except SealedSecretError as err:
        raise SealedSecretError(
            f"the connection's {field} cannot be decrypted ({err}): SCIM_SECRET_KEY changed "
            "since it was stored, or the value was copied from another connection? Run "
            "`scim-server sso encrypt-secrets` with SCIM_PREVIOUS_SECRET_KEY set to the old "
            f"secret, or {_RECOVERY.get(field, 'enter the secret again')}."
        ) from None


_RECOVERY = {
    "client_secret": "enter the client_secret again (PATCH the connection)",
    "sp_private_key": "create the connection again (a new SP certificate for the IdP)",
}
