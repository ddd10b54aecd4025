"""Each organization's number of Users and Groups, kept in step with every create and delete."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.orm import Session

from scim_server.db import reuse_plan
from scim_server.fixed import Fixed
from scim_server.models import Group, ResourceCount, User

MODELS: dict[str, type[User] | type[Group]] = {"User": User, "Group": Group}

# By the count row's primary key: their plans are reused (``db.reuse_plan``).
_READ = reuse_plan(
    select(ResourceCount.total, ResourceCount.generation).where(
        ResourceCount.org_id == bindparam("org_id"),
        ResourceCount.resource_type == bindparam("resource_type"),
    )
)


# Prebuilt: every create and delete runs it (no statement building per write).
_CHANGE = Fixed(
    reuse_plan(
        update(ResourceCount)
        .where(
            ResourceCount.org_id == bindparam("b_org_id"),
            ResourceCount.resource_type == bindparam("b_type"),
        )
        .values(
            total=ResourceCount.total + bindparam("delta"),
            generation=ResourceCount.generation + 1,
        )
    )
)


# The same change as text, for a write that sends it with its inserts in one statement
# (``db.Batch.write``'s ``then``); ``change_params`` binds it. Then ``after_change``.
CHANGE_SQL = reuse_plan(
    text(
        "UPDATE resource_counts SET total = total + :c_delta, generation = generation + 1 "
        "WHERE org_id = :c_org_id AND resource_type = :c_type"
    )
)


def change_params(org_id: str, resource_type: str, delta: int) -> dict[str, Any]:
    return {"c_org_id": org_id, "c_type": resource_type, "c_delta": delta}


def after_change(session: Session, org_id: str, resource_type: str, result: Any) -> None:
    """After ``CHANGE_SQL`` (its result): the count row of an organization that had none."""
    if result.rowcount == 0:
        start(session, org_id, resource_type)


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

    Every writer updates this row during its transaction and locks the organization's
    audit head only at its commit (``audit.recorder``), so two writers never wait for
    each other in opposite orders (a deadlock); PostgreSQL's one-statement DELETE
    (``users._DELETE_ALL``) keeps that order.
    """
    session.flush()
    params = {"b_org_id": org_id, "b_type": resource_type, "delta": delta}
    result = _CHANGE.execute(session.connection(), params)
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
