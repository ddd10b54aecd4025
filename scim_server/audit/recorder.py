"""Writing events: in the caller's transaction for changes, in their own for failures."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from scim_server.audit import chain, statements
from scim_server.audit.context import current_context
from scim_server.db import utcnow
from scim_server.events import pending as pending_events
from scim_server.models import AuditCheckpoint, AuditEvent, AuditHead

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1000
_TEXT_LIMITS = {"detail": 2000, "user_agent": 512, "external_id": 512, "user_name": 512}


def lock_head(session: Session, org_id: str) -> AuditHead:
    """The organization's head row, locked until commit: one writer at a time per organization.

    Locked once per transaction (savepoint included): a change that writes one
    event per group member (5,000 for a large group) would otherwise pay one
    SELECT ... FOR UPDATE, and one autoflush, per event.
    """
    transaction = session.get_nested_transaction() or session.get_transaction()
    held: tuple[object, dict[str, AuditHead]] | None = session.info.get("audit_heads")
    if held is not None and held[0] is transaction and org_id in held[1]:
        return held[1][org_id]
    head = _select_head(session, org_id)
    if held is None or held[0] is not transaction:
        held = session.info["audit_heads"] = (transaction, {})
    held[1][org_id] = head
    return head


def _select_head(session: Session, org_id: str) -> AuditHead:
    stmt = select(AuditHead).where(AuditHead.org_id == org_id).with_for_update()
    head = session.scalar(stmt)
    if head is not None:
        return head
    genesis = chain.genesis_hash(org_id)
    values = {
        "org_id": org_id,
        "seq": 0,
        "hash": genesis,
        "base_seq": 0,
        "base_hash": genesis,
        "signature": chain.head_signature(
            chain.signing_key(session), org_id, 0, genesis, 0, genesis
        ),
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(AuditHead).values(values).on_conflict_do_nothing())
    head = session.scalar(stmt.execution_options(populate_existing=True))
    assert head is not None
    return head


def record(
    session: Session,
    org_id: str,
    action: str,
    *,
    outcome: str = "success",
    **fields: Any,
) -> AuditEvent:
    """Append one event to the organization's chain, in the caller's transaction."""
    ctx = current_context()
    head = lock_head(session, org_id)
    for name, limit in _TEXT_LIMITS.items():
        if isinstance(fields.get(name), str):
            fields[name] = fields[name][:limit]
    event = AuditEvent(
        org_id=org_id,
        seq=head.seq + 1,
        occurred_at=utcnow(),
        received_at=ctx.received_at,
        actor_type=ctx.actor_type,
        actor_id=ctx.actor_id,
        actor_name=ctx.actor_name,
        source_ip=ctx.source_ip,
        user_agent=ctx.user_agent[:512] if ctx.user_agent else None,
        request_id=ctx.request_id,
        correlation_id=ctx.correlation_id,
        action=action,
        outcome=outcome,
        prev_hash=head.hash,
        resource_type=fields.pop("resource_type", None),
        resource_id=fields.pop("resource_id", None),
        external_id=fields.pop("external_id", None),
        user_name=fields.pop("user_name", None),
        status=fields.pop("status", None),
        scim_type=fields.pop("scim_type", None),
        detail=fields.pop("detail", None),
        changes=fields.pop("changes", None),
        explanation=fields.pop("explanation", None),
    )
    if fields:
        raise TypeError(f"unknown audit fields: {sorted(fields)}")
    event.hash = chain.event_hash(event)
    session.add(event)
    head.seq = event.seq
    head.hash = event.hash
    head.signature = chain.head_signature(
        chain.signing_key(session), org_id, head.seq, head.hash, head.base_seq, head.base_hash
    )
    if event.seq % CHECKPOINT_EVERY == 0:
        add_checkpoint(session, org_id, event.seq, event.hash, "periodic")
    # Product events (webhooks, the events feed) are derived from it at commit.
    pending_events.note(session, event)
    return event


def add_checkpoint(
    session: Session, org_id: str, seq: int, head_hash: str, kind: str
) -> AuditCheckpoint:
    checkpoint = AuditCheckpoint(
        org_id=org_id,
        seq=seq,
        hash=head_hash,
        kind=kind,
        created_at=utcnow(),
        signature=chain.checkpoint_signature(
            chain.signing_key(session), org_id, seq, head_hash, kind
        ),
    )
    statements.seal(session, checkpoint)  # Ed25519: checkable with the public key alone
    session.add(checkpoint)
    return checkpoint


def record_failure(factory: sessionmaker[Session], org_id: str, action: str, **fields: Any) -> None:
    """Record a refused or failed operation in a transaction of its own.

    The operation's own transaction has rolled back; the failure must still be
    in the log. A failure to log is itself logged, never raised over the
    client's real error.
    """
    try:
        with factory() as session, session.begin():
            record(session, org_id, action, outcome="failure", **fields)
    except Exception:
        log.exception("could not record audit failure event %s for org %s", action, org_id)
