"""The SCIM blueprint: parse and validate, call one service, render."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, request

from scim_server import jsonfast
from scim_server.db import db
from scim_server.scim import audit_hooks, discovery
from scim_server.scim.body import json_body
from scim_server.scim.bulk import parse_bulk_request, run_bulk
from scim_server.scim.errors import (
    SCIM_CONTENT_TYPE,
    InvalidFilterError,
    InvalidValueError,
    NotFoundError,
    ScimError,
    TooManyError,
    UnauthorizedError,
    register_error_handlers,
)
from scim_server.scim.filter_ast import AttrPath, PathError
from scim_server.scim.filter_parser import parse_filter, parse_path
from scim_server.scim.filters import FilterCompiler, member_condition, sort_expression
from scim_server.scim.params import ListQuery, query_from_args, query_from_body
from scim_server.scim.patch import apply_patch, parse_patch_request
from scim_server.scim.render import group_to_scim, list_response, user_to_scim
from scim_server.scim.resources import check_immutable, parse_resource, project, split_param
from scim_server.scim.schema import GROUP, RESOURCE_TYPES, USER, ResourceType
from scim_server.services import groups as group_service
from scim_server.services import tokens as token_service
from scim_server.services import users as user_service
from scim_server.services.common import etag
from scim_server.services.groups import MemberChange
from scim_server.services.paging import page, page_all
from scim_server.urls import scim_root

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")
register_error_handlers(bp)
bp.after_request(audit_hooks.record_refusal)

PUBLIC_ENDPOINTS = {
    "scim.service_provider_config",
    "scim.list_resource_types",
    "scim.get_resource_type",
    "scim.list_schemas",
    "scim.get_schema",
}


@bp.before_request
def authenticate() -> None:
    """Resolve the bearer token to its organization (RFC 7644 §2, RFC 6750)."""
    # PostgreSQL text cannot hold NUL: refuse it in the URL before it reaches a query.
    if "\x00" in request.path or any("\x00" in v for v in request.args.values()):
        raise InvalidValueError("NUL characters are not allowed in the URL.")
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise UnauthorizedError("A bearer token is required (Authorization: Bearer <token>).")
    reading = request.method in ("GET", "HEAD")
    if reading:
        db.use_statement_reads()  # the SCIM reads never write
    session = db.session
    token = token_service.authenticate(session, secret.strip())
    if token is None:
        raise UnauthorizedError("The bearer token is invalid or has been revoked.")
    g.org_id = token.org_id
    g.token_id = token.id
    audit_hooks.begin(token.id, token.name)
    if session.in_transaction() and not reading:
        # Write services begin their own transactions; a read goes on in this one
        # (one BEGIN and one COMMIT fewer per read).
        session.commit()


# -- helpers -------------------------------------------------------------------


def scim_response(
    doc: Any, status: int = 200, *, version: str | None = None, location: str | None = None
) -> Response:
    resp = Response(jsonfast.dumps_bytes(doc), status=status, mimetype=SCIM_CONTENT_TYPE)
    if version:
        resp.headers["ETag"] = version
    if location:
        resp.headers["Location"] = location
    return resp


def if_match() -> list[str] | None:
    raw = request.headers.get("If-Match")
    return [t.strip() for t in raw.split(",")] if raw else None


def projection_args() -> tuple[list[str] | None, list[str] | None]:
    """``attributes`` / ``excludedAttributes`` on single-resource responses (RFC 7644 §3.9)."""
    return split_param(request.args.get("attributes")), split_param(
        request.args.get("excludedAttributes")
    )


def wants(name: str, attributes: list[str] | None, excluded: list[str] | None) -> bool:
    """Would the response include attribute ``name``? Saves loading what is not returned."""

    def base(path: str) -> str:
        return path.lower().rsplit(":", 1)[-1].split(".")[0].split("[")[0]

    if attributes:
        return any(base(a) == name for a in attributes)
    return not any(base(a) == name for a in excluded or [])


def not_modified(version: str) -> Response | None:
    # RFC 7232 §3.2 / RFC 7644 §3.14: If-None-Match on a read.
    raw = request.headers.get("If-None-Match")
    if raw and (raw.strip() == "*" or version in [t.strip() for t in raw.split(",")]):
        resp = Response(status=304)
        resp.headers["ETag"] = version
        return resp
    return None


def render_user(
    user: Any,
    attributes: list[str] | None,
    excluded: list[str] | None,
    groups: list[tuple[str, str]] | None = None,
    product: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One user; a list page passes what it read for the whole page (``groups``, ``product``)."""
    if product is None:
        # One user: its groups, roles and license names in one round trip.
        found, roles, names = user_service.extras_of_one(db.session, g.org_id, user)
        groups = found if wants("groups", attributes, excluded) else None
        product = user_service.product_view(
            db.session, g.org_id, [user], roles={user.id: roles}, license_names=names
        )[user.id]
    return project(USER, user_to_scim(user, groups, scim_root(), product), attributes, excluded)


