"""Admin API for the provisioning log (``/api/v1/audit...``), for compliance teams.

Search, verify, timelines, reports and exports. Exports stream (constant
memory) and end with a manifest an auditor can use to reproduce and check
them, or, if they fail midway, with an error record (never a body that just
stops).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

from flask import Response, g, jsonify, request, stream_with_context
from marshmallow import EXCLUDE, Schema, fields, validate

from scim_server.admin.blueprint import bp
from scim_server.audit import queries
from scim_server.audit.queries import EventFilter, event_to_dict
from scim_server.db import db, utcnow

log = logging.getLogger(__name__)


class FilterArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    since = fields.AwareDateTime(load_default=None)
    until = fields.AwareDateTime(load_default=None)
    action = fields.String(load_default=None, validate=validate.Length(max=64))
    outcome = fields.String(load_default=None, validate=validate.OneOf(["success", "failure"]))
    actor = fields.String(load_default=None, validate=validate.Length(max=200))
    resource_id = fields.String(load_default=None, validate=validate.Length(max=64))
    user_name = fields.String(load_default=None, validate=validate.Length(max=512))
    external_id = fields.String(load_default=None, validate=validate.Length(max=512))
    request_id = fields.String(load_default=None, validate=validate.Length(max=128))


class SearchArgs(FilterArgs):
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


def _filter(args: dict[str, Any]) -> EventFilter:
    return EventFilter(**{k: args[k] for k in EventFilter.__dataclass_fields__})


@bp.get("/audit")
def list_audit() -> Response:
    """Newest first, cursor-paginated: pass ``next_cursor`` back as ``cursor``."""
    args = SearchArgs().load(request.args)
    events, next_cursor = queries.search(
        db.session, g.org_id, _filter(args), before_seq=args["cursor"], limit=args["limit"]
    )
    return jsonify(events=[event_to_dict(e) for e in events], next_cursor=next_cursor)


@bp.get("/audit/verify")
def verify_audit() -> tuple[Response, int]:
    result = queries.verify(db.session, g.org_id)
    return jsonify(result.as_dict()), 200 if result.ok else 409


@bp.get("/audit/timeline/<resource_id>")
def audit_timeline(resource_id: str) -> Response:
    """Every event about one user (or group), oldest first."""
    events = queries.timeline(db.session, g.org_id, resource_id)
    return jsonify(resource_id=resource_id, events=[event_to_dict(e) for e in events])


@bp.get("/audit/export")
def export_audit() -> Response:
    fmt = request.args.get("format", "ndjson")
    if fmt not in ("ndjson", "csv"):
        return jsonify(error="invalid_request", detail="format must be ndjson or csv"), 400  # type: ignore[return-value]
    flt = _filter(FilterArgs().load(request.args))
    factory = db.reader()
    org_id = g.org_id
    lines = export_lines(factory, org_id, flt, fmt)
    mimetype = "application/x-ndjson" if fmt == "ndjson" else "text/csv"
    resp = Response(stream_with_context(lines), mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="audit-{org_id}.{fmt}"'
    return resp


@bp.get("/audit/reports/deprovisioning")
def report_deprovisioning() -> Response:
    args = FilterArgs().load(request.args)
    rows = queries.deprovisioning(db.session, g.org_id, args["since"], args["until"])
    return jsonify(users=rows)


@bp.get("/audit/reports/failures")
def report_failures() -> Response:
    args = FilterArgs().load(request.args)
    return jsonify(failures=queries.failures(db.session, g.org_id, args["since"], args["until"]))


def export_lines(factory: Any, org_id: str, flt: EventFilter, fmt: str) -> Iterator[str]:
    """The export, line by line, ending with its manifest (parameters, count, range, chain head).

    A compliance export must never end silently short: if anything fails
    midway (the database goes away, a statement times out), the last line is
    an explicit error record saying how far it got, in place of the manifest.
    A body without either was cut in transit.
    """
    progress: dict[str, Any] = {"count": 0, "last_seq": None, "manifest": False}
    try:
        yield from _export_body(factory, org_id, flt, fmt, progress)
    except Exception as exc:
        log.exception("audit export for org %s failed after %s events", org_id, progress["count"])
        if progress["manifest"]:
            return  # complete already; only releasing the connection failed
        error = {
            "organization": org_id,
            "parameters": flt.as_dict(),
            "format": fmt,
            "detail": "The export failed before its end; it is incomplete. Run it again.",
            "reason": type(exc).__name__,
            "count": progress["count"],
            "last_seq": progress["last_seq"],
            "generated_at": utcnow().isoformat(),
        }
        if fmt == "csv":
            yield "# error " + json.dumps(error, sort_keys=True) + "\n"
        else:
            yield json.dumps({"error": error}, sort_keys=True) + "\n"


def _export_body(
    factory: Any, org_id: str, flt: EventFilter, fmt: str, progress: dict[str, Any]
) -> Iterator[str]:
    columns = [c.name for c in queries.AuditEvent.__table__.columns]
    with factory() as session:
        first = None
        if fmt == "csv":
            yield _csv_row(columns)
        for event in queries.stream(session, org_id, flt):
            doc = event_to_dict(event)
            if fmt == "csv":
                yield _csv_row([_cell(doc[c]) for c in columns])
            else:
                yield json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n"
            progress["count"] += 1
            first = event.seq if first is None else first
            progress["last_seq"] = event.seq
        head = queries.head(session, org_id)
        manifest = {
            "organization": org_id,
            "parameters": flt.as_dict(),
            "format": fmt,
            "count": progress["count"],
            "first_seq": first,
            "last_seq": progress["last_seq"],
            "chain_head": {"seq": head.seq, "hash": head.hash} if head else None,
            "generated_at": utcnow().isoformat(),
        }
        progress["manifest"] = True
        if fmt == "csv":
            yield "# manifest " + json.dumps(manifest, sort_keys=True) + "\n"
        else:
            yield json.dumps({"manifest": manifest}, sort_keys=True) + "\n"


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return "" if value is None else value


def _csv_row(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()
