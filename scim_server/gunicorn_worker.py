"""The gunicorn worker ``serve --production`` runs: gthread, with a throttled heartbeat.

gthread's main loop tells the arbiter it is alive (``Worker.notify``: an ``os.utime`` of
the worker's heartbeat file) on every wake-up, and it wakes once or twice per request (a
kept-alive connection readable, a finished request handed back): 1.7 system calls per
request measured under load (BENCHMARKS.md, "Where a gunicorn worker's CPU goes"). The
arbiter only compares that file's time with its timeout (``SCIM_TIMEOUT``, 30 s; the
worker is given half of it), so once a second is enough, and never less often than a
quarter of the worker's timeout.

A worker also leaves a new connection to the others while it has no room for another
request (``ThreadWorker.has_room``: fewer than ``accept_below`` running, and no more than
any other worker, ``LOADS``). gthread accepts whatever the kernel hands it, and a client's
kept-alive connections stay with the worker that accepted them, so an IdP's few
connections could all land on one worker and queue there (at its SCIM gate on SQLite,
``scim.admission``; on its one core's worth of Python on PostgreSQL) while another worker
sat idle: measured, 8 kept-alive clients on SQLite put one worker at 98 % CPU and the
other at 0 % (BENCHMARKS.md, "Connections spread over the workers"). A worker without
room that sees a connection waiting stops watching the listening socket for
``SCIM_ACCEPT_HOLD_MS`` (20 ms), so a worker with room takes it; when every worker is
busy, the first to look again after its hold takes it (a connection waits at most that
long for a busy server). A connection counts once it has sent something (until then it
waits on the poller; it counts for ``FRESH_GRACE_S`` meanwhile, the time a client takes
to send its request), so idle connections cannot stop a worker from accepting. Requests
on connections a worker already holds are served as before.

Everything else is gunicorn's gthread worker (its internals are those of the gunicorn
release ``pyproject.toml`` pins).
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import selectors
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT, TConn
from gunicorn.workers.gthread import ThreadWorker as GthreadWorker

from scim_server.config import server_config
from scim_server.scim import admission

HEARTBEAT_SECONDS = 1.0
# Each live worker's running requests, in memory shared by the workers of one master
# (made at import, in the master, before it forks them): slot ``age % SLOTS``, -1 where
# no worker is. Two live workers share a slot only if their ages differ by a multiple of
# ``SLOTS``; the counts then mislead the choice of a worker, never whether one is made.
SLOTS = 256
LOADS = multiprocessing.RawArray(ctypes.c_int, [-1] * SLOTS)
# How long a new connection that has sent nothing counts as a running request.
FRESH_GRACE_S = 0.1


class ThreadWorker(GthreadWorker):
    """gunicorn's gthread worker whose heartbeat is written at most once a second, and
    which leaves a new connection to the other workers for ``hold_s`` while it has no
    room (``has_room``)."""

    _last_heartbeat = float("-inf")
    accept_below = 1
    _hold_until = float("-inf")
    _look_after_hold = False
    hold_s = 0.02  # ``SCIM_ACCEPT_HOLD_MS``: long enough for an idle worker to wake

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.accept_below = accept_limit(self.wsgi, self.cfg.threads)
        self.hold_s = server_config()["accept_hold_ms"] / 1000
        self._fresh: deque[tuple[float, Any]] = deque()  # (grace's end, connection)
        self._slot = self.age % SLOTS
        LOADS[self._slot] = 0

    def running(self) -> int:
        """Requests handed to the thread pool and not finished (the connections held, less
        those idle between requests or yet to send anything), and the connections accepted
        less than ``FRESH_GRACE_S`` ago that have not sent anything yet: a client sends its
        request right after connecting, and counting those keeps a burst of connections
        from all landing on the worker that woke first."""
        idle = len(self.keepalived_conns) + len(self.pending_conns)
        return self.nr_conns - idle + self._fresh_count()

    def _fresh_count(self) -> int:
        self._forget_fresh(time.monotonic())
        return sum(1 for _expiry, conn in self._fresh if not conn.data_ready)

    def _forget_fresh(self, now: float) -> None:
        """Drop, oldest first, the connections past their grace or sending."""
        fresh = self._fresh
        while fresh and (fresh[0][0] <= now or fresh[0][1].data_ready):
            fresh.popleft()

    def _publish(self) -> int:
        """This worker's running requests, written where the others compare theirs."""
        running = LOADS[self._slot] = self.running()
        return running

    def has_room(self) -> bool:
        """Fewer than ``accept_below`` requests running, and no more than any other live
        worker (``LOADS``): a worker running one request leaves a new connection to an
        idle one, even where it has threads to spare (PostgreSQL: each worker's Python
        runs on one core)."""
        running = self._publish()
        if running >= self.accept_below:
            return False
        # Its own slot holds ``running``; an empty one, -1.
        return running == 0 or all(load < 0 or load >= running for load in LOADS[:])

    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread's loop asks this on each wake-up while its answer differs from the
        # listener's state: a finished request or the hold's end (either wakes the loop)
        # puts the listener back. A worker without room watches it too once the hold is
        # over: where every worker is busy, a connection must still be taken.
        room = self.has_room()
        super().set_accept_enabled(enabled and (room or time.monotonic() >= self._hold_until))

    def accept(self, listener: Any) -> None:
        """gthread's accept, unless this worker has no room: it then leaves the connection
        to a worker with room (which takes it at once) for ``hold_s``, and takes it after
        that if it is still waiting (every worker busy: ``wait_for_and_dispatch_events``)."""
        if self.has_room():
            self._take(listener)
            return
        self._hold_until = time.monotonic() + self.hold_s
        self._look_after_hold = True
        super().set_accept_enabled(False)

    def _take(self, listener: Any) -> None:
        """gthread's accept, except that the new connection waits for its first bytes on
        the poller (as gthread's own deferred connections do), not in a thread: one that
        sends nothing (a browser's preconnect, a slow or hostile client) is then not a
        running request and does not keep the worker from accepting others. It has as
        long as gthread gives it (its data timeout, then the keep-alive time)."""
        try:
            sock, address = listener.accept()
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        now = time.monotonic()
        self.nr_conns += 1
        sock.setblocking(False)
        conn = TConn(self.cfg, sock, address, listener.getsockname())
        conn.timeout = now + DEFAULT_WORKER_DATA_TIMEOUT + self.cfg.keepalive
        self.pending_conns.append(conn)
        self._fresh.append((now + FRESH_GRACE_S, conn))
        self.poller.register(
            sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # Wake when a hold or the oldest fresh connection's grace ends: either may let this
        # worker accept.
        now = time.monotonic()
        if self._hold_until > now:
            timeout = min(timeout, self._hold_until - now)
        self._forget_fresh(now)
        if self._fresh:  # its grace ends in the future
            timeout = min(timeout, self._fresh[0][0] - now)
        super().wait_for_and_dispatch_events(timeout)
        self._publish()
        if self._look_after_hold and time.monotonic() >= self._hold_until and self.alive:
            # The hold is over: a connection still waiting found no worker with room; take
            # it (nothing waits if another worker took it: the accept finds none).
            self._look_after_hold = False
            for listener in self.sockets:
                self._take(listener)

    def notify(self) -> None:
        now = time.monotonic()
        # ``self.timeout`` is half the arbiter's; 0 disables the arbiter's check.
        every = min(HEARTBEAT_SECONDS, self.timeout / 4) if self.timeout else 0.0
        if now - self._last_heartbeat >= every:
            self._last_heartbeat = now
            super().notify()


def accept_limit(app: Any, threads: int) -> int:
    """How many requests a worker runs before it leaves new connections to the others: its
    SCIM gate's turns where the gate bounds SCIM requests (SQLite: 1), else its threads."""
    extensions = getattr(app, "extensions", None) or {}
    gate = extensions.get(admission.EXTENSION)
    slots = gate.slots if gate is not None else 0
    return max(1, min(slots, threads) if slots else threads)
