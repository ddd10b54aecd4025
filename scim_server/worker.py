"""``scim-server worker``: claims due jobs, mail and webhook deliveries, does the work outside the
claim, records it; and purges events past retention.

Web processes only write job rows; this loop (one or more processes, on any
number of nodes) does the work. The clock and the sleep are injected, so the
tests run the same code path with a fake clock. A database outage makes the
loop back off (doubling, up to a minute) instead of spinning; any other error
in one duty (a bug, a row the database refuses) is logged, the round's other
duties still run, and the next round waits the poll interval: one bad row never
ends the process nor holds back every organization's mail, jobs and webhooks.
Nor does one long job: a round's jobs get ``job_budget`` (a few seconds of batches),
then a job still running is handed back and resumed on the next round.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from scim_server.audit.context import use_context
from scim_server.db import DATABASE_UNAVAILABLE, utcnow
from scim_server.events import feed
from scim_server.mailer import Mailer
from scim_server.services import (
    credential_schedules,
    jobs,
    lockout,
    mail_delivery,
    recovery,
    table_stats,
    webhook_delivery,
    webhook_fanout,
    webhooks,
)
from scim_server.services.credentials import Delivery
from scim_server.services.passwords import Hashing
from scim_server.webhook_http import OutboundPolicy

log = logging.getLogger(__name__)

MAX_IDLE_BACKOFF = 60.0
PURGE_EVERY = timedelta(minutes=10)
# How long a round runs jobs before it hands a running one back (``run_jobs``).
DEFAULT_JOB_BUDGET = timedelta(seconds=5)


def load_kinds() -> dict[str, jobs.JobKind]:
    """Import the modules that register job kinds; the worker runs what they define."""
    from scim_server.services import rule_sets  # noqa: F401  (registers ruleset.apply)
    from scim_server.user_import import jobs as user_import_jobs  # noqa: F401  (users.import)

    return jobs.KINDS


def default_worker_id() -> str:
    """host:pid:random, so the log and the jobs table say which process held a job."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs due jobs, sends due mail and webhooks; ``run_once`` for tests and ``--once``.

    ``mailer`` is how mail goes out (``Mailer.from_config``) and ``outbound``
    where webhooks may go (``OutboundPolicy.from_config``); a worker built
    without one (a test of jobs alone) leaves that outbox to other workers.
    ``server_secret`` (``sealing.encryption_secret``, required with ``outbound``)
    opens the webhooks' sealed signing secrets.
    ``hashing`` is the argon2id cost of the temporary passwords it makes
    (``Hashing.from_config``). ``event_retention`` set, it also deletes events
    older than that. ``job_budget``: how long a round (``run_once(limit=...)``) runs
    jobs before it hands a running one back; None: to their end.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        lease: timedelta = jobs.DEFAULT_LEASE,
        stop: threading.Event | None = None,
        mailer: Mailer | None = None,
        hashing: Hashing | None = None,
        outbound: OutboundPolicy | None = None,
        event_retention: timedelta | None = None,
        base_url: str | None = None,
        job_budget: timedelta | None = DEFAULT_JOB_BUDGET,
        server_secret: bytes | None = None,
    ) -> None:
        if outbound is not None and not server_secret:
            raise ValueError("a worker that sends webhooks needs the server's encryption secret")
        self.factory = factory
        self.server_secret = server_secret or b""
        self.mailer = mailer
        self.hashing = hashing or Hashing()
        self.outbound = outbound
        self.event_retention = event_retention
        self.base_url = base_url or webhook_delivery.DEFAULT_BASE_URL
        # Mailed links start with the configured root (``SCIM_BASE_URL``), as it is now: a
        # send scheduled before the operator changed it must not mail the old one. None
        # (development without one): the root the scheduling request was served at.
        self.link_root = base_url or None
        self.job_budget = job_budget
        # The relay as this worker last found it: down, the mail waits (``send_mail``).
        self.relay = mail_delivery.Relay()
        # When each periodic duty (``_due``) last ran, by name.
        self.last_run: dict[str, datetime] = {}
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.lease = lease
        self.stop = stop or threading.Event()
        # Inside ``serve``: a duty's unexpected error is logged and counted, not raised.
        self.serving = False
        self.errors = 0
        load_kinds()

    # ``serve``: at most this many of each kind of work a round.
    ROUND = 50

    def run_once(self, *, limit: int | None = None) -> int:
        """Jobs, credentials sends, lockouts, mail and webhooks that are due; how many handled.

        ``limit``: at most that many of each kind (``serve``'s rounds); None: all that are due.
        An error ends it, except in ``serve`` (``_run_duty``).
        """
        return sum(self._run_duty(name, duty) for name, duty in self._duties(limit))

    def _duties(self, limit: int | None) -> list[tuple[str, Callable[[], int]]]:
        """A round's duties in order, each giving how much work it handled."""

        def housekeeping(run: Callable[[], object]) -> Callable[[], int]:
            def step() -> int:
                run()
                return 0  # upkeep: not work that makes the next round come at once

            return step

        return [
            ("jobs", lambda: self.run_jobs(limit=limit)),
            ("credentials", lambda: self.send_credentials(limit=limit)),
            ("lockouts", self.release_lockouts),
            ("mail", lambda: self.send_mail(limit=limit)),
            ("webhooks", lambda: self.send_webhooks(limit=limit)),
            ("event purge", housekeeping(self.purge_events)),
            ("statistics", housekeeping(self.refresh_statistics)),
        ]

    def _run_duty(self, name: str, duty: Callable[[], int]) -> int:
        """Run one duty. While serving, an error other than a database outage (which ends
        the round: ``serve`` backs off) is logged and counted (``errors``) and the round goes
        on; called alone (a test, ``--once``), it is raised."""
        if not self.serving:
            return duty()
        try:
            return duty()
        except DATABASE_UNAVAILABLE:
            raise
        except Exception:
            log.exception("worker %s: %s failed; going on", self.worker_id, name)
            self.errors += 1
            return 0

    def send_credentials(self, *, limit: int | None = None) -> int:
        """Due credentials sends (scheduled, SCIM welcomes) become mail; expired resets end."""
        handled = credential_schedules.send_due(
            self.factory,
            self.hashing,
            self.worker_id,
            self.clock,
            lease=self.lease,
            limit=limit,
            should_stop=self.stop.is_set,
            base_url=self.link_root,
        )
        return handled + recovery.end_expired_recoveries(self.factory, self.clock())

    def release_lockouts(self) -> int:
        """End the automatic lockouts whose time is up, so the admin API shows the truth.

        Sign-in ends them too (lazily); this makes the status right for those who do not
        come back. Idempotent: two workers at once release each account once (row locks).
        """
        with self.factory() as session:
            return lockout.release_due(session, self.clock())

    def send_webhooks(self, *, limit: int | None = None) -> int:
        """Send due webhook deliveries until none is left (or ``limit``); how many were handled."""
        if self.outbound is None:
            return 0
        webhook_fanout.fan_out_due(
            self.factory, self.clock, should_stop=self.stop.is_set, base_url=self.base_url
        )
        return webhook_delivery.deliver_due(
            self.factory,
            self.outbound,
            self.worker_id,
            self.clock,
            limit=limit,
            should_stop=self.stop.is_set,
            base_url=self.base_url,
            server_secret=self.server_secret,
        )

    def purge_events(self) -> int:
        """Delete events (and finished webhook deliveries) past retention, at most every
        ``PURGE_EVERY``; how many events were deleted."""
        now = self.clock()
        if self.event_retention is None or not self._due("purge", now, PURGE_EVERY):
            return 0
        with self.factory() as session, session.begin():
            deleted = feed.purge(session, now, self.event_retention)
            webhooks.purge_log(session, now - self.event_retention)
        if deleted:
            log.info("purged %s event(s) older than %s", deleted, self.event_retention)
        return deleted

    def refresh_statistics(self) -> list[str]:
        """At most every ``table_stats.STALE_CHECK_EVERY``, ANALYZE the tables that changed a
        lot since their last ANALYZE (an IdP's initial sync: thousands of single creates);
        the tables analyzed."""
        if not self._due("statistics", self.clock(), table_stats.STALE_CHECK_EVERY):
            return []
        with self.factory() as session, session.begin():
            return table_stats.refresh_stale(session)

    def _due(self, duty: str, now: datetime, every: timedelta) -> bool:
        """Whether ``duty`` last ran ``every`` or longer ago (or never); if so, it runs now."""
        last = self.last_run.get(duty)
        if last is not None and now - last < every:
            return False
        self.last_run[duty] = now
        return True

    def send_mail(self, *, limit: int | None = None) -> int:
        """Send due mail until none is left (or ``limit``), organizations in turn; returns
        how many were handled. After a failure of the relay itself (unreachable, no
        answer) the rest waits until it is tried again (``mail_delivery.Relay``)."""
        if self.mailer is None:
            return 0
        return mail_delivery.deliver_due(
            self.factory,
            self.mailer,
            self.worker_id,
            self.clock,
            delivery=Delivery(hashing=self.hashing, base_url=self.base_url),
            limit=limit,
            should_stop=self.stop.is_set,
            relay=self.relay,
        )

    def run_jobs(self, *, limit: int | None = None) -> int:
        """Run due jobs until none is left (or ``limit``); returns how many were run.

        With ``limit`` (``serve``'s rounds) the round's jobs share ``job_budget``: one still
        running when it is spent is handed back at its next step, no attempt counted
        (``jobs.JobPausedError``), and resumes from its checkpoint on a later round, behind
        the jobs already due; the round goes on to the credentials, the mail (another
        organization's reset link) and the webhooks."""
        ran = 0
        pause_at = None
        if limit is not None and self.job_budget is not None:
            pause_at = self.clock() + self.job_budget
        while (limit is None or ran < limit) and not self.stop.is_set():
            job = jobs.claim(
                self.factory,
                self.worker_id,
                now=self.clock(),
                lease=self.lease,
                kinds=tuple(jobs.KINDS),
            )
            if job is None:
                break
            self.run(job, pause_at=pause_at)
            ran += 1
            if pause_at is not None and self.clock() >= pause_at:
                break  # the round's time for jobs is spent: the rest waits for the next
        return ran

    def run_job(
        self, job_id: str, on_progress: Callable[[int, int | None], None] | None = None
    ) -> bool:
        """Claim and run this one job if it is due; False when another worker has it."""
        job = jobs.claim(
            self.factory,
            self.worker_id,
            now=self.clock(),
            lease=self.lease,
            job_id=job_id,
            kinds=tuple(jobs.KINDS),
        )
        if job is None:
            return False
        self.run(job, on_progress)
        return True

    def run(
        self,
        job: Any,
        on_progress: Callable[[int, int | None], None] | None = None,
        *,
        pause_at: datetime | None = None,
    ) -> str:
        """Run one claimed job to its outcome (or, past ``pause_at``, hand it back at its
        next step); returns the job's new state."""
        run = jobs.JobRun(
            factory=self.factory,
            org_id=job.org_id,
            job_id=job.id,
            kind=job.kind,
            params=job.params or {},
            worker_id=self.worker_id,
            clock=self.clock,
            lease=self.lease,
            should_stop=self.stop.is_set,
            on_progress=on_progress,
            pause_at=pause_at,
        )
        with use_context(run.context(job.actor)):
            return self._run(job, run)

    def _run(self, job: Any, run: jobs.JobRun) -> str:
        kind = jobs.KINDS[job.kind]  # claim takes only kinds this worker knows
        if job.attempts > job.max_attempts:
            # Its workers kept dying (lease expired each time): stop trying.
            error = f"gave up after {job.max_attempts} attempts whose workers stopped"
            return jobs.release(run, error=error, retry=False)
        log.info("job %s (%s, org %s): attempt %s", job.id, job.kind, job.org_id, job.attempts)
        try:
            result = kind.run(run)
            if not run.finished:
                with run.step() as (_session, row):
                    run.finish(row, result)
        except jobs.LeaseLostError as exc:
            log.warning("job %s: %s; leaving it to its new worker", job.id, exc)
            return "lost"
        except jobs.JobPausedError:
            log.info("job %s: handed back for the round's other work, to be resumed", job.id)
            return jobs.release(run, error=None, retry=True, count_attempt=False, paused=True)
        except jobs.JobInterruptedError:
            log.info("job %s: handed back at the worker's stop, to be resumed", job.id)
            return jobs.release(run, error=None, retry=True, count_attempt=False)
        except jobs.PermanentJobError as exc:
            log.warning("job %s failed: %s", job.id, exc.detail)
            return jobs.release(run, error=exc.detail, retry=False)
        except Exception as exc:
            log.exception("job %s: attempt %s failed", job.id, job.attempts)
            return jobs.release(run, error=f"{type(exc).__name__}: {exc}"[:2000], retry=True)
        log.info("job %s (%s) succeeded: %s", job.id, job.kind, result)
        return "succeeded"

    def serve(self, poll_interval: float = 2.0) -> None:
        """Poll for due work until ``stop`` is set; back off while the database is down.

        In rounds of at most ``ROUND`` of each kind, the next at once while the last found
        work: a stream of one kind (an initial sync's 100,000 welcomes, each an argon2
        hash) no longer holds back the others (the mail those welcomes make, another
        organization's password reset, webhooks, the planner statistics) until it ends.
        A round in which a duty failed is followed by the poll interval's wait, not at once:
        a duty failing on every round does not spin.
        """
        idle_wait = poll_interval
        log.info("worker %s started (poll every %ss)", self.worker_id, poll_interval)
        self.serving = True
        try:
            while not self.stop.is_set():
                try:
                    errors = self.errors
                    handled = self.run_once(limit=self.ROUND)
                    idle_wait = poll_interval
                    if handled and self.errors == errors:
                        continue
                except DATABASE_UNAVAILABLE as exc:
                    idle_wait = min(max(idle_wait * 2, poll_interval), MAX_IDLE_BACKOFF)
                    log.warning("database unavailable (%s); retrying in %.0fs", exc, idle_wait)
                self.stop.wait(idle_wait)
        finally:
            self.serving = False
        log.info("worker %s stopped", self.worker_id)
