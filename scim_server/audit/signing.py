"""Ed25519 signatures an outsider can check: checkpoints, export manifests, published keys.

The HMAC of ``chain`` proves nothing to someone without the server's secret,
and whoever holds it (the operator) could re-sign a rewritten history. Here
the server signs small JSON statements with an Ed25519 private key that is
configuration (``SCIM_AUDIT_SIGNING_KEY``), never in the database; the public
keys, with the period each was in use, are published (``/.well-known/audit-keys``)
so anyone can check a statement with ``scim_server.audit.offline`` alone.

A statement is signed over its canonical JSON (``offline.canonical``: sorted keys,
no spaces, UTF-8, without its ``signature`` member); ``key_id`` (``offline.key_id``)
names the key and is signed too. The verifier and the signer share those two
functions, so they cannot drift apart.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from scim_server.audit import chain, offline
from scim_server.config import ConfigError, write_once
from scim_server.db import AUDIT_SIGNER_INFO, insert_for, utcnow
from scim_server.models import AuditSigningKey

ALGORITHM = "Ed25519"

log = logging.getLogger(__name__)


class SigningKeyError(ConfigError):
    """The configured signing key cannot be read or is not an Ed25519 private key."""


@dataclass(frozen=True)
class Signer:
    """The server's Ed25519 private key, its public half (PEM) and its id."""

    private_key: Ed25519PrivateKey
    key_id: str
    public_pem: str

    def __deepcopy__(self, _memo: Any) -> Signer:  # immutable; the key object cannot be copied
        return self

    def sign(self, statement: dict[str, Any]) -> dict[str, Any]:
        """``statement`` with ``key_id`` and ``signature`` (base64) added."""
        body = {k: v for k, v in statement.items() if k != "signature"}
        body["key_id"] = self.key_id
        signature = self.private_key.sign(offline.canonical(body))
        return {**body, "signature": base64.b64encode(signature).decode()}


def signer_from_pem(pem: bytes) -> Signer:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"SCIM_AUDIT_SIGNING_KEY is not a readable PEM key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("SCIM_AUDIT_SIGNING_KEY must be an Ed25519 private key")
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return Signer(private_key=key, key_id=offline.key_id(key.public_key()), public_pem=public_pem)


