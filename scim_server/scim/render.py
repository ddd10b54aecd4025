"""Conversions from stored resources to their SCIM wire form (``*_to_scim``)."""

from __future__ import annotations

from typing import Any

from scim_server.models import Group, User
from scim_server.scim.schema import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    LIST_RESPONSE,
    PRODUCT_SCHEMA,
    USER_SCHEMA,
)
from scim_server.services.common import etag

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
    return value.isoformat().replace("+00:00", "Z")


def user_to_scim(
    user: User, groups: list[tuple[str, str]] | None, base: str, product: Doc | None = None
) -> Doc:
    data = dict(user.data)
    doc: Doc = {"schemas": [USER_SCHEMA], "id": user.id}
    if user.external_id is not None:
        doc["externalId"] = user.external_id
    doc["userName"] = user.user_name
    for key, value in data.items():
        if key in ("userName", "externalId", "active") or ":" in key:
            continue
        doc[key] = value
    doc["active"] = user.active
    if groups:
        doc["groups"] = [
            {"value": gid, "$ref": f"{base}/Groups/{gid}", "display": name, "type": "direct"}
            for gid, name in groups
        ]
    enterprise = data.get(ENTERPRISE_SCHEMA)
    if enterprise:
        enterprise = dict(enterprise)
        manager = enterprise.get("manager")
        if isinstance(manager, dict) and manager.get("value"):
            enterprise["manager"] = {**manager, "$ref": f"{base}/Users/{manager['value']}"}
        doc["schemas"].append(ENTERPRISE_SCHEMA)
        doc[ENTERPRISE_SCHEMA] = enterprise
    if product:
        doc["schemas"].append(PRODUCT_SCHEMA)
        doc[PRODUCT_SCHEMA] = product
    doc["meta"] = _meta("User", user, f"{base}/Users/{user.id}")
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
