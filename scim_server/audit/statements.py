"""Checkpoints as statements an outsider can check: the JSON document and its Ed25519 seal.

The document is what ``scim-server audit checkpoint`` prints and a compliance
team files elsewhere; ``audit.offline`` checks it with the published key alone.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import offline, signing
from scim_server.models import AuditCheckpoint

CHECKPOINT_TYPE = "scim-server.audit.checkpoint"


def statement(cp: AuditCheckpoint) -> dict[str, Any]:
    """The signed part of a checkpoint: organization, seq, hash, kind, time, key id."""
    doc: dict[str, Any] = {
        "type": CHECKPOINT_TYPE,
        "organization": cp.org_id,
        "seq": cp.seq,
        "hash": cp.hash,
        "kind": cp.kind,
        "created_at": cp.created_at.isoformat(timespec="microseconds"),
    }
    if cp.key_id is not None:
        doc["key_id"] = cp.key_id
    return doc


def document(cp: AuditCheckpoint) -> dict[str, Any]:
    """The checkpoint as filed: its statement and signature (none before migration 0014)."""
    return {**statement(cp), "signature": cp.public_signature}


def seal(session: Session, cp: AuditCheckpoint) -> None:
    """Sign ``cp`` with the app's Ed25519 key, published in the same transaction."""
    signer = signing.session_signer(session)
    signing.register_key(session, signer)
    cp.key_id = signer.key_id
    cp.public_signature = signer.sign(statement(cp))["signature"]


def nearest(session: Session, org_id: str, first_seq: int, last_seq: int) -> list[dict[str, Any]]:
    """The checkpoints nearest an export's range: last before it, last within it, first after."""
    c = AuditCheckpoint
    mine = select(c).where(c.org_id == org_id)
    found = [
        session.scalar(mine.where(c.seq < first_seq).order_by(c.seq.desc()).limit(1)),
        session.scalar(
            mine.where(c.seq >= first_seq, c.seq <= last_seq).order_by(c.seq.desc()).limit(1)
        ),
        session.scalar(mine.where(c.seq > last_seq).order_by(c.seq).limit(1)),
    ]
    return [document(cp) for cp in found if cp is not None and cp.public_signature]


def public_keys(session: Session) -> dict[str, offline.PublicKey]:
    """The published keys, as the offline verifier reads them."""
    return offline.load_public_keys(json.dumps(signing.published_keys(session)))


def check(session: Session, cp: AuditCheckpoint, keys: dict[str, offline.PublicKey]) -> str | None:
    """What is wrong with a checkpoint's Ed25519 signature, if anything (none before 0014)."""
    if cp.public_signature is None:
        return None
    return offline.check_signature(document(cp), keys, cp.created_at)
