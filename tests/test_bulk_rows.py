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
