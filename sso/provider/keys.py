"""id_token signing keys: create, encrypt at rest, rotate, publish (JWKS).

Rotation publishes a new key at once but signs with it only after ``STAGING``
(twice the JWKS's ``max-age``): a relying party that cached the JWKS just before
the rotation has the new key by the time a token carries it, so no id_token
fails verification at the switch (RFC 7517 gives no push; OIDC Core §10.1.1
asks that keys be published before use). Until then the old key signs; it is
retired at the switch and stays in the JWKS for a grace period so that id_tokens
it signed can still be verified. ``rotate(now=True)`` switches at once, for a key
that can no longer be opened or must no longer be used. Several nodes may race
to create the first key; both keys are then active and published, which is
harmless.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import RSAKey
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from scim_server.db import utcnow
from sso.connections.sealing import encryption_secret as encryption_secret  # shared; re-exported
from sso.provider.models import OAuthSigningKey

ALG = "RS256"
KEY_BITS = 2048
MAX_CACHED_KEYS = 8  # decrypted signing keys an app keeps (current and recently retired)
JWKS_MAX_AGE = 300  # seconds a relying party may cache the JWKS (its Cache-Control)
STAGING = timedelta(seconds=2 * JWKS_MAX_AGE)  # a new key's time in the JWKS before it signs


class SigningKeyError(RuntimeError):
    """The signing key cannot be used (typically: SCIM_SECRET_KEY changed since it was made)."""


def _password(secret: bytes) -> str:
    # A purpose-bound derivation: the raw secret also signs cookies and the audit log.
    return hmac.new(secret, b"scim-server oauth signing keys v1", hashlib.sha256).hexdigest()


def create_key(session: Session, secret: bytes, now: datetime | None = None) -> OAuthSigningKey:
    """A new RS256 key pair, published at once, in the caller's transaction."""
    key = RSAKey.generate_key(KEY_BITS, parameters={"use": "sig", "alg": ALG}, private=True)
    key.ensure_kid()  # RFC 7638 thumbprint
    row = OAuthSigningKey(
        kid=key.kid,
        alg=ALG,
        private_key_pem=key.as_pem(private=True, password=_password(secret)).decode(),
        public_jwk=dict(key.as_dict(private=False)),
        active=True,
        created_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def active_key(session: Session, now: datetime | None = None) -> OAuthSigningKey | None:
    """The current signer: the newest key published for ``STAGING`` among those that may
    sign (active, or retired at a switch still to come); without one, the one published
    longest (the first key, or the one a rotation ``at_once`` made)."""
    now = now or utcnow()
    stmt = (
        select(OAuthSigningKey)
        .where(or_(OAuthSigningKey.active.is_(True), OAuthSigningKey.retired_at > now))
        .order_by(OAuthSigningKey.created_at.desc(), OAuthSigningKey.kid)
    )
    rows = list(session.scalars(stmt))
    ready = (row for row in rows if row.created_at <= now - STAGING)
    return next(ready, rows[-1] if rows else None)


def private_key(
    row: OAuthSigningKey, secret: bytes, cache: dict[tuple[str, ...], RSAKey] | None = None
) -> RSAKey:
    """The usable private key of ``row``; a clear error if the secret no longer opens it.

    Decrypting costs ~50 ms (the PKCS#8 key derivation) and a key never changes,
    so the caller may pass a ``cache`` (the app's, ``sso.extension``).
    """
    password = _password(secret)
    slot = (row.kid, row.alg, row.private_key_pem, password)
    found = cache.get(slot) if cache is not None else None
    if found is not None:
        return found
    try:
        key = RSAKey.import_key(
            row.private_key_pem, {"kid": row.kid, "use": "sig", "alg": row.alg}, password=password
        )
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"signing key {row.kid} cannot be decrypted: SCIM_SECRET_KEY changed since it was "
            "created? Run `scim-server oauth keys rotate --now` to sign with a new one."
        ) from exc
    if cache is not None:
        if len(cache) >= MAX_CACHED_KEYS:
            cache.clear()  # rotations over the process's life: start again, never grow
        cache[slot] = key
    return key


def rotate(
    session: Session, secret: bytes, now: datetime | None = None, *, at_once: bool = False
) -> OAuthSigningKey:
    """Make a new key, the signer after ``STAGING`` (or ``at_once``), and retire every active
    key at that switch, in the caller's transaction."""
    now = now or utcnow()
    switch = now if at_once else now + STAGING
    for row in session.scalars(select(OAuthSigningKey).where(OAuthSigningKey.active.is_(True))):
        row.active = False
        row.retired_at = switch
    if at_once:  # keys an earlier rotation left signing until their switch stop now
        pending = select(OAuthSigningKey).where(OAuthSigningKey.retired_at > now)
        for row in session.scalars(pending):
            row.retired_at = now
    return create_key(session, secret, now)


def published_keys(session: Session, grace: timedelta) -> list[dict[str, Any]]:
    """The public JWKs to publish: active keys and keys retired less than ``grace`` ago."""
    cutoff = utcnow() - grace
    stmt = (
        select(OAuthSigningKey)
        .where(or_(OAuthSigningKey.active.is_(True), OAuthSigningKey.retired_at > cutoff))
        .order_by(OAuthSigningKey.created_at.desc(), OAuthSigningKey.kid)
    )
    return [dict(row.public_jwk) for row in session.scalars(stmt)]
