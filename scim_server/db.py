"""Database plumbing: the declarative base, portable column types, engines.

The naming convention keeps constraint names stable so that Alembic
migrations generated on SQLite and PostgreSQL agree.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

from flask import g
from flask.globals import _cv_app, _cv_request, app_ctx, request_ctx
from psycopg.types.string import TextLoader
from sqlalchemy import (
    JSON,
    DateTime,
    MetaData,
    String,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    insert,
    text,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import (
    DeclarativeBase,
    Session,
    SessionTransaction,
    make_transient_to_detached,
    sessionmaker,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import WARN_LINTING
from sqlalchemy.sql.elements import BindParameter

from scim_server import jsonfast, pgcursor, sqlite_writers
from scim_server.fixed import fixed_of

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The database is unreachable, dropped the connection, or the pool is exhausted:
# transient, so clients get 503 + Retry-After (seconds) rather than a 500.
# PostgreSQL-only GIN trigram indexes (name -> (table, column)) for the users dashboard's
# substring search, made by migration 0023 where pg_trgm may be created. They are not in the
# models (a database without pg_trgm has none); the schema comparison expects either.
TRIGRAM_INDEXES: dict[str, tuple[str, str]] = {
    "ix_users_user_name_key_trgm": ("users", "user_name_key"),
    "ix_users_username_key_trgm": ("users", "username_key"),
    "ix_contacts_name_key_trgm": ("contacts", "name_key"),
    "ix_contacts_email_key_trgm": ("contacts", "email_key"),
}

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
DATABASE_RETRY_AFTER = 5


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Comparison keys are compared and LIKE-matched byte-wise: the "C" collation
# lets PostgreSQL use a plain btree index for `sw` (LIKE 'abc%') filters.
KeyText = String().with_variant(String(collation="C"), "postgresql")

JSONDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on every backend (SQLite has no zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


@cache
def row_columns(model: Any) -> tuple[Any, ...]:
    """``model``'s columns labelled with their attribute names, for Core reads into rows.

    Rows are cheaper than ORM objects for rendering; the labels let them be read
    like the objects (``row.login_name``) where an attribute and its column differ.
    Built once per model: list pages ask for them on every request.
    """
    return tuple(column.label(key) for key, column in sa_inspect(model).columns.items())


class KeyRead:
    """A SELECT by key run on every request (the token lookup), compiled once per dialect
    and executed from that compiled form: ``connection.execute`` pays, on every call, the
    statement's cache key (a walk of the statement and a hash of it) and the compiled
    cache's lookup: about a third of a one-row read's CPU on SQLite (10 µs of 30).

    What follows the compiled cache is what ``execute`` does (SQLAlchemy's
    ``Connection._execute_context`` with the compiled form, its extracted parameters and
    the merged execution options: engine events, error wrapping, invalidation of a lost
    connection, the PostgreSQL prepare hook, result types all as before). Relies on
    SQLAlchemy 2.1 internals (pinned, as ``fixed`` does); the statement must be fixed
    (no values that vary by call but its bound parameters). Each call gives exactly the
    statement's named parameters (``bindparam("name")``: ``keys``).
    """

    __slots__ = ("_by_dialect", "keys", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        # The parameters given at each call, sorted as ``execute`` sorts them; a literal's
        # anonymous parameter (``unique``) carries its value in the statement.
        self.keys = sorted(
            {
                element.key
                for element in visitors.iterate(statement)
                if isinstance(element, BindParameter) and not element.unique
            }
        )
        self._by_dialect: dict[str, tuple[Any, Any, Any]] = {}

    def _compiled(self, connection: Connection) -> tuple[Any, Any, Any]:
        dialect = connection.dialect
        found = self._by_dialect.get(dialect.name)
        if found is None:
            compiled, extracted, param_dict, _hit = self.statement._compile_w_cache(
                dialect=dialect,
                compiled_cache={},
                column_keys=self.keys,
                linting=dialect.compiler_linting | WARN_LINTING,
            )
            found = self._by_dialect[dialect.name] = (compiled, extracted, param_dict)
        return found

    def execute(self, connection: Connection, params: dict[str, Any]) -> Any:
        """As ``connection.execute(statement, params)``; ``params`` has exactly ``keys``."""
        compiled, extracted, param_dict = self._compiled(connection)
        dialect = connection.dialect
        options = self.statement._execution_options.merge_with(connection._execution_options)
        distilled = [params]
        return connection._execute_context(
            dialect,
            dialect.execution_ctx_cls._init_compiled,
            compiled,
            distilled,
            options,
            compiled,
            distilled,
            self.statement,
            extracted,
            cache_hit=dialect.CACHE_HIT,
            param_dict=param_dict,
        )


def insert_for(dialect: str) -> Any:
    """The dialect's ``insert`` (PostgreSQL's or SQLite's: both have ``on_conflict_do_nothing``
    and ``on_conflict_do_update``), for a statement that must not fail on a row already there."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _InsertPlan:
    statement: Any
    # (attribute, column name, default maker or None)
    columns: tuple[tuple[str, str, Any], ...]


@cache
def _insert_plan(model: Any) -> _InsertPlan:
    columns: list[tuple[str, str, Any]] = []
    for attr in sa_inspect(model).column_attrs:
        column = attr.columns[0]
        default: Any = column.default
        if default is None:
            make = None
        elif default.is_callable:
            make = default.arg
        else:
            make = lambda _ctx, value=default.arg: value  # noqa: E731
        # The name as a plain ``str`` (``column.name`` is SQLAlchemy's ``quoted_name``, a
        # subclass): the rows are keyed by it, and orjson refuses a subclass as a key
        # (``Batch``'s JSON then fell back to ``json``, several times slower).
        columns.append((attr.key, str(column.name), make))
    # An INSERT of given values: nothing to plan from them (``reuse_plan``).
    return _InsertPlan(reuse_plan(insert(model.__table__)), tuple(columns))


def _insert_values(obj: Any) -> dict[str, Any]:
    """Every column of a new ORM object, by column name (the model's defaults applied and
    set on the object): what ``insert_now`` and ``Batch`` insert."""
    model: Any = type(obj)
    plan = _insert_plan(model)
    loaded = obj.__dict__
    values = {}
    for key, name, make in plan.columns:
        if key in loaded:
            value = loaded[key]
        else:
            # Into the object's dict, not through the instrumented attribute: the object
            # is attached as loaded after the INSERT (or not at all), its dict the state.
            value = loaded[key] = make(None) if make is not None else None
        values[name] = value
    return values


