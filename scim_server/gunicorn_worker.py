"""The gunicorn worker ``serve --production`` runs: gthread, with a throttled heartbeat.

gthread's main loop tells the arbiter it is alive (``Worker.notify``: an ``os.utime`` of
the worker's heartbeat file) on every wake-up, and it wakes once or twice per request (a
kept-alive connection readable, a finished request handed back): 1.7 system calls per
request measured under load (BENCHMARKS.md, "Where a gunicorn worker's CPU goes"). The
arbiter only compares that file's time with its timeout (``SCIM_TIMEOUT``, 30 s; the
worker is given half of it), so once a second is enough, and never less often than a
quarter of the worker's timeout.

A worker also takes a new connection only while it has room for another request
(``ThreadWorker.accept_below``): gthread accepts whatever the kernel hands it, and a
client's kept-alive connections stay with the worker that accepted them, so an IdP's
few connections could all land on one worker and queue at its SCIM gate
(``scim.admission``: one SCIM request at a time on SQLite) while another worker sat
idle: measured, 8 kept-alive clients on SQLite put one worker at 98 % CPU and the other
at 0 % (BENCHMARKS.md, "Connections spread over the workers"). A busy worker leaves the
listening socket alone, so the kernel's next connection goes to a worker with room; when
every worker is busy it waits in the listen backlog until one finishes a request, as
with gunicorn's sync workers. A connection counts once it has sent something (until
then it waits on the poller), so idle connections cannot stop a worker from accepting.
Requests on connections a worker already holds are served as before.

Everything else is gunicorn's gthread worker (its internals are those of the gunicorn
release ``pyproject.toml`` pins).
"""

from __future__ import annotations

import errno
import selectors
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT, TConn
from gunicorn.workers.gthread import ThreadWorker as GthreadWorker

from scim_server.scim import admission

HEARTBEAT_SECONDS = 1.0


class ThreadWorker(GthreadWorker):
    """gunicorn's gthread worker whose heartbeat is written at most once a second, and
    which accepts a connection only with fewer than ``accept_below`` requests running."""

    _last_heartbeat = float("-inf")
    accept_below = 1

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.accept_below = accept_limit(self.wsgi, self.cfg.threads)

    def running(self) -> int:
        """Requests handed to the thread pool and not finished: the connections held,
        less those idle between requests (kept alive) or not yet sent anything."""
        return self.nr_conns - len(self.keepalived_conns) - len(self.pending_conns)

    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread's loop asks this on each wake-up while its answer differs from the
        # listener's state: a finished request (which wakes the loop) lets it accept again.
        super().set_accept_enabled(enabled and self.running() < self.accept_below)

    def accept(self, listener: Any) -> None:
        """gthread's accept, except that a new connection waits for its first bytes on the
        poller (as gthread's own deferred connections do), not in a thread: a connection
        that sends nothing (a browser's preconnect, a slow or hostile client) is then not
        a running request and does not keep the worker from accepting others. It has as
        long as gthread gives it (its data timeout, then the keep-alive time)."""
        try:
            sock, address = listener.accept()
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        sock.setblocking(False)
        conn = TConn(self.cfg, sock, address, listener.getsockname())
        conn.timeout = time.monotonic() + DEFAULT_WORKER_DATA_TIMEOUT + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )

    def enqueue_req(self, conn: Any) -> None:
        super().enqueue_req(conn)
        if self._accepting and self.running() >= self.accept_below:
            super().set_accept_enabled(False)

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
