"""Groups and their memberships.

Membership changes insert or delete only the member rows they name, so adding
one member to a 50,000-member group costs the same as adding it to a group of
ten: the member list is never loaded or rewritten.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from scim_server.db import utcnow
from scim_server.errors import InvalidValueError, NotFoundError, UniquenessError
from scim_server.models import Group, GroupMember, User
from scim_server.services.common import check_if_match
from scim_server.services.indexing import drop_index, reindex
from scim_server.text import exact, fold

Doc = dict[str, Any]
CHUNK = 500  # ids per IN (...) list, well under every driver's parameter limit


@dataclass(frozen=True)
class MemberChange:
    """One membership change.

    ``kind`` is ``add``, ``remove`` (the listed ``values``), ``replace`` (the
    members become ``values``), ``clear``, or ``remove_where`` (the members
    matching ``where``, a condition on ``GroupMember`` columns).
    """

    kind: str
    values: tuple[Doc, ...] = ()
    where: Any = None


def _apply(group: Group, doc: Doc) -> None:
    group.display_name = doc["displayName"]
    group.display_name_key = fold(doc["displayName"])
    group.external_id = exact(doc["externalId"]) if doc.get("externalId") else None
    group.data = {k: v for k, v in doc.items() if k != "members"}


def _check_unique(session: Session, org_id: str, doc: Doc, group_id: str | None) -> None:
    clash = session.scalar(
        select(Group.id).where(
            Group.org_id == org_id, Group.display_name_key == fold(doc["displayName"])
        )
    )
    if clash is not None and clash != group_id:
        raise UniquenessError(f"displayName {doc['displayName']!r} is already taken.")


def create_group(session: Session, org_id: str, doc: Doc) -> Group:
    with session.begin():
        _check_unique(session, org_id, doc, None)
        now = utcnow()
        group = Group(
            org_id=org_id, id=str(uuid.uuid4()), created_at=now, updated_at=now, version=1
        )
        _apply(group, doc)
        session.add(group)
        try:
            session.flush()
        except IntegrityError:
            raise UniquenessError(f"displayName {doc['displayName']!r} is already taken.") from None
        reindex(session, org_id, group.id, group.data)
        if doc.get("members"):
            _add(session, org_id, group.id, tuple(doc["members"]))
    return group


def get_group(session: Session, org_id: str, group_id: str, *, for_update: bool = False) -> Group:
    stmt = select(Group).where(Group.org_id == org_id, Group.id == group_id)
    if for_update:
        stmt = stmt.with_for_update()
    group = session.scalar(stmt)
    if group is None:
        raise NotFoundError(f"Group {group_id!r} not found.")
    return group


def update_group(
    session: Session,
    org_id: str,
    group_id: str,
    mutate: Callable[[Doc], tuple[Doc, Sequence[MemberChange]]],
    if_match: Sequence[str] | None = None,
) -> Group:
    """Change attributes and memberships in one transaction.

    ``mutate`` turns the stored document into the new, validated one and says
    which membership changes go with it.
    """
    with session.begin():
        group = get_group(session, org_id, group_id, for_update=True)
        check_if_match(group.version, if_match)
        new, changes = mutate(dict(group.data))
        changed = False
        if {k: v for k, v in new.items() if k != "members"} != group.data:
            if fold(new["displayName"]) != group.display_name_key:
                _check_unique(session, org_id, new, group.id)
            _apply(group, new)
            changed = True
        for change in changes:
            changed |= _apply_member_change(session, org_id, group_id, change)
        if changed:
            group.version += 1
            group.updated_at = utcnow()
            try:
                session.flush()
            except IntegrityError:
                raise UniquenessError(
                    f"displayName {new['displayName']!r} is already taken."
                ) from None
            reindex(session, org_id, group.id, group.data)
    return group


def delete_group(
    session: Session, org_id: str, group_id: str, if_match: Sequence[str] | None = None
) -> None:
    with session.begin():
        group = get_group(session, org_id, group_id, for_update=True)
        check_if_match(group.version, if_match)
        # The groups that contain this one lose a member: their version moves.
        parents = select(GroupMember.group_id).where(
            GroupMember.org_id == org_id, GroupMember.member_id == group_id
        )
        session.execute(
            update(Group)
            .where(Group.org_id == org_id, Group.id.in_(parents))
            .values(version=Group.version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.execute(
            delete(GroupMember).where(
                GroupMember.org_id == org_id,
                (GroupMember.group_id == group_id) | (GroupMember.member_id == group_id),
            )
        )
        drop_index(session, org_id, group_id)
        session.delete(group)


# -- memberships ---------------------------------------------------------------


def _apply_member_change(
    session: Session, org_id: str, group_id: str, change: MemberChange
) -> bool:
    """Apply one change; True if a member row was inserted or deleted."""
    where = [GroupMember.org_id == org_id, GroupMember.group_id == group_id]
    if change.kind == "add":
        return _add(session, org_id, group_id, change.values) > 0
    if change.kind == "remove":
        ids = list(dict.fromkeys(ref["value"] for ref in change.values))
        return _delete_ids(session, org_id, group_id, ids) > 0
    if change.kind == "remove_where":
        result = session.execute(delete(GroupMember).where(*where, change.where))
        return result.rowcount > 0
    if change.kind == "clear" or (change.kind == "replace" and not change.values):
        result = session.execute(delete(GroupMember).where(*where))
        return result.rowcount > 0
    if change.kind == "replace":
        # Only the difference is written, so that replacing the members with
        # the same members changes nothing (and keeps the version).
        wanted = {ref["value"] for ref in change.values}
        current = session.scalars(select(GroupMember.member_id).where(*where)).all()
        removed = _delete_ids(session, org_id, group_id, [m for m in current if m not in wanted])
        added = _add(session, org_id, group_id, change.values)
        return removed > 0 or added > 0
    raise ValueError(f"unknown member change {change.kind!r}")


def _delete_ids(session: Session, org_id: str, group_id: str, ids: Sequence[str]) -> int:
    deleted = 0
    for start in range(0, len(ids), CHUNK):
        result = session.execute(
            delete(GroupMember).where(
                GroupMember.org_id == org_id,
                GroupMember.group_id == group_id,
                GroupMember.member_id.in_(ids[start : start + CHUNK]),
            )
        )
        deleted += result.rowcount
    return deleted


def _present(session: Session, org_id: str, group_id: str, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that are already members of the group."""
    found: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        found.update(
            session.scalars(
                select(GroupMember.member_id).where(
                    GroupMember.org_id == org_id,
                    GroupMember.group_id == group_id,
                    GroupMember.member_id.in_(ids[start : start + CHUNK]),
                )
            )
        )
    return found


