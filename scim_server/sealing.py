"""Secrets at rest: AES-256-GCM with keys derived from the server secret, one per purpose.

Whatever the database holds that could act as us (an SSO connection's client
secret or SP key, a TOTP secret, a webhook's signing secret) is stored sealed, so
that a dump or a backup alone is useless. The server secret (SCIM_SECRET_KEY) is
never used as a key itself: HKDF (RFC 5869) derives one per purpose from it,
named by the purpose's ``info`` label, which each user of this module keeps beside
its own code (``sso.connections.sealing.CONNECTION_SECRETS``,
``services.webhook_secrets.WEBHOOK_SECRETS``, ...).

A sealed value is ``enc:v1:`` + base64url(nonce ‖ ciphertext ‖ tag). The
version prefix lets the scheme change later; anything without the ``enc:``
prefix is a value written before encryption existed (its reader decides what to
do with it). The associated data (``context``) binds a ciphertext to its row and
column: copied elsewhere, it no longer opens.

Services take the server secret as an argument (``encryption_secret(app)`` is
the caller's to read): nothing here needs an application.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from scim_server.config import development_key

PREFIX = "enc:"
V1 = "enc:v1:"
_NONCE_BYTES = 12  # NIST SP 800-38D §8.2.2: 96-bit random nonces


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


def _key(secret: bytes, purpose: bytes) -> AESGCM:
    # RFC 5869: the server secret is input keying material; each purpose gets its own key.
    # Derived per call (about 10 µs): nothing derived from the secret is kept in the process.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
    return AESGCM(derived)


def is_sealed(stored: str | None) -> bool:
    """Whether ``stored`` is a sealed value (else a clear one from before encryption, or none)."""
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


@dataclass(frozen=True)
class Resealed:
    """What ``reseal`` found for one stored secret: ``status`` is "sealed" (was clear),
    "resealed" (opened with the previous secret), "current" (opens with this one) or
    "unreadable" (opens with neither: ``detail`` says why, left as it is); ``stored`` is
    the value to store for "sealed" and "resealed"."""

    status: str
    stored: str | None = None
    detail: str | None = None


def reseal(
    stored: str,
    current: bytes,
    previous: bytes | None,
    *,
    open_with: Callable[[bytes], str],
    seal: Callable[[str], str],
    seal_clear: bool = True,
) -> Resealed:
    """The one rule of ``scim-server sso encrypt-secrets`` for every kind of sealed secret.

    Only a value that opens with ``previous`` is sealed again with ``current``: one that
    opens with neither was not written by this server as it reads now (tampered, moved,
    or sealed with a secret nobody gave), and sealing it would launder it. A clear value
    (written before sealing existed) is sealed when ``seal_clear``. ``open_with(secret)``
    opens ``stored`` with a secret (``SealedSecretError`` if it does not);
    ``seal(value)`` seals a clear value with ``current``.
    """
    if seal_clear and not is_sealed(stored):
        return Resealed("sealed", seal(stored))
    try:
        open_with(current)
    except SealedSecretError as err:
        failure = str(err)
    else:
        return Resealed("current")
    if previous is not None:
        try:
            value = open_with(previous)
        except SealedSecretError:
            pass
        else:
            return Resealed("resealed", seal(value))
    return Resealed("unreadable", detail=failure)
