"""Planner statistics kept fresh after bulk changes (``rules apply``, a user import, an
IdP's initial sync).

A bulk change can move a large part of a table at once, faster than
autovacuum's ANALYZE follows (it runs on a timer, and only after 10 % of a
table changed); until it does, PostgreSQL plans with the old row counts and
value distributions (GET by id went from 8 to 30 ms p50 during a 100,000-user
apply). So a bulk change ANALYZEs the tables it touched, once the rows it
changed since the last refresh are more than ``FRACTION`` of the table. On
SQLite (``PRAGMA analysis_limit`` keeps ANALYZE to milliseconds) the same
rule applies; below it ``PRAGMA optimize`` lets SQLite decide, as the server's
pooled connections do.

An initial sync is a bulk change made of single writes: no one request knows
it is one. ``refresh_stale`` (the worker, every ``STALE_CHECK_EVERY``) ANALYZEs
each table that changed by more than autovacuum's own threshold since anyone
last analyzed it, so plans follow a table's growth even where autovacuum is
off or behind (on PostgreSQL, a table analyzed while nearly empty is planned
as nearly empty: the uniqueness check of every create then walked all of its
organization's users and contacts, 7.7 ms per create at 6,000 users).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from scim_server.db import Base

log = logging.getLogger(__name__)

FRACTION = 0.1
# autovacuum's defaults for ANALYZE: 50 rows plus 10 % of the table.
STALE_ROWS = 50
STALE_FRACTION = 0.1
STALE_CHECK_EVERY = timedelta(seconds=10)

# pg_try_advisory_xact_lock key: one worker of many refreshes this schema's tables at a
# time (two ANALYZEs of one table queue on each other, and the second would find nothing
# left to do). The lock is the database's: the schema's name is its second half.
REFRESH_LOCK = 0x5C1A_57A7
TAKE_REFRESH_LOCK = text(
    "SELECT pg_try_advisory_xact_lock(:key, hashtext(current_schema()))"
).bindparams(key=REFRESH_LOCK)
# Each of this schema's tables with its rows changed since its last ANALYZE (by anyone)
# and its size as the planner knows it.
_CHANGED_SINCE_ANALYZE = text(
    "SELECT s.relname, s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s "
    "JOIN pg_class c ON c.oid = s.relid WHERE s.schemaname = current_schema()"
)


def estimated_rows(session: Session, table: str) -> int | None:
    """The planner's idea of the table's size; None when it has no statistics yet."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        rows = conn.scalar(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
        )
        return None if rows is None or rows < 0 else int(rows)
    has_stats = conn.scalar(
        text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
    )
    if not has_stats:
        return None
    stat = conn.scalar(text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t LIMIT 1"), {"t": table})
    return int(stat.split()[0]) if stat else None


def refresh(
    session: Session, changed: Mapping[str, int], fraction: float = FRACTION, minimum: int = 0
) -> list[str]:
    """ANALYZE each table whose ``changed`` rows exceed ``fraction`` of it (and ``minimum``);
    return those analyzed.

    ``minimum`` is for refreshes while a bulk change runs: a table it grows from
    nothing passes 10 % after every batch at first, and each ANALYZE samples up
    to 30,000 rows; PostgreSQL scales the row counts by the table's current size
    between ANALYZEs, so a few on the way keep the plans as good.

    In the caller's transaction: on PostgreSQL ANALYZE takes a lock that
    blocks neither reads nor writes, and commits with the change.
    """
    known = Base.metadata.tables
    analyzed = []
    for table, count in changed.items():
        if table not in known:
            raise ValueError(f"unknown table {table!r}")
        if count <= 0:
            continue
        rows = estimated_rows(session, table)
        if count < minimum:
            continue
        if rows is None or count > fraction * rows:
            session.execute(text(f'ANALYZE "{table}"'))
            analyzed.append(table)
    if session.get_bind().dialect.name == "sqlite" and not analyzed:
        session.execute(text("PRAGMA optimize"))
    if analyzed:
        log.info("statistics refreshed after a bulk change: %s", ", ".join(analyzed))
    return analyzed


def refresh_stale(session: Session) -> list[str]:
    """PostgreSQL: ANALYZE each of the schema's tables whose rows changed since its last
    ANALYZE exceed ``STALE_ROWS`` plus ``STALE_FRACTION`` of it; the tables analyzed.

    Where autovacuum runs it mostly finds nothing to do. One worker at a time (an
    advisory lock, until the caller's commit). SQLite: nothing (its pooled connections
    run ``PRAGMA optimize``).
    """
    if session.get_bind().dialect.name != "postgresql":
        return []
    if not session.scalar(TAKE_REFRESH_LOCK):
        return []  # another worker is at it
    known = Base.metadata.tables
    stale = sorted(
        name
        for name, changed, rows in session.execute(_CHANGED_SINCE_ANALYZE)
        if name in known and changed > STALE_ROWS + STALE_FRACTION * max(rows, 0)
    )
    for name in stale:
        session.execute(text(f'ANALYZE "{name}"'))
    if stale:
        log.info("statistics refreshed (changed since their last ANALYZE): %s", ", ".join(stale))
    return stale
