"""Many rows at once: COPY on PostgreSQL reads back as the INSERT would have stored it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from scim_server import bulk_rows
from scim_server.models import Event


def _rows(org_id: str, count: int) -> list[dict]:
    start = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    return [
        {
            "org_id": org_id,
            "position": i + 1,
            "id": f"evt_{i}",
            "type": "user.updated",
            "occurred_at": start + timedelta(seconds=i),
            "resource_type": "User" if i % 2 else None,
            "resource_id": f"u{i}",
            "audit_seq": None if i % 3 else i,
            # Characters COPY's text format escapes, and a nested document.
            "data": {"tab": "a\tb", "line": "x\ny\\z", "ü": ["é", None, True, 1.5], "n": {"k": i}},
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [3, 60])
def test_rows_read_back_as_given(scim, session, count):
    """Below and above the COPY threshold: every value comes back equal (UTC times, JSON)."""
    rows = _rows(scim.org_id, count)
    bulk_rows.insert_rows(session.connection(), Event, rows)
    stored = session.scalars(
        select(Event).where(Event.org_id == scim.org_id).order_by(Event.position)
    ).all()
    assert [{column: getattr(event, column) for column in rows[0]} for event in stored] == rows
    session.rollback()


def test_copy_refuses_rows_without_every_column(scim, session):
    """COPY runs no column defaults: a row must say every column (PostgreSQL)."""
    rows = [{k: v for k, v in row.items() if k != "audit_seq"} for row in _rows(scim.org_id, 60)]
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("the executemany (SQLite) applies the defaults")
    with pytest.raises(ValueError, match="lack audit_seq"):
        bulk_rows.insert_rows(session.connection(), Event, rows)
    session.rollback()


@pytest.mark.parametrize("count", [3, 60])
def test_updated_rows_read_back_as_set(scim, session, count):
    """Below and above the threshold (an UPDATE ... FROM unnest on PostgreSQL): each row named by
    its key gets its values (UTC times, None, integers); the other rows stay as they were."""
    rows = _rows(scim.org_id, count)
    bulk_rows.insert_rows(session.connection(), Event, rows)
    later = datetime(2027, 6, 7, 8, 9, 10, 123456, tzinfo=UTC)
    changed = [
        {
            "org_id": scim.org_id,
            "position": row["position"],
            "type": f"user.changed.{i}",
            "occurred_at": later + timedelta(minutes=i),
            "resource_type": None,
            "audit_seq": 1000 + i,
        }
        for i, row in enumerate(rows)
        if i % 2 == 0
    ]
    bulk_rows.update_rows(session.connection(), Event, changed)
    session.expire_all()
    stored = session.scalars(
        select(Event).where(Event.org_id == scim.org_id).order_by(Event.position)
    ).all()
    expected = [dict(row) for row in rows]
    for update in changed:
        expected[update["position"] - 1].update(update)
    assert [{column: getattr(event, column) for column in rows[0]} for event in stored] == expected
    session.rollback()


def test_update_needs_the_key_and_a_column(scim, session):
    """A row without its whole primary key, or with nothing to set, is refused before any SQL."""
    with pytest.raises(ValueError, match="primary key"):
        bulk_rows.update_rows(session.connection(), Event, [{"position": 1, "type": "x"}])
    with pytest.raises(ValueError, match="primary key"):
        bulk_rows.update_rows(session.connection(), Event, [{"org_id": scim.org_id, "position": 1}])
    session.rollback()
