"""The jobs table: work that must not run inside a request, done by ``scim-server worker``.

The transactional-outbox pattern (DESIGN.md §3): a job row is written in the
transaction that asks for the work, so nothing runs for a request that rolled
back. A worker claims a due row with a row lock (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite's writer transactions take the database lock at ``BEGIN
IMMEDIATE``, so claims queue), takes a lease, and commits at once: the work
itself runs outside the claim transaction, in steps. Each step locks the job
row again and checks the lease is still this worker's before changing anything,
and saves progress in the same transaction as the step's changes. So two
workers never run one step twice, and a job whose worker died (lease expired)
is claimed by another worker and resumes from its checkpoint.

A worker's round gives its jobs a time budget (``JobRun.pause_at``): a long job (an
import, a rules apply) still running when it is spent is handed back at its next step
(``JobPausedError``: no attempt counted) and resumes from its checkpoint on a later
round, so that the round's mail and other organizations' work do not wait for its end.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from scim_server.audit.context import AuditContext, current_context
from scim_server.db import utcnow
from scim_server.errors import DomainError, NotFoundError
from scim_server.models import Job
from scim_server.services import leases

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

STATES = ("queued", "running", "succeeded", "failed")
DEFAULT_LEASE = timedelta(seconds=60)
# In a checkpoint between a round's hand-back (``JobPausedError``) and the next run's first
# step, which takes it out (``JobRun.continued``).
PAUSED = "paused"
_ACTOR_FIELDS = ("actor_type", "actor_id", "actor_name", "source_ip", "request_id")


class LeaseLostError(Exception):
    """Another worker holds this job now (our lease expired): stop without writing."""


class JobInterruptedError(Exception):
    """The worker is stopping (deploy, SIGTERM): hand the job back to be resumed at once."""


class JobPausedError(JobInterruptedError):
    """The round's time for jobs is spent: hand the job back, to be resumed on a later round
    (the other work due, another organization's mail, goes first)."""


class PermanentJobError(DomainError):
    """Retrying cannot help (e.g. nothing to apply): the job fails at once."""

    status = 409


@dataclass(frozen=True)
class JobKind:
    """What a kind of job does: ``run`` the work in steps, ``on_failure`` to log the end."""

    name: str
    run: Callable[[JobRun], dict[str, Any]]
    # Called in the transaction that marks the job failed (e.g. to write the audit event).
    on_failure: Callable[[Session, Job, str], None] | None = None


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    KINDS[kind.name] = kind
    return kind


def enqueue(
    session: Session,
    org_id: str,
    kind: str,
    params: dict[str, Any] | None = None,
    *,
    run_after: datetime | None = None,
    max_attempts: int = 5,
    state: str = "queued",
) -> Job:
    """Queue a job in the caller's transaction; it runs only if that transaction commits.

    ``state``: another state than ``queued`` (e.g. an import's ``staged``) keeps workers
    off it until the caller queues it (``queue_as_current_actor``).
    """
    job = Job(
        org_id=org_id,
        id=str(uuid.uuid4()),
        kind=kind,
        state=state,
        params=params or {},
        actor=current_actor(),
        progress_done=0,
        attempts=0,
        max_attempts=max_attempts,
        run_after=run_after or utcnow(),
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def current_actor() -> dict[str, Any]:
    """Who is asking now (the audit context), as a job keeps it for its events."""
    ctx = current_context()
    return {k: getattr(ctx, k) for k in _ACTOR_FIELDS}


def queue_as_current_actor(job: Job) -> None:
    """Queue a job held back at enqueue (locked by the caller), due now, for whoever asks now."""
    job.state = "queued"
    job.run_after = utcnow()
    job.actor = current_actor()


def continue_as(job: Job, kind: str) -> None:
    """A finished job (locked by the caller) starts over as another kind, keeping its id and
    what hangs off it (an import's rows after its preview); queue it after."""
    job.kind = kind
    job.progress_done = 0
    job.checkpoint = None
    job.result = None
    job.error = None
    job.attempts = 0
    job.claimed_by = None
    job.lease_expires_at = None
    job.heartbeat_at = None
    job.started_at = None
    job.finished_at = None


def get_job(session: Session, org_id: str, job_id: str) -> Job:
    """One job of this organization; another organization's job is not found."""
    job = session.scalar(select(Job).where(Job.org_id == org_id, Job.id == job_id))
    if job is None:
        raise NotFoundError(f"Job {job_id!r} not found.")
    return job


def claim(
    factory: sessionmaker[Session],
    worker_id: str,
    *,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
    job_id: str | None = None,
    kinds: Collection[str] | None = None,
) -> Job | None:
    """Take one due job (queued and due, or running with an expired lease) and commit the lease.

    ``factory`` must make writer sessions (on SQLite: ``BEGIN IMMEDIATE``).
    ``kinds``: only those this worker can run (during a rolling deploy, an older
    worker leaves a newer kind to a newer worker). Returns a detached copy, or
    None when nothing is due.
    """
    due = or_(
        and_(Job.state == "queued", Job.run_after <= now),
        and_(Job.state == "running", Job.lease_expires_at < now),
    )
    stmt = select(Job).where(due)
    if job_id is not None:
        stmt = stmt.where(Job.id == job_id)
    if kinds is not None:
        stmt = stmt.where(Job.kind.in_(list(kinds)))
    stmt = stmt.order_by(Job.run_after, Job.created_at)

    def take(job: Job) -> None:
        if job.state == "running":
            log.warning(
                "job %s (%s): the lease of %s expired; %s resumes it at %s of %s",
                job.id,
                job.kind,
                job.claimed_by,
                worker_id,
                job.progress_done,
                job.progress_total if job.progress_total is not None else "?",
            )
        job.state = "running"
        job.claimed_by = worker_id
        job.lease_expires_at = now + lease
        job.heartbeat_at = now
        job.attempts += 1
        job.started_at = job.started_at or now

    claimed: Job | None = leases.claim_first(factory, stmt, take)
    return claimed


backoff = leases.backoff


@dataclass
class JobRun:
    """One worker's run of one claimed job: steps under the lease, then the outcome."""

    factory: sessionmaker[Session]
    org_id: str
    job_id: str
    kind: str
    params: dict[str, Any]
    worker_id: str
    clock: Clock = utcnow
    lease: timedelta = DEFAULT_LEASE
    should_stop: Callable[[], bool] = lambda: False
    on_progress: Callable[[int, int | None], None] | None = None
    # When the worker's round wants the job back (``step``); None: run it to its end.
    pause_at: datetime | None = None
    finished: bool = field(default=False, init=False)
    # Steps that may pause (``step(pausable=True)``) committed by this run.
    steps: int = field(default=0, init=False)
    # This run takes up a job a round handed back (``JobPausedError``), at its first step:
    # a continuation, not a resume after a failure, a lost worker or a stop.
    continued: bool = field(default=False, init=False)
    began: bool = field(default=False, init=False)

    def context(self, actor: dict[str, Any] | None) -> AuditContext:
        """Events written by the job name whoever asked for it."""
        values = {k: v for k, v in (actor or {}).items() if k in _ACTOR_FIELDS}
        return AuditContext(**values) if values else AuditContext()

    @contextmanager
    def step(
        self,
        lease: timedelta | None = None,
        session: Session | None = None,
        *,
        pausable: bool = True,
    ) -> Iterator[tuple[Session, Job]]:
        """One transaction of work, with the job row locked and the lease checked and renewed.

        Whatever the step saves on the job (progress, checkpoint) commits with
        the step's own changes, so a resumed run never redoes or skips one.
        ``lease``: renew for longer than the run's lease, for work about to run outside
        any step (e.g. parsing a big upload in memory).
        ``session``: a session of ``factory`` whose transaction already holds work done
        before the job row was locked (an overlapped ``rules apply``: a batch evaluated
        while the previous one committed); the step commits or rolls back that work with
        its own, and closes the session.
        ``pausable``: a step the job resumes at cheaply from its checkpoint (a batch); past
        ``pause_at``, once one such step of this run committed (so every run moves the job
        on), it raises ``JobPausedError`` instead of starting. False for bookkeeping, and for
        a step whose run would have to redo costly work before it (an import's preview,
        which reads and plans the whole file first).
        """
        if self.should_stop():
            if session is not None:
                session.close()
            raise JobInterruptedError(f"job {self.job_id} interrupted: the worker is stopping")
        if pausable and self.steps and self.pause_at is not None and self.clock() >= self.pause_at:
            if session is not None:
                session.close()
            raise JobPausedError(f"job {self.job_id} paused: the round's time for jobs is spent")
        with session or self.factory() as session:
            if not session.in_transaction():
                session.begin()
            try:
                job = session.scalar(
                    select(Job)
                    .where(Job.org_id == self.org_id, Job.id == self.job_id)
                    .with_for_update()
                )
                if job is None or job.state != "running" or job.claimed_by != self.worker_id:
                    raise LeaseLostError(f"job {self.job_id} is no longer held by {self.worker_id}")
                if not self.began:
                    self.began = True
                    if job.checkpoint and PAUSED in job.checkpoint:
                        left = {k: v for k, v in job.checkpoint.items() if k != PAUSED}
                        job.checkpoint = left or None
                        self.continued = True
                yield session, job
                now = self.clock()
                job.heartbeat_at = now
                if job.state == "running":
                    job.lease_expires_at = now + (lease or self.lease)
                done, total = job.progress_done, job.progress_total
                session.commit()
            except BaseException:
                session.rollback()
                raise
        if pausable:
            self.steps += 1
        if self.on_progress is not None:
            self.on_progress(done, total)

    def finish(self, job: Job, result: dict[str, Any]) -> None:
        """Mark the job succeeded, inside the step that wrote its last change."""
        job.state = "succeeded"
        job.result = result
        job.error = None
        job.finished_at = self.clock()
        job.lease_expires_at = None
        self.finished = True


def release(
    run: JobRun,
    *,
    error: str | None,
    retry: bool,
    count_attempt: bool = True,
    paused: bool = False,
) -> str:
    """After the work stopped: requeue (with backoff) or fail; returns the new state.

    Only while the lease is ours: a worker whose lease was taken changes nothing.
    ``paused``: handed back by a round (``JobPausedError``), noted in the checkpoint for
    the next run (``JobRun.continued``).
    """
    with run.factory() as session, session.begin():
        job = session.scalar(
            select(Job).where(Job.org_id == run.org_id, Job.id == run.job_id).with_for_update()
        )
        if job is None or job.state != "running" or job.claimed_by != run.worker_id:
            return job.state if job is not None else "gone"
        now = run.clock()
        if not count_attempt:
            job.attempts = max(job.attempts - 1, 0)
        if paused:
            job.checkpoint = {**(job.checkpoint or {}), PAUSED: True}
        job.error = error
        job.lease_expires_at = None
        if retry and job.attempts < job.max_attempts:
            job.state = "queued"
            job.claimed_by = None
            job.run_after = now + (backoff(job.attempts) if count_attempt else timedelta(0))
            return job.state
        fail(session, job, error or "failed", now)
        return job.state


def fail(session: Session, job: Job, error: str, now: datetime) -> None:
    """Mark a job failed and let its kind log how far it got, in the same transaction."""
    job.state = "failed"
    job.error = error
    job.finished_at = now
    job.lease_expires_at = None
    kind = KINDS.get(job.kind)
    if kind is not None and kind.on_failure is not None:
        kind.on_failure(session, job, error)


def job_to_dict(job: Job) -> dict[str, Any]:
    """The job as ``GET /api/v1/jobs/<id>`` shows it."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None

    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "progress": {"done": job.progress_done, "total": job.progress_total},
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        # A running job whose heartbeat is older than the lease lost its worker.
        "heartbeat_at": iso(job.heartbeat_at),
        "next_attempt_at": iso(job.run_after) if job.state == "queued" else None,
    }
