"""The write path's INSERTs, UPDATEs and DELETEs of fixed shape, run with less machinery.

``connection.execute(statement, params)`` pays, on every execution, the statement's
cache key, the compiled cache's lookup, ``construct_params`` over every bind
parameter and the execution context's setup: about 20 µs of CPU per statement on
SQLite, more with many parameters (the audit INSERT: 55 µs, 32 µs here). A SCIM
write runs the same few DML statements every time (the audit event, the head, the
product event, the count, the rows it inserts or changes). A ``Fixed`` statement is
compiled once per dialect; an execution applies the bind processors of its typed
parameters (``UTCDateTime``, JSON, Boolean: the functions SQLAlchemy applies, on
None too: a JSON column's None is stored as JSON null) and runs the SQL on
the driver's cursor (``_run``), so what matters stays: the engine's events (statement
counts, ``before_cursor_execute`` and ``after_cursor_execute``), the dialect's
``do_execute`` hooks (the PostgreSQL prepare hook: ``db.reuse_plan``'s execution option),
SQLAlchemy's error types (an ``IntegrityError`` is one) and a lost connection's
invalidation. ``exec_driver_sql`` would build an execution context and a result for
each statement, for a rowcount (about 90,000 instructions each: a SCIM POST's eight
were 8 % of its instructions on SQLite, BENCHMARKS.md, issue 17 "pycost"); ``_run`` does
what they do for a statement that returns no rows, and hands anything unusual (no
transaction begun yet, an invalidated connection, echo, typed input sizes) to
``exec_driver_sql``.

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
from functools import cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine.interfaces import BindTyping


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

    def execute(self, connection: Connection, params: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """Run with ``params`` (a list: executemany), as ``connection.execute`` would; what
        it returns has the ``rowcount`` (a ``Ran``, or ``execute``'s ``CursorResult``)."""
        compiled = self._compiled(connection.dialect)
        if compiled is None:
            return connection.execute(self.statement, params)
        if isinstance(params, list) and len(params) == 1:
            params = params[0]
        if isinstance(params, list):
            return _run(
                connection,
                compiled.sql,
                [_convert(compiled, p) for p in params],
                True,
                self.options,
            )
        return _run(connection, compiled.sql, _convert(compiled, params), False, self.options)

    def run(self, connection: Connection, params: dict[str, Any] | list[dict[str, Any]]) -> None:
        """``execute`` of a statement whose rows, if any, nobody reads."""
        self.execute(connection, params).close()

    def run_and_commit(self, connection: Connection, params: dict[str, Any]) -> bool:
        """PostgreSQL: ``run``, then COMMIT the transaction, in one round trip (psycopg's
        pipeline mode: the statement and the COMMIT go out together, one Sync). For the last
        statement of a transaction, from a commit hook: SQLAlchemy's own COMMIT that follows
        finds the transaction ended and sends nothing. The statement's error is raised here,
        as ``run`` raises it (the COMMIT after it does not run: the transaction is left
        aborted, and rolls back). False, having done nothing: not a connection this can
        commit on that way (the statement is then the caller's to ``run``)."""
        compiled = self._compiled(connection.dialect)
        if compiled is None or connection.dialect.name != "postgresql" or not _pipelines():
            return False
        if not _cursor_path(connection) or connection.in_nested_transaction():
            return False
        _run(connection, compiled.sql, _convert(compiled, params), False, self.options, True)
        return True


class Ran:
    """What a statement run on the driver's cursor leaves (it returns no rows): the
    ``rowcount`` a ``CursorResult`` would give."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount

    def close(self) -> None:
        """Nothing to release: the cursor is closed once the statement has run."""


class _HookContext:
    """What the dialect's ``do_execute`` hooks are given as the execution context: the
    execution options, all that ``db``'s PostgreSQL prepare hooks read of it
    (``REUSE_PLAN``)."""

    __slots__ = ("execution_options",)

    def __init__(self, execution_options: Any) -> None:
        self.execution_options = execution_options


@cache
def _pipelines() -> bool:
    """Whether psycopg's libpq has pipeline mode (14 or later)."""
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def _cursor_path(connection: Connection) -> bool:
    """Whether ``_run`` runs on the driver's cursor itself: a begun, active transaction on a
    valid connection, no echo, no typed input sizes (else ``exec_driver_sql`` does)."""
    transaction = connection._transaction
    nested = connection._nested_transaction
    return not (
        connection._dbapi_connection is None
        or transaction is None
        or not transaction.is_active
        or (nested is not None and not nested.is_active)
        or (
            connection._trans_context_manager is not None
            and not connection._trans_context_manager._transaction_is_active()
        )
        or connection._echo
        or connection.dialect.bind_typing is BindTyping.SETINPUTSIZES
    )


def _run(
    connection: Connection, sql: str, params: Any, many: bool, options: Any, commit: bool = False
) -> Any:
    """``connection.exec_driver_sql(sql, params, options)`` for a statement that returns
    no rows, on the driver's cursor: the engine's ``before_cursor_execute`` and
    ``after_cursor_execute`` (with no execution context), the dialect's ``do_execute`` /
    ``do_executemany`` hooks, then the dialect's own, a driver error raised as
    SQLAlchemy raises it (``_handle_dbapi_exception``: its exception classes, ``handle_error``,
    invalidation on a disconnect). ``exec_driver_sql`` itself when the connection has
    no active transaction yet (its autobegin: SQLite's BEGIN IMMEDIATE), is invalidated,
    echoes, or the dialect sets input sizes: what it does there is not repeated here.
    ``commit`` (``Fixed.run_and_commit``, which checked ``_cursor_path``): psycopg's
    pipeline mode around the statement and a COMMIT. Relies on SQLAlchemy 2.1's
    Connection internals (pinned)."""
    if not commit and not _cursor_path(connection):
        return connection.exec_driver_sql(sql, params, options)
    dbapi_connection: Any = connection._dbapi_connection
    cursor = dbapi_connection.cursor()
    try:
        events = connection._has_events or connection.engine._has_events
        if events:
            for fn in connection.dispatch.before_cursor_execute:
                sql, params = fn(connection, cursor, sql, params, None, many)
        if commit:
            with dbapi_connection.pipeline():
                _execute(connection, cursor, sql, params, many, options)
                # Queued behind the statement; the pipeline's end sends both and waits
                # once. After an error PostgreSQL skips it: the transaction stays aborted.
                cursor.execute("COMMIT")
        else:
            _execute(connection, cursor, sql, params, many, options)
        if events:
            connection.dispatch.after_cursor_execute(connection, cursor, sql, params, None, many)
        rowcount = cursor.rowcount
    except BaseException as err:
        # Raises SQLAlchemy's error (the cursor closed, or the connection invalidated).
        connection._handle_dbapi_exception(err, sql, params, cursor, None)
    cursor.close()
    return Ran(rowcount)


def _execute(
    connection: Connection, cursor: Any, sql: str, params: Any, many: bool, options: Any
) -> None:
    """The statement on ``cursor``: the dialect's ``do_execute`` / ``do_executemany`` hooks
    (the first that handles it), else the dialect's own."""
    dialect = connection.dialect
    if dialect._has_events:
        context: Any = _HookContext(connection._execution_options.merge_with(options))
        hooks = dialect.dispatch.do_executemany if many else dialect.dispatch.do_execute
        for fn in hooks:
            if fn(cursor, sql, params, context):
                return
    if many:
        dialect.do_executemany(cursor, sql, params, None)
    else:
        dialect.do_execute(cursor, sql, params, None)


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
