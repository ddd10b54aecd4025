"""PostgreSQL lock waits, seen from outside: for tests that hold one transaction open at a
chosen point while another request runs, with no sleep standing in for "long enough".

The holder (a hook inside the first transaction) starts the racer and waits until the
racer either ends (it took no lock the holder has: the race happens as the test wants) or
waits for a lock the holder's backend holds (``pg_blocking_pids``). Either way the holder
then goes on knowing which it was; nothing depends on how fast either side runs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

# A backend waiting for a lock the given backend holds (a row's transaction, an advisory lock).
_WAITS_FOR = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted "
    "AND CAST(:holder AS integer) = ANY(pg_blocking_pids(pid)))"
)
LIMIT_SECONDS = 30  # a hang (neither ended nor waiting) fails the test instead of the run


def backend_pid(bind: Connection | Any) -> int:
    """The server process of a SQLAlchemy connection (psycopg's ``info.backend_pid``)."""
    return int(bind.connection.dbapi_connection.info.backend_pid)


def ended_or_waiting(racer: threading.Thread, engine: Engine, holder: int) -> bool:
    """Wait until ``racer`` ends (False) or another backend waits for a lock ``holder``
    holds (True). Polls the lock table on a connection of its own, in autocommit (each
    poll sees the locks as they are now), between short joins of the thread."""
    deadline = time.monotonic() + LIMIT_SECONDS
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while racer.is_alive():
            if conn.execute(_WAITS_FOR, {"holder": holder}).scalar():
                return True
            racer.join(0.01)
            if time.monotonic() > deadline:
                raise AssertionError("the racer neither ended nor waited for a lock")
    return False
