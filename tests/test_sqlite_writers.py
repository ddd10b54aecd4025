"""SQLite writers queue for the write lock (scim_server/sqlite_writers.py), on SQLite only.

Two engines on one file stand for two worker processes: each has its own line and its
own descriptor of the lock file, whose ``flock`` the two contend for as processes do.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from scim_server import db as db_module
from scim_server.db import make_engine

# Each test's busy timeout: a line left held would make the next writer wait this long.
BUSY_S = 3.0


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(db_module, "SQLITE_BUSY_S", BUSY_S)
    file = tmp_path / "writers.db"
    engine = make_engine(f"sqlite:///{file}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    engine.dispose()
    return file


@pytest.fixture
def engines(path: Path) -> Iterator[tuple[Engine, Engine]]:
    first, second = (make_engine(f"sqlite:///{path}") for _ in range(2))
    yield (
        first.execution_options(sqlite_immediate=True),
        second.execution_options(sqlite_immediate=True),
    )
    first.dispose()
    second.dispose()


def _write(engine: Engine, value: int) -> float:
    """Insert ``value`` in a write transaction; how long it took."""
    started = time.monotonic()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO t VALUES ({value})")
    return time.monotonic() - started


def _count(engine: Engine) -> int:
    """The rows, read as a reader (a deferred ``BEGIN``: no lock, no line)."""
    with engine.execution_options(sqlite_immediate=False).connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one())


def test_a_waiting_writer_goes_in_when_the_holder_commits(engines):
    """The second engine's writer waits while the first holds a write transaction, and
    writes as soon as it commits (well within the busy timeout)."""
    first, second = engines
    waited: list[float] = []
    with first.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        writer = threading.Thread(target=lambda: waited.append(_write(second, 2)))
        writer.start()
        time.sleep(0.3)
        assert writer.is_alive() and _count(second) == 0  # queued, nothing written
    writer.join(BUSY_S)
    assert waited and 0.25 < waited[0] < BUSY_S / 2
    assert _count(first) == 2


@pytest.mark.parametrize("end", ["rollback", "failed statement", "invalidated", "closed"])
def test_every_end_of_a_write_leaves_the_line(engines, end):
    """Rolled back, failed, invalidated or closed mid-transaction: the next writer of the
    other engine goes in at once, not after the busy timeout."""
    first, second = engines
    conn = first.connect()
    conn.begin()
    conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    if end == "rollback":
        conn.rollback()
    elif end == "failed statement":
        with pytest.raises(Exception, match="no such table"):
            conn.exec_driver_sql("INSERT INTO missing VALUES (1)")
        conn.rollback()
    elif end == "invalidated":
        conn.invalidate()
    conn.close()
    assert _write(second, 2) < BUSY_S / 2
    assert _count(second) == 1


def test_a_line_held_too_long_is_an_optimisation_not_a_condition(path, engines):
    """Another holder of the lock file that never lets go (not a SQLite writer): a writer
    waits the busy timeout for the line, then writes through SQLite's own lock."""
    _first, second = engines
    fd = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        took = _write(second, 1)
    finally:
        os.close(fd)
    assert BUSY_S * 0.9 < took < BUSY_S * 2
    assert _count(second) == 1
    assert _write(second, 2) < BUSY_S / 2  # and the line is whole again


def test_writers_of_one_engine_take_turns(engines):
    """Threads of one process queue on the line's thread lock: eight writers, each in its
    own transaction, all land."""
    first, _second = engines
    threads = [threading.Thread(target=_write, args=(first, i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BUSY_S * 2)
    assert _count(first) == 8


def test_a_database_in_memory_has_no_line():
    """Nothing beside an in-memory database: its writers take SQLite's lock directly."""
    engine = make_engine("sqlite://").execution_options(sqlite_immediate=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    engine.dispose()
