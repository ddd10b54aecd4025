"""Many rows into (or updated in) one table at once: ``COPY`` and ``UPDATE ... FROM unnest``
on PostgreSQL, an executemany elsewhere.

A batch of ``rules apply`` writes a thousand audit events, one or two thousand
product events and the rule roles together. Sent as an executemany, psycopg
pipelines one INSERT per row: PostgreSQL parses, plans and runs each. ``COPY``
streams the rows into one command, in the same transaction (it commits or
rolls back with the rest). Values go through the columns' own bind
conversions first (naive UTC for ``UTCDateTime``, JSONB for documents), so a
row reads back exactly as an INSERT would have stored it. Small sets keep the
executemany: a COPY has a fixed cost of its own. SQLite has no COPY and no
round trips to save.

Updates (``update_rows``: the users a batch of ``rules apply`` changed) are alike:
the ORM's flush sends one UPDATE per row, which PostgreSQL parses, plans and runs
each; one ``UPDATE ... FROM unnest(...)`` sets them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    TypeDecorator,
    bindparam,
    insert,
    text,
    update,
)

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
    copy_rows(connection, table, rows, names)


def copy_rows(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], names: Sequence[str]
) -> None:
    """COPY the ``names`` columns of ``rows`` into ``table`` (PostgreSQL only): each value
    through its column type's bind processor, as an INSERT would send it."""
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


# Array element types for ``update_rows``' unnest on PostgreSQL, by the column type's class
# (the collation of a key column stays the table's: only the values travel as arrays).
_ARRAY_TYPES = {String: "text", Boolean: "boolean", Integer: "integer", DateTime: "timestamp"}


def _array_type(column: Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    for base, name in _ARRAY_TYPES.items():
        if isinstance(kind, base):
            return name
    raise TypeError(f"update_rows cannot send {column.table.name}.{column.name} as an array")


def update_rows(connection: Connection, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Set columns of many rows of ``model``'s table, each row found by its primary key.

    Every row names the same columns (its primary key and the columns to set). On
    PostgreSQL one ``UPDATE ... FROM unnest(arrays)``: one statement, one array per
    column, whatever the number of rows (the same text each time, so the server and
    SQLAlchemy parse it once); elsewhere, and below ``COPY_FROM`` rows, an executemany.
    """
    if not rows:
        return
    table: Table = model.__table__
    keys = [column.name for column in table.primary_key.columns]
    names = [name for name in rows[0] if name not in keys]
    if set(rows[0]) != set(keys) | set(names) or not names:
        raise ValueError(f"rows for {table.name} need its primary key and a column to set")
    if connection.dialect.name != "postgresql" or len(rows) < COPY_FROM:
        each = (
            update(table)
            .where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
            .values({name: bindparam(f"v_{name}", type_=table.c[name].type) for name in names})
        )
        connection.execute(
            each,
            [
                {**{f"k_{k}": row[k] for k in keys}, **{f"v_{n}": row[n] for n in names}}
                for row in rows
            ],
        )
        return
    dialect = connection.dialect
    columns = [*keys, *names]
    arrays = []
    for name in columns:
        convert = table.c[name].type._cached_bind_processor(dialect)
        values = [row[name] for row in rows]
        if convert is not None:
            values = [None if value is None else convert(value) for value in values]
        arrays.append(values)
    quote = dialect.identifier_preparer.quote
    sources = ", ".join(
        f"CAST(:a{i} AS {_array_type(table.c[name])}[])" for i, name in enumerate(columns)
    )
    statement = text(
        f"UPDATE {quote(table.name)} AS t SET "
        + ", ".join(f"{quote(name)} = v.{quote(name)}" for name in names)
        + f" FROM unnest({sources}) AS v({', '.join(map(quote, columns))}) WHERE "
        + " AND ".join(f"t.{quote(k)} = v.{quote(k)}" for k in keys)
    )
    connection.execute(statement, {f"a{i}": values for i, values in enumerate(arrays)})
