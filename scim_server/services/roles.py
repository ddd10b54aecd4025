"""Roles and who holds them, kept apart by source (rule, manual, scim)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import InvalidValueError, NotFoundError, UniquenessError
from scim_server.models import Role, User, UserRole
from scim_server.models.role import ROLE_KINDS
from scim_server.text import fold, has_control


def create_role(session: Session, org_id: str, name: str, kind: str) -> Role:
    """A new role; its name trimmed, so " Planner " is the "Planner" that may exist already
    (the uniqueness key folds case, not surrounding spaces, and a list shows both alike)."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise InvalidValueError("A role name must be 1 to 200 characters.")
    if has_control(name):  # before trimming: a trailing tab or NEL is refused, not dropped
        raise InvalidValueError("A role name cannot hold control characters.")
    name = name.strip()
    if kind not in ROLE_KINDS:
        raise InvalidValueError(f"A role kind is one of {', '.join(ROLE_KINDS)}.")
    with session.begin():
        if find_roles(session, org_id, [name]):
            raise UniquenessError(f"A role named {name!r} already exists.")
        role = Role(org_id=org_id, id=str(uuid.uuid4()), name=name, name_key=fold(name), kind=kind)
        session.add(role)
        session.flush()
        record(
            session,
            org_id,
            "role.create",
            resource_type="Role",
            resource_id=role.id,
            detail=f"{kind} {name!r}",
        )
    return role


def lock_role(session: Session, org_id: str, role_id: str) -> Role:
    """The role, locked ``FOR UPDATE`` for its delete (``NotFoundError`` if there is none).

    A concurrent grant (its foreign key check) then waits for the delete to commit and
    fails, rather than adding a holder the delete did not see and tell; so does a settings
    save or an activation naming it (``find_roles(keep=True)``), which then finds it gone.
    """
    role = session.scalar(
        select(Role).where(Role.org_id == org_id, Role.id == role_id).with_for_update()
    )
    if role is None:
        raise NotFoundError(f"Role {role_id!r} not found.")
    return role


def remove_role(session: Session, org_id: str, role: Role) -> None:
    """Delete a role ``lock_role`` locked, in the caller's transaction; every holder loses
    it, as a change of that holder.

    Each holder's version moves and each gets a ``user.roles`` audit event (the role's
    id removed from each source it held it from, the shape a revoke writes), so their
    timelines show it and ``events.types.derive`` gives their ``user.roles_changed``
    product events: a product mirroring roles must hear of it. The events are recorded
    in this transaction and written at its commit in bulk (``events.writer``: one read
    of the holders' states, one INSERT or COPY), as rules apply does for its batches.

    Whether the settings or the active rules still name it: ``directory.delete_role``
    checks that first, in the same transaction.
    """
    held = session.execute(
        select(UserRole.user_id, UserRole.source, User.user_name, User.external_id)
        .join(User, (User.org_id == UserRole.org_id) & (User.id == UserRole.user_id))
        .where(UserRole.org_id == org_id, UserRole.role_id == role.id)
        .order_by(UserRole.user_id, UserRole.source)
    ).all()
    holders: dict[str, tuple[Any, list[str]]] = {}
    for user_id, source, user_name, external_id in held:
        holders.setdefault(user_id, ((user_name, external_id), []))[1].append(source)
    # Its holders lose it (the rows go with the role): their SCIM view (the product
    # extension's roles) changes, so their versions move, as a role taken away one
    # by one would move them; a stale ETag must not answer 304.
    if holders:
        session.connection().execute(
            update(User)
            .where(
                User.org_id == org_id,
                User.id.in_(
                    select(UserRole.user_id).where(
                        UserRole.org_id == org_id, UserRole.role_id == role.id
                    )
                ),
            )
            .values(version=User.version + 1, updated_at=utcnow())
        )
    record(
        session,
        org_id,
        "role.delete",
        resource_type="Role",
        resource_id=role.id,
        detail=role.name,
        changes={"holders": len(holders)} if holders else None,
    )
    detail = f"role {role.name!r} ({role.kind}) deleted"
    for user_id, ((user_name, external_id), sources) in holders.items():
        changes: dict[str, Any] = {}
        for source in sources:
            changes |= role_change(source, [], [role.id], {})
        record(
            session,
            org_id,
            "user.roles",
            resource_type="User",
            resource_id=user_id,
            external_id=external_id,
            user_name=user_name,
            detail=detail,
            changes=changes,
        )
    session.delete(role)


def list_roles(session: Session, org_id: str) -> list[Role]:
    return list(session.scalars(select(Role).where(Role.org_id == org_id).order_by(Role.name_key)))