def _resolve(session: Session, org_id: str, group_id: str, refs: Sequence[Doc]) -> dict[str, str]:
    """Map member ids to their type; unknown ids are an error that changes nothing."""
    ids = list(dict.fromkeys(ref["value"] for ref in refs))
    if group_id in ids:
        raise InvalidValueError("A group cannot be a member of itself.")
    found: dict[str, str] = {}
    for chunk_start in range(0, len(ids), CHUNK):
        chunk = ids[chunk_start : chunk_start + CHUNK]
        for uid in session.scalars(
            select(User.id).where(User.org_id == org_id, User.id.in_(chunk))
        ):
            found[uid] = "User"
        for gid in session.scalars(
            select(Group.id).where(Group.org_id == org_id, Group.id.in_(chunk))
        ):
            found[gid] = "Group"
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidValueError(f"No User or Group with id {missing[0]!r} in this organization.")
    for ref in refs:
        declared = ref.get("type")
        if declared and declared.lower() != found[ref["value"]].lower():
            raise InvalidValueError(
                f"Member {ref['value']!r} is a {found[ref['value']]}, not a {declared}."
            )
    return found


def _add(session: Session, org_id: str, group_id: str, refs: Sequence[Doc]) -> int:
    """Insert the members not already there; a repeated add is a no-op. Returns rows added.

    The count comes from looking the requested ids up, not from the INSERT's
    rowcount, which drivers do not report reliably for an executemany
    (psycopg reports -1). The group row is locked (on SQLite, the database
    is), so the look-up cannot go stale before the insert.
    """
    if not refs:
        return 0
    types = _resolve(session, org_id, group_id, refs)
    present = _present(session, org_id, group_id, list(types))
    now = utcnow()
    rows = [
        {
            "org_id": org_id,
            "group_id": group_id,
            "member_id": mid,
            "member_type": kind,
            "created_at": now,
        }
        for mid, kind in types.items()
        if mid not in present
    ]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(dialect_insert(GroupMember).on_conflict_do_nothing(), rows)
    return len(rows)


def member_count(session: Session, org_id: str, group_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                GroupMember.org_id == org_id, GroupMember.group_id == group_id
            )
        )
        or 0
    )


def members_of(
    session: Session, org_id: str, group_id: str, limit: int | None = None
) -> list[tuple[str, str, str | None]]:
    """(member id, type, display) for one group, in a stable order."""
    u = aliased(User)
    g = aliased(Group)
    stmt = (
        select(
            GroupMember.member_id,
            GroupMember.member_type,
            func.coalesce(u.display_name, u.user_name, g.display_name),
        )
        .outerjoin(u, (u.org_id == GroupMember.org_id) & (u.id == GroupMember.member_id))
        .outerjoin(g, (g.org_id == GroupMember.org_id) & (g.id == GroupMember.member_id))
        .where(GroupMember.org_id == org_id, GroupMember.group_id == group_id)
        .order_by(GroupMember.member_id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(mid, kind, display) for mid, kind, display in session.execute(stmt)]