def _attach_inserted(session: Session, obj: Any) -> None:
    make_transient_to_detached(obj)
    session.add(obj)


def insert_now(session: Session, *objects: Any) -> None:
    """INSERT new ORM objects now, with a prebuilt Core statement each, and attach them
    to the session as if loaded: a hot path's new rows skip the unit of work.

    Every column is given (the model's defaults applied here), so nothing is expired
    or read back; later changes to the objects flush as UPDATEs, as after an ORM
    INSERT. Only for objects nothing else must be inserted with (no relationships).
    """
    connection = session.connection()
    for obj in objects:
        model: Any = type(obj)
        values = _insert_values(obj)
        fixed_of(_insert_plan(model).statement, tuple(values)).run(connection, values)
        _attach_inserted(session, obj)


class Batch:
    """New rows of several tables that a hot path writes at one point (``write``), in the
    order added: on PostgreSQL one statement, elsewhere one per table (a list of rows as
    one executemany). ORM objects (``add``) are written like ``insert_now``'s, with their
    values as they are when written, and attached to the session as loaded; plain rows
    (``add_rows``) are only written.

    On PostgreSQL each table's rows travel as one JSON parameter, expanded by
    ``jsonb_populate_recordset`` (``WITH w0 AS (INSERT INTO contacts (...) SELECT ... FROM
    jsonb_populate_recordset(NULL::contacts, :b0)), w1 AS (...) ...``): a few parameters
    and one text whatever the number of rows, so the statement is built once per shape
    and psycopg caches its conversion (it parses again every statement of more than 50
    parameters). Foreign keys between the rows hold: they are checked at the statement's
    end.
    """

    def __init__(self) -> None:
        # (table, rows) or (None, object), (False, object) not to attach: an object's
        # values are taken when written.
        self._parts: list[tuple[Any, Any]] = []

    def add(self, *objects: Any, attach: bool = True) -> None:
        """``attach=False``: not put into the session once written (nothing in the
        transaction reads or changes it again: a later read queries the row)."""
        self._parts += [(None if attach else False, obj) for obj in objects]

    def add_rows(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """Rows of ``table`` by column name, every row with the same columns."""
        if rows:
            self._parts.append((table, rows))

    def pending(self, model: Any, key: tuple[Any, ...]) -> Any | None:
        """The object of ``model`` with this primary key added and not yet written, or None."""
        mapper = sa_inspect(model)
        for table, obj in self._parts:
            if (
                table in (None, False)
                and type(obj) is model
                and tuple(mapper.primary_key_from_instance(obj)) == key
            ):
                return obj
        return None

    def write(self, session: Session) -> None:
        connection = session.connection()
        objects = [obj for table, obj in self._parts if table is None]
        parts = [
            (type(part).__table__, [_insert_values(part)])
            if table in (None, False)
            else (table, part)
            for table, part in self._parts
        ]
        self._parts = []
        if connection.dialect.name == "postgresql" and parts and _as_json(parts):
            params = {f"b{i}": _rows_json(table, rows) for i, (table, rows) in enumerate(parts)}
            shape = tuple((table, tuple(rows[0])) for table, rows in parts)
            connection.execute(_batch_statement(connection, shape), params)
        else:
            for table, rows in parts:
                if len(rows) > 1 and connection.dialect.name != "sqlite":
                    # Many rows in one INSERT (SQLAlchemy's insertmanyvalues).
                    connection.execute(_table_insert(table), rows)
                else:  # one row, or SQLite's executemany
                    fixed_of(_table_insert(table), tuple(rows[0])).run(connection, rows)
        for obj in objects:
            _attach_inserted(session, obj)


@cache
def _table_insert(table: Any) -> Any:
    return reuse_plan(insert(table))


@cache
def _json_columns(table: Any) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, JSON))


@cache
def _utc_columns(table: Any) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, UTCDateTime))


def _as_json(parts: list[tuple[Any, list[dict[str, Any]]]]) -> bool:
    """Whether the rows survive the trip through JSON: a JSON column's None is stored as
    JSON ``null`` by an INSERT, as SQL NULL by ``jsonb_populate_recordset``."""
    for table, rows in parts:
        for name in _json_columns(table):
            if any(row.get(name) is None for row in rows):
                return False
    return True


def _rows_json(table: Any, rows: list[dict[str, Any]]) -> str:
    """The rows as a JSON array, each value as the column's type binds it (UTC times naive,
    as ISO text; a JSON column's value nested as it is)."""
    utc = _utc_columns(table)
    if utc:
        rows = [
            {
                k: v.astimezone(UTC).replace(tzinfo=None).isoformat()
                if k in utc and v is not None
                else v
                for k, v in row.items()
            }
            for row in rows
        ]
    return jsonfast.dumps(rows)


_BATCH_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _batch_statement(connection: Any, shape: tuple[Any, ...]) -> Any:
    """The PostgreSQL statement of a batch of this shape (tables and columns), built once:
    text, as ``audit.recorder``'s events (SQLAlchemy does not cache a DML CTE, and
    compiling one costs more than the round trip it saves)."""
    stmt = _BATCH_STATEMENTS.get(shape)
    if stmt is not None:
        return stmt
    quote = connection.dialect.identifier_preparer.quote
    inserts = []
    for i, (table, columns) in enumerate(shape):
        names = ", ".join(quote(name) for name in columns)
        inserts.append(
            f"INSERT INTO {quote(table.name)} ({names}) SELECT {names} "
            f"FROM jsonb_populate_recordset(NULL::{quote(table.name)}, CAST(:b{i} AS jsonb))"
        )
    *first, last = inserts
    ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(first))
    # The INSERTs of the rows given: one plan, reused.
    stmt = reuse_plan(text(f"WITH {ctes} {last}" if ctes else last))
    _BATCH_STATEMENTS[shape] = stmt
    return stmt


# The reverse of ``insert_now``, for a hot path's changes to one row: the row read
# with a Core SELECT (``from_row``), changed as a plain object, and written back by
# ``write_changed`` (only the columns that differ), without the ORM's load or flush.


@dataclass(frozen=True)
class _UpdatePlan:
    statement: Any
    # (attribute, column name); the primary key's, bound as _pk_<column name>
    columns: tuple[tuple[str, str], ...]
    key: tuple[tuple[str, str], ...]


