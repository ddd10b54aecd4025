"""Admin API for the provisioning log (``/api/v1/audit...``), for compliance teams.

Search, verify, timelines, reports and exports. Exports stream (constant
memory) and end with a manifest an auditor can use to reproduce and check
them, or, if they fail midway, with an error record (never a body that just
stops).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, g, jsonify, request, stream_with_context
from marshmallow import EXCLUDE, Schema, fields, validate

from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited
from scim_server.audit import checkpoints, queries
from scim_server.audit.export import export_lines
from scim_server.audit.queries import EventFilter, event_to_dict
from scim_server.db import db

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


@bp.post("/audit/checkpoints")
@audited("audit.checkpoint")
def create_checkpoint() -> tuple[Response, int]:
    """Sign a checkpoint of the chain head now: the JSON document to file outside the server."""
    return jsonify(checkpoints.create(db.session, g.org_id)), 201


@bp.get("/audit/checkpoints")
def list_checkpoints() -> Response:
    """The newest signed checkpoints (periodic, purge, manual), newest first."""
    return jsonify(checkpoints=checkpoints.list_documents(db.session, g.org_id))
