"""``scim_server.pgcursor``: the lighter ``description`` says what psycopg's own does (each
column's name and type code; None for a statement without rows), and the engine uses it."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from scim_server.pgcursor import Cursor

QUERY = (
    "SELECT 1 AS one, 'x'::text AS two, now() AS three, '{\"a\": 1}'::jsonb AS four, "
    'NULL::numeric(10, 2), true AS "Mixed Case"'
)


def test_description_as_psycopgs(connection):
    """Name and type code of every column as psycopg's ``Column``; None after DML; the rows
    unchanged; and SQLAlchemy's connections use this cursor."""
    if connection.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    raw = connection.connection.driver_connection
    ours = raw.cursor()
    assert isinstance(ours, Cursor)
    theirs = psycopg.Cursor(raw)
    ours.execute(QUERY)
    theirs.execute(QUERY)
    assert [d[:2] for d in ours.description] == [(c.name, c.type_code) for c in theirs.description]
    assert all(len(d) == 7 for d in ours.description)
    assert ours.fetchall() == theirs.fetchall()
    ours.execute("CREATE TEMPORARY TABLE light_cursor (a int)")
    assert ours.description is None
    ours.execute("SELECT")  # tuples, no fields: an empty description, as psycopg's
    theirs.execute("SELECT")
    assert ours.description == [] == theirs.description
    row = connection.execute(text(QUERY)).one()
    assert row._fields == ("one", "two", "three", "four", "numeric", "Mixed Case")
    assert row.four == {"a": 1}