@cache
def _update_plan(model: Any) -> _UpdatePlan:
    mapper = sa_inspect(model)
    columns = tuple((attr.key, attr.columns[0].name) for attr in mapper.column_attrs)
    primary = {column.name for column in mapper.primary_key}
    key = tuple((k, name) for k, name in columns if name in primary)
    table = model.__table__
    # No values(): the SET clause is the parameters given at execution (the changed columns).
    # By the primary key: its plan is reused (``reuse_plan``), one per set of columns.
    statement = reuse_plan(
        update(table).where(*(table.c[name] == bindparam(f"_pk_{name}") for _k, name in key))
    )
    return _UpdatePlan(statement, columns, key)


def from_row(model: Any, row: Any) -> Any:
    """An instance of ``model`` holding ``row``'s values (a mapping by attribute name, every
    column), in no session: changes to it are plain attribute sets until ``write_changed``."""
    obj = model.__mapper__.class_manager.new_instance()
    obj.__dict__.update(row)
    return obj


def snapshot(obj: Any) -> dict[str, Any]:
    """The column values of ``obj`` now, by attribute: what ``write_changed`` compares with."""
    model: Any = type(obj)
    loaded = obj.__dict__
    return {k: loaded.get(k) for k, _name in _update_plan(model).columns}


def write_changed(
    session: Session, obj: Any, before: dict[str, Any], *, attach: bool = True
) -> Any:
    """UPDATE the columns of ``obj`` (from ``from_row``) that differ from ``before`` (its
    ``snapshot``), one Core statement, then attach it to the session as loaded
    (``attach_loaded``, whose object it returns: later changes go through the ORM).
    Objects the session holds pending (a new contact) are flushed first, so the row may
    refer to them. ``attach=False``: left out of the session (nothing after the write
    reads it there; the caller knows the session holds no object of that row), returned."""
    model: Any = type(obj)
    plan = _update_plan(model)
    loaded = obj.__dict__
    values = {name: loaded.get(k) for k, name in plan.columns if loaded.get(k) != before[k]}
    if values:
        session.flush()
        values |= {f"_pk_{name}": loaded[k] for k, name in plan.key}
        fixed_of(plan.statement, tuple(values)).run(session.connection(), values)
    return attach_loaded(session, obj) if attach else obj


def attach_loaded(session: Session, obj: Any) -> Any:
    """Put ``obj`` (from ``from_row``, as stored now) into the session as if loaded, clean:
    the events writer finds it in the identity map, a flush writes nothing for it. When
    the session already holds that row (an earlier operation in the same session), its
    object takes these values as committed instead, and is returned: use what this returns."""
    key = session.identity_key(instance=obj)
    held = session.identity_map.get(key)
    if held is None:
        make_transient_to_detached(obj)
        session.add(obj)
        return obj
    model: Any = type(obj)
    loaded = obj.__dict__
    for k, _name in _update_plan(model).columns:
        set_committed_value(held, k, loaded.get(k))
    return held


@contextmanager
def read_before_lock(session: Session) -> Iterator[Any]:
    """On SQLite, a connection of ``session``'s engine reading without the write lock (no
    BEGIN: each statement a WAL snapshot of its own), for a write to compute its new state
    before its BEGIN IMMEDIATE, so that the database-wide write lock is held only for the writes.
    None on PostgreSQL (writers lock only their rows there: one round trip more would
    buy nothing), when ``session`` is in a transaction already (its caller's reads and
    the write must see one snapshot) or bound to a connection rather than an engine
    (joined to an outer transaction: the import's steps, the tests). A session on its
    request's shared connection (``Database.share_connection``) reads on that connection,
    when no transaction is open on it."""
    bind: Any = session.get_bind()
    if bind.dialect.name != "sqlite" or session.in_transaction():
        yield None
        return
    if isinstance(bind, Connection) and SHARED_MODE_INFO in session.info:
        # The request's own connection (``Database.share_connection``), idle: read on it.
        if bind.in_transaction():
            yield None
            return
        bind.execution_options(**_STATEMENT_READ_MODE)
        try:
            yield bind
        finally:
            bind.rollback()  # no BEGIN was sent: ends SQLAlchemy's transaction only
        return
    if not isinstance(bind, Engine):
        yield None
        return
    # No BEGIN at all (``SQLITE_STATEMENT_READS``): each statement reads its own snapshot,
    # and the one read it serves (the stored document) needs no more.
    options = {"sqlite_immediate": False, SQLITE_STATEMENT_READS: True}
    with bind.execution_options(**options).connect() as connection:
        yield connection


def within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """Whether ``transaction`` is ``ended`` or nested in it: what a (savepoint) rollback of
    ``ended`` undoes, for the state noted on the session (audit rows, product events)."""
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


def commits_connection(session: Session, connection: Connection) -> bool:
    """Whether the session's commit commits ``connection``'s own transaction: the session
    began it, rather than joined one begun outside it (which it leaves to its owner: a
    savepoint of it, or a transaction it must not commit). Relies on SQLAlchemy 2.1's
    ``SessionTransaction._connections`` (pinned)."""
    root = session.get_transaction()
    joined = root._connections.get(connection) if root is not None else None
    return bool(joined is not None and joined[2] and not connection.in_nested_transaction())


# How long a SQLite writer waits for the database (our queue, then SQLite's busy handler).
SQLITE_BUSY_S = 10.0


def _busy_timeout_pragma() -> str:
    return f"PRAGMA busy_timeout={int(SQLITE_BUSY_S * 1000)}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit is durable once its frames are in the WAL file (a crash of
    # the process loses nothing); the WAL is fsynced at each checkpoint, so a power loss or
    # an OS crash may lose the commits since the last one (README, "SQLite durability").
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(_busy_timeout_pragma())
    # We match on pre-folded keys: LIKE must be case-sensitive to mean what the
    # filter says, and so that SQLite can use the key index for `sw`.
    cursor.execute("PRAGMA case_sensitive_like=ON")
    # ANALYZE samples this many index entries: statistics in milliseconds, not seconds.
    cursor.execute("PRAGMA analysis_limit=1000")
    cursor.close()


# How often each pooled SQLite connection runs `PRAGMA optimize` on check-in.
SQLITE_OPTIMIZE_EVERY_S = 60.0


