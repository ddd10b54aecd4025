"""Rendering: stored resources in their SCIM wire form, and SCIM responses.

``*_to_scim`` convert; ``render_user`` / ``render_group`` add what a resource's
representation reads beside its row and apply ``attributes`` /
``excludedAttributes``; ``scim_response`` is the one place a SCIM body is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from flask import Request, Response, current_app, g, request

from scim_server import jsonfast
from scim_server.db import db
from scim_server.errors import TooManyError
from scim_server.models import Group, User
from scim_server.scim.errors import SCIM_CONTENT_TYPE
from scim_server.scim.resources import check_projection, project, split_param
from scim_server.scim.schema import (
    ENTERPRISE_SCHEMA,
    GROUP,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    PRODUCT_SCHEMA,
    USER,
    USER_SCHEMA,
)
from scim_server.services import groups as group_service
from scim_server.services import paging
from scim_server.services import users as user_service
from scim_server.services.common import etag
from scim_server.urls import scim_root

Doc = dict[str, Any]


def _meta(resource_type: str, obj: User | Group, location: str) -> Doc:
    return {
        "resourceType": resource_type,
        "created": _iso(obj.created_at),
        "lastModified": _iso(obj.updated_at),
        "location": location,
        "version": etag(obj.version),
    }


def _iso(value: Any) -> str:
    """A UTC time as SCIM shows it, as ``isoformat`` gives it with ``Z`` for UTC; naive is
    UTC (``UTCDateTime`` stores it so, and list pages read it so: ``paging.page_columns``).
    Text is SQLite's stored text, as a list page's row holds it (``paging.scim_time``), or
    a time already in SCIM's form (``...T...Z``), kept."""
    if type(value) is str:
        if value[10:11] == "T" and value[-1:] == "Z":
            return value
        return paging.scim_time(value)
    if value.tzinfo is None:
        return value.isoformat() + "Z"
    return value.isoformat().replace("+00:00", "Z")


# Placed by the server around the stored document's keys.
_AROUND = frozenset(("schemas", "id", "groups", "meta", PRODUCT_SCHEMA))


class _Shape:
    """What ``user_to_scim`` does with a stored document of given keys (in order), beyond
    copying them all at once: the keys it then removes (the extensions', named with a ":",
    and ``active``, placed after the others), and whether ``userName`` and ``externalId``
    come from the columns over the document's values."""

    __slots__ = ("drop", "external_id", "placed_around", "user_name")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.drop = tuple(k for k in keys if ":" in k or k == "active")
        self.user_name = "userName" in keys
        self.external_id = "externalId" in keys
        # A key the server places around the document's (a stored document never holds
        # one): ``user_fragments`` then renders the user whole.
        self.placed_around = not _AROUND.isdisjoint(keys)


# Per shape of stored document: the 100 users of a page mostly share a few shapes.
@lru_cache(maxsize=4096)
def shape_of(keys: tuple[str, ...]) -> _Shape:
    return _Shape(keys)


def user_to_scim(
    user: User, groups: list[tuple[str, str]] | None, base: str, product: Doc | None = None
) -> Doc:
    """The user's SCIM representation: ``schemas``, ``id``, ``externalId`` (the column's,
    when set), ``userName`` (the column's), the stored document's other keys in their
    order but for ``active`` and the extensions', then ``active`` (the column's), the
    groups, the enterprise extension (with the manager's ``$ref``), the product view and
    ``meta``."""
    entries = [group_entry(gid, name, base) for gid, name in groups] if groups else None
    data = user.data
    return user_doc(user, data, shape_of(tuple(data)), entries, base, product)


def group_entry(gid: str, name: str, base: str) -> Doc:
    """One of a user's ``groups``: the same for every member of the group, so a page makes
    it once per group (``render_user_page``)."""
    return {"value": gid, "$ref": f"{base}/Groups/{gid}", "display": name, "type": "direct"}


