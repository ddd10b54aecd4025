"""Import users from a spreadsheet (``/admin/import``): template, preview per row, then import.

The preview reads the file and plans every row (create, update, unchanged,
error with its reason) without writing anything. The import then runs in
chunks of ``CHUNK`` rows, one request each, so the page shows progress and no
request runs long: the rows travel back with each chunk (the file is never
stored), and every row is planned again when applied, through the same code
as a SCIM create or PATCH (``scim_server.user_import``). Needs ``users.write``.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from scim_server.console.access import person, require
from scim_server.console.render import render
from scim_server.db import db
from scim_server.errors import DomainError, InvalidValueError
from scim_server.user_import import rows as import_rows
from scim_server.user_import import sheets

bp = Blueprint("imports", __name__, url_prefix="/import")

CHUNK = 25
MAX_WEB_ROWS = 2000
MAX_ERRORS = 200


@bp.get("/")
@require("users.write")
def upload_form() -> Response:
    return render("console/imports/upload.html", error=None, columns=sheets.COLUMNS)


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
        return render(
            "console/imports/upload.html",
            status=404,
            error="No such template.",
            columns=sheets.COLUMNS,
        )
    resp.headers["Content-Disposition"] = f'attachment; filename="users-template.{fmt}"'
    return resp


@bp.post("/preview")
@require("users.write")
def preview() -> Response:
    """Each row's plan, before anything is written."""
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise InvalidValueError("Choose a .csv or .xlsx file.")
        found = sheets.read(upload.filename, upload.read(sheets.MAX_BYTES + 1))
        if not found:
            raise InvalidValueError("The file has a header but no rows.")
        if len(found) > MAX_WEB_ROWS:
            raise InvalidValueError(
                f"{len(found)} rows: the console imports at most {MAX_WEB_ROWS} at once. "
                "Split the file, or use scim-server import users."
            )
    except DomainError as err:
        return render(
            "console/imports/upload.html", status=400, error=err.detail, columns=sheets.COLUMNS
        )
    outcomes = import_rows.plan(db.session, person().org_id, found)
    return render(
        "console/imports/preview.html",
        filename=upload.filename,
        outcomes=outcomes,
        counts=import_rows.summary(outcomes),
        rows_json=json.dumps([{"line": r.line, "values": r.values} for r in found]),
        active_nav="console.imports.upload_form",
    )


def _carried(raw: str) -> list[sheets.Row]:
    """The rows the preview handed to the page; anything else is refused."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidValueError("The import form was damaged: upload the file again.") from None
    ok = isinstance(data, list) and len(data) <= MAX_WEB_ROWS
    found = []
    for item in data if ok else []:
        values = item.get("values") if isinstance(item, dict) else None
        line = item.get("line") if isinstance(item, dict) else None
        if not (
            isinstance(line, int)
            and isinstance(values, dict)
            and all(k in sheets.COLUMNS and isinstance(v, str) for k, v in values.items())
        ):
            ok = False
            break
        found.append(sheets.Row(line, values))
    if not ok:
        raise InvalidValueError("The import form was damaged: upload the file again.")
    return found


def _number(name: str) -> int:
    raw = request.form.get(name, "0")
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidValueError("The import form was damaged: upload the file again.")
    return int(raw)


@bp.post("/run")
@require("users.write")
def run_chunk() -> Response:
    """Import the next CHUNK rows from ``start``; answer with the progress and the next step."""
    rows_json = request.form.get("rows", "")
    found = _carried(rows_json)
    start = min(_number("start"), len(found))
    counts = {a: _number(a) for a in import_rows.ACTIONS}
    try:
        errors: list[dict[str, Any]] = json.loads(request.form.get("errors") or "[]")
        assert isinstance(errors, list)
    except (ValueError, AssertionError):
        raise InvalidValueError("The import form was damaged: upload the file again.") from None
    chunk = found[start : start + CHUNK]
    for outcome in import_rows.apply_rows(db.session, person().org_id, chunk):
        counts[outcome.action] += 1
        if outcome.action == "error" and len(errors) < MAX_ERRORS:
            errors.append(outcome.as_dict())
    done = start + len(chunk)
    return render(
        "console/imports/progress.html",
        block="progress",
        done=done,
        total=len(found),
        counts=counts,
        errors=errors,
        rows_json=rows_json,
        errors_json=json.dumps(errors),
        active_nav="console.imports.upload_form",
    )
