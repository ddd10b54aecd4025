"""The console's import as a job for ``scim-server worker`` (kind ``users.import``).

The web node reads the upload once and *stages* it: a job in state ``staged`` (no
worker claims it) with the file's rows in ``import_rows``, in one transaction; the
preview is planned from the same rows. **Import** turns the staged job into a
queued one. The worker applies the rows in line order, ``BATCH`` per step: each row
through ``rows.apply_row`` (a SCIM create or PATCH, as the CLI does) on a session
joined to the step's transaction with a savepoint per row, so a batch's users, their
audit events, the rows' outcomes and the progress commit together, and a worker that
dies mid-way is resumed from the last committed row, never applying one twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import NotFoundError
from scim_server.models import ImportRow, Job
from scim_server.services import jobs
from scim_server.user_import import rows as import_rows
from scim_server.user_import.sheets import Row

KIND = "users.import"
STAGED = "staged"  # uploaded and previewed, not started: no worker claims it
BATCH = 50
INSERT_BATCH = 1000
STAGED_FOR = timedelta(days=1)  # a preview nobody imported is dropped after this
KEPT_FOR = timedelta(days=30)  # a finished import's per-row results, then dropped


def stage(session: Session, org_id: str, filename: str, found: list[Row]) -> Job:
    """Keep the uploaded rows with a staged job; drop stale stagings and old results."""
    now = utcnow()
    with session.begin():
        session.execute(
            delete(Job).where(
                Job.org_id == org_id,
                Job.kind == KIND,
                or_(
                    (Job.state == STAGED) & (Job.created_at < now - STAGED_FOR),
                    Job.state.in_(("succeeded", "failed")) & (Job.finished_at < now - KEPT_FOR),
                ),
            )
        )
        job = jobs.enqueue(
            session, org_id, KIND, {"filename": filename[:200], "rows": len(found)}, state=STAGED
        )
        job.progress_total = len(found)
        for start in range(0, len(found), INSERT_BATCH):
            session.execute(
                insert(ImportRow),
                [
                    {"org_id": org_id, "job_id": job.id, "line": r.line, "values": r.values}
                    for r in found[start : start + INSERT_BATCH]
                ],
            )
    return job


def get_import(session: Session, org_id: str, job_id: str) -> Job:
    """One import job of this organization (any other id is not found)."""
    job = jobs.get_job(session, org_id, job_id)
    if job.kind != KIND:
        raise NotFoundError(f"Import {job_id!r} not found.")
    return job


def start(session: Session, org_id: str, job_id: str) -> Job:
    """Queue a staged import for the worker, as the person who starts it; a second start
    of the same import changes nothing."""
    with session.begin():
        job = session.scalar(
            select(Job).where(Job.org_id == org_id, Job.id == job_id).with_for_update()
        )
        if job is None or job.kind != KIND:
            raise NotFoundError(f"Import {job_id!r} not found.")
        if job.state != STAGED:
            return job
        jobs.queue_as_current_actor(job)
        record(
            session,
            org_id,
            "users.import.start",
            resource_type="Job",
            resource_id=job.id,
            detail=f"import of {job.params.get('filename')!r} queued: {job.progress_total} rows",
        )
    return job


def counts(job: Job) -> dict[str, int]:
    """Rows done, and how many were created, updated, unchanged, refused."""
    checkpoint = job.checkpoint or {}
    out = {a: int(checkpoint.get(a, 0)) for a in import_rows.ACTIONS}
    out["done"] = job.progress_done
    out["total"] = job.progress_total or 0
    return out


def errors(session: Session, org_id: str, job_id: str, limit: int = 200) -> list[ImportRow]:
    """The first rows that were refused, with their reasons."""
    return list(
        session.scalars(
            select(ImportRow)
            .where(
                ImportRow.org_id == org_id,
                ImportRow.job_id == job_id,
                ImportRow.action == "error",
            )
            .order_by(ImportRow.line)
            .limit(limit)
        )
    )


def results(session: Session, org_id: str, job_id: str, batch: int = 1000) -> Iterator[ImportRow]:
    """Every row with its outcome, in line order, in keyset batches (constant memory)."""
    last = 0
    while True:
        found = list(
            session.scalars(
                select(ImportRow)
                .where(
                    ImportRow.org_id == org_id,
                    ImportRow.job_id == job_id,
                    ImportRow.line > last,
                )
                .order_by(ImportRow.line)
                .limit(batch)
            )
        )
        if not found:
            return
        yield from found
        last = found[-1].line
        session.expunge_all()


def run_import(run: jobs.JobRun) -> dict[str, Any]:
    """Apply the staged rows in line order, ``BATCH`` per committed step."""
    org_id = run.org_id
    while True:
        with run.step() as (session, job):
            checkpoint = dict(job.checkpoint or {})
            last = int(checkpoint.get("last", 0))
            batch = list(
                session.scalars(
                    select(ImportRow)
                    .where(
                        ImportRow.org_id == org_id,
                        ImportRow.job_id == job.id,
                        ImportRow.line > last,
                    )
                    .order_by(ImportRow.line)
                    .limit(BATCH)
                )
            )
            if not batch:
                result = {a: int(checkpoint.get(a, 0)) for a in import_rows.ACTIONS}
                import_rows.refresh_statistics(session, result["create"] + result["update"])
                record(
                    session,
                    org_id,
                    "users.import",
                    resource_type="Job",
                    resource_id=job.id,
                    detail=(
                        f"import of {job.params.get('filename')!r}: {result['create']} created, "
                        f"{result['update']} updated, {result['unchanged']} unchanged, "
                        f"{result['error']} refused"
                    ),
                    changes=result,
                )
                run.finish(job, result)
                return result
            # Each row's own transaction becomes a savepoint of this step's.
            rows_session = Session(
                bind=session.connection(),
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
                info=dict(session.info),
            )
            try:
                for item in batch:
                    outcome = import_rows.apply_row(
                        rows_session, org_id, Row(item.line, dict(item.values))
                    )
                    item.action = outcome.action
                    item.reason = outcome.reason or None
                    item.user_id = outcome.user_id
                    checkpoint[outcome.action] = int(checkpoint.get(outcome.action, 0)) + 1
            finally:
                rows_session.close()
            checkpoint["last"] = batch[-1].line
            job.checkpoint = checkpoint
            job.progress_done += len(batch)


def _import_failed(session: Session, job: Job, error: str) -> None:
    """How far a failed import got, in the log."""
    done = counts(job)
    record(
        session,
        job.org_id,
        "users.import",
        outcome="failure",
        resource_type="Job",
        resource_id=job.id,
        detail=f"import stopped after {done['done']} of {done['total']} rows: {error}"[:2000],
        changes={a: done[a] for a in import_rows.ACTIONS},
    )


jobs.register(jobs.JobKind(KIND, run=run_import, on_failure=_import_failed))