def user_doc(
    user: Any,
    data: Doc,
    shape: _Shape,
    entries: list[Doc] | None,
    base: str,
    product: Doc | None,
) -> Doc:
    """``user_to_scim`` with the stored document ``data`` (a page's row holds its text), its
    shape (``shape_of`` of its keys) and the ``groups`` entries (``group_entry``) already
    found. ``data`` is read, never changed (nor is its enterprise part: copied to add a
    $ref)."""
    external_id = user.external_id
    user_id = user.id
    doc: Doc = {"schemas": [USER_SCHEMA], "id": user_id}
    if external_id is not None:
        doc["externalId"] = external_id
    doc["userName"] = user.user_name
    # The document's keys copied at once; those kept apart are then put back as above
    # (a key already in ``doc`` keeps its place when the copy sets it).
    doc.update(data)
    for key in shape.drop:
        del doc[key]
    if shape.user_name:
        doc["userName"] = user.user_name
    if shape.external_id:
        if external_id is None:
            del doc["externalId"]
        else:
            doc["externalId"] = external_id
    doc["active"] = user.active
    if entries:
        doc["groups"] = entries
    enterprise = data.get(ENTERPRISE_SCHEMA)
    if enterprise:
        manager = enterprise.get("manager")
        if isinstance(manager, dict) and manager.get("value"):
            # A copy with the manager's $ref, in the manager's place.
            ref = {**manager, "$ref": f"{base}/Users/{manager['value']}"}
            enterprise = {**enterprise, "manager": ref}
        doc["schemas"].append(ENTERPRISE_SCHEMA)
        doc[ENTERPRISE_SCHEMA] = enterprise
    if product:
        doc["schemas"].append(PRODUCT_SCHEMA)
        doc[PRODUCT_SCHEMA] = product
    created = user.created_at
    updated = user.updated_at
    shown = _iso(created)
    doc["meta"] = {
        "resourceType": "User",
        "created": shown,
        "lastModified": shown if updated == created else _iso(updated),  # often the same
        "location": f"{base}/Users/{user_id}",
        "version": etag(user.version),
    }
    return doc


def group_to_scim(
    group: Group, members: list[tuple[str, str, str | None]] | None, base: str
) -> Doc:
    doc: Doc = {"schemas": [GROUP_SCHEMA], "id": group.id}
    if group.external_id is not None:
        doc["externalId"] = group.external_id
    doc["displayName"] = group.display_name
    for key, value in group.data.items():
        if key not in ("displayName", "externalId", "members"):
            doc[key] = value
    if members:
        out = []
        for mid, kind, display in members:
            item: Doc = {"value": mid, "$ref": f"{base}/{kind}s/{mid}", "type": kind}
            if display is not None:
                item["display"] = display
            out.append(item)
        doc["members"] = out
    doc["meta"] = _meta("Group", group, f"{base}/Groups/{group.id}")
    return doc


def list_response(resources: list[Doc], total: int, start_index: int) -> Doc:
    """RFC 7644 §3.4.2: the ListResponse envelope."""
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


# -- responses -----------------------------------------------------------------


def scim_response(
    doc: Any, status: int = 200, *, version: str | None = None, location: str | None = None
) -> Response:
    """A SCIM JSON response, with its ETag (RFC 7644 §3.14) and Location when given."""
    # ``content_type``, not ``mimetype``: the same header (no charset for a JSON type), without
    # werkzeug working it out for every response.
    resp = Response(jsonfast.dumps_bytes(doc), status=status, content_type=SCIM_CONTENT_TYPE)
    if version:
        resp.headers["ETag"] = version
    if location:
        resp.headers["Location"] = location
    return resp


def no_content(version: str | None = None) -> Response:
    """204: no body, so no Content-Type either (werkzeug's default said text/html)."""
    resp = Response(status=204)
    del resp.headers["Content-Type"]
    if version:
        resp.headers["ETag"] = version
    return resp


def projection_args(req: Request | None = None) -> tuple[list[str] | None, list[str] | None]:
    """``attributes`` / ``excludedAttributes`` on single-resource responses (RFC 7644 §3.9).

    ``req``: the request, when the caller has it (each ``request.x`` looks it up again)."""
    req = req if req is not None else request._get_current_object()  # type: ignore[attr-defined]
    if not req.environ.get("QUERY_STRING"):  # none: its arguments are not parsed for nothing
        return None, None
    args = req.args
    return split_param(args.get("attributes")), split_param(args.get("excludedAttributes"))


