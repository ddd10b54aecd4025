"""The console's import as jobs for ``scim-server worker``: the preview
(``users.import.preview``), then the import (``users.import``), one job row throughout.

The upload request checks the file quickly (``sheets.check``), keeps its bytes in
``import_uploads`` (never a file on a node's disk) and queues a preview job. The worker
reads the file, plans every row (``rows.plan``: nothing about users is written) and
saves the rows with their plans in ``import_rows``, ``STAGE_BATCH`` per step, then
deletes the bytes and ends the job with the counts. **Import** turns the previewed job
into a queued ``users.import`` (``jobs.continue_as``). The worker applies the rows in
line order, ``BATCH`` per step: each row through ``rows.apply_row`` (a SCIM create or
PATCH, as the CLI does) on a session joined to the step's transaction with a savepoint
per row, so a batch's users, their audit events, the rows' outcomes and the progress
commit together, and a worker that dies mid-way is resumed from the last committed row,
never applying one twice. A row the preview refused is refused again with its reason,
never applied: the preview said it would be skipped (a second row about one person,
say, applied alone it would be an update over the first); the log has its failure event,
as it has one for each row the import refuses (``rows.record_refusal``). The others are applied as
previewed or not at all: the preview keeps each row's account and the attributes it
changes (``user_id``, ``plan_changes``), and a row the directory changed under since (its
account deleted, replaced, created, (de)activated) is refused with a reason
(``rows.Planned``), never re-decided. The row's account is read locked in the step's
transaction and kept locked through its write (``rows._holder``): an IdP's change cannot
land between the check and the write.

A preview that fails on the file itself (unreadable, too many rows, a NUL byte) keeps
that reason in its checkpoint for its page (``refusal``); any other failure is the
server's, told to the admin as such, its detail in the worker's log.

A new kind for the preview keeps a worker of an older release (which knows only
``users.import``) from claiming it during a rolling deploy.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, NoReturn

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from scim_server import bulk_rows
from scim_server.audit import record
from scim_server.db import reading_session, utcnow
from scim_server.errors import DomainError, InvalidValueError, NotFoundError
from scim_server.models import ImportRow, ImportUpload, Job, User
from scim_server.services import console_access, jobs
from scim_server.services.lifecycle import SIGN_IN_ALLOWED
from scim_server.text import fold
from scim_server.user_import import rows as import_rows
from scim_server.user_import import sheets
from scim_server.user_import.sheets import Row

KIND = "users.import"
PREVIEW = "users.import.preview"
STAGED = "staged"  # previewed in the upload request by an older release: Import still starts it
BATCH = 50
STAGE_BATCH = 5000  # preview rows saved per step
# Reading and planning a big file runs outside any transaction, longer than a step's lease.
PREPARE_LEASE = timedelta(minutes=10)
REFUSED = "refused"  # the checkpoint's key for a preview's refusal of the file
STAGED_FOR = timedelta(days=1)  # a preview nobody imported is dropped after this
KEPT_FOR = timedelta(days=30)  # a finished import's per-row results, then dropped


def upload(session: Session, org_id: str, filename: str, data: bytes, *, max_rows: int) -> Job:
    """Keep an uploaded file and queue its preview; drop stale previews and old results."""
    now = utcnow()
    with session.begin():
        session.execute(
            delete(Job).where(
                Job.org_id == org_id,
                Job.kind.in_((KIND, PREVIEW)),
                or_(
                    (Job.kind == PREVIEW)
                    & (Job.state != "running")
                    & (Job.created_at < now - STAGED_FOR),
                    (Job.state == STAGED) & (Job.created_at < now - STAGED_FOR),
                    (Job.kind == KIND)
                    & Job.state.in_(("succeeded", "failed"))
                    & (Job.finished_at < now - KEPT_FOR),
                ),
            )
        )
        job = jobs.enqueue(
            session, org_id, PREVIEW, {"filename": filename[:200], "max_rows": max_rows}
        )
        session.add(ImportUpload(org_id=org_id, job_id=job.id, data=data))
    return job


def run_preview(run: jobs.JobRun) -> dict[str, Any]:
    """Read the upload, plan each row, save the rows with their plans; the counts.

    Its steps never pause for the worker's round (``pausable=False``): a run taken up
    again reads and plans the whole file before its next step."""
    org_id = run.org_id
    with run.step(lease=PREPARE_LEASE, pausable=False) as (session, job):
        stored = session.get(ImportUpload, (org_id, job.id))
        data = stored.data if stored is not None else None
        filename = str(job.params.get("filename", ""))
        max_rows = int(job.params.get("max_rows", sheets.MAX_ROWS))
        staged = int((job.checkpoint or {}).get("staged", 0))
    if data is None:
        _refuse(run, "The uploaded file is gone: upload it again.")
    try:
        found = sheets.read(filename, data, max_bytes=len(data), max_rows=max_rows)
        if not found:
            raise InvalidValueError("The file has a header but no rows.")
    except DomainError as err:
        _refuse(run, err.detail)
    del data
    with run.step(lease=PREPARE_LEASE, pausable=False) as (_session, job):
        job.progress_total = len(found)
        job.checkpoint = {**(job.checkpoint or {}), "phase": "plan"}
    with reading_session(run.factory) as session:  # plan() reads and rolls back
        outcomes = import_rows.plan(session, org_id, found, _actor_roles(session, org_id, job))
    planned = [(r, o) for r, o in zip(found, outcomes, strict=True) if r.line > staged]
    for start in range(0, len(planned), STAGE_BATCH):
        batch = planned[start : start + STAGE_BATCH]
        with run.step(pausable=False) as (session, job):
            bulk_rows.insert_rows(
                session.connection(),
                ImportRow,
                [
                    {
                        "org_id": org_id,
                        "job_id": job.id,
                        "line": row.line,
                        "values": row.values,
                        "action": None,
                        "reason": None,
                        # What the import checks the row against (``rows.Planned``).
                        "user_id": outcome.user_id,
                        "plan": outcome.action,
                        "plan_reason": outcome.reason or None,
                        "plan_changes": (
                            list(outcome.changes)
                            if outcome.action in ("update", "unchanged")
                            else None
                        ),
                    }
                    for row, outcome in batch
                ],
            )
            job.checkpoint = {"phase": "stage", "staged": batch[-1][0].line}
            job.progress_done = len(found) - len(planned) + start + len(batch)
    result = import_rows.summary(outcomes)
    with run.step(pausable=False) as (session, job):
        session.execute(
            delete(ImportUpload).where(ImportUpload.org_id == org_id, ImportUpload.job_id == job.id)
        )
        job.progress_done = len(found)
        run.finish(job, result)
    return result


def _refuse(run: jobs.JobRun, reason: str) -> NoReturn:
    """End the preview on the file's own problem: the reason, kept for its page."""
    with run.step(pausable=False) as (_session, job):
        job.checkpoint = {**(job.checkpoint or {}), REFUSED: reason}
    raise jobs.PermanentJobError(reason)


