"""Import users from a spreadsheet (``/admin/import``): template, preview per row, then import,
both as jobs for ``scim-server worker``.

The upload request only checks the file (``sheets.check``: type, header, size), keeps its
bytes in the database (``user_import.jobs.upload``; no file on this node's disk) and
queues a preview job; the preview page follows it (htmx polling, or a plain Refresh
link) until the worker has read the file and planned every row (create, update,
unchanged, error with its reason) without writing a user, then lists the first rows and
errors from ``import_rows``. **Import** queues the previewed job as the import; the
worker applies each row through the same code as a SCIM create or PATCH
(``scim_server.user_import``), and the progress page follows it, then offers every
row's result as CSV. Needs ``users.write``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from flask import Blueprint, Response, redirect, request, stream_with_context, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from scim_server.console.access import person, require
from scim_server.console.render import csv_cell, render
from scim_server.db import db
from scim_server.errors import DomainError, InvalidValueError
from scim_server.services import jobs
from scim_server.user_import import jobs as import_jobs
from scim_server.user_import import rows as import_rows
from scim_server.user_import import sheets

bp = Blueprint("imports", __name__, url_prefix="/import")

MAX_WEB_ROWS = 100_000
MAX_UPLOAD_BYTES = 32 * 1024 * 1024  # the request (file and form); the file itself: MAX_FILE_BYTES
MAX_FILE_BYTES = 30 * 1024 * 1024
PREVIEW_ROWS = 200  # rows listed on the preview page (the counts cover them all)
PREVIEW_ERRORS = 500


def _upload_page(status: int, error: str | None) -> Response:
    return render(
        "console/imports/upload.html",
        status=status,
        error=error,
        columns=sheets.COLUMNS,
        max_rows=MAX_WEB_ROWS,
        max_mib=MAX_FILE_BYTES // (1024 * 1024),
    )


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_err: RequestEntityTooLarge) -> Response:
    return _upload_page(
        413,
        f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: split it, or use "
        "scim-server import users on the server.",
    )


@bp.get("/")
@require("users.write")
def upload_form() -> Response:
    return _upload_page(200, None)


@bp.get("/template.<fmt>")
@require("users.write")
def template(fmt: str) -> Response:
    """The columns and one example row, as CSV or XLSX."""
    if fmt == "csv":
        resp = Response(sheets.template_csv(), mimetype="text/csv")
    elif fmt == "xlsx":
        resp = Response(
            sheets.template_xlsx(),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    else:
        return _upload_page(404, "No such template.")
    resp.headers["Content-Disposition"] = f'attachment; filename="users-template.{fmt}"'
    return resp


@bp.post("/preview")
@require("users.write")
def preview() -> Response:
    """Check the file quickly, keep it and queue its preview for the worker; follow it."""
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise InvalidValueError("Choose a .csv or .xlsx file.")
        data = upload.read(MAX_FILE_BYTES + 1)
        sheets.check(upload.filename, data, max_bytes=MAX_FILE_BYTES, max_rows=MAX_WEB_ROWS)
    except DomainError as err:
        return _upload_page(400, err.detail)
    job = import_jobs.upload(
        db.session, person().org_id, upload.filename, data, max_rows=MAX_WEB_ROWS
    )
    return redirect(url_for("console.imports.show_preview", job_id=job.id), code=303)  # type: ignore[return-value]


# The upload may be larger than the app's request limit (SCIM_MAX_BODY_BYTES): the console
# reads this mark before it parses the form (blueprint.authenticate).
preview.max_upload_bytes = MAX_UPLOAD_BYTES  # type: ignore[attr-defined]


@bp.get("/previews/<job_id>")
@require("users.write")
def show_preview(job_id: str) -> Response:
    """The preview job: while the worker reads and plans the file, its progress (htmx polls
    it); then each row's plan, read from ``import_rows`` a page at a time, and the Import
    button when a row would create or change someone. A failed preview shows why the file
    was refused, or that the server failed (never the exception: that is in the log)."""
    s = db.session
    org_id = person().org_id
    job = import_jobs.get_import(s, org_id, job_id)
    if job.kind == import_jobs.KIND:  # Import was pressed: the import's own page
        s.rollback()
        return redirect(url_for("console.imports.show_import", job_id=job_id), code=303)  # type: ignore[return-value]
    counts = {a: int((job.result or {}).get(a, 0)) for a in import_rows.ACTIONS}
    planned = job.state == "succeeded"
    listed = import_jobs.preview_rows(s, org_id, job_id, PREVIEW_ROWS) if planned else []
    errors = (
        import_jobs.preview_rows(s, org_id, job_id, PREVIEW_ERRORS, errors=True)
        if planned and counts["error"]
        else []
    )
    view = jobs.job_to_dict(job)
    phase = (job.checkpoint or {}).get("phase")
    refusal = import_jobs.refusal(job)
    s.rollback()
    return render(
        "console/imports/preview.html",
        block="preview",
        job=view,
        phase=phase,
        refusal=refusal,
        filename=job.params.get("filename"),
        listed=listed,
        errors=errors,
        total=job.progress_total or 0,
        counts=counts,
        active_nav="console.imports.upload_form",
    )


@bp.post("/<job_id>/start")
@require("users.write")
def start(job_id: str) -> Response:
    """Queue the staged import for the worker; follow it on its page."""
    import_jobs.start(db.session, person().org_id, job_id)
    return redirect(url_for("console.imports.show_import", job_id=job_id), code=303)  # type: ignore[return-value]


@bp.get("/jobs/<job_id>")
@require("users.write")
def show_import(job_id: str) -> Response:
    """The import's progress: rows done, created, updated, unchanged, refused (htmx polls it)."""
    s = db.session
    org_id = person().org_id
    job = import_jobs.get_import(s, org_id, job_id)
    if job.kind == import_jobs.PREVIEW:  # not started: its preview
        s.rollback()
        return redirect(url_for("console.imports.show_preview", job_id=job_id), code=303)  # type: ignore[return-value]
    if job.state == import_jobs.STAGED:
        s.rollback()
        raise InvalidValueError("This import was previewed but not started: upload the file again.")
    view = jobs.job_to_dict(job)
    counts = import_jobs.counts(job)
    refused = import_jobs.errors(s, org_id, job_id) if counts["error"] else []
    s.rollback()
    return render(
        "console/imports/progress.html",
        block="progress",
        job=view,
        filename=job.params.get("filename"),
        counts=counts,
        errors=refused,
        active_nav="console.imports.upload_form",
    )


RESULT_COLUMNS = ("line", "userName", "result", "reason", "user_id")


@bp.get("/jobs/<job_id>/results.csv")
@require("users.write")
def results(job_id: str) -> Response:
    """Every row and what became of it (streamed)."""
    s = db.session
    org_id = person().org_id
    import_jobs.get_import(s, org_id, job_id)  # 404 for anything else

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(RESULT_COLUMNS)
        for row in import_jobs.results(s, org_id, job_id):
            values = (row.line, row.values.get("userName"), row.action, row.reason, row.user_id)
            writer.writerow([csv_cell(v) for v in values])
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="import-{job_id}.csv"',
            "Cache-Control": "no-store",
        },
    )
