"""The gunicorn worker ``serve --production`` runs: gthread, with a throttled heartbeat.

gthread's main loop tells the arbiter it is alive (``Worker.notify``: an ``os.utime`` of
the worker's heartbeat file) on every wake-up, and it wakes once or twice per request (a
kept-alive connection readable, a finished request handed back): 1.7 system calls per
request measured under load (BENCHMARKS.md, "Where a gunicorn worker's CPU goes"). The
arbiter only compares that file's time with its timeout (``SCIM_TIMEOUT``, 30 s; the
worker is given half of it), so once a second is enough, and never less often than a
quarter of the worker's timeout. Everything else is gunicorn's gthread worker.
"""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker as GthreadWorker

HEARTBEAT_SECONDS = 1.0


class ThreadWorker(GthreadWorker):
    """gunicorn's gthread worker whose heartbeat is written at most once a second."""

    _last_heartbeat = float("-inf")

    def notify(self) -> None:
        now = time.monotonic()
        # ``self.timeout`` is half the arbiter's; 0 disables the arbiter's check.
        every = min(HEARTBEAT_SECONDS, self.timeout / 4) if self.timeout else 0.0
        if now - self._last_heartbeat >= every:
            self._last_heartbeat = now
            super().notify()