def refusal(job: Job) -> str | None:
    """Why a failed preview's file was refused, to show the admin; None when the preview
    failed otherwise (the server's fault: the job's error is for the log, not the page)."""
    if job.state != "failed":
        return None
    reason = (job.checkpoint or {}).get(REFUSED)
    return str(reason) if reason else None


def preview_rows(
    session: Session, org_id: str, job_id: str, limit: int, *, errors: bool = False
) -> list[ImportRow]:
    """A preview's first rows in line order (``errors``: of those planned as errors)."""
    query = select(ImportRow).where(ImportRow.org_id == org_id, ImportRow.job_id == job_id)
    if errors:
        query = query.where(ImportRow.plan == "error")
    return list(session.scalars(query.order_by(ImportRow.line).limit(limit)))


def get_import(session: Session, org_id: str, job_id: str) -> Job:
    """One import job (previewed or started) of this organization; any other id is not found."""
    job = jobs.get_job(session, org_id, job_id)
    if job.kind not in (KIND, PREVIEW):
        raise NotFoundError(f"Import {job_id!r} not found.")
    return job


def start(session: Session, org_id: str, job_id: str) -> Job:
    """Queue a previewed import for the worker, as the person who starts it; a second start
    of the same import changes nothing."""
    with session.begin():
        job = session.scalar(
            select(Job).where(Job.org_id == org_id, Job.id == job_id).with_for_update()
        )
        if job is None or job.kind not in (KIND, PREVIEW):
            raise NotFoundError(f"Import {job_id!r} not found.")
        if job.kind == PREVIEW:
            plan = dict(job.result or {})
            if job.state != "succeeded":
                raise InvalidValueError("This file's preview is not ready: wait for it first.")
            if not (plan.get("create") or plan.get("update")):
                raise InvalidValueError("No row of this file would create or change anyone.")
            jobs.continue_as(job, KIND)
            job.params = {**job.params, "rows": job.progress_total, "plan": plan}
        elif job.state != STAGED:
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
    """Apply the staged rows in line order, ``BATCH`` per committed step; a row the preview
    refused is refused with the preview's reason, one the directory changed under since
    the preview with ``rows.STALE``."""
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
            actor_roles = _actor_roles(session, org_id, job)
            _check_still_allowed(session, org_id, job, actor_roles)
            # Refused by the preview: skipped, as it said, and logged (``rows.record_refusal``).
            refused = {i.line: Row(i.line, dict(i.values)) for i in batch if i.plan == "error"}
            named = import_rows.holders(session, org_id, refused.values()) if refused else {}
            try:
                for item in batch:
                    if item.line in refused:
                        user_name = str(item.values.get("userName", ""))
                        outcome = import_rows.record_refusal(
                            rows_session,
                            org_id,
                            import_rows.Outcome(
                                item.line, user_name, "error", item.plan_reason or ""
                            ),
                            refused[item.line],
                            named.get(fold(user_name)),
                        )
                    else:
                        outcome = import_rows.apply_row(
                            rows_session,
                            org_id,
                            Row(item.line, dict(item.values)),
                            actor_roles,
                            _planned(item),
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


def _planned(item: ImportRow) -> import_rows.Planned:
    """What the preview showed for ``item``: the import applies that or refuses the row."""
    changes = item.plan_changes
    return import_rows.Planned(
        item.plan or "", item.user_id, frozenset(changes) if changes is not None else None
    )


def _actor_roles(session: Session, org_id: str, job: Job) -> frozenset[str] | None:
    """The console roles of the person who started the import, as they are now; None for
    an import not started from the console (the CLI: an operator of the server)."""
    actor = job.actor or {}
    if actor.get("actor_type") != "console" or not actor.get("actor_id"):
        return None
    return console_access.roles_of(session, org_id, str(actor["actor_id"]))


# Why an import stops when the person who started it may not run it any more.
STARTER_GONE = (
    "The import stopped: the person who started it no longer manages users (a console role "
    "taken back, or an account that may not sign in). The rows not done were not imported."
)


def _check_still_allowed(
    session: Session, org_id: str, job: Job, actor_roles: frozenset[str] | None
) -> None:
    """A console person's import runs while they may still import (as each batch begins):
    one whose role was taken back, or whose account was locked or deactivated, meanwhile
    does not go on writing in their name. The command line's (None) is the operator's."""
    if actor_roles is None:
        return
    may = "users.write" in console_access.capabilities(actor_roles)
    starter = session.get(User, (org_id, str((job.actor or {}).get("actor_id"))))
    if not may or starter is None or starter.status not in SIGN_IN_ALLOWED:
        raise jobs.PermanentJobError(STARTER_GONE)


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


def _preview_failed(session: Session, job: Job, _error: str) -> None:
    """A file that could not be previewed is not kept."""
    session.execute(
        delete(ImportUpload).where(ImportUpload.org_id == job.org_id, ImportUpload.job_id == job.id)
    )


jobs.register(jobs.JobKind(KIND, run=run_import, on_failure=_import_failed))
jobs.register(jobs.JobKind(PREVIEW, run=run_preview, on_failure=_preview_failed))