def write_projection(rt: Any) -> tuple[list[str] | None, list[str] | None]:
    """``projection_args`` for a write's answer, checked before the write: a name the answer
    would refuse (400) is refused while nothing has changed."""
    attributes, excluded = projection_args()
    if attributes or excluded:
        check_projection(rt, attributes, excluded)
    return attributes, excluded


def wants(name: str, attributes: list[str] | None, excluded: list[str] | None) -> bool:
    """Would the response include attribute ``name`` (lower case, e.g. ``members``)? Saves
    loading what is not returned.

    ``attributes`` wants it when it names the attribute or one of its sub-attributes
    (``members.value``); ``excluded`` leaves it out only when it names the bare attribute:
    RFC 7644 §3.4.2.5, ``excludedAttributes=members.display`` removes each member's
    ``display``, not the members (``project`` drops the sub-attribute)."""
    if attributes:
        return any(_base(a) == name for a in attributes)
    return not any(_unqualified(a) == name for a in excluded or [])


def _unqualified(path: str) -> str:
    """``path`` lower-cased, without its schema URN (``urn:...:Group:members.display`` is
    ``members.display``)."""
    return path.lower().rsplit(":", 1)[-1]


def _base(path: str) -> str:
    """The attribute ``path`` names or names a part of (``members`` for ``members.value``)."""
    return _unqualified(path).split(".")[0].split("[")[0]


def render_user(
    user: Any,
    attributes: list[str] | None,
    excluded: list[str] | None,
    groups: list[tuple[str, str]] | None = None,
    product: dict[str, Any] | None = None,
    base: str | None = None,
    *,
    extras: user_service.Extras | None = None,
) -> Doc:
    """One user; a list page passes what it read for the whole page (``groups``, ``product``,
    the service root ``base``); GET by id the user's ``extras`` (``read_user_and_extras``),
    read with its row: then nothing here touches the request's Session."""
    if product is None:
        if extras is None:
            # One user: its groups, roles and license names in one round trip.
            extras = user_service.extras_of_one(db.session, g.org_id, user)
        found, roles, names = extras
        if found and (attributes or excluded) and not wants("groups", attributes, excluded):
            found = []
        groups = found
        # With its roles and license names given, the view reads neither a session nor the
        # organization.
        product = user_service.product_view(
            None, "", [user], roles={user.id: roles}, license_names=names
        )[user.id]
    doc = user_to_scim(user, groups, base or scim_root(), product)
    if attributes or excluded:
        return project(USER, doc, attributes, excluded)
    return doc


def render_user_page(
    users: Sequence[Any],
    attributes: list[str] | None,
    excluded: list[str] | None,
    groups: dict[str, list[tuple[str, str]]] | None,
    product: dict[str, Doc],
) -> list[Doc]:
    """A list page's users, as ``render_user`` renders each one, from what the page read
    for all of them: their rows (``data`` the stored document's text), ``groups`` (None when
    not shown; a user in none is not in it) and ``product`` by user id. A page without
    ``attributes`` or ``excludedAttributes`` is rendered by ``user_fragments`` instead."""
    base = scim_root()
    # Per page, what is the same for many of its users: the shapes of their stored
    # documents (a dict lookup instead of the bounded cache's), and each group's entry,
    # made once and shared by its members (orjson writes each occurrence alike; nothing
    # changes a rendered document).
    shapes: dict[tuple[str, ...], _Shape] = {}
    made: dict[tuple[str, str], Doc] = {}
    docs = []
    for u, data in zip(users, paging.stored_documents(users), strict=True):
        keys = tuple(data)
        shape = shapes.get(keys)
        if shape is None:
            shape = shapes[keys] = shape_of(keys)
        entries = None
        pairs = groups.get(u.id) if groups is not None else None
        if pairs:
            entries = []
            for pair in pairs:
                entry = made.get(pair)
                if entry is None:
                    entry = made[pair] = group_entry(pair[0], pair[1], base)
                entries.append(entry)
        docs.append(user_doc(u, data, shape, entries, base, product[u.id]))
    if attributes or excluded:
        return [project(USER, doc, attributes, excluded) for doc in docs]
    return docs


def render_group(group: Any, attributes: list[str] | None, excluded: list[str] | None) -> Doc:
    """One group, its members inline unless excluded (refused above SCIM_MAX_INLINE_MEMBERS)."""
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
