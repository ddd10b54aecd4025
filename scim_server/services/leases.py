"""Claiming work rows under a lease: what the jobs table and the mail outbox share.

A worker takes the first due row of a query with a row lock (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so concurrent workers pass over each other's rows
instead of waiting; SQLite's writer sessions hold the database lock from
``BEGIN IMMEDIATE``, so claims queue), marks it as its own and commits at once.
The work itself then runs outside that transaction.

Where one organization's backlog must not hold back another's rows (mail, credentials
sends), the worker takes organizations in turn (``in_turn``): one row of each
organization with a due row, the one waiting longest first, then again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, FromClause, Select, func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.base import ReadOnlyColumnCollection

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


def backoff(attempts: int, most: timedelta = RETRY_MAX) -> timedelta:
    """Exponential: 10 s, 20 s, 40 s, ... at most ``most`` (an hour; also after a webhook's
    80th attempt: the exponent is bounded, so a timedelta never overflows)."""
    return min(RETRY_BASE * (2 ** min(max(attempts - 1, 0), 20)), most)


Waiting = Callable[[ReadOnlyColumnCollection[str, Any]], ColumnElement[bool]]


def orgs_in_turn(
    session: Session, table: FromClause, waiting: Waiting, due: str, now: datetime
) -> list[str]:
    """The organizations with a row ``waiting`` whose ``due`` column is past ``now``, the one
    whose oldest such row waited longest first.

    Needs an index on (org_id, ..., ``due``) that covers ``waiting``. The organizations are
    found by a loose index scan (a recursive CTE, each step one seek for the next org_id
    after the last), then one seek each for its oldest waiting row: as cheap with a
    hundred thousand rows of one organization waiting as with one (a DISTINCT would read
    them all, each round).
    """
    step, oldest = table.alias("step"), table.alias("oldest")

    sqlite = session.get_bind().dialect.name == "sqlite"

    def after(previous: Any) -> Any:
        # SQLite's planner, without statistics, took an index on the state for the seek and
        # sorted every waiting row: likely() says the state is no way to narrow it down.
        kept = waiting(step.c)
        seek = select(step.c.org_id).where(func.likely(kept) if sqlite else kept)
        if previous is not None:
            seek = seek.where(step.c.org_id > previous)
        return seek.order_by(step.c.org_id).limit(1).scalar_subquery()

    # A CTE's first SELECT has no ORDER BY / LIMIT of its own on SQLite: a scalar subquery.
    orgs = select(after(None).label("org_id")).cte("orgs", recursive=True)
    orgs = orgs.union_all(select(after(orgs.c.org_id)).where(orgs.c.org_id.is_not(None)))
    since = (
        select(oldest.c[due])
        .where(waiting(oldest.c), oldest.c.org_id == orgs.c.org_id)
        .order_by(oldest.c[due])
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(orgs.c.org_id, since.label("since")).where(orgs.c.org_id.is_not(None))
    ).all()
    due_rows = [(row.since, row.org_id) for row in rows if row.since is not None]
    return [org_id for since_at, org_id in sorted(due_rows) if since_at <= now]


def in_turn(orgs: Callable[[], list[str]], claim: Callable[[str], T | None]) -> Iterator[T]:
    """Rows claimed one organization at a time: a cycle claims one row of each organization
    ``orgs`` names, then asks again; it ends when a cycle claims nothing (each
    organization's due rows taken, or held by other workers).

    Claim only as the caller consumes: the caller stops (a round's limit, a stop) by no
    longer asking for the next row."""
    while True:
        claimed = False
        for org_id in orgs():
            row = claim(org_id)
            if row is not None:
                claimed = True
                yield row
        if not claimed:
            return
