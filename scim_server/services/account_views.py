"""The account as the admin API shows it (``GET /api/v1/users/<id>``): also the state in events.

One function for both, so a product reading an event's ``state`` sees what it
would read from the API at that moment. The API adds the person's credential
facts (``credentialsSchedule``, ``signInMethods``, ``mfa``): those are about how
they sign in here, not about the identity the product mirrors, and reading them
on every write would cost each event three more queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from scim_server.models import User
from scim_server.services import roles, users


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def account_summaries(
    session: Session,
    org_id: str,
    rows: list[User],
    *,
    held: dict[str, list[dict[str, Any]]] | None = None,
    license_names: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The list view: the product extension's fields, every key present, roles with ids.

    ``held`` (roles by user) and ``license_names``, when the caller has them, spare their queries.
    """
    if held is None:
        held = roles.roles_of(session, org_id, [u.id for u in rows])
    product = users.product_view(session, org_id, rows, roles=held, license_names=license_names)
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


def account_details(
    session: Session,
    org_id: str,
    rows: list[User],
    *,
    remember: bool = False,
    extras_rows: Iterable[Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The detail view of each user (summary, groups, timestamps, version), by user id.

    One user (a request's, an event's): groups, roles and license names in one round
    trip, kept for the write's representation when ``remember`` (``users.extras_of_one``);
    ``extras_rows``: that round trip's rows, when the caller read them with more.
    """
    if len(rows) == 1:
        groups_of_one, held_of_one, names = users.extras_of_one(
            session, org_id, rows[0], remember=remember, rows=extras_rows
        )
        groups = {rows[0].id: groups_of_one}
        summaries = account_summaries(
            session, org_id, rows, held={rows[0].id: held_of_one}, license_names=names
        )
    else:
        groups = users.groups_of(session, org_id, [u.id for u in rows])
        summaries = account_summaries(session, org_id, rows)
    out: dict[str, dict[str, Any]] = {}
    for user, summary in zip(rows, summaries, strict=True):
        # The summary is this call's own: completed in place (the same keys, in the same
        # order, as a copy with them added).
        summary.update(
            externalId=user.external_id,
            displayName=user.display_name,
            active=user.active,
            groups=[{"id": gid, "displayName": name} for gid, name in groups[user.id]],
            created=iso(user.created_at),
            modified=iso(user.updated_at),
            version=user.version,
        )
        out[user.id] = summary
    return out
