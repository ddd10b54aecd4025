"""The /Users endpoints (RFC 7644 §3): parse the request, call one service, render."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request

from scim_server.db import db
from scim_server.delivery import current_delivery
from scim_server.scim.body import json_body
from scim_server.scim.listing import list_of
from scim_server.scim.params import query_from_args, query_from_body
from scim_server.scim.patch import UserPatch, parse_patch_request
from scim_server.scim.preconditions import if_match, if_none_match, not_modified
from scim_server.scim.render import (
    no_content,
    projection_args,
    render_user,
    scim_response,
    write_projection,
)
from scim_server.scim.resources import UserReplacement, parse_resource
from scim_server.scim.schema import USER
from scim_server.services import users as user_service
from scim_server.services.common import etag
from scim_server.urls import scim_root


def list_users() -> Response:
    return list_of(USER, query_from_args(request.args, current_app.config))


def search_users() -> Response:
    return list_of(USER, query_from_body(json_body(), current_app.config))


def create_user() -> Response:
    doc = parse_resource(USER, json_body(), creating=True)
    projection = write_projection(USER)
    user = user_service.create_user(db.session, g.org_id, doc, delivery=current_delivery())
    db.read_after_write()
    body = render_user(user, *projection)
    return scim_response(
        body, 201, version=etag(user.version), location=f"{scim_root()}/Users/{user.id}"
    )


def get_user(user_id: str) -> Response:
    """The user and its extras in one statement on the request's connection, no Session
    (``db.read_connection``; the token lookup read there too: ``auth.CONNECTION_READS``)."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # once, not per use
    user, extras = user_service.read_user_and_extras(
        db.read_connection(), g._get_current_object().org_id, user_id
    )
    version = etag(user.version)
    return not_modified(version, req) or scim_response(
        render_user(user, *projection_args(req), extras=extras), version=version
    )


def replace_user(user_id: str) -> Response:
    change = UserReplacement(parse_resource(USER, json_body(), creating=False))
    projection = write_projection(USER)
    user = user_service.update_user(
        db.session,
        g.org_id,
        user_id,
        change,
        if_match(),
        if_none_match=if_none_match(),
        hashing=current_delivery().hashing,
    )
    db.read_after_write()
    return scim_response(render_user(user, *projection), version=etag(user.version))


def patch_user(user_id: str) -> Response:
    change = UserPatch(user_id, parse_patch_request(json_body()))
    projection = write_projection(USER)
    user = user_service.update_user(
        db.session,
        g.org_id,
        user_id,
        change,
        if_match(),
        action="user.patch",
        if_none_match=if_none_match(),
        hashing=current_delivery().hashing,
    )
    db.read_after_write()
    return scim_response(render_user(user, *projection), version=etag(user.version))


def delete_user(user_id: str) -> Response:
    user_service.delete_user(
        db.session, g.org_id, user_id, if_match(), if_none_match=if_none_match()
    )
    return no_content()


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/Users", view_func=list_users, methods=["GET"])
    bp.add_url_rule("/Users/.search", view_func=search_users, methods=["POST"])
    bp.add_url_rule("/Users", view_func=create_user, methods=["POST"])
    bp.add_url_rule("/Users/<user_id>", view_func=get_user, methods=["GET"])
    bp.add_url_rule("/Users/<user_id>", view_func=replace_user, methods=["PUT"])
    bp.add_url_rule("/Users/<user_id>", view_func=patch_user, methods=["PATCH"])
    bp.add_url_rule("/Users/<user_id>", view_func=delete_user, methods=["DELETE"])
