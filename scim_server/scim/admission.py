"""At most ``SCIM_API_CONCURRENCY`` SCIM requests at once in a worker process.

Why: a worker's threads share one GIL. SCIM requests are CPU-bound Python between
short database calls, so several of them in one process mostly wait for each other: a
thread back from the database waits up to the switch interval for the GIL while it
holds SQLite's write lock or PostgreSQL's row locks, and every other writer waits on
it (the GIL convoy). One SCIM request at a time per worker measured faster on both
databases (BENCHMARKS.md, "Threads per worker" and "One SCIM request at a time per
worker"). The worker keeps its other threads for what waits outside the GIL (a
sign-in's argon2, a console page), which is why this is a gate on the SCIM API and not
one thread per worker.

That holds on SQLite, whose work is all in the worker's own CPU. On PostgreSQL a
request also waits for things that are not ours (the commit's WAL flush, a remote
server's round trips), which the worker's other threads fill: one request at a time lost
30-45 % at c = 32 with a 0.65 ms round trip, and on a quiet machine with the local server
it was no better and sometimes worse (BENCHMARKS.md, same section). So the default
(``SCIM_API_CONCURRENCY`` unset) is 1 on SQLite and no bound on PostgreSQL.

A request waits at most ``SCIM_API_WAIT_SECONDS`` for its turn, then gets a SCIM 503
with Retry-After: a worker stuck behind a slow request sheds load instead of piling up
threads. The gate is taken before authentication (the blueprint's first hook) and given back
at the request's teardown.
"""

from __future__ import annotations

import threading
from collections import deque

from flask import Blueprint, Flask, current_app
from sqlalchemy import make_url

from scim_server.scim.errors import ScimError

EXTENSION = "scim_admission"
RETRY_AFTER_SECONDS = 1


class Gate:
    """``slots`` turns handed out in arrival order (``slots == 0``: no gate).

    First come, first served: a plain lock lets a request that just arrived take a
    turn that another has waited for, and a SCIM client's timeout is per request. A
    turn given back goes straight to the longest waiter (each waits on a lock of its
    own); with nobody waiting, taking and giving back a turn is one short lock.

    Re-entrant per thread: a SCIM Bulk request dispatches each operation as a request
    of its own, in its thread, and must not wait for the turn it already holds.
    """

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._mutex = threading.Lock()
        self._free = slots
        self._waiters: deque[threading.Lock] = deque()
        self._held = threading.local()

    @property
    def waiting(self) -> int:
        """Requests waiting for a turn now."""
        return len(self._waiters)

    def enter(self) -> bool:
        """Take a turn; False when none came free in time."""
        if not self.slots:
            return True
        depth = getattr(self._held, "depth", 0)
        if depth == 0 and not self._take():
            return False
        self._held.depth = depth + 1
        return True

    def leave(self) -> None:
        """Give back this thread's turn (the outermost ``enter``'s); nothing if it holds
        none (its ``enter`` refused it, or never ran: an earlier hook failed)."""
        depth = getattr(self._held, "depth", 0)
        if not self.slots or depth == 0:
            return
        self._held.depth = depth - 1
        if depth == 1:
            self._give_back()

    def _take(self) -> bool:
        with self._mutex:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            mine = threading.Lock()
            mine.acquire()
            self._waiters.append(mine)
        if mine.acquire(timeout=self.wait_seconds):
            return True  # handed over by _give_back
        with self._mutex:
            if mine in self._waiters:
                self._waiters.remove(mine)
                return False
        return True  # handed over between the timeout and the mutex: it is ours

    def _give_back(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._free += 1


def default_slots(database_url: str) -> int:
    """1 on SQLite, else 0 (no gate).

    SQLite runs in the worker (WAL, no sync at commit): a request's database time is our
    own CPU, and its one write lock is where the convoy hurt. PostgreSQL has waits that are
    not ours (the commit's WAL flush, a remote server's round trips), which other threads
    fill: there one request at a time measured no better and often worse.
    """
    return 1 if make_url(database_url).get_backend_name() == "sqlite" else 0


def init_app(app: Flask) -> None:
    """One gate per app (a worker process runs one app)."""
    slots = app.config["SCIM_API_CONCURRENCY"]
    if slots is None:
        slots = default_slots(app.config["DATABASE_URL"])
    app.extensions[EXTENSION] = Gate(slots, app.config["SCIM_API_WAIT_SECONDS"])


def _enter() -> None:
    gate: Gate = current_app.extensions[EXTENSION]
    if not gate.enter():
        busy = ScimError("The server is busy; retry shortly.", status=503)
        busy.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        raise busy


def _leave(_exc: BaseException | None) -> None:
    current_app.extensions[EXTENSION].leave()


def init_blueprint(bp: Blueprint) -> None:
    """Gate every request of ``bp``; register before any other hook of ``bp``."""
    bp.before_request(_enter)
    bp.teardown_request(_leave)
