"""Flow state and the replay cache, in the database so any node can finish a login.

A state row is consumed by ``DELETE ... RETURNING``: of two concurrent
callbacks with the same state (a replay, a double submit), exactly one gets
the row. An assertion id is inserted with ``ON CONFLICT DO NOTHING``: the
second insert of the same id returns nothing, which is a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from scim_server.db import insert_for, utcnow
from sso.connections.models import SsoReplay, SsoState

STATE_SECONDS = 600  # from the redirect to the IdP until its answer: a person typing a password
MAX_STATE_ID = 128


@dataclass(frozen=True)
class ConsumedState:
    org_id: str
    connection_id: str
    kind: str
    data: dict[str, Any]
    expired: bool


def save_state(
    session: Session,
    state_id: str,
    org_id: str,
    connection_id: str,
    kind: str,
    data: dict[str, Any],
    seconds: int = STATE_SECONDS,
) -> None:
    """Keep a login's state until its callback (in the caller's transaction)."""
    now = utcnow()
    session.execute(delete(SsoState).where(SsoState.expires_at <= now))
    session.add(
        SsoState(
            id=state_id,
            org_id=org_id,
            connection_id=connection_id,
            kind=kind,
            data=data,
            created_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
    )
    session.flush()


def consume_state(session: Session, state_id: str, kind: str) -> ConsumedState | None:
    """Take the state out (single use); None if there is none of that kind."""
    if not state_id or len(state_id) > MAX_STATE_ID:
        return None
    row = session.execute(
        delete(SsoState)
        .where(SsoState.id == state_id, SsoState.kind == kind)
        .returning(SsoState.org_id, SsoState.connection_id, SsoState.data, SsoState.expires_at)
    ).first()
    if row is None:
        return None
    org_id, connection_id, data, expires_at = row
    return ConsumedState(org_id, connection_id, kind, dict(data or {}), expires_at <= utcnow())


def remember_assertion(
    session: Session, org_id: str, connection_id: str, assertion_id: str, until: datetime
) -> bool:
    """Record an accepted assertion id until ``until``; False if it was already there (replay)."""
    now = utcnow()
    session.execute(delete(SsoReplay).where(SsoReplay.expires_at <= now))
    inserted = session.execute(
        insert_for(session.get_bind().dialect.name)(SsoReplay)
        .values(
            org_id=org_id,
            connection_id=connection_id,
            assertion_id=assertion_id[:256],
            expires_at=max(until, now + timedelta(minutes=5)),
        )
        .on_conflict_do_nothing()
        .returning(SsoReplay.assertion_id)
    ).first()
    return inserted is not None
