"""Admin API for the events feed (``GET /api/v1/events``): what changed, in order, from a cursor.

``after`` is a ``next_cursor`` from an earlier page, ``now`` (start from the
newest event, for a product that only wants what happens next), or absent
(from the oldest retained event). A cursor whose next events are past
retention is a 410: the reader must start again.
"""

from __future__ import annotations

from flask import Response, g, jsonify, request
from marshmallow import EXCLUDE, Schema, fields, validate

from scim_server.admin.apidoc import Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import load, text
from scim_server.db import db
from scim_server.events import feed


class EventArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    after = text(40, min_length=1, load_default=None)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    types = text(2000, min_length=1, load_default=None)


class ProductEventOut(Out):
    """One change: its type, when, and ``data`` (actor, resource, state, before/after)."""

    id = always(fields.String)
    type = always(fields.String)
    organization = always(fields.String)
    occurred_at = always(fields.String)
    position = always(fields.Integer)
    cursor = always(fields.String)
    data = always(fields.Dict)


class ProductEventPageOut(Out):
    events = always(fields.List, cls_or_instance=fields.Nested(ProductEventOut))
    next_cursor = nullable(fields.String)


@bp.get("/events")
@api_doc(tag="events", query=EventArgs, response=ProductEventPageOut)
def list_events() -> Response:
    """``{"events": [...], "next_cursor": ...}``; ``types`` is a comma-separated list."""
    args = load(EventArgs, request.args)
    types = [t.strip() for t in args["types"].split(",") if t.strip()] if args["types"] else []
    events, next_cursor = feed.list_events(
        db.session, g.org_id, after=args["after"], limit=args["limit"], types=types
    )
    return jsonify(events=events, next_cursor=next_cursor)
