"""Another process's write landing between a command's first read and its first write."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def another_write_before(statement_start: str, path: str) -> Iterator[list[str]]:
    """Just before the first statement that starts with ``statement_start`` (on any engine),
    another connection to the SQLite file ``path`` tries to commit a write without waiting.
    Yields what happened to it: ["committed"], or the error when the command holds the
    write lock (then the command's later write cannot find its snapshot stale)."""
    outcome: list[str] = []

    def another_writer(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if outcome or not statement.startswith(statement_start):
            return
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE organizations SET name = name")
            other.execute("COMMIT")
            outcome.append("committed")
        except sqlite3.OperationalError as exc:
            outcome.append(str(exc))
        finally:
            other.close()

    event.listen(Engine, "before_cursor_execute", another_writer)
    try:
        yield outcome
    finally:
        event.remove(Engine, "before_cursor_execute", another_writer)