def render_group(
    group: Any, attributes: list[str] | None, excluded: list[str] | None
) -> dict[str, Any]:
    members = None
    if wants("members", attributes, excluded):
        limit = current_app.config["MAX_INLINE_MEMBERS"]
        members = group_service.members_of(db.session, g.org_id, group.id, limit=limit + 1)
        if len(members) > limit:
            raise TooManyError(
                f"This group has more than {limit} members, too many to return inline. "
                "Read it with excludedAttributes=members and look members up with "
                'filter=members[value eq "<id>"].'
            )
    return project(GROUP, group_to_scim(group, members, scim_root()), attributes, excluded)


def check_member_count(count: int) -> None:
    """One request names at most SCIM_MAX_INLINE_MEMBERS members (POST, PUT, PATCH, Bulk).

    The same number bounds what a GET returns inline, so a group written in one
    request can always be read back in one; larger groups grow by further PATCH
    requests. Checked before anything is written.
    """
    limit = current_app.config["MAX_INLINE_MEMBERS"]
    if count > limit:
        raise InvalidValueError(
            f"This request names {count} group members; at most {limit} are accepted per "
            "request (SCIM_MAX_INLINE_MEMBERS). Add the others with further PATCH requests."
        )


def render(
    rt: ResourceType, obj: Any, attributes: list[str] | None, excluded: list[str] | None
) -> dict[str, Any]:
    if rt is USER:
        return render_user(obj, attributes, excluded)
    return render_group(obj, attributes, excluded)


# -- queries -------------------------------------------------------------------


def sort_path(text: str) -> AttrPath:
    """``sortBy`` is a plain attribute path (RFC 7644 §3.4.2.3): no filter, no value path."""
    try:
        parsed = parse_path(text)
    except PathError:
        raise InvalidFilterError(f"sortBy {text!r} is not an attribute path.") from None
    if parsed.filter is not None or parsed.value_sub is not None or not parsed.path.attr:
        raise InvalidFilterError(f"sortBy {text!r} must name one attribute, without a filter.")
    return parsed.path


def run_query(rt: ResourceType, query: ListQuery) -> tuple[int, list[dict[str, Any]]]:
    session = db.session
    compiler = FilterCompiler(rt, g.org_id)
    where = compiler.compile(parse_filter(query.filter)) if query.filter else None
    model = compiler.model
    # Refuse a bad attribute list before the query, even if the page will be empty.
    project(rt, {}, query.attributes, query.excluded)
    offset = query.start_index - 1
    if where is None and not query.sort_by:
        total, rows = page_all(session, model, rt.name, g.org_id, offset, query.count)
    else:
        order: list[Any] = []
        if query.sort_by:
            expr = sort_expression(rt, g.org_id, sort_path(query.sort_by))
            # RFC 7644 §3.4.2.3: unassigned values sort last ascending, first descending.
            order.append(expr.desc().nulls_first() if query.descending else expr.asc().nulls_last())
        order += [model.created_at, model.id]
        total, rows = page(session, model, g.org_id, where, order, offset, query.count)
    if rt is USER:
        groups = None
        if rows and wants("groups", query.attributes, query.excluded):
            groups = user_service.groups_of(session, g.org_id, [u.id for u in rows])
        product = user_service.product_view(session, g.org_id, rows) if rows else {}
        docs = [
            render_user(
                u, query.attributes, query.excluded, groups[u.id] if groups else [], product[u.id]
            )
            for u in rows
        ]
    else:
        docs = [render_group(grp, query.attributes, query.excluded) for grp in rows]
    return total, docs


