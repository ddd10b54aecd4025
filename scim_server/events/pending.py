"""The audit events of the open transaction, noted for ``events.writer`` to derive events from.

Kept on ``session.info`` with the (sub)transaction that recorded each, so a
rolled-back savepoint takes its notes with it: a change that rolls back leaves
no event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from scim_server.db import within

KEY = "events_pending"


def note(session: Session, audit_event: Any, transaction: SessionTransaction | None = None) -> None:
    """Remember one audit event recorded in the session's current (sub)transaction (given
    by a caller that has it)."""
    if transaction is None:
        transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(KEY, []).append((transaction, audit_event))


def take(session: Session) -> list[Any]:
    """The noted audit events, in order, and forget them (they are being written)."""
    noted: list[tuple[SessionTransaction | None, Any]] = session.info.pop(KEY, None) or []
    return [audit_event for _transaction, audit_event in noted]


def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    noted = session.info.get(KEY)
    if noted:
        kept = [(t, e) for t, e in noted if not within(t, previous_transaction)]
        if kept:
            session.info[KEY] = kept
        else:
            session.info.pop(KEY, None)


def install() -> None:
    """Drop the notes of a rolled-back (sub)transaction; idempotent."""
    if not event.contains(Session, "after_soft_rollback", _forget_rolled_back):
        event.listen(Session, "after_soft_rollback", _forget_rolled_back)
