"""Import users from a spreadsheet (``/admin/import``): template, preview per row, then import
as a job for ``scim-server worker``.

The preview reads the upload once and stages it (``user_import.jobs.stage``: a job held
back from the workers, the rows in ``import_rows``; no file is kept on this node) and
plans every row (create, update, unchanged, error with its reason) without writing a
user. **Import** queues the staged job; the worker applies each row through the same
code as a SCIM create or PATCH (``scim_server.user_import``), and the progress page
follows it (htmx polling, or a plain Refresh link), then offers every row's result as
CSV. Needs ``users.write``.
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
    """Each row's plan, before anything is written; the rows are staged for the import."""
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise InvalidValueError("Choose a .csv or .xlsx file.")
        found = sheets.read(
            upload.filename,
            upload.read(MAX_FILE_BYTES + 1),
            max_bytes=MAX_FILE_BYTES,
            max_rows=MAX_WEB_ROWS,
        )
        if not found:
            raise InvalidValueError("The file has a header but no rows.")
    except DomainError as err:
        return _upload_page(400, err.detail)
    org_id = person().org_id
    outcomes = import_rows.plan(db.session, org_id, found)
    counts = import_rows.summary(outcomes)
    job = None
    if counts["create"] or counts["update"]:
        job = import_jobs.stage(db.session, org_id, upload.filename, found)
    return render(
        "console/imports/preview.html",
        filename=upload.filename,
        listed=outcomes[:PREVIEW_ROWS],
        errors=[o for o in outcomes if o.action == "error"][:PREVIEW_ERRORS],
        total=len(outcomes),
        counts=counts,
        job_id=job.id if job else None,
        active_nav="console.imports.upload_form",
    )


# The upload may be larger than the app's request limit (SCIM_MAX_BODY_BYTES): the console
# reads this mark before it parses the form (blueprint.authenticate).
preview.max_upload_bytes = MAX_UPLOAD_BYTES  # type: ignore[attr-defined]


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
