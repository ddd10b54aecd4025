"""A job's steps overlapped: the next step's work is prepared while the last one commits.

A step of ``rules apply`` is mostly Python (reading and evaluating 500 users) then
mostly database (writing them, their audit and product events, the commit): run
one after the other, the command and PostgreSQL take turns on two cores. Here the
calling thread prepares step N+1 in a transaction of its own (a second
connection) while one writer thread finishes step N in step N's transaction
(``JobRun.step(session=...)``: the job row locked, the lease checked, progress
saved, commit). At most two transactions are open: the one committing and the one
being prepared.

What keeps it correct is the split: ``prepare`` takes no lock the step before it
may hold until its commit (the job row, the organization's audit head, a license
being counted), so it never waits for that step; ``commit`` takes them, in commit
order, one step at a time (one writer thread), so the audit chain and the product
events are numbered in commit order as always. A step that ``prepare`` finds it
cannot do that way raises ``rule_apply.SerialStepError``-like exceptions (``serial``):
everything prepared and not committed is rolled back, and the caller runs plain
steps from the job's committed checkpoint.

Only for processes of our own (``scim-server rules apply``, ``scim-server worker``),
never in a web worker, and only where the sessions get connections of their own
(a PostgreSQL engine; not SQLite, whose writers take one database lock at BEGIN).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from scim_server.models import Job
from scim_server.services.jobs import JobRun

log = logging.getLogger(__name__)

# How long a prepared step waits for the one committing before it gives way: if the commit
# waits for a lock the prepared transaction holds, neither would ever end (the database
# sees one transaction waiting for an idle one, no deadlock). The prepared step is rolled
# back, which lets the commit through, and runs again as a plain step.
GIVE_WAY_AFTER = 5.0


def possible(run: JobRun) -> bool:
    """Whether the run's sessions each get a connection of their own, on PostgreSQL."""
    bind = run.factory.kw.get("bind")
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"


@dataclass
class Outcome:
    """How an overlapped run ended: done (with the job's result) or handed back."""

    done: bool
    result: Any = None
    # Handed back: the error that asked for plain steps (``serial``).
    reason: BaseException | None = None


class StepGaveWayError(Exception):
    """A prepared step was rolled back for the one committing (``GIVE_WAY_AFTER``)."""

    for_rest = False


class _Writer:
    """One thread committing prepared steps, one at a time, in the order handed over."""

    def __init__(self, run: JobRun, commit: Callable[[Session, Job, Any], Any]) -> None:
        self.run, self.commit = run, commit
        self.ready = threading.Condition()
        self.item: tuple[Session, Any] | None = None
        self.busy = False
        self.stopping = False
        self.failure: BaseException | None = None
        self.result: Any = None
        self.finished = False
        self.idle = 0.0  # seconds the writer waited for a step to commit
        context = contextvars.copy_context()  # the audit context: events name the job's actor
        self.thread = threading.Thread(
            target=context.run, args=(self._loop,), name=f"job-{run.job_id[:8]}-commit"
        )
        self.thread.daemon = True
        self.thread.start()

    def _loop(self) -> None:
        while True:
            with self.ready:
                started = time.perf_counter()
                while self.item is None and not self.stopping:
                    self.ready.wait()
                self.idle += time.perf_counter() - started
                if self.item is None:
                    return
                session, item = self.item
                self.item = None
            try:
                if self.failure is not None:
                    session.close()  # rolls back: a step after a failed one never commits
                    continue
                with self.run.step(session=session) as (locked, job):
                    result = self.commit(locked, job, item)
                if result is not None:
                    self.result, self.finished = result, True
            except BaseException as exc:  # handed to the preparing thread, which raises it
                self.failure = exc
            finally:
                with self.ready:
                    self.busy = False
                    self.ready.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until the step handed over last is committed (or failed); False if still not
        after ``timeout`` seconds."""
        with self.ready:
            return self.ready.wait_for(lambda: not self.busy, timeout)

    def hand_over(self, session: Session, item: Any) -> None:
        with self.ready:
            assert not self.busy
            self.item, self.busy = (session, item), True
            self.ready.notify_all()

    def stop(self) -> None:
        with self.ready:
            self.stopping = True
            self.ready.notify_all()
        self.thread.join()


def run(
    job_run: JobRun,
    prepare: Callable[[Session, Any], tuple[Any, Any]],
    commit: Callable[[Session, Job, Any], Any],
    serial: type[Exception],
) -> Outcome:
    """Prepare and commit the job's steps overlapped until one commits a result (done).

    ``prepare(session, position)``: in a new transaction of the calling thread, the next
    step's work from ``position`` (None at first: the job's checkpoint); returns (the
    step, the position after it, or None if it is the last). ``commit(session, job, step)``:
    in the writer thread, inside ``JobRun.step`` on the step's own session; returns the
    job's result when it finished it, else None. ``serial``: the exception either raises
    when a step must run as a plain one: nothing uncommitted is kept, and the outcome
    says so. Any other exception is raised here, after the same cleanup.
    """
    writer = _Writer(job_run, commit)
    position: Any = None
    handed_back: BaseException | None = None
    began, waited, steps = time.perf_counter(), 0.0, 0
    try:
        while writer.failure is None:
            session = job_run.factory()
            try:
                step, after = prepare(session, position)
            except serial as exc:
                session.close()
                writer.wait_idle()
                handed_back = exc
                break
            except BaseException:
                session.close()
                writer.wait_idle()
                raise
            started = time.perf_counter()
            idle = writer.wait_idle(GIVE_WAY_AFTER)
            waited += time.perf_counter() - started
            steps += 1
            if not idle:
                session.close()  # its locks may be what the commit waits for
                writer.wait_idle()
                log.warning("job %s: a step gave way to the one committing", job_run.job_id)
                handed_back = StepGaveWayError("the step before was still committing")
                break
            # The step before is committed (or failed) from here on.
            if writer.failure is not None:
                session.close()  # prepared after a step that failed: never committed
                break
            writer.hand_over(session, step)
            if after is None:
                writer.wait_idle()
                break
            position = after
    finally:
        writer.stop()
        # Which side held the other up: the preparing thread waiting for commits, or the
        # writer waiting for prepared steps (the first step's preparation included).
        log.info(
            "job %s: %s steps overlapped in %.1f s; waited for commits %.1f s, "
            "the writer for steps %.1f s",
            job_run.job_id,
            steps,
            time.perf_counter() - began,
            waited,
            writer.idle,
        )
    failure = writer.failure
    if failure is not None and not isinstance(failure, serial):
        raise failure
    if failure is not None or handed_back is not None:
        return Outcome(done=False, reason=failure or handed_back)
    if not writer.finished:
        raise RuntimeError(f"job {job_run.job_id}: the last step committed no result")
    return Outcome(done=True, result=writer.result)
