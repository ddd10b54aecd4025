"""Each organization's number of Users and Groups, kept in step with every create and delete."""

from __future__ import annotations

import secrets

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from scim_server.models import Group, ResourceCount, User

MODELS: dict[str, type[User] | type[Group]] = {"User": User, "Group": Group}

_READ = select(ResourceCount.total, ResourceCount.generation).where(
    ResourceCount.org_id == bindparam("org_id"),
    ResourceCount.resource_type == bindparam("resource_type"),
)


# Prebuilt: every create and delete runs it (no statement building per write).
_CHANGE = (
    update(ResourceCount)
    .where(
        ResourceCount.org_id == bindparam("b_org_id"),
        ResourceCount.resource_type == bindparam("b_type"),
    )
    .values(total=ResourceCount.total + bindparam("delta"), generation=ResourceCount.generation + 1)
)


def read(session: Session, org_id: str, resource_type: str) -> tuple[int, int] | None:
    """(total, generation), or None when the organization has no count row yet."""
    row = (
        session.connection()
        .execute(_READ, {"org_id": org_id, "resource_type": resource_type})
        .first()
    )
    return None if row is None else (row.total, row.generation)


def changed(session: Session, org_id: str, resource_type: str, delta: int) -> None:
    """Record that one resource was created (+1) or deleted (-1), in the caller's transaction.

    Call it last, after the audit event: every write locks the organization's
    audit head first and this row second, so two writers never wait for each
    other in opposite orders (a deadlock).
    """
    session.flush()
    params = {"b_org_id": org_id, "b_type": resource_type, "delta": delta}
    result = session.connection().execute(_CHANGE, params)
    if result.rowcount == 0:
        start(session, org_id, resource_type)


def start(session: Session, org_id: str, resource_type: str) -> None:
    """The count row of an organization that has none, from what it holds now."""
    model = MODELS[resource_type]
    total = session.scalar(select(func.count()).select_from(model).where(model.org_id == org_id))
    # A fresh random generation: a cache keyed on an earlier row's numbers must not match.
    generation = secrets.randbelow(2**31 - 1) + 1
    session.add(
        ResourceCount(
            org_id=org_id, resource_type=resource_type, total=total or 0, generation=generation
        )
    )
    session.flush()


def start_organization(session: Session, org_id: str) -> None:
    """Count rows for a new, empty organization."""
    session.add_all(
        ResourceCount(org_id=org_id, resource_type=rt, total=0, generation=0) for rt in MODELS
    )