def find_roles(
    session: Session, org_id: str, names: Iterable[str], *, keep: bool = False
) -> dict[str, Role]:
    """Roles by folded name, for the names that exist.

    ``keep``: on PostgreSQL their rows are locked ``FOR KEY SHARE`` (in id order) until the
    transaction ends, for a change that names them (the settings' default roles, an
    activation's rules): a delete of one (``lock_role``) waits for that change and then
    sees it, or ran first and this does not find it.
    """
    keys = sorted({fold(n) for n in names})
    if not keys:
        return {}
    stmt = select(Role).where(Role.org_id == org_id, Role.name_key.in_(keys))
    if keep:
        stmt = stmt.order_by(Role.id).with_for_update(read=True, key_share=True)
    return {r.name_key: r for r in session.scalars(stmt)}


# Built once: every rendered user runs it.
_ROLES_OF = (
    select(UserRole.user_id, UserRole.source, UserRole.rule, Role.id, Role.name, Role.kind)
    .join(Role, (Role.org_id == UserRole.org_id) & (Role.id == UserRole.role_id))
    .where(
        UserRole.org_id == bindparam("org_id"),
        UserRole.user_id.in_(bindparam("user_ids", expanding=True)),
    )
    .order_by(Role.name_key, UserRole.source)
)


def roles_of(session: Session, org_id: str, user_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each user's roles: name, kind, and the sources it holds them from."""
    out: dict[str, dict[str, dict[str, Any]]] = {u: {} for u in user_ids}
    if not user_ids:
        return {}
    rows = session.connection().execute(_ROLES_OF, {"org_id": org_id, "user_ids": user_ids})
    for user_id, source, rule, role_id, name, kind in rows:
        hold(out[user_id], role_id, name, kind, source, rule)
    return {u: list(v.values()) for u, v in out.items()}


def hold(
    held: dict[str, dict[str, Any]],
    role_id: str,
    name: str,
    kind: str,
    source: str,
    rule: str | None,
) -> None:
    """Add one (role, source) row to ``held``, role id -> {id, name, kind, sources}."""
    entry = held.setdefault(role_id, {"id": role_id, "name": name, "kind": kind, "sources": []})
    entry["sources"].append(source if rule is None else f"{source}:{rule}")


def set_source_roles(
    session: Session, org_id: str, user_id: str, source: str, wanted: dict[str, str | None]
) -> dict[str, Any]:
    """Make the user's ``source`` roles exactly ``wanted`` (role id -> rule); return the change."""
    current = {
        r.role_id: r
        for r in session.scalars(
            select(UserRole).where(
                UserRole.org_id == org_id, UserRole.user_id == user_id, UserRole.source == source
            )
        )
    }
    removed = [rid for rid in current if rid not in wanted]
    added = [rid for rid in wanted if rid not in current]
    if removed:
        session.execute(
            delete(UserRole).where(
                UserRole.org_id == org_id,
                UserRole.user_id == user_id,
                UserRole.source == source,
                UserRole.role_id.in_(removed),
            )
        )
    for rid in added:
        session.add(
            UserRole(org_id=org_id, user_id=user_id, role_id=rid, source=source, rule=wanted[rid])
        )
    given_by = regiven({rid: r.rule for rid, r in current.items()}, wanted)
    for rid in given_by:
        current[rid].rule = wanted[rid]
    return role_change(source, added, removed, given_by)


def rule_label(result: Any, role_name: str) -> str | None:
    """The rules that give ``role_name`` in a rules result, as a held role stores them."""
    return ", ".join(result.role_rules.get(role_name) or ()) or None


def regiven(
    held: Mapping[str, str | None], wanted: Mapping[str, str | None]
) -> dict[str, dict[str, str | None]]:
    """The roles held and still wanted whose rules change (key -> before / after)."""
    return {
        key: {"before": held[key], "after": wanted[key]}
        for key in sorted(held.keys() & wanted.keys())
        if held[key] != wanted[key]
    }


def role_change(
    source: str, added: list[str], removed: list[str], given_by: dict[str, Any]
) -> dict[str, Any]:
    """The change of a user's ``source`` roles, as its audit event tells it; {} for none.

    ``given_by``: roles kept whose rules changed (role id -> before / after). The role's
    ``sources`` show those rules, so that is a change of the user like any other: its
    version moves and an event says why (a list page or an ETag must not show the old)."""
    if not (added or removed or given_by):
        return {}
    change: dict[str, Any] = {"added": sorted(added), "removed": sorted(removed)}
    if given_by:
        change["given_by"] = given_by
    return {f"roles.{source}": change}
