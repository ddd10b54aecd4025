"""SQLite's settings and WAL checkpoints (scim_server/db.py), on a file database of its own.

What a commit survives (WAL, ``synchronous=NORMAL``) is in the README ("SQLite
durability"); these tests hold the connections to it, and show the WAL copied back
into the database file on the process's clock (at a connection's check-in), not by
whichever commit finds the WAL past 1,000 pages.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import delete, select, text
from sqlalchemy.engine import Engine

from scim_server import create_app
from scim_server import db as db_module
from scim_server.audit.queries import verify
from scim_server.db import db, make_engine
from scim_server.models import AuditEvent, Event
from tests.conftest import TEST_CONFIG
from tests.support import USER_SCHEMA, Scim
from tests.support.threads import run_together


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    """An engine on a new SQLite file with one table, and the file's path."""
    path = tmp_path / "checkpoints.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (n INTEGER)"))
    yield engine, path
    engine.dispose()


def _in_database_file(path: Path) -> int:
    """Rows of ``items`` in the database file itself, the WAL left aside (``immutable``)."""
    reader = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(reader.execute("SELECT count(*) FROM items").fetchone()[0])
    finally:
        reader.close()


def _insert(engine: Engine, n: int) -> None:
    with engine.execution_options(sqlite_immediate=True).begin() as conn:
        conn.execute(text("INSERT INTO items VALUES (:n)"), {"n": n})


def test_connections_have_the_documented_settings(sqlite_file):
    """A pooled connection is in WAL mode, synchronous=NORMAL, with the checkpoint backstop
    at 10,000 pages, foreign keys on and a 10 s busy timeout."""
    engine, _path = sqlite_file
    with engine.connect() as conn:
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
        "wal_autocheckpoint": 10_000,
        "foreign_keys": 1,
        "busy_timeout": 10_000,
    }


def test_a_connection_back_in_the_pool_checkpoints_the_wal(sqlite_file, monkeypatch):
    """The commit itself leaves its rows in the WAL; returning the connection copies them
    into the database file, at most once per interval per engine."""
    engine, path = sqlite_file
    monkeypatch.setattr(db_module, "SQLITE_CHECKPOINT_EVERY_S", 3600.0)
    # The table's creation was the engine's first check-in: checkpointed, the clock started.
    _insert(engine, 1)
    assert _in_database_file(path) == 0  # committed, in the WAL only: within the interval
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM items")).scalar() == 1
    monkeypatch.setattr(db_module, "SQLITE_CHECKPOINT_EVERY_S", 0.0)
    _insert(engine, 2)  # the check-in after it is due
    assert _in_database_file(path) == 2


def test_a_new_engine_checkpoints_at_its_first_check_in(tmp_path):
    """A process's first write reaches the database file when its connection is returned
    (a short CLI command leaves no more than that in the WAL)."""
    path = tmp_path / "first.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.execution_options(sqlite_immediate=True).begin() as conn:
            conn.execute(text("CREATE TABLE items (n INTEGER)"))
            conn.execute(text("INSERT INTO items VALUES (1)"))
        assert _in_database_file(path) == 1
    finally:
        engine.dispose()


def test_writers_of_two_processes_all_land_while_checkpoints_run(live, monkeypatch):
    """Two apps on one SQLite file (two processes' engines), four writers each at once,
    every check-in checkpointing: every create and delete succeeds, the counts are exact,
    and the audit chain and event positions have no gap."""
    app, scim = live
    if db.engine(app).dialect.name != "sqlite":
        pytest.skip("SQLite's write lock and WAL")
    monkeypatch.setattr(db_module, "SQLITE_CHECKPOINT_EVERY_S", 0.0)
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
