"""Many rows into one table at once: ``COPY`` on PostgreSQL, an executemany elsewhere.

A batch of ``rules apply`` writes a thousand audit events, one or two thousand
product events and the rule roles together. Sent as an executemany, psycopg
pipelines one INSERT per row: PostgreSQL parses, plans and runs each. ``COPY``
streams the rows into one command, in the same transaction (it commits or
rolls back with the rest). Values go through the columns' own bind
conversions first (naive UTC for ``UTCDateTime``, JSONB for documents), so a
row reads back exactly as an INSERT would have stored it. Small sets keep the
executemany: a COPY has a fixed cost of its own. SQLite has no COPY and no
round trips to save.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

COPY_FROM = 50  # rows: from here on PostgreSQL gets a COPY


def insert_rows(connection: Connection, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (each with a value for every column) into ``model``'s table."""
    table: Table = model.__table__
    if not rows:
        return
    if connection.dialect.name != "postgresql" or len(rows) < COPY_FROM:
        connection.execute(insert(table), list(rows))
        return
    names = [column.name for column in table.columns]
    missing = set(names) - set(rows[0])
    if missing:  # COPY runs no column defaults: each row says everything
        raise ValueError(f"rows for {table.name} lack {', '.join(sorted(missing))}")
    from psycopg import sql  # PostgreSQL's driver, there only

    dialect = connection.dialect
    processors = [table.c[name].type._cached_bind_processor(dialect) for name in names]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    cursor = connection.connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(
                    [
                        value if convert is None or value is None else convert(value)
                        for convert, value in zip(processors, (row[n] for n in names), strict=True)
                    ]
                )
    finally:
        cursor.close()
