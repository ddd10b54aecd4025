"""The /Groups endpoints (RFC 7644 §3): parse the request, call one service, render."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request

from scim_server.db import db
from scim_server.scim.body import json_body
from scim_server.scim.listing import list_of
from scim_server.scim.params import query_from_args, query_from_body
from scim_server.scim.patch import GroupPatch, parse_patch_request
from scim_server.scim.preconditions import if_match, if_none_match, not_modified
from scim_server.scim.render import (
    no_content,
    projection_args,
    render_group,
    scim_response,
    wants,
    write_projection,
)
from scim_server.scim.resources import GroupReplacement, check_member_count, parse_resource
from scim_server.scim.schema import GROUP
from scim_server.services import groups as group_service
from scim_server.services.common import etag
from scim_server.urls import scim_root


def max_members() -> int:
    """SCIM_MAX_INLINE_MEMBERS: members named per request, and returned inline."""
    limit: int = current_app.config["MAX_INLINE_MEMBERS"]
    return limit


def list_groups() -> Response:
    return list_of(GROUP, query_from_args(request.args, current_app.config))


def search_groups() -> Response:
    return list_of(GROUP, query_from_body(json_body(), current_app.config))


def create_group() -> Response:
    doc = parse_resource(GROUP, json_body(), creating=True)
    check_member_count(len(doc.get("members") or ()), max_members())
    projection = write_projection(GROUP)
    group = group_service.create_group(db.session, g.org_id, doc)
    body = render_group(group, *projection)
    return scim_response(
        body, 201, version=etag(group.version), location=f"{scim_root()}/Groups/{group.id}"
    )


def get_group(group_id: str) -> Response:
    group = group_service.read_group(db.session, g.org_id, group_id)
    version = etag(group.version)
    return not_modified(version) or scim_response(
        render_group(group, *projection_args()), version=version
    )


def replace_group(group_id: str) -> Response:
    doc = parse_resource(GROUP, json_body(), creating=False)
    check_member_count(len(doc.get("members") or ()), max_members())
    projection = write_projection(GROUP)
    group = group_service.update_group(
        db.session,
        g.org_id,
        group_id,
        GroupReplacement(doc),
        if_match(),
        if_none_match=if_none_match(),
    )
    return scim_response(render_group(group, *projection), version=etag(group.version))


def patch_group(group_id: str) -> Response:
    change = GroupPatch(group_id, parse_patch_request(json_body()), max_members())
    attributes, excluded = write_projection(GROUP)
    answered = attributes is not None or excluded is not None
    # A group too large to list is refused before the change commits, not after: counted
    # only when the answer lists the members (an add to a large group stays cheap).
    limit = max_members() if answered and wants("members", attributes, excluded) else None
    group = group_service.update_group(
        db.session,
        g.org_id,
        group_id,
        change,
        if_match(),
        action="group.patch",
        if_none_match=if_none_match(),
        inline_limit=limit,
    )
    version = etag(group.version)
    if not answered:
        # RFC 7644 §3.5.2: 204 is allowed; it spares rendering a large member list.
        return no_content(version)
    return scim_response(render_group(group, attributes, excluded), version=version)


def delete_group(group_id: str) -> Response:
    group_service.delete_group(
        db.session, g.org_id, group_id, if_match(), if_none_match=if_none_match()
    )
    return no_content()


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/Groups", view_func=list_groups, methods=["GET"])
    bp.add_url_rule("/Groups/.search", view_func=search_groups, methods=["POST"])
    bp.add_url_rule("/Groups", view_func=create_group, methods=["POST"])
    bp.add_url_rule("/Groups/<group_id>", view_func=get_group, methods=["GET"])
    bp.add_url_rule("/Groups/<group_id>", view_func=replace_group, methods=["PUT"])
    bp.add_url_rule("/Groups/<group_id>", view_func=patch_group, methods=["PATCH"])
    bp.add_url_rule("/Groups/<group_id>", view_func=delete_group, methods=["DELETE"])
