"""SQLite's settings and concurrent writers (scim_server/db.py), on SQLite only.

What a commit survives (WAL, ``synchronous=NORMAL``) is in the README ("SQLite
durability"); these tests hold the connections to those settings, and show writers of
two engines on one file (two worker processes) all landing with the guarantees kept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import delete, event, select
from sqlalchemy.engine import Engine

from scim_server import create_app
from scim_server.audit.queries import verify
from scim_server.db import db, make_engine
from scim_server.models import AuditEvent, Event
from tests.conftest import TEST_CONFIG
from tests.support import USER_SCHEMA, Scim
from tests.support.threads import run_together


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a new SQLite file, as the server makes it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'settings.db'}")
    yield engine
    engine.dispose()


def test_connections_have_the_documented_settings(sqlite_engine):
    """A pooled connection is in WAL mode, synchronous=NORMAL (the README's durability),
    with SQLite's automatic checkpoint at 1,000 pages, foreign keys on and a 10 s busy
    timeout."""
    with sqlite_engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in (
                "journal_mode",
                "synchronous",
                "wal_autocheckpoint",
                "foreign_keys",
                "busy_timeout",
            )
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "wal_autocheckpoint": 1_000,
        "foreign_keys": 1,
        "busy_timeout": 10_000,
    }


def test_a_read_begins_on_the_driver_seen_by_the_statement_events(sqlite_engine):
    """A read's BEGIN (sent on the driver's cursor, ``db._sqlite_begin_read``) opens a real
    transaction (one snapshot for the read: another connection's commit is not seen
    until it ends) and reaches the engine's cursor events as before; a writer's is
    ``BEGIN IMMEDIATE``."""
    seen: list[str] = []

    def statement(_conn, _cursor, sql, *_args):
        seen.append(sql)

    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    event.listen(sqlite_engine, "before_cursor_execute", statement)
    event.listen(sqlite_engine, "after_cursor_execute", statement)
    try:
        with sqlite_engine.connect() as reader, sqlite_engine.connect() as other:
            with reader.begin():
                assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
                other.exec_driver_sql("INSERT INTO t VALUES (1)")
                other.commit()
                assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
            assert reader.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
            reader.rollback()
        writer = sqlite_engine.execution_options(sqlite_immediate=True)
        with writer.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    finally:
        event.remove(sqlite_engine, "before_cursor_execute", statement)
        event.remove(sqlite_engine, "after_cursor_execute", statement)
    begins = [sql for sql in seen if sql.startswith("BEGIN")]
    # Each seen by both events: the reader's two, the other connection's, the writer's.
    assert begins == ["BEGIN"] * 6 + ["BEGIN IMMEDIATE"] * 2, seen


def test_writers_of_two_processes_all_land(live):
    """Two apps on one SQLite file (two processes' engines), four writers each at once:
    every create and delete succeeds (each waits for the write lock, none fails on it),
    the counts are exact, and the audit chain and event positions have no gap."""
    app, scim = live
    if db.engine(app).dialect.name != "sqlite":
        pytest.skip("SQLite's write lock and WAL")
    other = create_app({**TEST_CONFIG, "DATABASE_URL": app.config["DATABASE_URL"]})
    statuses: list[int] = []
    kept: list[str] = []
    barrier = threading.Barrier(8)

    def write(on: Flask, worker: int) -> None:
        client = Scim(on.test_client(), scim.token, scim.org_id)
        barrier.wait()
        for i in range(4):
            body = {"schemas": [USER_SCHEMA], "userName": f"p{worker}-{i}@example.com"}
            resp = client.post("/scim/v2/Users", body)
            statuses.append(resp.status_code)
            if resp.status_code == 201 and i % 2:
                statuses.append(
                    client.delete(f"/scim/v2/Users/{resp.get_json()['id']}").status_code
                )
            elif resp.status_code == 201:
                kept.append(resp.get_json()["id"])

    try:
        run_together(*(partial(write, (app, other)[w % 2], w) for w in range(8)))
    finally:
        db.engine(other).dispose()
    assert statuses.count(201) == 32 and statuses.count(204) == 16, statuses
    body = scim.get("/scim/v2/Users?count=100&attributes=id").get_json()
    assert body["totalResults"] == len(kept) == 16
    assert sorted(r["id"] for r in body["Resources"]) == sorted(kept)
    with db.reader(app)() as session:
        assert verify(session, scim.org_id).ok
        seqs = session.scalars(
            select(AuditEvent.seq).where(AuditEvent.org_id == scim.org_id).order_by(AuditEvent.seq)
        ).all()
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        positions = session.scalars(
            select(Event.position).where(Event.org_id == scim.org_id).order_by(Event.position)
        ).all()
        assert positions == list(range(1, len(positions) + 1)) and len(positions) == 48
        session.execute(delete(Event).where(Event.org_id == scim.org_id))
        session.commit()
