"""SQLite writers wait in line instead of polling the database's lock.

SQLite lets one transaction write at a time (our writers take the lock at
``BEGIN IMMEDIATE``). A writer that finds it taken sleeps in SQLite's busy handler, in
steps of 1, 2, 5, 10, 15, 20, 25... ms, and looks again: when a write holds the lock for
2 or 3 ms, the waiters sleep through most hand-overs and the database sits idle between
writes. So the writers of one database first queue for a lock of our own, left as the
last one's COMMIT goes out: a thread lock among one process's threads (which wakes the
next at once), and an ``flock`` on a file beside the database (``<database>-writers``)
among its processes (the gunicorn workers, the worker, a CLI command), looked at every
``POLL_S`` (a blocking ``flock`` could not be bounded by the busy timeout); the kernel
drops it if a process dies.

Holding it is an optimisation, never a condition: a writer that cannot have it within
the busy timeout (a long ``rules apply`` batch, a transaction of the same thread that is
still open) goes on to ``BEGIN IMMEDIATE`` and SQLite's busy handler decides, as before
(so such a writer waits at most twice the busy timeout in all).

Measured (BENCHMARKS.md, "SQLite writers in line"): PATCH +17 to +36 %, POST +7 %,
DELETE +3 to +7 % at c = 8 and 32 with two workers. A first version left the line after
the COMMIT returned, so the next writer also waited for the checkpoint's fsyncs that
SQLite runs there: POST and DELETE lost 2 to 16 %.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from typing import Any

from sqlalchemy import event

# How often a process's waiting writer looks at the file lock (only one thread per
# process does: the others wait on the thread lock, which wakes them at once).
POLL_S = 0.0005
_OPENING = threading.Lock()


class WriterQueue:
    """The line of one SQLite database's writers in this process (``make_engine``)."""

    def __init__(self, database_path: str, timeout_s: float) -> None:
        self._path = database_path + "-writers"
        self._timeout_s = timeout_s
        self._pid = -1
        self._fd = -1
        self._threads = threading.Lock()
        self._holder: Any = None  # the DBAPI connection whose transaction holds it

    def _file(self) -> int:
        """The lock file's descriptor for this process (after a fork: its own)."""
        pid = os.getpid()
        if self._pid != pid:
            with _OPENING:
                if self._pid != pid:
                    self._threads = threading.Lock()
                    self._holder = None
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    self._pid = pid  # last: another thread reads the others once it is set
        return self._fd

    def enter(self, connection: Any) -> None:
        """Wait for the writers before this one (at most the busy timeout)."""
        try:
            fd = self._file()
        except OSError:  # no lock file (a read-only directory): SQLite's handler alone
            return
        deadline = time.monotonic() + self._timeout_s
        if not self._threads.acquire(timeout=self._timeout_s):
            return
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(POLL_S)
                    continue
            except OSError:
                pass
            self._threads.release()
            return
        self._holder = _raw(connection)

    def leave(self, connection: Any) -> None:
        """After the transaction of ``connection`` ended (commit, rollback, close)."""
        if self._holder is None or self._holder is not _raw(connection):
            return
        self._holder = None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def _raw(connection: Any) -> Any:
    """The sqlite3 connection, from the pool's proxy (the dialect's calls) or itself (events)."""
    return getattr(connection, "dbapi_connection", connection)


def install(engine: Any, database_path: str, timeout_s: float) -> WriterQueue:
    """Queue ``engine``'s writers: ``enter`` before their ``BEGIN IMMEDIATE`` (the caller's
    ``begin`` event), ``leave`` as their COMMIT or ROLLBACK goes out (the engine's
    ``commit`` and ``rollback`` events, before the driver's call), or when the connection
    is closed, invalidated or checked in while it holds the line.

    Left as the COMMIT goes out: SQLite's automatic checkpoint runs in the committing call
    after its write lock is released (fsyncs: up to 15 ms), and the next writer need not
    wait for it. A writer that comes in before the COMMIT or ROLLBACK has released the
    lock (microseconds), or after a commit that failed and left its transaction holding
    it, waits in SQLite's busy handler, as without the line."""
    queue = WriterQueue(database_path, timeout_s)

    def ending(conn: Any) -> None:  # a Connection's transaction
        if not conn.invalidated:  # an invalidated one left at ``invalidate``
            queue.leave(conn.connection)

    def gone(dbapi_connection: Any, *_args: Any) -> None:
        queue.leave(dbapi_connection)

    event.listen(engine, "commit", ending)
    event.listen(engine, "rollback", ending)
    event.listen(engine, "close", gone)
    event.listen(engine, "invalidate", gone)
    event.listen(engine, "checkin", gone)
    return queue
