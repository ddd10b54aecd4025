"""Flow state and the replay cache, in the database so any node can finish a login.

A state row is consumed by ``DELETE ... RETURNING``: of two concurrent
callbacks with the same state (a replay, a double submit), exactly one gets
the row. An assertion id is inserted with ``ON CONFLICT DO NOTHING``: the
second insert of the same id returns nothing, which is a replay.

Expired rows are deleted by the sign-ins themselves (``purge_expired``), a bounded
batch each, skipping rows another transaction holds: concurrent sign-ins never queue
on each other's purge. The reads ignore an expired row not yet deleted
(``consume_state`` says ``expired``; a replay mark outlives its assertion, which is
refused as expired first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, inspect, select, tuple_
from sqlalchemy.orm import Session

from scim_server.db import Base, insert_for, utcnow
from sso.connections.models import SsoReplay, SsoState

STATE_SECONDS = 600  # from the redirect to the IdP until its answer: a person typing a password
MAX_STATE_ID = 128
# Expired rows one purge deletes at most: one sign-in's cost stays small, and a backlog
# (after an outage) drains over the next sign-ins, each adding a row or two.
PURGE_BATCH = 100


def purge_expired(session: Session, model: type[Base], now: datetime) -> None:
    """Delete up to ``PURGE_BATCH`` rows of ``model`` expired at ``now``, in the caller's
    transaction, leaving those another transaction holds (``FOR UPDATE SKIP LOCKED``).

    A plain ``DELETE ... WHERE expires_at <= now`` locks every expired row until the
    sign-in commits, and on PostgreSQL each concurrent sign-in then waited for it to
    delete the same rows. SQLite has no row locks (its writers take the database one in
    turn): the clause is left out there.
    """
    mapper = inspect(model)
    keys = mapper.primary_key
    expired = (
        select(*keys)
        .where(mapper.columns["expires_at"] <= now)
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(delete(model).where(tuple_(*keys).in_(expired)))


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
    purge_expired(session, SsoState, now)
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
    purge_expired(session, SsoReplay, now)
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
