"""The write path's INSERTs, UPDATEs and DELETEs of fixed shape, run with less machinery.

``connection.execute(statement, params)`` pays, on every execution, the statement's
cache key, the compiled cache's lookup, ``construct_params`` over every bind
parameter and the execution context's setup: about 20 µs of CPU per statement on
SQLite, more with many parameters (the audit INSERT: 55 µs, 32 µs here). A SCIM
write runs the same few DML statements every time (the audit event, the head, the
product event, the count, the rows it inserts or changes). A ``Fixed`` statement is
compiled once per dialect; an execution applies the bind processors of its typed
parameters (``UTCDateTime``, JSON, Boolean: the functions SQLAlchemy applies, on
None too: a JSON column's None is stored as JSON null) and hands the SQL to
``Connection.exec_driver_sql``, so what matters stays: the engine's events
(statement counts, ``before_cursor_execute``), SQLAlchemy's error types (an
``IntegrityError`` is one), a lost connection's invalidation, and the PostgreSQL
prepare hook (``db.reuse_plan``'s execution option is passed along).

Only for statements that return no rows: for a read, ``exec_driver_sql`` builds the
result's column map on every execution (``execute`` caches it with the compiled
form), which cost more than it saved (a user's row: 52 µs by ``execute``, 61 µs).
A statement that returns rows, has expanding (``IN`` list) or literal-rendered
parameters, or Python-side defaults to fill in (prefetch), runs by
``connection.execute`` as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import CursorResult


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # Positional dialects (SQLite): the parameter names in order; named (psycopg): None.
    order: tuple[str, ...] | None
    # (name, processor) for a named dialect; (position, processor) for a positional one.
    processors: tuple[tuple[Any, Callable[[Any], Any]], ...]
    defaults: dict[str, Any]  # the values of parameters the statement carries (``+ 1``)


class Fixed:
    """A Core ``insert``, ``update``, ``delete`` (or ``text`` with typed bind parameters) of
    fixed shape, compiled once per dialect. ``keys``: an INSERT's or
    UPDATE's columns, as ``execute`` would infer them from the parameters' names."""

    __slots__ = ("_by_dialect", "keys", "options", "statement")

    def __init__(self, statement: Any, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.keys = list(keys) if keys is not None else None
        self.options = dict(statement.get_execution_options())
        self._by_dialect: dict[str, _Compiled | None] = {}

    def _compiled(self, dialect: Any) -> _Compiled | None:
        """None: a statement this cannot run (``_compile``), run by ``execute`` as before."""
        try:
            return self._by_dialect[dialect.name]
        except KeyError:
            found = self._by_dialect[dialect.name] = _compile(self.statement, dialect, self.keys)
            return found

    def execute(
        self, connection: Connection, params: dict[str, Any] | list[dict[str, Any]]
    ) -> CursorResult[Any]:
        """Run with ``params`` (a list: executemany), as ``connection.execute`` would."""
        compiled = self._compiled(connection.dialect)
        if compiled is None:
            return connection.execute(self.statement, params)
        if isinstance(params, list) and len(params) == 1:
            params = params[0]
        if isinstance(params, list):
            converted: Any = [_convert(compiled, p) for p in params]
        else:
            converted = _convert(compiled, params)
        return connection.exec_driver_sql(compiled.sql, converted, self.options)

    def run(self, connection: Connection, params: dict[str, Any] | list[dict[str, Any]]) -> None:
        """``execute`` of a statement whose rows, if any, nobody reads."""
        self.execute(connection, params).close()


def _convert(compiled: _Compiled, params: dict[str, Any]) -> Any:
    """The DBAPI parameters: each value through its processor (None too: JSON's None is
    JSON null), in the statement's order (SQLite) or by name (psycopg)."""
    if compiled.defaults:
        params = {**compiled.defaults, **params}
    if compiled.order is None:
        values: Any = dict(params)
    else:
        values = [params[name] for name in compiled.order]
    for key, process in compiled.processors:
        values[key] = process(values[key])
    return values if compiled.order is None else tuple(values)


def _compile(statement: Any, dialect: Any, keys: list[str] | None) -> _Compiled | None:
    """None for what only ``execute`` does right: expanding or literal parameters (an
    ``IN`` list), Python-side column defaults or ``onupdate`` to fill in (prefetch),
    parameter names the driver needs escaped, rows returned (RETURNING), parameters whose
    value a callable makes at each execution."""
    compiled: Any = statement.compile(dialect=dialect, column_keys=keys)
    if (
        compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.escaped_bind_names
        or compiled._result_columns
        or any(bind.callable is not None for bind in compiled.bind_names)
    ):
        return None
    # What construct_params gives a parameter the caller does not (its value, None too).
    defaults = {
        name: bind.effective_value
        for bind, name in compiled.bind_names.items()
        if not bind.required
    }
    by_name = {name: process for name, process in compiled._bind_processors.items() if process}
    order = tuple(compiled.positiontup) if compiled.positional else None
    processors: tuple[tuple[Any, Callable[[Any], Any]], ...] = (
        tuple(by_name.items())
        if order is None
        else tuple((i, by_name[name]) for i, name in enumerate(order) if name in by_name)
    )
    return _Compiled(compiled.string, order, processors, defaults)


_OF: dict[tuple[Any, tuple[str, ...] | None], Fixed] = {}
_OF_LIMIT = 2000  # statements x column sets; past it, made again (never unbounded)


def fixed_of(statement: Any, keys: Sequence[str] | None = None) -> Fixed:
    """The ``Fixed`` of a long-lived statement (a module's, a cached one) with these column
    ``keys``, made once: for statements whose columns vary by call (an UPDATE of the changed
    columns, an INSERT of the columns given)."""
    key = (statement, tuple(keys) if keys is not None else None)
    found = _OF.get(key)
    if found is None:
        if len(_OF) >= _OF_LIMIT:
            _OF.clear()
        found = _OF[key] = Fixed(statement, keys)
    return found