def list_of(rt: ResourceType, query: ListQuery) -> Response:
    total, docs = run_query(rt, query)
    return scim_response(list_response(docs, total, query.start_index))


# -- Users -------------------------------------------------------------------------


@bp.get("/Users")
def list_users() -> Response:
    return list_of(USER, query_from_args(request.args, current_app.config))


@bp.post("/Users/.search")
def search_users() -> Response:
    return list_of(USER, query_from_body(json_body(), current_app.config))


@bp.post("/Users")
def create_user() -> Response:
    doc = parse_resource(USER, json_body(), creating=True)
    user = user_service.create_user(db.session, g.org_id, doc)
    body = render_user(user, *projection_args())
    return scim_response(
        body, 201, version=etag(user.version), location=f"{scim_root()}/Users/{user.id}"
    )


@bp.get("/Users/<user_id>")
def get_user(user_id: str) -> Response:
    user = user_service.read_user(db.session, g.org_id, user_id)
    version = etag(user.version)
    return not_modified(version) or scim_response(
        render_user(user, *projection_args()), version=version
    )


@bp.put("/Users/<user_id>")
def replace_user(user_id: str) -> Response:
    doc = parse_resource(USER, json_body(), creating=False)

    def mutate(old: dict[str, Any]) -> dict[str, Any]:
        check_immutable(USER, old, doc)
        if "active" not in doc:
            # RFC 7644 §3.5.1: an omitted attribute MAY be taken as not asserted. For
            # `active` it must be: read as true it would reactivate a leaver.
            return {**doc, "active": old.get("active", True)}
        return doc

    user = user_service.update_user(db.session, g.org_id, user_id, mutate, if_match())
    return scim_response(render_user(user, *projection_args()), version=etag(user.version))


