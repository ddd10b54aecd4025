"""Admin API for roles (``/api/v1/roles``).

A delete that the settings or the active rules depend on is refused (409).
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify
from marshmallow import RAISE, Schema, fields, validate

from scim_server.admin.apidoc import Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import audited, iso, json_object, load, text
from scim_server.db import db
from scim_server.models import Role
from scim_server.models.role import ROLE_KINDS
from scim_server.services import directory, roles


class NewRole(Schema):
    class Meta:
        unknown = RAISE

    name = text(200, min_length=1, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ROLE_KINDS))


class RoleOut(Out):
    """A role of the organization."""

    id = always(fields.String)
    name = always(fields.String)
    kind = always(fields.String)
    created_at = nullable(fields.String)


class RoleListOut(Out):
    """Every role of the organization."""

    roles = always(fields.List, cls_or_instance=fields.Nested(RoleOut))


def role_to_dict(role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "kind": role.kind, "created_at": iso(role.created_at)}


@bp.get("/roles")
@api_doc(tag="roles", response=RoleListOut)
def list_roles() -> Response:
    return jsonify(roles=[role_to_dict(r) for r in roles.list_roles(db.session, g.org_id)])


@bp.post("/roles")
@audited("role.create")
@api_doc(tag="roles", body=NewRole, response=RoleOut, status=201)
def create_role() -> tuple[Response, int]:
    body = load(NewRole, json_object())
    role = roles.create_role(db.session, g.org_id, body["name"], body["kind"])
    return jsonify(role_to_dict(role)), 201


@bp.delete("/roles/<role_id>")
@audited("role.delete")
@api_doc(tag="roles", status=204)
def delete_role(role_id: str) -> Response:
    """Delete a role (holders lose it); refused while the settings or active rules name it."""
    directory.delete_role(db.session, g.org_id, role_id)
    return Response(status=204)