def _sqlite_optimize(dbapi_connection: Any, record: Any) -> None:
    """Keep SQLite's planner statistics current, as SQLite recommends for long-lived connections.

    Without statistics SQLite picks indexes by shape alone and can walk a whole
    organization (e.g. ``ORDER BY created_at`` instead of the id lookup of a
    filter). ``PRAGMA optimize`` analyzes only the tables this connection used
    whose statistics are missing or stale, so it is usually a no-op. It must
    never make a request wait: a busy database just skips it this time.
    """
    if dbapi_connection is None:
        return
    now = time.monotonic()
    due = record.info.setdefault("sqlite_optimize_at", now + 1.0)
    if now < due:
        return
    record.info["sqlite_optimize_at"] = now + SQLITE_OPTIMIZE_EVERY_S
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.execute("PRAGMA optimize").fetchall()
    except sqlite3.Error:
        pass  # statistics are an optimisation, and a locked database is normal
    finally:
        cursor.execute(_busy_timeout_pragma())
        cursor.close()


def make_engine(
    url: str,
    pool_size: int = 5,
    max_overflow: int = 10,
    *,
    connect_timeout: int = 5,
    pool_timeout: int = 10,
) -> Engine:
    """Create an engine with the settings each backend needs.

    PostgreSQL connections are pinged on checkout (``_ping_on_checkout``, SQLAlchemy's
    ``pool_pre_ping`` as a listener), so after a database restart the pool replaces
    dead connections by itself; except a checkout whose first statement is retried on
    another connection when it finds this one dead (``unpinged_checkout``).
    """
    json_codec = {"json_serializer": jsonfast.dumps, "json_deserializer": jsonfast.loads}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 10}, **json_codec)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take the write
        # lock at BEGIN so concurrent writers queue instead of failing.
        event.listen(engine, "connect", _disable_pysqlite_begin)
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            queue = sqlite_writers.install(engine, path, SQLITE_BUSY_S)
            event.listen(engine, "begin", partial(_sqlite_begin, queue=queue))
        else:
            event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "checkin", _sqlite_optimize)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        connect_args={"connect_timeout": connect_timeout, "cursor_factory": pgcursor.Cursor},
        **json_codec,
    )
    event.listen(engine, "connect", _postgres_session_settings)
    event.listen(engine, "do_execute", _execute_prepared)
    event.listen(engine, "do_execute_no_params", _execute_prepared_no_params)
    event.listen(engine, "do_executemany", _executemany_prepared)
    event.listen(engine, "connect", _mark_fresh)
    dialect = engine.dialect

    def ping_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        _ping_on_checkout(dialect, dbapi_connection, record)

    event.listen(engine, "checkout", ping_on_checkout)
    return engine


# Set while checking out a connection whose first statement stands for the ping: a read
# that its caller retries once on another connection when it finds this one dead (the
# SCIM token lookup, ``Database.share_connection``). SQLAlchemy invalidates the whole pool
# on that disconnect, so every connection older than the restart is replaced as well.
_UNPINGED: ContextVar[bool] = ContextVar("scim_unpinged_checkout", default=False)
_FRESH = "scim_fresh"


@contextmanager
def unpinged_checkout() -> Iterator[None]:
    """Check out without the ping: for a caller whose first statement retries (above)."""
    token = _UNPINGED.set(True)
    try:
        yield
    finally:
        _UNPINGED.reset(token)


def _mark_fresh(_dbapi_connection: Any, record: Any) -> None:
    # The record's info lives as long as this DBAPI connection: a reconnection is fresh again.
    record.info[_FRESH] = True


def _ping_on_checkout(dialect: Any, dbapi_connection: Any, record: Any) -> None:
    """SQLAlchemy's ``pool_pre_ping``, as a checkout listener so that a checkout may skip it
    (``unpinged_checkout``): a connection just made is not pinged; a dead one (the ping
    fails as a disconnect) makes the pool invalidate every connection older than now and
    hand out a new one."""
    if record.info.pop(_FRESH, False) or _UNPINGED.get():
        return
    if not dialect._do_ping_w_event(dbapi_connection):
        raise InvalidatePoolError()


# An execution option (``reuse_plan``): PostgreSQL may keep the statement prepared on the
# connection and, after five executions, run it with a generic plan, planned once. Only
# for statements whose best plan does not depend on their values: a row read, changed or
# deleted by its primary or a unique key, an INSERT of given rows. Never for a filter, a
# search, a list page or an export: their plans must see the values
# (``_postgres_session_settings``).
REUSE_PLAN = "reuse_plan"


def reuse_plan(statement: Any) -> Any:
    """``statement`` marked ``REUSE_PLAN``: on PostgreSQL psycopg prepares it, and the server
    may reuse one generic plan for every execution (no planning per request). Only for a
    fixed-shape statement keyed by primary or unique keys (see ``REUSE_PLAN``)."""
    return statement.execution_options(**{REUSE_PLAN: True})


def _postgres_session_settings(dbapi_connection: Any, _record: Any) -> None:
    """Plan every execution with its own values, unless its statement is marked ``REUSE_PLAN``.

    psycopg prepares a statement after five executions by default, and PostgreSQL
    may then switch to a generic plan that ignores the values. For filters over the
    attribute index that is a disaster: the generic plan of
    ``emails[type eq "work"].value eq "x"`` read every ``type = work`` row of the
    organization (200 ms at 100k users instead of 0.1 ms). So psycopg prepares
    nothing by itself here (``prepare_threshold = None``): a statement sent unprepared
    is planned with its values, every time. Only the statements marked ``REUSE_PLAN``
    (lookups and changes by key, whose plan is the same whatever the values) are
    prepared (``_execute_prepared``), and ``plan_cache_mode = auto`` lets the server
    reuse a generic plan for them: planning was most of the database's CPU of a write
    or a GET by id. A statement added later is planned with its values until someone
    marks it.
    """
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute("SET plan_cache_mode = auto")
    finally:
        dbapi_connection.autocommit = autocommit
    dbapi_connection.prepare_threshold = None


def _prepared_call(cursor: Any, call: Any) -> None:
    """``call()`` (a cursor execution) with psycopg's preparing on for it alone.

    With ``prepare_threshold`` None psycopg neither prepares nor runs a statement it
    prepared before. A threshold of 1 for the call prepares the statement at its second
    execution on the connection, then reuses it; not at its first: psycopg forgets its
    prepared statements at every ROLLBACK (and then sends DEALLOCATE ALL), so on a
    connection whose transactions end in a rollback (a read in a transaction), a
    statement run once per transaction would pay a PREPARE round trip every time.
    ``executemany`` asks to prepare whatever the threshold, when there is one.
    """
    connection = cursor.connection
    connection.prepare_threshold = 1
    try:
        call()
    finally:
        connection.prepare_threshold = None


# An execution option: psycopg hands the statement's ``jsonb`` values over as their text,
# unparsed (a list page's stored documents, parsed only for the users it renders afresh:
# ``paging._page_select``). The loader is the cursor's own: other statements are untouched.
JSONB_AS_TEXT = "jsonb_as_text"


def _jsonb_as_text(cursor: Any, options: Any) -> None:
    if options.get(JSONB_AS_TEXT):
        cursor.adapters.register_loader("jsonb", TextLoader)


def _execute_prepared(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    """The ``do_execute`` hook: a statement marked ``REUSE_PLAN`` is executed prepared; one
    marked ``JSONB_AS_TEXT`` reads ``jsonb`` as text."""
    options = context.execution_options
    _jsonb_as_text(cursor, options)
    if not options.get(REUSE_PLAN):
        return False
    _prepared_call(cursor, lambda: cursor.execute(statement, parameters))
    return True


def _execute_prepared_no_params(cursor: Any, statement: str, context: Any) -> bool:
    _jsonb_as_text(cursor, context.execution_options)
    if not context.execution_options.get(REUSE_PLAN):
        return False
    _prepared_call(cursor, lambda: cursor.execute(statement))
    return True


def _executemany_prepared(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    if not context.execution_options.get(REUSE_PLAN):
        return False
    _prepared_call(cursor, lambda: cursor.executemany(statement, parameters))
    return True


def _disable_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


# An execution option: on SQLite, no BEGIN (pysqlite's own BEGIN is off, so each statement
# is its own transaction, as PostgreSQL's AUTOCOMMIT reads): for the reads before a write
# (``Database.lookup``: the token, a password sign-in's account; ``read_before_lock``),
# which then cost no BEGIN, and a COMMIT that is a no-op.
SQLITE_STATEMENT_READS = "sqlite_statement_reads"


# The execution options a shared request connection (``Database.share_connection``) takes for
# each kind of session, set as each session's transaction begins: sessions of every kind
# take the connection in turn. SQLite's are those ``_sqlite_begin`` reads; PostgreSQL's, the
# isolation level (None: the connection's default; AUTOCOMMIT for statement reads).
_SQLITE_MODE_KEYS = ("sqlite_immediate", SQLITE_STATEMENT_READS)
_STATEMENT_READ_MODE = {"sqlite_immediate": False, SQLITE_STATEMENT_READS: True}
SHARED_MODE_INFO = "shared_mode"


def _mode_of(factory: sessionmaker[Session]) -> dict[str, Any]:
    """The execution options that make the shared connection behave as ``factory``'s bind."""
    options = factory.kw["bind"].get_execution_options()
    mode = {key: bool(options.get(key)) for key in _SQLITE_MODE_KEYS}
    mode["isolation_level"] = options.get("isolation_level")
    return mode


def _enter_mode(session: Session, transaction: SessionTransaction) -> None:
    """As a session on a shared request connection begins: give the connection its mode.

    A session's transaction owns the connection until it ends; a second session beginning
    while another's transaction is open would join that transaction (its commit would not
    be its own), so that is refused: ``Database._session_of`` never hands the connection
    to a session while it is busy.
    """
    mode = session.info.get(SHARED_MODE_INFO)
    if mode is None or transaction.parent is not None:
        return
    connection: Any = session.bind
    if connection.in_transaction():
        raise RuntimeError("a shared request connection is in another session's transaction")
    _apply_mode(connection, mode)


def _apply_mode(connection: Connection, mode: dict[str, Any]) -> None:
    """Give an idle shared request connection a kind of session's mode (``_mode_of``)."""
    current = connection.get_execution_options()
    if connection.dialect.name == "sqlite":
        changed = {k: mode[k] for k in _SQLITE_MODE_KEYS if bool(current.get(k)) != mode[k]}
        if changed:
            connection.execution_options(**changed)
        return
    default = connection.default_isolation_level
    level = mode["isolation_level"] or default
    if (current.get("isolation_level") or default) != level:
        connection.execution_options(isolation_level=level)


def _sqlite_begin(conn: Any, queue: sqlite_writers.WriterQueue | None = None) -> None:
    # Writers take the lock up front (IMMEDIATE) so that a concurrent writer
    # waits for busy_timeout instead of failing on a stale read snapshot; first they
    # queue for it (``sqlite_writers``), which hands it on as a COMMIT goes out.
    options = conn.get_execution_options()
    if options.get(SQLITE_STATEMENT_READS):
        return
    if not options.get("sqlite_immediate"):
        _sqlite_begin_read(conn)
        return
    if queue is None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    queue.enter(conn.connection)
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        queue.leave(conn.connection)
        raise


def _sqlite_begin_read(conn: Any) -> None:
    """A read's deferred ``BEGIN``, on the driver's cursor: it takes no lock and reads
    nothing (SQLite takes its snapshot at the first SELECT), so it never waits for the
    busy timeout. ``exec_driver_sql`` (execution context, result object: 18 µs against
    2 µs, 6 % of a GET by id's instructions) is more than the statement. The engine's
    cursor events still see it (statement counts); a driver error is raised as
    ``exec_driver_sql`` raises it (SQLAlchemy's wrapping, invalidation)."""
    statement = "BEGIN"
    parameters: Any = ()
    cursor = conn.connection.cursor()
    try:
        events = conn._has_events or conn.engine._has_events
        if events:
            for fn in conn.dispatch.before_cursor_execute:
                statement, parameters = fn(conn, cursor, statement, parameters, None, False)
        cursor.execute(statement)
        if events:
            conn.dispatch.after_cursor_execute(conn, cursor, statement, parameters, None, False)
    except BaseException as err:
        conn._handle_dbapi_exception(err, statement, parameters, cursor, None)
    finally:
        cursor.close()


# The key under which a session's ``info`` carries its app's audit signing key.
AUDIT_KEY_INFO = "audit_key"
# What a write computed at its commit for the representation that follows
# (``services.users.extras_of_one``): kept on the writer under WRITTEN_INFO, moved by
# ``read_after_write`` to the reader under AFTER_WRITE_INFO, where it is read once.
WRITTEN_INFO = "written"
AFTER_WRITE_INFO = "after_write"
# ... and its Ed25519 signer of checkpoints (``audit.signing.session_signer``).
AUDIT_SIGNER_INFO = "audit_signer"


def make_session_factory(
    engine: Engine, *, audit_key: bytes, writer: bool = False, audit_signer: Any = None
) -> sessionmaker[Session]:
    """Sessions for reading, or (``writer``) for transactions that will write.

    Each session carries the app's audit signing keys (``audit.chain.signing_key``,
    ``audit.signing.session_signer``).
    """
    bind = engine.execution_options(sqlite_immediate=True) if writer else engine
    info = {AUDIT_KEY_INFO: audit_key, AUDIT_SIGNER_INFO: audit_signer}
    return sessionmaker(bind=bind, expire_on_commit=False, info=info)


def reading_session(factory: sessionmaker[Session]) -> Session:
    """A session of ``factory`` (a writer's, as a worker holds) for a long read: on SQLite a
    plain BEGIN, so it never holds the write lock while it reads."""
    bind = factory.kw["bind"]
    return factory(bind=bind.execution_options(sqlite_immediate=False))


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


EXTENSION = "scim_db"
# Methods whose request session is a reader (RFC 9110 §9.2.1), unless ``db.writing_session``.
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class DatabaseState:
    """What ``db.init_app`` keeps on the app: one engine and its session factories."""

    engine: Engine
    reader: sessionmaker[Session]  # work that only reads
    writer: sessionmaker[Session]  # transactions that write (SQLite: BEGIN IMMEDIATE)
    # PostgreSQL only: reads statement by statement, without BEGIN/ROLLBACK.
    statement_reader: sessionmaker[Session] | None = None
    # SQLite only: the same for ``lookup`` (a read before a write): no BEGIN, each statement
    # its own snapshot.
    statement_lookup: sessionmaker[Session] | None = None
    # Whether ``Database.share_connection`` may give a request one pooled connection for
    # all its sessions (False when the factories are bound to a connection: the tests').
    share_connections: bool = False
    # Each factory's mode on a shared connection (``_mode_of``), by ``id(factory)``.
    modes: dict[int, dict[str, Any]] = field(default_factory=dict)


def _context() -> Any:
    """The current Flask app context (its ``app`` and ``g``), read once from Flask's context
    variable: each ``g.x`` or ``current_app.x`` looks it up again through a werkzeug
    ``LocalProxy`` (about 0.5 µs each; a SCIM write went through about 40 of them).
    Outside an app context, Flask's own error."""
    ctx = _cv_app.get(None)
    return ctx if ctx is not None else app_ctx._get_current_object()  # type: ignore[attr-defined]


def _method() -> str:
    """The current request's method (``request.method`` without the proxy)."""
    ctx = _cv_request.get(None)
    if ctx is None:
        ctx = request_ctx._get_current_object()  # type: ignore[attr-defined]
    method: str = ctx.request.method
    return method


class Database:
    """Flask extension: one engine per app, a session per request (``db.session``)."""

    def __init__(self) -> None:
        self._apps: dict[int, tuple[Engine, sessionmaker[Session], sessionmaker[Session]]] = {}

    def init_app(self, app: Any) -> None:
        cfg = app.config
        engine = make_engine(
            cfg["DATABASE_URL"],
            pool_size=cfg["DB_POOL_SIZE"],
            max_overflow=cfg["DB_MAX_OVERFLOW"],
            connect_timeout=cfg.get("DB_CONNECT_TIMEOUT", 5),
            pool_timeout=cfg.get("DB_POOL_TIMEOUT", 10),
        )
        key = cfg["AUDIT_KEY"]
        signer = cfg.get("AUDIT_SIGNER")
        statement_reader = statement_lookup = None
        info = {AUDIT_KEY_INFO: key, AUDIT_SIGNER_INFO: signer}
        if engine.dialect.name == "postgresql":
            statement_reader = sessionmaker(
                bind=engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                info=info,
            )
        elif engine.dialect.name == "sqlite":
            statement_lookup = sessionmaker(
                bind=engine.execution_options(**{SQLITE_STATEMENT_READS: True}),
                expire_on_commit=False,
                info=info,
            )
        state = DatabaseState(
            engine=engine,
            reader=make_session_factory(engine, audit_key=key, audit_signer=signer),
            writer=make_session_factory(engine, audit_key=key, writer=True, audit_signer=signer),
            statement_reader=statement_reader,
            statement_lookup=statement_lookup,
            share_connections=True,
        )
        for factory in (state.reader, state.writer, statement_reader, statement_lookup):
            if factory is not None:
                event.listen(factory, "after_transaction_create", _enter_mode)
                state.modes[id(factory)] = _mode_of(factory)
        app.extensions[EXTENSION] = state
        app.teardown_appcontext(self._close)

    @staticmethod
    def state(app: Any = None) -> DatabaseState:
        """The app's engine and session factories."""
        state: DatabaseState = (app if app is not None else _context().app).extensions[EXTENSION]
        return state

    @classmethod
    def engine(cls, app: Any = None) -> Engine:
        return cls.state(app).engine

    @classmethod
    def reader(cls, app: Any = None) -> sessionmaker[Session]:
        """Sessions for work that only reads."""
        return cls.state(app).reader

    @classmethod
    def writer(cls, app: Any = None) -> sessionmaker[Session]:
        """Sessions for transactions that write (on SQLite they take the write lock at BEGIN)."""
        return cls.state(app).writer

    @property
    def session(self) -> Session:
        """The request's session: a writer for unsafe methods, a reader otherwise."""
        ctx = _context()
        app_g = ctx.g
        session = app_g.get("_scim_session")
        if session is None:
            state = ctx.app.extensions[EXTENSION]
            writing = _method() not in SAFE_METHODS
            session = _session_of(state.writer if writing else state.reader, app_g)
            app_g._scim_session = session
        return session

    @staticmethod
    def share_connection(*, first_read_retried: bool = False) -> None:
        """Give the rest of this request one pooled connection for all its sessions.

        The request's sessions (``session``, ``lookup``, ``side_sessions``,
        ``read_after_write``, ``use_statement_reads``) then take that connection in turn,
        each as its kind would take a connection of its own (SQLite: no BEGIN, BEGIN or
        BEGIN IMMEDIATE; PostgreSQL: AUTOCOMMIT or a transaction), and each still ends its
        own transaction. One checkout per request instead of one per session (and one
        PostgreSQL ping at most: none with ``first_read_retried``). A session made while
        another's transaction is open on the connection gets a connection of its own, as
        without sharing. Released at the app context's teardown. Nothing changes where
        the factories are bound to a connection (the tests' outer transaction).

        ``first_read_retried``: the caller's first statement on the connection is a read
        it runs again, after ``drop_shared_connection``, when it fails on a dead
        connection (``DBAPIError.connection_invalidated``): the connection is then checked
        out without the ping that statement stands for (one round trip less).
        """
        ctx = _context()
        state = ctx.app.extensions[EXTENSION]
        app_g = ctx.g
        if state.share_connections and app_g.get("_scim_shared") is None:
            app_g._scim_shared = _Shared(state.engine, state.modes, first_read_retried)

    @staticmethod
    def drop_shared_connection() -> None:
        """The request's first read found its (unpinged) connection dead: release the
        request's session and that connection; the next session checks out another,
        pinged (the disconnect invalidated every older pooled connection too)."""
        g.pop("_scim_read", None)
        session = g.pop("_scim_session", None)
        if session is not None:
            release(session)
        shared = g.get("_scim_shared")
        if shared is not None and shared.connection is not None:
            _close_connection(shared.connection)
            shared.connection = None

    def writing_session(self) -> Session:
        """The request's session as a writer, for a safe method that writes (GET /oauth/authorize).

        On SQLite a writer takes the lock at BEGIN, so a concurrent writer waits
        instead of failing. A reader the request already used is released first;
        what it loaded is detached.
        """
        ctx = _context()
        app_g = ctx.g
        session = app_g.get("_scim_session")
        if session is not None and (app_g.get("_scim_writing") or _method() not in SAFE_METHODS):
            return session
        if session is not None:
            release(session)
        writer = ctx.app.extensions[EXTENSION].writer
        session = app_g._scim_session = _session_of(writer, app_g)
        app_g._scim_writing = True
        return session

    @classmethod
    @contextmanager
    def lookup(cls) -> Iterator[Session]:
        """A short session for a read before a write (the token lookup): of its own, or on
        the request's shared connection (``share_connection``), its transaction ended here.

        It never takes SQLite's write lock (a writer's BEGIN IMMEDIATE would queue
        the lookup behind another worker's write); it reads without a transaction
        (no BEGIN, no COMMIT): each statement reads a snapshot of its own.
        """
        ctx = _context()
        state = ctx.app.extensions[EXTENSION]
        factory = state.statement_lookup or state.statement_reader or state.reader
        session = _session_of(factory, ctx.g)
        try:
            yield session
            if session.in_transaction():
                session.commit()  # a read: ends cleanly, the pool has nothing to roll back
        finally:
            release(session)

    @classmethod
    @contextmanager
    def lookup_connection(cls) -> Iterator[Connection]:
        """``lookup``'s read on a connection without a session: the request's shared
        connection (``share_connection``) when it has one and it is idle, in ``lookup``'s
        mode (SQLite: no BEGIN; PostgreSQL: AUTOCOMMIT), its SQLAlchemy transaction ended
        here; else the connection of a ``lookup`` session. For one read by key (the token
        lookup): no Session is made, begun, committed and closed for it."""
        ctx = _context()
        shared: _Shared | None = ctx.g.get("_scim_shared")
        connection = _shared_connection(shared) if shared is not None else None
        if connection is None or connection.in_transaction():
            # No shared connection, or another session's transaction on it: as ``lookup``.
            with cls.lookup() as session:
                yield session.connection()
            return
        assert shared is not None
        state = ctx.app.extensions[EXTENSION]
        factory = state.statement_lookup or state.statement_reader or state.reader
        _apply_mode(connection, shared.modes[id(factory)])
        try:
            yield connection
        except BaseException:
            if connection.in_transaction():
                connection.rollback()  # a no-op on a connection the failure invalidated
            raise
        if connection.in_transaction():
            # A read: no BEGIN was sent on SQLite, AUTOCOMMIT on PostgreSQL; as ``lookup``'s
            # commit, this ends SQLAlchemy's transaction only.
            connection.commit()

    def read_connection(self) -> Connection:
        """The request's connection for a view that only reads, without a Session (GET
        /Users/{id}: the token lookup and the user's one statement).

        The request's shared connection (``share_connection``), idle, in the reader's mode
        as a reading session would take it (``use_statement_reads``): on SQLite a deferred
        ``BEGIN`` at its first statement, so the request's reads share one snapshot;
        on PostgreSQL ``AUTOCOMMIT``, each statement its own. Its transaction ends at the
        teardown, as it closes (``_close``), or at ``end_read``. No Session is made,
        begun and closed for it (~40 µs of a GET by id). Where the factories are bound
        to a connection (the tests' outer transaction), that connection; else, or while
        another session's transaction holds the shared connection, the request's
        session's connection, as before.
        """
        ctx = _context()
        app_g = ctx.g
        connection: Connection | None = app_g.get("_scim_read")
        state = ctx.app.extensions[EXTENSION]
        factory = state.statement_reader or state.reader
        if connection is not None:
            if not connection.in_transaction():  # after ``end_read`` and a side write
                _apply_mode(connection, state.modes[id(factory)])
            return connection
        shared: _Shared | None = app_g.get("_scim_shared")
        if shared is not None:
            connection = _shared_connection(shared)
            if app_g.get("_scim_session") is None and not connection.in_transaction():
                _apply_mode(connection, shared.modes[id(factory)])
                app_g._scim_read = connection
                return connection
        elif not state.share_connections:
            bind = factory.kw["bind"]
            if isinstance(bind, Connection):
                app_g._scim_read = bind
                return bind
        return self.session.connection()

    @staticmethod
    def end_read() -> None:
        """End the read transaction the request has open (the token lookup's: on its
        session, or on ``read_connection``), so that a side write does not run under it;
        the next read begins afresh."""
        ctx = _context()
        app_g = ctx.g
        session = app_g.get("_scim_session")
        if session is not None and session.in_transaction():
            session.commit()
        connection = app_g.get("_scim_read")
        # Not the transaction of a connection the factories are bound to (the tests').
        if (
            connection is not None
            and connection.in_transaction()
            and ctx.app.extensions[EXTENSION].share_connections
        ):
            connection.commit()

    @classmethod
    def side_sessions(cls) -> Callable[[], Session]:
        """Sessions apart from the request's, for a small write that must not join its
        transaction (a token's last use): statement sessions on PostgreSQL (the write is
        its own transaction), readers (deferred BEGIN) on SQLite. On a shared connection
        (``share_connection``) when no transaction is open on it."""
        ctx = _context()
        state = ctx.app.extensions[EXTENSION]
        factory = state.statement_reader or state.reader
        if ctx.g.get("_scim_shared") is not None:
            return lambda: _session_of(factory)
        return factory

    def read_after_write(self) -> None:
        """Serve the rest of the request (the representation of what was written) as a read.

        The request's writer has committed; a new transaction on it would take
        SQLite's write lock again (BEGIN IMMEDIATE) only to read. What it loaded
        stays usable (sessions never expire on commit).

        A writer on the request's shared connection (``share_connection``), its transaction
        ended and nothing left to flush, serves the read itself: its next transaction takes
        the connection in the reader's mode (``_enter_mode``), as a reader made for it
        would, without a session made and closed for it (1 % of a POST's instructions).
        What it loaded stays in it rather than detached: no query reads it again.
        """
        ctx = _context()
        app_g = ctx.g
        session = app_g.get("_scim_session")
        state = ctx.app.extensions[EXTENSION]
        factory = state.statement_reader or state.reader
        if (
            session is not None
            and SHARED_MODE_INFO in session.info
            and not session.in_transaction()
            and session._is_clean()  # a change left unflushed is dropped, as by ``release``
        ):
            info = session.info
            info[SHARED_MODE_INFO] = state.modes[id(factory)]
            carried = info.pop(WRITTEN_INFO, None)
            if carried:
                info[AFTER_WRITE_INFO] = carried
            app_g._scim_read_after_write = True
            return
        carried = None
        if session is not None:
            carried = session.info.pop(WRITTEN_INFO, None)
            release(session)
        reader = app_g._scim_session = _session_of(factory, app_g)
        if carried:
            reader.info[AFTER_WRITE_INFO] = carried
        app_g._scim_read_after_write = True

    @staticmethod
    def before_write() -> None:
        """Before a write request's service: end what an earlier request left on ``g``.

        The operations of a bulk request are requests sharing one app context: a
        read the last one left open on the session ends, and a reader left by its
        ``read_after_write`` gives way to a writer for this one.
        """
        app_g = _context().g
        session = app_g.get("_scim_session")
        if session is None:
            return
        if app_g.pop("_scim_read_after_write", False):
            release(session)
            del app_g._scim_session
        elif session.in_transaction():
            session.commit()

    @staticmethod
    def use_statement_reads() -> None:
        """Serve this read-only request without a transaction, on PostgreSQL.

        Under READ COMMITTED each statement takes its own snapshot inside a
        transaction too, so a request that only reads loses nothing, and saves
        the BEGIN and ROLLBACK round trips. Only for handlers that never write;
        SQLite keeps its (free) read transaction.
        """
        ctx = _context()
        factory = ctx.app.extensions[EXTENSION].statement_reader
        app_g = ctx.g
        if factory is not None and app_g.get("_scim_session") is None:
            app_g._scim_session = _session_of(factory, app_g)

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        app_g = _context().g  # once, not through the proxy at each pop
        app_g.pop("_scim_writing", None)
        app_g.pop("_scim_read_after_write", None)
        # ``read_connection``'s: the shared connection's close below ends its transaction
        # (SQLite's ROLLBACK of a read); a connection of the tests is theirs.
        app_g.pop("_scim_read", None)
        session = app_g.pop("_scim_session", None)
        if session is not None:
            release(session)
        shared = app_g.pop("_scim_shared", None)
        if shared is not None and shared.connection is not None:
            _close_connection(shared.connection)


class _Shared:
    """A request's shared connection (``Database.share_connection``): checked out at its
    first session; each kind of session's mode (``DatabaseState.modes``)."""

    __slots__ = ("connection", "engine", "modes", "unpinged")

    def __init__(self, engine: Engine, modes: dict[int, dict[str, Any]], unpinged: bool) -> None:
        self.engine = engine
        self.connection: Connection | None = None
        self.modes = modes
        # The first checkout skips the ping: the request's first statement is retried.
        self.unpinged = unpinged


def _session_of(factory: sessionmaker[Session], app_g: Any = None) -> Session:
    """A session of ``factory`` for the request: on its shared connection when it has one
    (``Database.share_connection``) and no session's transaction is open on it; checked
    out at the first such session. ``app_g``: the request's ``g`` when the caller has it."""
    shared: _Shared | None = (app_g if app_g is not None else _context().g).get("_scim_shared")
    if shared is None:
        return factory()
    connection = _shared_connection(shared)
    if connection.in_transaction():
        return factory()
    return factory(bind=connection, info={SHARED_MODE_INFO: shared.modes[id(factory)]})


def _shared_connection(shared: _Shared) -> Connection:
    """The request's shared connection, checked out now if it is not yet (or was discarded)."""
    connection = shared.connection
    if connection is None or connection.closed:  # closed: discarded by a failed release
        unpinged, shared.unpinged = shared.unpinged, False
        with unpinged_checkout() if unpinged else nullcontext():
            connection = shared.connection = shared.engine.connect()
    return connection


def _close_connection(connection: Connection) -> None:
    """Return a request's shared connection to the pool at teardown; never raise (``release``)."""
    _close_or_discard(connection.close, lambda: (connection,))


def release(session: Session) -> None:
    """Close a request's session at teardown; never raise.

    By teardown the response is built and may report a commit (a 201 for a
    stored user). Rolling back what is left (a read after the commit) can still
    fail if the database went away meanwhile (PostgreSQL's AdminShutdown on
    ``pg_ctl stop -m fast``), and Flask lets a teardown's exception escape the
    WSGI call, where gunicorn answers its own HTML 500 instead of our answer.
    Nothing is lost by not rolling back: the server ends a dead connection's
    transaction itself. The connection is invalidated so the pool never hands
    it out again.
    """
    root = session.get_transaction()
    # Its connections are read only if the close fails: a transaction still holds them
    # after it ended.
    _close_or_discard(session.close, lambda: root.connections if root is not None else ())


def _close_or_discard(close: Callable[[], None], connections: Callable[[], Iterable[Any]]) -> None:
    """``close()``; if it fails, log it and discard ``connections()`` (the pool never hands
    them out again)."""
    try:
        close()
    except Exception as err:
        log.warning(
            "could not release a database connection, discarded it: %s",
            (str(err).splitlines() or [type(err).__name__])[0],
        )
        for connection in connections():
            _discard(connection)


def _discard(connection: Any) -> None:
    """Invalidate and close a connection whose release failed (both are no-ops if already done)."""
    for step in (connection.invalidate, connection.close):
        try:
            step()
        except Exception as err:  # the connection is gone either way
            log.debug("discarding a database connection: %s", err)


db = Database()
