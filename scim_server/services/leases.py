"""Claiming work rows under a lease: what the jobs table and the mail outbox share.

A worker takes the first due row of a query with a row lock (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so concurrent workers pass over each other's rows
instead of waiting; SQLite's writer sessions hold the database lock from
``BEGIN IMMEDIATE``, so claims queue), marks it as its own and commits at once.
The work itself then runs outside that transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

RETRY_BASE = timedelta(seconds=10)
RETRY_MAX = timedelta(hours=1)


def claim_first(
    factory: sessionmaker[Session], stmt: Select[Any], take: Callable[[Any], None]
) -> Any | None:
    """Lock the first row ``stmt`` selects (skipping rows other workers hold), ``take`` it, commit.

    ``factory`` must make writer sessions (on SQLite: ``BEGIN IMMEDIATE``).
    ``take`` marks the row claimed (state, owner, lease) in the same transaction.
    Returns the row, detached, or None when nothing is due.
    """
    with factory() as session, session.begin():
        row = session.scalar(stmt.limit(1).with_for_update(skip_locked=True))
        if row is None:
            return None
        take(row)
    return row


def claim_many(
    factory: sessionmaker[Session], stmt: Select[Any], take: Callable[[Any], None], limit: int
) -> list[Any]:
    """``claim_first`` for up to ``limit`` rows at once: one transaction for a batch of work."""
    with factory() as session, session.begin():
        rows = list(session.scalars(stmt.limit(limit).with_for_update(skip_locked=True)))
        for row in rows:
            take(row)
    return rows


def backoff(attempts: int) -> timedelta:
    """Exponential: 10 s, 20 s, 40 s, ... at most an hour (also after a webhook's 80th attempt:
    the exponent is bounded, so a timedelta never overflows)."""
    return min(RETRY_BASE * (2 ** min(max(attempts - 1, 0), 20)), RETRY_MAX)