def new_private_pem() -> bytes:
    """A fresh Ed25519 private key in PKCS#8 PEM (``openssl genpkey -algorithm ed25519``)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signer(configured: str | None, instance_path: str) -> Signer:
    """The key from ``SCIM_AUDIT_SIGNING_KEY`` (PEM text or a file path), else a development file.

    The development key (``instance/audit-signing.pem``, mode 0600) is made on
    first use; production configures its own, the same on every node.
    """
    if configured:
        if "-----BEGIN" in configured:
            return signer_from_pem(configured.encode())
        path = Path(configured)
        if not path.is_file():
            raise SigningKeyError(
                f"SCIM_AUDIT_SIGNING_KEY is neither a PEM key nor a readable file: {configured}"
            )
        return signer_from_pem(path.read_bytes())
    path = Path(instance_path, "audit-signing.pem")
    if not path.exists():
        write_once(path, new_private_pem())
    return signer_from_pem(path.read_bytes())


def session_signer(session: Session) -> Signer:
    """The signer of the app whose session factory made ``session`` (as ``chain.signing_key``)."""
    signer = session.info.get(AUDIT_SIGNER_INFO)
    if not isinstance(signer, Signer):
        raise RuntimeError("audit Ed25519 signer not configured on this session's factory")
    return signer


# -- published public keys ------------------------------------------------------------


def register_key(session: Session, signer: Signer) -> None:
    """Publish the current key (in the caller's transaction), closing the period of the others.

    Called where statements are signed, so the key of every stored signature is
    listed; a rotated-out key stays listed, with its end, for old checkpoints. Each row
    the server writes carries its HMAC (``chain.key_signature``): what ``published_keys``
    serves. A row without one is from before migration 0029 and is signed now only if no
    row has one yet (the server's first registration since): one added later, without
    the server's key, never is.
    """
    current = session.get(AuditSigningKey, signer.key_id)
    hmac_key = chain.signing_key(session)
    if current is not None and current.valid_until is None and _signed(hmac_key, current):
        return
    adopting = not session.scalar(select(exists().where(AuditSigningKey.signature.is_not(None))))
    now = utcnow()
    if current is None:
        dialect = session.get_bind().dialect.name
        insert = insert_for(dialect)
        session.execute(
            insert(AuditSigningKey)
            .values(
                key_id=signer.key_id,
                algorithm=ALGORITHM,
                public_key=signer.public_pem,
                valid_from=now,
                signature=chain.key_signature(
                    hmac_key, signer.key_id, ALGORITHM, signer.public_pem, now, None
                ),
            )
            .on_conflict_do_nothing()
        )
    else:
        # Our own key: what its row must say is known (a key used again after a rotation:
        # its period opens again).
        current.algorithm, current.public_key, current.valid_until = (
            ALGORITHM,
            signer.public_pem,
            None,
        )
        current.signature = _signature_of(hmac_key, current)
    others = session.scalars(
        select(AuditSigningKey).where(AuditSigningKey.key_id != signer.key_id)
    ).all()
    for row in others:
        if not (_signed(hmac_key, row) or (adopting and row.signature is None)):
            log.warning("audit signing key %s is not the server's: left out", row.key_id)
            continue
        if row.valid_until is None:
            row.valid_until = now
        row.signature = _signature_of(hmac_key, row)
    session.flush()


def resign_keys(session: Session, previous: bytes) -> list[tuple[str, str]]:
    """Sign again, with the current HMAC key, the key rows that carry ``previous``'s (in the
    caller's transaction): (key id, status) for each row that carries a signature.

    After the HMAC key changed (SCIM_SECRET_KEY, when SCIM_AUDIT_KEY is not set) every row
    was "not the server's": ``published_keys`` dropped the keys that signed earlier exports
    and checkpoints, which then failed the auditor's check. ``resigned``: verified under
    ``previous``, signed again; ``current``: already the current key's; ``unverified``:
    neither (a row someone added), left as it is and still not published. Rows from before
    migration 0029 (no signature) are ``register_key``'s to adopt."""
    hmac_key = chain.signing_key(session)
    rows = session.scalars(
        select(AuditSigningKey)
        .where(AuditSigningKey.signature.is_not(None))
        .order_by(AuditSigningKey.valid_from, AuditSigningKey.key_id)
        .with_for_update()
    ).all()
    states = []
    for row in rows:
        if _signed(hmac_key, row):
            states.append((row.key_id, "current"))
        elif _signed(previous, row):
            row.signature = _signature_of(hmac_key, row)
            states.append((row.key_id, "resigned"))
        else:
            states.append((row.key_id, "unverified"))
    session.flush()
    return states


def _signature_of(hmac_key: bytes, row: AuditSigningKey) -> str:
    return chain.key_signature(
        hmac_key, row.key_id, row.algorithm, row.public_key, row.valid_from, row.valid_until
    )


def _signed(hmac_key: bytes, row: AuditSigningKey) -> bool:
    """Whether the row carries the server's HMAC of what it says now."""
    return row.signature is not None and chain.signatures_match(
        _signature_of(hmac_key, row), row.signature
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value else None


def key_to_dict(row: AuditSigningKey) -> dict[str, Any]:
    return {
        "key_id": row.key_id,
        "algorithm": row.algorithm,
        "public_key": row.public_key,
        "valid_from": _iso(row.valid_from),
        "valid_until": _iso(row.valid_until),
    }


def published_keys(session: Session, signer: Signer | None = None) -> dict[str, Any]:
    """Every key that has signed, oldest first, and the current one (even if it has not yet).

    Only rows the server wrote (their HMAC holds, ``register_key``): a key added to the
    database by someone without the server's keys is not served as the server's."""
    hmac_key = chain.signing_key(session)
    rows = list(session.scalars(select(AuditSigningKey).order_by(AuditSigningKey.valid_from)))
    keys = [key_to_dict(r) for r in rows if _signed(hmac_key, r)]
    if signer is not None and signer.key_id not in {k["key_id"] for k in keys}:
        keys.append(
            {
                "key_id": signer.key_id,
                "algorithm": ALGORITHM,
                "public_key": signer.public_pem,
                "valid_from": None,
                "valid_until": None,
            }
        )
    return {"type": "scim-server.audit.keys", "keys": keys}
