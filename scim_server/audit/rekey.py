"""The log's HMAC signatures made again after the audit key changed.

Without ``SCIM_AUDIT_KEY`` the chain heads, the checkpoints and the published keys' rows
are HMAC-signed with ``SCIM_SECRET_KEY`` (``config.audit_key``). After the README's change
of that key, ``audit verify`` said every head was altered and every checkpoint badly signed,
for good, and the Ed25519 keys that signed earlier exports were no longer published.
The same held after a change of ``SCIM_AUDIT_KEY`` itself (a suspected leak, a rotation).
``resign`` (run by ``scim-server sso encrypt-secrets`` with ``SCIM_PREVIOUS_SECRET_KEY`` when
the log has no key of its own, and by ``scim-server audit rekey`` with
``SCIM_PREVIOUS_AUDIT_KEY`` when it has, or is given one) signs them again with the current
key, but only what verifies under the previous one: a row that verifies under neither was
not written by the server (or not as it reads now), and signing it would launder the
change. It is left as it is and listed; ``audit verify`` goes on naming it.

Each organization's rows are signed again in one transaction under its head's lock, with an
``audit.rekey`` event (which moves the head, signed with the current key as every event's
is). An organization whose head verifies under neither key is left untouched: an event
there would sign its altered head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from scim_server.audit import chain, queries, signing
from scim_server.audit.recorder import record
from scim_server.models import AuditCheckpoint, AuditHead

ACTION = "audit.rekey"
RESIGNED, CURRENT, UNVERIFIED = "resigned", "current", "unverified"


@dataclass(frozen=True)
class Resigned:
    """What ``resign`` found or did for one signed row."""

    org_id: str | None  # None: a published key's row (the server's, not an organization's)
    row: str  # "seq N" (the head), a checkpoint's seq, a key id
    field: str  # audit.head, audit.checkpoint, audit.signing_key
    status: str  # resigned, current, unverified


def resign(session: Session, previous: bytes) -> list[Resigned]:
    """Sign again with the session's audit key what verifies under ``previous`` (the key
    before the change): the published keys' rows, then each organization's head and
    checkpoints. Idempotent; one transaction for the key rows, one per organization."""
    with session.begin():
        states = [
            Resigned(None, key_id, "audit.signing_key", status)
            for key_id, status in signing.resign_keys(session, previous)
        ]
    keys_resigned = sum(1 for s in states if s.status == RESIGNED)
    with session.begin():
        orgs = list(session.scalars(select(AuditHead.org_id).order_by(AuditHead.org_id)))
    for org_id in orgs:
        with session.begin():
            states += _resign_org(session, org_id, previous, keys_resigned)
    return states


def _resign_org(
    session: Session, org_id: str, previous: bytes, keys_resigned: int
) -> list[Resigned]:
    """One organization's head and checkpoints, in the caller's transaction."""
    key = chain.signing_key(session)
    head = session.scalar(
        select(AuditHead)
        .where(AuditHead.org_id == org_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if head is None:  # the organization was deleted meanwhile
        return []

    def head_signature(k: bytes) -> str:
        return chain.head_signature(k, org_id, head.seq, head.hash, head.base_seq, head.base_hash)

    status = _status(head.signature, key, previous, head_signature)
    if status == UNVERIFIED and queries.signed_before_key_change(session, head, key, previous):
        status = RESIGNED  # marked by writes between the key change and this run, only that
    states = [Resigned(org_id, f"seq {head.seq}", "audit.head", status)]
    if status == UNVERIFIED:
        return states
    if status == RESIGNED:
        head.signature = head_signature(key)
    checkpoints = session.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.org_id == org_id)
        .order_by(AuditCheckpoint.seq)
        .with_for_update()
    ).all()
    resigned_checkpoints = 0
    for cp in checkpoints:

        def checkpoint_signature(k: bytes, cp: AuditCheckpoint = cp) -> str:
            return chain.checkpoint_signature(k, org_id, cp.seq, cp.hash, cp.kind)

        cp_status = _status(cp.signature, key, previous, checkpoint_signature)
        if cp_status == RESIGNED:
            cp.signature = checkpoint_signature(key)
            resigned_checkpoints += 1
        states.append(Resigned(org_id, str(cp.seq), "audit.checkpoint", cp_status))
    # Written before the event's own head move (the recorder's, at commit), never over it.
    session.flush()
    parts = [
        *(["the head"] if status == RESIGNED else []),
        *([f"{resigned_checkpoints} checkpoint(s)"] if resigned_checkpoints else []),
        *([f"{keys_resigned} published signing key(s)"] if keys_resigned else []),
    ]
    if parts:
        detail = "signed again with the current key: " + ", ".join(parts)
        record(session, org_id, ACTION, detail=detail)
    return states


def _status(stored: str, key: bytes, previous: bytes, signature: Callable[[bytes], str]) -> str:
    if chain.signatures_match(signature(key), stored):
        return CURRENT
    if chain.signatures_match(signature(previous), stored):
        return RESIGNED
    return UNVERIFIED
