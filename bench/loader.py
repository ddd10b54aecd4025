"""Bulk loading with SQLAlchemy Core: executemany in batches, one transaction per org.

Going through the HTTP API (or the ORM) would take tens of minutes for 111k
users and 1.3M index rows; Core executemany takes seconds and writes the same
rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from scim_server.db import Base
from scim_server.services.tokens import create_token

from bench.dataset import OrgData

# Parents before children (foreign keys).
TABLE_ORDER = ("organizations", "users", "groups", "attribute_values", "group_members")
BATCH = 5_000


def _batches(rows: Sequence[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def load_orgs(engine: Engine, orgs: Sequence[OrgData]) -> float:
    """Insert every organization's rows; returns the seconds taken."""
    started = time.perf_counter()
    tables = Base.metadata.tables
    for org in orgs:
        with engine.begin() as conn:
            for name in TABLE_ORDER:
                for chunk in _batches(org.tables[name], BATCH):
                    conn.execute(insert(tables[name]), chunk)
    return time.perf_counter() - started


def settle(engine: Engine) -> None:
    """Bring PostgreSQL to the state autovacuum would reach on its own.

    Fresh bulk-loaded tables have no planner statistics and no visibility
    map; a production database gets both from autovacuum within a minute.
    The checkpoint keeps the load's WAL flush out of the measurements. SQLite
    is left as the server leaves it (it never runs ANALYZE).
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))


def create_tokens(engine: Engine, orgs: Sequence[OrgData]) -> dict[str, str]:
    """A bearer token per organization, made by the server's own token service."""
    tokens: dict[str, str] = {}
    for org in orgs:
        with Session(engine) as session:
            _token, secret = create_token(session, org.id, "bench")
        tokens[org.id] = secret
    return tokens