@bp.patch("/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    ops = parse_patch_request(json_body())

    def mutate(old: dict[str, Any]) -> dict[str, Any]:
        patched = apply_patch(USER, old, ops, resource_id=user_id).doc
        new = parse_resource(USER, {"schemas": [USER.core], **patched}, creating=False)
        check_immutable(USER, old, new)
        return new

    user = user_service.update_user(
        db.session, g.org_id, user_id, mutate, if_match(), action="user.patch"
    )
    return scim_response(render_user(user, *projection_args()), version=etag(user.version))


@bp.delete("/Users/<user_id>")
def delete_user(user_id: str) -> Response:
    user_service.delete_user(db.session, g.org_id, user_id, if_match())
    return Response(status=204)


# -- Groups ------------------------------------------------------------------------


@bp.get("/Groups")
def list_groups() -> Response:
    return list_of(GROUP, query_from_args(request.args, current_app.config))


@bp.post("/Groups/.search")
def search_groups() -> Response:
    return list_of(GROUP, query_from_body(json_body(), current_app.config))


@bp.post("/Groups")
def create_group() -> Response:
    doc = parse_resource(GROUP, json_body(), creating=True)
    check_member_count(len(doc.get("members") or ()))
    group = group_service.create_group(db.session, g.org_id, doc)
    body = render_group(group, *projection_args())
    return scim_response(
        body, 201, version=etag(group.version), location=f"{scim_root()}/Groups/{group.id}"
    )


@bp.get("/Groups/<group_id>")
def get_group(group_id: str) -> Response:
    group = group_service.get_group(db.session, g.org_id, group_id)
    version = etag(group.version)
    return not_modified(version) or scim_response(
        render_group(group, *projection_args()), version=version
    )


@bp.put("/Groups/<group_id>")
def replace_group(group_id: str) -> Response:
    doc = parse_resource(GROUP, json_body(), creating=False)
    check_member_count(len(doc.get("members") or ()))

    def mutate(old: dict[str, Any]) -> tuple[dict[str, Any], list[MemberChange]]:
        check_immutable(GROUP, old, doc)
        members = tuple(doc.get("members") or ())
        return doc, [MemberChange("replace", members)]

    group = group_service.update_group(db.session, g.org_id, group_id, mutate, if_match())
    return scim_response(render_group(group, *projection_args()), version=etag(group.version))


@bp.patch("/Groups/<group_id>")
def patch_group(group_id: str) -> Response:
    ops = parse_patch_request(json_body())
    org_id = g.org_id

    def mutate(old: dict[str, Any]) -> tuple[dict[str, Any], list[MemberChange]]:
        result = apply_patch(GROUP, old, ops, resource_id=group_id)
        check_member_count(sum(len(c.values) for c in result.members))
        new = parse_resource(GROUP, {"schemas": [GROUP.core], **result.doc}, creating=False)
        check_immutable(GROUP, old, new)
        changes = [
            MemberChange(c.kind, c.values, member_condition(org_id, c.where))
            if c.kind == "remove_where"
            else c
            for c in result.members
        ]
        return new, changes

    group = group_service.update_group(
        db.session, g.org_id, group_id, mutate, if_match(), action="group.patch"
    )
    attributes, excluded = projection_args()
    version = etag(group.version)
    if attributes is None and excluded is None:
        # RFC 7644 §3.5.2: 204 is allowed; it spares rendering a large member list.
        resp = Response(status=204)
        resp.headers["ETag"] = version
        return resp
    return scim_response(render_group(group, attributes, excluded), version=version)


@bp.delete("/Groups/<group_id>")
def delete_group(group_id: str) -> Response:
    group_service.delete_group(db.session, g.org_id, group_id, if_match())
    return Response(status=204)


# -- root search and bulk ----------------------------------------------------------------


@bp.post("/.search")
def search_all() -> Response:
    """RFC 7644 §3.4.3: a search across all resource types (Users first, then Groups)."""
    query = query_from_body(json_body(), current_app.config)
    results: list[dict[str, Any]] = []
    total = 0
    errors: list[ScimError] = []
    skip = query.start_index - 1
    for rt in (USER, GROUP):
        try:
            count_only = ListQuery(
                query.filter,
                query.sort_by,
                query.descending,
                1,
                0,
                query.attributes,
                query.excluded,
            )
            rt_total, _ = run_query(rt, count_only)
        except ScimError as err:
            errors.append(err)
            continue
        want = query.count - len(results)
        if want > 0 and skip < rt_total:
            sub = ListQuery(
                query.filter,
                query.sort_by,
                query.descending,
                skip + 1,
                want,
                query.attributes,
                query.excluded,
            )
            results += run_query(rt, sub)[1]
        skip = max(0, skip - rt_total)
        total += rt_total
    if len(errors) == 2:
        raise errors[0]
    return scim_response(list_response(results, total, query.start_index))


@bp.post("/Bulk")
def bulk() -> Response:
    cfg = current_app.config
    if request.content_length and request.content_length > cfg["BULK_MAX_PAYLOAD_BYTES"]:
        raise ScimError(
            f"The bulk request is larger than {cfg['BULK_MAX_PAYLOAD_BYTES']} bytes "
            "(SCIM_BULK_MAX_PAYLOAD_BYTES).",
            status=413,
        )
    ops, fail_on_errors = parse_bulk_request(json_body(), cfg["BULK_MAX_OPERATIONS"])
    return scim_response(run_bulk(ops, fail_on_errors))


# -- discovery (RFC 7644 §4) ------------------------------------------------------------


@bp.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    return scim_response(discovery.service_provider_config(scim_root(), current_app.config))


@bp.get("/ResourceTypes")
def list_resource_types() -> Response:
    docs = [discovery.resource_type_doc(name, scim_root()) for name in RESOURCE_TYPES]
    return scim_response(list_response(docs, len(docs), 1))


@bp.get("/ResourceTypes/<name>")
def get_resource_type(name: str) -> Response:
    for known in RESOURCE_TYPES:
        if known.lower() == name.lower():
            return scim_response(discovery.resource_type_doc(known, scim_root()))
    raise NotFoundError(f"No resource type {name!r}.")


@bp.get("/Schemas")
def list_schemas() -> Response:
    docs = discovery.schema_docs(scim_root())
    return scim_response(list_response(docs, len(docs), 1))


@bp.get("/Schemas/<path:urn>")
def get_schema(urn: str) -> Response:
    doc = discovery.find_schema_doc(urn, scim_root())
    if doc is None:
        raise NotFoundError(f"No schema {urn!r}.")
    return scim_response(doc)
