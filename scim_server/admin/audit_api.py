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
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from scim_server.admin.apidoc import Content, Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import MAX_INT, audited, instant
from scim_server.audit import checkpoints, queries
from scim_server.audit.export import export_lines
from scim_server.audit.queries import EventFilter, PersonFilter, event_to_dict
from scim_server.db import db
from scim_server.services import user_lookup

log = logging.getLogger(__name__)


class FilterArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    since = instant(load_default=None)
    until = instant(load_default=None)
    action = fields.String(load_default=None, validate=validate.Length(max=64))
    outcome = fields.String(load_default=None, validate=validate.OneOf(["success", "failure"]))
    actor = fields.String(load_default=None, validate=validate.Length(max=200))
    resource_id = fields.String(load_default=None, validate=validate.Length(max=64))
    user_name = fields.String(load_default=None, validate=validate.Length(max=512))
    external_id = fields.String(load_default=None, validate=validate.Length(max=512))
    request_id = fields.String(load_default=None, validate=validate.Length(max=128))

    @validates_schema
    def _range(self, data: dict[str, Any], **_kw: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and until <= since:
            raise ValidationError("The end must be after the start.", "until")


class SearchArgs(FilterArgs):
    # seq is a 32-bit column: a larger cursor is a 400, not an overflow in the database.
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ExportArgs(FilterArgs):
    format = fields.String(load_default="ndjson", validate=validate.OneOf(["ndjson", "csv"]))


class EventOut(Out):
    """One event of the log, with its place in the hash chain."""

    org_id = always(fields.String)
    seq = always(fields.Integer)
    occurred_at = always(fields.String)
    received_at = nullable(fields.String)
    actor_type = always(fields.String)
    actor_id = nullable(fields.String)
    actor_name = nullable(fields.String)
    source_ip = nullable(fields.String)
    user_agent = nullable(fields.String)
    request_id = nullable(fields.String)
    correlation_id = nullable(fields.String)
    action = always(fields.String)
    resource_type = nullable(fields.String)
    resource_id = nullable(fields.String)
    external_id = nullable(fields.String)
    user_name = nullable(fields.String)
    outcome = always(fields.String)
    status = nullable(fields.Integer)
    scim_type = nullable(fields.String)
    detail = nullable(fields.String)
    changes = nullable(fields.Dict)
    explanation = nullable(fields.Dict)
    prev_hash = always(fields.String)
    hash = always(fields.String)


class EventPageOut(Out):
    """Events newest first; pass ``next_cursor`` back as ``cursor``."""

    events = always(fields.List, cls_or_instance=fields.Nested(EventOut))
    next_cursor = nullable(fields.Integer)


class TimelineOut(Out):
    """Every event about one resource, oldest first."""

    resource_id = always(fields.String)
    events = always(fields.List, cls_or_instance=fields.Nested(EventOut))


class VerificationOut(Out):
    """The chain checked (200), or the first broken event and why (409)."""

    ok = always(fields.Boolean)
    org_id = always(fields.String)
    checked = always(fields.Integer)
    first_seq = nullable(fields.Integer)
    last_seq = nullable(fields.Integer)
    head_hash = nullable(fields.String)
    broken_seq = nullable(fields.Integer)
    reason = nullable(fields.String)
    checkpoints = always(fields.Integer)
    problems = always(fields.List, cls_or_instance=fields.String())


class DeprovisioningOut(Out):
    """Users deactivated or deleted, with the latency from request to effect."""

    users = always(fields.List, cls_or_instance=fields.Dict())


class FailuresOut(Out):
    """Failed operations grouped by action, status and scimType."""

    failures = always(fields.List, cls_or_instance=fields.Dict())


class CheckpointOut(Out):
    """A signed checkpoint: file it outside the server; ``audit.offline`` checks it."""

    type = always(fields.String)
    organization = always(fields.String)
    seq = always(fields.Integer)
    hash = always(fields.String)
    kind = always(fields.String)
    created_at = always(fields.String)
    key_id = always(fields.String)
    signature = always(fields.String)


class CheckpointListOut(Out):
    """The newest signed checkpoints, newest first."""

    checkpoints = always(fields.List, cls_or_instance=fields.Nested(CheckpointOut))


EXPORT = Content(("application/x-ndjson", "text/csv"))


def _filter(args: dict[str, Any]) -> EventFilter:
    """The filter asked for. A userName is compared as the server compares userNames (case,
    Unicode forms: the accounts so named now, as the console's search does), and also
    exactly as each event kept it (the name of its time)."""
    values = {k: args[k] for k in EventFilter.__dataclass_fields__}
    if not values.get("user_name"):
        return EventFilter(**values)
    accounts = user_lookup.by_user_names(db.session, g.org_id, [values["user_name"]])
    ids = tuple(sorted(account.id for account in accounts.values()))
    return PersonFilter(**values, account_ids=ids or None)


@bp.get("/audit")
@api_doc(tag="audit", query=SearchArgs, response=EventPageOut)
def list_audit() -> Response:
    """Newest first, cursor-paginated: pass ``next_cursor`` back as ``cursor``."""
    args = SearchArgs().load(request.args)
    events, next_cursor = queries.search(
        db.session, g.org_id, _filter(args), before_seq=args["cursor"], limit=args["limit"]
    )
    return jsonify(events=[event_to_dict(e) for e in events], next_cursor=next_cursor)


@bp.get("/audit/verify")
@api_doc(tag="audit", responses={200: VerificationOut, 409: VerificationOut})
def verify_audit() -> tuple[Response, int]:
    result = queries.verify(db.session, g.org_id)
    return jsonify(result.as_dict()), 200 if result.ok else 409


@bp.get("/audit/timeline/<resource_id>")
@api_doc(tag="audit", response=TimelineOut)
def audit_timeline(resource_id: str) -> Response:
    """Every event about one user (or group), oldest first."""
    events = queries.timeline(db.session, g.org_id, resource_id)
    return jsonify(resource_id=resource_id, events=[event_to_dict(e) for e in events])


@bp.get("/audit/export")
@api_doc(tag="audit", query=ExportArgs, response=EXPORT)
def export_audit() -> Response:
    """Every matching event oldest first, then the signed manifest (or an error record)."""
    args = ExportArgs().load(request.args)
    fmt = args.pop("format")
    flt = _filter(args)
    factory = db.reader()
    org_id = g.org_id
    lines = export_lines(factory, org_id, flt, fmt)
    mimetype = "application/x-ndjson" if fmt == "ndjson" else "text/csv"
    resp = Response(stream_with_context(lines), mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="audit-{org_id}.{fmt}"'
    return resp


@bp.get("/audit/reports/deprovisioning")
@api_doc(tag="audit", query=FilterArgs, response=DeprovisioningOut)
def report_deprovisioning() -> Response:
    args = FilterArgs().load(request.args)
    rows = queries.deprovisioning(db.session, g.org_id, args["since"], args["until"])
    return jsonify(users=rows)


@bp.get("/audit/reports/failures")
@api_doc(tag="audit", query=FilterArgs, response=FailuresOut)
def report_failures() -> Response:
    args = FilterArgs().load(request.args)
    return jsonify(failures=queries.failures(db.session, g.org_id, args["since"], args["until"]))


@bp.post("/audit/checkpoints")
@audited("audit.checkpoint")
@api_doc(tag="audit", response=CheckpointOut, status=201)
def create_checkpoint() -> tuple[Response, int]:
    """Sign a checkpoint of the chain head now: the JSON document to file outside the server."""
    return jsonify(checkpoints.create(db.session, g.org_id)), 201


@bp.get("/audit/checkpoints")
@api_doc(tag="audit", response=CheckpointListOut)
def list_checkpoints() -> Response:
    """The newest signed checkpoints (periodic, purge, manual), newest first."""
    return jsonify(checkpoints=checkpoints.list_documents(db.session, g.org_id))
