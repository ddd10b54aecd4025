"""The psycopg cursor of our PostgreSQL engines: its ``description`` as plain tuples.

SQLAlchemy reads ``cursor.description`` once for every statement that returns rows.
psycopg builds it as one ``psycopg.Column`` per column, each looking its type up in
the connection's adapters and reading its modifier and size: 36 µs of CPU for a
user's row of 22 columns, about 0.1 ms of a PATCH (whose reads return some 60
columns). SQLAlchemy uses only each column's name and type code (DBAPI's first two
items), so this gives DBAPI's seven-item sequence with those two (``display_size``
and the rest None), 4 µs for the same row. The rows themselves are psycopg's as
before. Installed by ``db.make_engine`` (``cursor_factory``, as SQLAlchemy's
psycopg dialect documents for ``ClientCursor``); server-side cursors are psycopg's own.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import pq

# TUPLES_CHUNK: psycopg 3.2+ (libpq's chunked rows); looked up so that 3.1 still imports.
_ROWS = tuple(
    status
    for name in ("TUPLES_OK", "SINGLE_TUPLE", "TUPLES_CHUNK")
    if (status := getattr(pq.ExecStatus, name, None)) is not None
)


class Cursor(psycopg.Cursor[Any]):
    """``psycopg.Cursor`` with a lighter ``description`` (name and type code per column)."""

    @property
    def description(self) -> list[Any] | None:
        res = self.pgresult
        # As psycopg: columns when there are fields, or when the statement returned tuples.
        if res is None or not (res.nfields or res.status in _ROWS):
            return None
        encoding = self._encoding
        out = []
        for i in range(res.nfields):
            name = res.fname(i)
            out.append(
                (
                    name.decode(encoding) if name else f"column_{i + 1}",
                    res.ftype(i),
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            )
        return out
