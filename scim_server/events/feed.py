"""Reading the events back: in position order, from a cursor; and forgetting them after retention.

A cursor is the position a reader has read up to, as an opaque
string. Positions are assigned under the organization's audit head lock and
committed in that order, so what a reader sees is always a prefix: reading
after a cursor never skips an event that commits later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from scim_server.errors import DomainError, InvalidValueError
from scim_server.events.types import TYPES
from scim_server.models import Event, Organization

NOW = "now"


class CursorExpiredError(DomainError):
    """The events after this cursor were purged (retention): the reader must start again."""

    status = 410


def iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(row: Any) -> dict[str, Any]:
    """The wire form of one event, the same in the feed and in a webhook body."""
    return {
        "id": row.id,
        "type": row.type,
        "organization": row.org_id,
        "occurred_at": iso(row.occurred_at),
        "position": row.position,
        "cursor": str(row.position),
        "data": row.data,
    }


def parse_cursor(cursor: str) -> int:
    """A cursor as a position; a clear 400 for anything else."""
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
        raise InvalidValueError(f"Invalid cursor {cursor!r}: use a next_cursor this API returned.")
    return int(cursor)


def check_types(types: Sequence[str]) -> list[str]:
    unknown = sorted(set(types) - set(TYPES))
    if unknown:
        raise InvalidValueError(
            f"Unknown event type(s): {', '.join(unknown)}; known: {', '.join(TYPES)}."
        )
    return list(types)


def bounds(session: Session, org_id: str) -> tuple[int, int]:
    """(oldest retained position, newest position); (0, 0) before the first event."""
    low, high = session.execute(
        select(func.min(Event.position), func.max(Event.position)).where(Event.org_id == org_id)
    ).one()
    return (low or 0, high or 0)


def start_position(session: Session, org_id: str, after: str | None) -> int:
    """The position to read after: ``None`` the oldest retained, ``now`` the newest, or a cursor.

    A cursor whose next events were purged is a 410 (the reader missed them);
    one beyond the newest event was never handed out (400).
    """
    return _start(session, org_id, after)[0]


def _start(session: Session, org_id: str, after: str | None) -> tuple[int, int]:
    """``start_position`` and the newest position, read together (``bounds``)."""
    low, high = bounds(session, org_id)
    if after is None:
        return max(low - 1, 0), high
    if after == NOW:
        return high, high
    position = parse_cursor(after)
    if position > high:
        raise InvalidValueError(f"Cursor {after!r} is ahead of the newest event.")
    if low and position < low - 1:
        raise CursorExpiredError(
            f"The events after cursor {after!r} are past retention and were deleted; "
            "start again from the oldest retained event (no cursor) or from after=now."
        )
    return position, high


def list_events(
    session: Session,
    org_id: str,
    *,
    after: str | None,
    limit: int,
    types: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], str]:
    """Up to ``limit`` events after the cursor, in order, and the cursor to read on from.

    A short page (fewer than ``limit``) read every event up to the newest, matching or
    not: its cursor is that newest position (``bounds``, read before the page: every
    event up to it had committed, so the page saw them all), not its last match. A
    reader filtering on types that rarely happen then moves on with the feed, and its
    cursor is not left behind for retention to purge (a 410 though it missed nothing).
    A full page may have more matches after it: its cursor is its last event's.
    """
    position, newest = _start(session, org_id, after)
    stmt = select(Event).where(Event.org_id == org_id, Event.position > position)
    if types:
        stmt = stmt.where(Event.type.in_(check_types(types)))
    rows = session.scalars(stmt.order_by(Event.position).limit(limit)).all()
    if len(rows) >= limit:
        next_cursor = rows[-1].position
    else:
        # The page's own read may have seen events committed after ``bounds``: never less.
        next_cursor = max(newest, position, rows[-1].position if rows else 0)
    return [envelope(r) for r in rows], str(next_cursor)


def find_event(session: Session, org_id: str, event_id: str) -> Event | None:
    return session.scalar(select(Event).where(Event.org_id == org_id, Event.id == event_id))


# How far an event's time may run behind a later position's: a write's time is taken when
# it records, its position at its commit, so a transaction that commits later than another
# recorded earlier. Far more than a write transaction lasts.
OUT_OF_ORDER = timedelta(hours=1)


def purge(session: Session, now: datetime, retention: timedelta) -> int:
    """Delete the events older than retention: per organization, the positions before the
    first one it keeps, never a hole among them (a reader after an earlier position would
    skip one unseen, with no 410). The first kept is the lowest position dated at or after
    the cutoff (its neighbours' dates may be out of order by ``OUT_OF_ORDER`` at most), and
    the organization's newest is always kept (its position)."""
    cutoff = now - retention
    deleted = 0
    for org_id in session.scalars(select(Organization.id).order_by(Organization.id)):
        of_org = Event.org_id == org_id
        oldest = session.scalar(select(func.min(Event.occurred_at)).where(of_org))
        if oldest is None or oldest >= cutoff:
            continue  # nothing past retention (one seek of the (org_id, occurred_at) index)
        newest = session.scalar(select(func.max(Event.position)).where(of_org))
        assert newest is not None  # it has events (``oldest``)
        first_kept = session.scalar(
            select(func.min(Event.position)).where(
                of_org, Event.occurred_at >= cutoff, Event.occurred_at < cutoff + OUT_OF_ORDER
            )
        )
        if first_kept is None:  # nothing in the hour after the cutoff: the next dated one
            first_kept = session.scalar(
                select(Event.position)
                .where(of_org, Event.occurred_at >= cutoff)
                .order_by(Event.occurred_at)
                .limit(1)
            )
        bound = newest if first_kept is None else min(first_kept, newest)
        result = session.execute(delete(Event).where(of_org, Event.position < bound))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted
