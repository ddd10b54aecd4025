"""Bulk loading with SQLAlchemy Core, in batches, with secondary indexes built afterwards.

Going through the HTTP API (or the ORM) would take tens of minutes for 111k
users and 1.3M index rows. Three things make the load take seconds instead:

- the secondary indexes are dropped before the load and re-created after it
  from their own DDL as read back from the database catalogue (so the schema
  under test is exactly what the migrations made), which builds each B-tree
  once, sorted, instead of inserting 1.3M random keys one by one;
- on SQLite, a plain executemany per batch, with a large page cache on the
  loading connection only;
- on PostgreSQL, one ``INSERT ... SELECT ... FROM json_to_recordset(:rows)``
  per batch, the batch sent as one JSON text: psycopg's executemany costs
  about 100 µs of client CPU per row (and arrays of values 30 to 60 µs, in
  psycopg's array quoting); ``json.dumps`` of the batch costs a few.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    Table,
    Text,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSON as PG_JSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import sso.connections.models  # noqa: F401  (sso_connections in the metadata: a sync org's IdP)
from bench.dataset import OrgData, people
from scim_server.audit.signing import signer_from_pem
from scim_server.db import AUDIT_KEY_INFO, AUDIT_SIGNER_INFO, Base, make_engine
from scim_server.migrate import upgrade
from scim_server.services.tokens import create_token

# Parents before children (foreign keys).
TABLE_ORDER = (
    "organizations",
    "sso_connections",
    "contacts",
    "users",
    "groups",
    "attribute_values",
    "group_members",
)
BATCH = 5_000
SQLITE_LOAD_CACHE_KIB = 400_000


def _batches(rows: Sequence[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def secondary_indexes(conn: Connection) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of every index not backing a constraint."""
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname"
        )
    else:
        # Indexes SQLite makes for PRIMARY KEY / UNIQUE constraints have no SQL.
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    return [(name, ddl) for name, ddl in conn.execute(text(query))]


def complete_rows(table: Table, rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    """Add the model's scalar defaults for columns the rows leave out (as the ORM would)."""
    if not rows:
        return rows
    fill = {
        c.name: c.default.arg
        for c in table.columns
        if c.name not in rows[0] and c.default is not None and c.default.is_scalar
    }
    return [{**fill, **row} for row in rows] if fill else rows


# -- PostgreSQL: one JSON document per batch ------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat()
    raise TypeError(f"cannot load a {type(value).__name__}")


def _record_type(column: Column[Any]) -> Any:
    """The type to read ``column`` from a JSON record as (a JSON column stays JSON)."""
    if isinstance(column.type, JSON):
        return JSONB
    base = getattr(column.type, "impl", column.type)  # UTCDateTime is a TypeDecorator
    return next((t for t in (Boolean, Integer, DateTime) if isinstance(base, t)), Text)


def _pg_json_insert(table: Table, names: Sequence[str]) -> Any:
    """``INSERT INTO t (cols) SELECT cols FROM json_to_recordset(:rows) AS r(col type, ...)``."""
    records = (
        func.json_to_recordset(cast(bindparam("rows", type_=Text), PG_JSON))
        .table_valued(*(column(n, _record_type(table.c[n])) for n in names))
        .render_derived(with_types=True)
    )
    return insert(table).from_select(list(names), select(*(records.c[n] for n in names)))


def _insert_pg(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    names = [c.name for c in table.columns if c.name in rows[0]]
    stmt = _pg_json_insert(table, names)
    for chunk in _batches(rows, BATCH):
        conn.execute(stmt, {"rows": json.dumps(chunk, default=_json_default)})


def _insert_executemany(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    for chunk in _batches(rows, BATCH):
        conn.execute(insert(table), chunk)


# -- the load ------------------------------------------------------------------------


def insert_tables(conn: Connection, tables: dict[str, Sequence[dict[str, Any]]]) -> None:
    """Insert rows of several tables, parents first."""
    metadata = Base.metadata.tables
    insert_rows = _insert_pg if conn.dialect.name == "postgresql" else _insert_executemany
    for name in TABLE_ORDER:
        if tables.get(name):
            table = metadata[name]
            insert_rows(conn, table, complete_rows(table, tables[name]))


def recount(conn: Connection, org_id: str) -> None:
    """``resource_counts`` for rows this loader wrote behind the services' back.

    The server keeps these counts on every create and delete; rows inserted or
    removed here need them set, with a fresh generation, as
    ``scim_server.services.counts.start`` would.
    """
    counts = Base.metadata.tables["resource_counts"]
    conn.execute(delete(counts).where(counts.c.org_id == org_id))
    for resource_type, name in (("User", "users"), ("Group", "groups")):
        table = Base.metadata.tables[name]
        total = conn.scalar(select(func.count()).select_from(table).where(table.c.org_id == org_id))
        conn.execute(
            insert(counts).values(
                org_id=org_id,
                resource_type=resource_type,
                total=total,
                generation=secrets.randbelow(2**31 - 1) + 1,
            )
        )


def add_leavers(engine: Engine, org: OrgData, count: int, first: int) -> list[str]:
    """Insert ``count`` users for a DELETE run to remove; returns their ids.

    DELETE needs users that nothing else reads, and as many as it can remove
    in a run: taking them from the loaded set would shrink the organization
    and break the read scenarios.
    """
    rng = random.Random(first)
    numbers = range(first, first + count)
    tables, _bodies = people(org.id, rng, numbers, domain=f"leavers{first}.example.org")
    with engine.begin() as conn:
        insert_tables(conn, tables)
        recount(conn, org.id)
    return [u["id"] for u in tables["users"]]


def remove_users(engine: Engine, org_id: str, user_ids: Sequence[str]) -> None:
    """Remove users (and their index rows) that a DELETE run did not get to."""
    metadata = Base.metadata.tables
    users, index = metadata["users"], metadata["attribute_values"]
    with engine.begin() as conn:
        for chunk in _batches(user_ids, 500):
            conn.execute(
                delete(index).where(index.c.org_id == org_id, index.c.resource_id.in_(chunk))
            )
            conn.execute(delete(users).where(users.c.org_id == org_id, users.c.id.in_(chunk)))
        recount(conn, org_id)


def load_orgs(engine: Engine, orgs: Sequence[OrgData]) -> float:
    """Insert every organization's rows in one transaction; returns the seconds taken."""
    started = time.perf_counter()
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_LOAD_CACHE_KIB}")
        indexes = secondary_indexes(conn)
        for name, _ddl in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        for org in orgs:
            insert_tables(conn, org.tables)
            recount(conn, org.id)
        for _name, ddl in indexes:
            conn.execute(text(ddl))
    return time.perf_counter() - started


def settle(engine: Engine) -> None:
    """Bring the database to the state it would reach on its own in production.

    On PostgreSQL, fresh bulk-loaded tables have no planner statistics and no
    visibility map; a production database gets both from autovacuum within a
    minute. The checkpoint keeps the load's writes out of the measurements.
    SQLite gets no ANALYZE here: the server's own connections run
    ``PRAGMA optimize`` (``scim_server.db``), as they would in production. Its
    WAL is checkpointed into the main file.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            conn.execute(text("CHECKPOINT"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def service_session(engine: Engine) -> Session:
    """A session for the server's own services, signing audit events with the servers' key."""
    signer = signer_from_pem(os.environ["SCIM_AUDIT_SIGNING_KEY"].encode())
    return Session(
        engine,
        info={AUDIT_KEY_INFO: os.environ["SCIM_AUDIT_KEY"].encode(), AUDIT_SIGNER_INFO: signer},
    )


def create_tokens(engine: Engine, orgs: Sequence[OrgData]) -> dict[str, str]:
    """A bearer token per organization, made by the server's own token service."""
    tokens: dict[str, str] = {}
    for org in orgs:
        with service_session(engine) as session:
            _token, secret = create_token(session, org.id, "bench")
        tokens[org.id] = secret
    return tokens


def loaded_engine(
    stack: ExitStack, url: str, env: dict[str, str], org: OrgData
) -> tuple[Engine, str]:
    """Our server's database at ``url`` as a benchmark starts it: this process takes the
    server's environment ``env``, the schema is upgraded, ``org`` bulk-loaded and settled.
    Returns the engine (disposed with ``stack``) and a bearer token for ``org``."""
    os.environ.update(env)
    engine = make_engine(url)
    stack.callback(engine.dispose)
    upgrade(engine)
    load_orgs(engine, [org])
    settle(engine)
    return engine, create_tokens(engine, [org])[org.id]
