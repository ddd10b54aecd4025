"""Checkpoints on demand, and the chain compared with one filed outside the server.

A compliance team files the signed document ``create`` returns somewhere we
cannot reach. Whoever later rewrites the history, even holding every key the
server has (re-hashing, re-signing the head and the stored checkpoints), cannot
change the filed copy: ``compare_filed`` finds the difference.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import offline, signing, statements
from scim_server.audit.recorder import add_checkpoint, record, signed_head
from scim_server.audit.signing import Signer
from scim_server.db import AUDIT_SIGNER_INFO
from scim_server.models import AuditCheckpoint, AuditEvent, AuditHead


def create(session: Session, org_id: str) -> dict[str, Any]:
    """Sign a checkpoint of the chain head now (or the one already at that seq); its document.
    Refused (``ConflictError``) while the head is not the server's (``signed_head``)."""
    with session.begin():
        head = signed_head(session, org_id, "a checkpoint would vouch for it")
        cp = session.get(AuditCheckpoint, (org_id, head.seq))
        if cp is None:
            cp = add_checkpoint(session, org_id, head.seq, head.hash, "manual")
        elif cp.public_signature is None:
            statements.seal(session, cp)  # made before Ed25519 signatures: sign it now
        doc = statements.document(cp)
        record(session, org_id, "audit.checkpoint", detail=f"checkpoint at seq {cp.seq}")
    return doc


def list_documents(session: Session, org_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The newest signed checkpoints, newest first."""
    stmt = (
        select(AuditCheckpoint)
        .where(AuditCheckpoint.org_id == org_id, AuditCheckpoint.public_signature.is_not(None))
        .order_by(AuditCheckpoint.seq.desc())
        .limit(limit)
    )
    return [statements.document(cp) for cp in session.scalars(stmt)]


def _server_keys(session: Session) -> dict[str, offline.PublicKey]:
    """The keys a filed checkpoint may be signed with: those the database publishes, and
    the server's own current key (``SCIM_AUDIT_SIGNING_KEY``), which is not in the database
    under test when it was put back from before the key's first statement."""
    signer = session.info.get(AUDIT_SIGNER_INFO)
    published = signing.published_keys(session, signer if isinstance(signer, Signer) else None)
    return offline.load_public_keys(json.dumps(published))


def compare_filed(session: Session, org_id: str, doc: dict[str, Any]) -> str | None:
    """What contradicts a filed checkpoint in the database's chain; None if it agrees.

    Its signature is checked first (a forged document proves nothing), with the keys the
    database publishes and the server's current one; a document whose key neither knows, at
    a seq past the chain's head, is reported as both: history removed, or not ours."""
    if not isinstance(doc, dict) or doc.get("type") != offline.CHECKPOINT_TYPE:
        return "the file is not a checkpoint document"
    if doc.get("organization") != org_id:
        return f"the filed checkpoint is of another organization ({doc.get('organization')})"
    keys = _server_keys(session)
    problem = offline.check_signature(doc, keys, offline.parse_time(doc.get("created_at")))
    seq, expected = doc.get("seq"), doc.get("hash")
    head = session.get(AuditHead, org_id, populate_existing=True)
    removed = isinstance(seq, int) and (head is None or seq > head.seq)
    kid = doc.get("key_id")
    if problem and removed and isinstance(kid, str) and kid not in keys:
        # A database put back from before the key was registered lists neither it nor what
        # it signed: a rollback explains both, and so would a document not of this server.
        return (
            f"the chain ends before the filed checkpoint's event {seq}, and the key that "
            f"signed it ({kid}) is not one this database lists (history removed, or the "
            "checkpoint is not this server's)"
        )
    if problem:
        return f"the filed checkpoint is not authentic: {problem}"
    if not isinstance(seq, int):
        return "the filed checkpoint has no seq"
    if removed:
        return f"the chain ends before the filed checkpoint's event {seq} (history removed)"
    assert head is not None
    if seq == head.base_seq:
        actual: str | None = head.base_hash
    elif seq < head.base_seq:
        return None  # purged since: nothing left to compare (the purge is in the log)
    else:
        event = session.get(AuditEvent, (org_id, seq))
        actual = event.hash if event is not None else None
    if actual != expected:
        return f"event {seq} differs from the filed checkpoint (history rewritten after it)"
    return None
