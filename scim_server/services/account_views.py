"""The account as the admin API shows it (``GET /api/v1/users/<id>``): also the state in events.

One function for both, so a product reading an event's ``state`` sees exactly
what it would read from the API at that moment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from scim_server.models import User
from scim_server.services import roles, users


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def account_summaries(session: Session, org_id: str, rows: list[User]) -> list[dict[str, Any]]:
    """The list view: the product extension's fields, every key present, roles with ids."""
    held = roles.roles_of(session, org_id, [u.id for u in rows])
    product = users.product_view(session, org_id, rows, roles=held)
    return [
        {
            "id": u.id,
            "userName": u.user_name,
            "username": None,
            "status": u.status,
            "license": None,
            "licenseShortage": None,
            "contactId": None,
            "lastLogin": None,
            **product[u.id],
            # The ids too: DELETE .../roles/<role_id> needs them.
            "roles": [
                {"id": r["id"], "value": r["name"], "kind": r["kind"], "sources": r["sources"]}
                for r in held.get(u.id, [])
            ],
        }
        for u in rows
    ]


def account_details(session: Session, org_id: str, rows: list[User]) -> dict[str, dict[str, Any]]:
    """The detail view of each user (summary, groups, timestamps, version), by user id."""
    groups = users.groups_of(session, org_id, [u.id for u in rows])
    out: dict[str, dict[str, Any]] = {}
    for user, summary in zip(rows, account_summaries(session, org_id, rows), strict=True):
        out[user.id] = {
            **summary,
            "externalId": user.external_id,
            "displayName": user.display_name,
            "active": user.active,
            "groups": [{"id": gid, "displayName": name} for gid, name in groups[user.id]],
            "created": iso(user.created_at),
            "modified": iso(user.updated_at),
            "version": user.version,
        }
    return out
