"""Groups and their memberships.

Membership changes insert or delete only the member rows they name, so adding
one member to a 50,000-member group costs the same as adding it to a group of
ten: the member list is never loaded or rewritten.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.audit.diff import diff
from scim_server.db import insert_for, reuse_plan, row_columns, utcnow
from scim_server.errors import (
    InvalidValueError,
    NoTargetError,
    NotFoundError,
    TooManyError,
    UniquenessError,
)
from scim_server.models import Group, GroupMember, Organization, User
from scim_server.services import counts, provisioning, rule_apply, settings
from scim_server.services.common import check_if_match, check_if_none_match
from scim_server.services.indexing import drop_index, reindex
from scim_server.services.members import MemberChange, member_key, member_sql
from scim_server.services.org_config import identity_config
from scim_server.text import exact, fold

Doc = dict[str, Any]
CHUNK = 500  # ids per IN (...) list, well under every driver's parameter limit


@dataclass(frozen=True)
class GroupEdit:
    """A group's new validated attributes and the membership changes that go with them."""

    doc: Doc
    members: tuple[MemberChange, ...]


class GroupChange(Protocol):
    """A parsed write (a PATCH, a PUT): a value whose ``apply`` is pure.

    The service applies it to the stored document under the group's row lock,
    so that If-Match and the change see the same version.
    """

    def apply(self, current: Doc) -> GroupEdit: ...


def _apply(group: Group, doc: Doc) -> None:
    group.display_name = doc["displayName"]
    group.display_name_key = fold(doc["displayName"])
    group.external_id = exact(doc["externalId"]) if doc.get("externalId") else None
    group.data = {k: v for k, v in doc.items() if k != "members"}


def _taken(display_name: str, existing_id: str | None) -> UniquenessError:
    held = f" by the Group with id {existing_id!r}" if existing_id else ""
    return UniquenessError(
        f"displayName {display_name!r} is already taken{held}.",
        existing_id=existing_id,
        resource_type="Group",
    )


def _holder(session: Session, org_id: str, display_name: str) -> str | None:
    """The id of the group whose displayName clashes with ``display_name``."""
    return session.scalar(
        select(Group.id).where(Group.org_id == org_id, Group.display_name_key == fold(display_name))
    )


def _check_unique(session: Session, org_id: str, doc: Doc, group_id: str | None) -> None:
    clash = _holder(session, org_id, doc["displayName"])
    if clash is not None and clash != group_id:
        raise _taken(doc["displayName"], clash)


class _LostRace(Exception):
    """A concurrent create took the displayName between our check and our insert."""


def create_group(session: Session, org_id: str, doc: Doc) -> Group:
    """Create a group; a taken displayName is a uniqueness error naming the group that has it."""
    try:
        return _create_group(session, org_id, doc)
    except _LostRace:
        # The failed transaction is rolled back: read the winner in a new one.
        raise _taken(doc["displayName"], _holder(session, org_id, doc["displayName"])) from None


def _create_group(session: Session, org_id: str, doc: Doc) -> Group:
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
            raise _LostRace from None
        reindex(session, org_id, group.id, group.data)
        added = _add(session, org_id, group.id, tuple(doc.get("members") or ()))
        _touch_users(session, org_id, added)
        _record_group_event(session, group, "group.create", diff(None, group.data), added, [])
        # Membership can move licenses and roles when the rules look at groups.
        remap_moved_users(session, group, added)
        _record_member_events(session, group, added, [])
        counts.changed(session, org_id, "Group", +1)
    return group


# By the group's primary key: its plan is reused (``db.reuse_plan``).
_GROUP_BY_ID = reuse_plan(
    select(*row_columns(Group)).where(
        Group.org_id == bindparam("org_id"), Group.id == bindparam("group_id")
    )
)


def read_group(session: Session, org_id: str, group_id: str) -> Any:
    """A group as a read-only row, for rendering (a prebuilt Core statement, as
    ``users.read_user_and_extras``)."""
    params = {"org_id": org_id, "group_id": group_id}
    row = session.connection().execute(_GROUP_BY_ID, params).first()
    if row is None:
        raise NotFoundError(f"Group {group_id!r} not found.")
    return row


def get_group(
    session: Session,
    org_id: str,
    group_id: str,
    *,
    for_update: bool = False,
    deleting: bool = False,
) -> Group:
    """The group; ``for_update``: its row locked to the transaction's end.

    A change locks it ``FOR NO KEY UPDATE``, a delete (``deleting``) ``FOR UPDATE``: only
    the delete must wait for the changes that hold the group ``FOR KEY SHARE`` as a member
    they are adding (``_resolve``). Two PATCHes adding each other's group then never
    deadlock on their own rows (the cycle check refuses one), and a change still waits
    for a change of the same group.
    """
    stmt = select(Group).where(Group.org_id == org_id, Group.id == group_id)
    if for_update:
        stmt = stmt.with_for_update(key_share=not deleting)
    group = session.scalar(stmt)
    if group is None:
        raise NotFoundError(f"Group {group_id!r} not found.")
    return group


def update_group(
    session: Session,
    org_id: str,
    group_id: str,
    change: GroupChange,
    if_match: Sequence[str] | None = None,
    action: str = "group.replace",
    inline_limit: int | None = None,
    *,
    if_none_match: Sequence[str] | None = None,
) -> Group:
    """Change attributes and memberships in one transaction.

    ``change`` turns the stored document into the new, validated one and says
    which membership changes go with it; only the member rows it names are
    read or written. ``inline_limit``: the answer lists the members, at most this
    many; a group that would then hold more is refused (TooManyError) before
    anything is written. Only then are the members counted (at most
    ``inline_limit + 1`` rows read).
    """
    with session.begin():
        group = get_group(session, org_id, group_id, for_update=True)
        check_if_match(group.version, if_match)
        check_if_none_match(group.version, if_none_match)
        edit = change.apply(dict(group.data))
        new, changes = edit.doc, edit.members
        before = dict(group.data)
        names = (group.display_name, group.external_id)
        attributes_changed = False
        if {k: v for k, v in new.items() if k != "members"} != group.data:
            if fold(new["displayName"]) != group.display_name_key:
                _check_unique(session, org_id, new, group.id)
            _apply(group, new)
            attributes_changed = True
        added: list[tuple[str, str]] = []
        removed: list[tuple[str, str]] = []
        for member_change in changes:
            plus, minus = _apply_member_change(session, org_id, group_id, member_change)
            added += plus
            removed += minus
        if inline_limit is not None:
            _check_inline(session, org_id, group_id, inline_limit)
        _touch_users(session, org_id, added + removed)
        _record_group_event(session, group, action, diff(before, group.data), added, removed)
        # Membership can move licenses and roles when the rules look at groups.
        remap_moved_users(session, group, added, removed)
        _record_member_events(session, group, added, removed)
        if attributes_changed or added or removed:
            group.version += 1
            group.updated_at = utcnow()
            try:
                session.flush()
            except IntegrityError:
                raise _taken(new["displayName"], None) from None
        if attributes_changed:
            # Members live in group_members, not in the attribute index: a member
            # change leaves the index as it is.
            reindex(session, org_id, group.id, group.data)
        # The members the rules evaluated, held to the commit (``rule_apply.Batch.loaded``:
        # the product events read their state from the session's identity map then).
        held = remap_renamed(session, group, names)
    del held
    return group


def delete_group(
    session: Session,
    org_id: str,
    group_id: str,
    if_match: Sequence[str] | None = None,
    *,
    if_none_match: Sequence[str] | None = None,
) -> None:
    with session.begin():
        group = get_group(session, org_id, group_id, for_update=True, deleting=True)
        check_if_match(group.version, if_match)
        check_if_none_match(group.version, if_none_match)
        # The groups that contain this one lose a member: their version moves, and each
        # change is in the log and the feed as a PATCH removing the member would put it.
        parents = select(GroupMember.group_id).where(
            GroupMember.org_id == org_id, GroupMember.member_id == group_id
        )
        session.execute(
            update(Group)
            .where(Group.org_id == org_id, Group.id.in_(parents))
            .values(version=Group.version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        containing = list(
            session.scalars(
                select(Group)
                .where(Group.org_id == org_id, Group.id.in_(parents))
                .execution_options(populate_existing=True)
            )
        )
        removed = _delete_where(
            session, GroupMember.org_id == org_id, GroupMember.group_id == group_id
        )
        session.execute(
            delete(GroupMember).where(
                GroupMember.org_id == org_id, GroupMember.member_id == group_id
            )
        )
        drop_index(session, org_id, group_id)
        _forget_default(session, org_id, group)
        _touch_users(session, org_id, removed)
        _record_group_event(session, group, "group.delete", {}, [], removed)
        # Membership can move licenses and roles when the rules look at groups.
        remap_moved_users(session, group, [], removed)
        _record_member_events(session, group, [], removed)
        for parent in containing:
            gone: Members = [(group_id, "Group")]
            _record_group_event(session, parent, "group.patch", {}, [], gone)
            _record_member_events(session, parent, [], gone)
        session.delete(group)
        counts.changed(session, org_id, "Group", -1)


# -- default groups (the settings' default_groups) ---------------------------------


def names_of(
    session: Session, org_id: str, ids: Sequence[str], *, keep: bool = False
) -> dict[str, str]:
    """The displayName of each of ``ids`` that is a group of the organization.

    ``keep``: on PostgreSQL the rows are locked ``FOR KEY SHARE`` until the transaction
    ends, so a settings change that names them and a delete of one of them take turns
    (the delete then drops it from the settings: ``_forget_default``).
    """
    if not ids:
        return {}
    stmt = select(Group.id, Group.display_name).where(
        Group.org_id == org_id, Group.id.in_(list(ids))
    )
    if keep:
        stmt = stmt.with_for_update(read=True, key_share=True)
    return {gid: name for gid, name in session.execute(stmt)}


def choices(session: Session, org_id: str, limit: int) -> list[tuple[str, str]]:
    """(id, displayName) of the organization's first ``limit`` groups by name."""
    rows = session.execute(
        select(Group.id, Group.display_name)
        .where(Group.org_id == org_id)
        .order_by(Group.display_name_key, Group.id)
        .limit(limit)
    )
    return [(gid, name) for gid, name in rows]


def lock_defaults(session: Session, org_id: str, ids: Sequence[str]) -> list[Group]:
    """The default groups a new account joins, locked (in id order) before anything else.

    Before the create assigns a license: a SCIM member change locks its group, then
    licenses (the rules' remap); taking the groups first keeps the same order. A group
    deleted meanwhile is simply not there.
    """
    if not ids:
        return []
    return list(
        session.scalars(
            select(Group)
            .where(Group.org_id == org_id, Group.id.in_(list(ids)))
            .order_by(Group.id)
            .with_for_update()
        )
    )


def join_new_user(session: Session, org_id: str, user_id: str, joined: Sequence[Group]) -> None:
    """Add an account being created to its default groups, as a SCIM member add would.

    The member rows, the group's version, its ``group.patch`` event and one
    ``group.member.add`` per group (and their product events) in the create's
    transaction. Neither the user's version (its first version already has these
    groups) nor the rules (the create evaluated them with these groups) are touched.
    """
    ref = ({"value": user_id, "type": "User"},)
    now = utcnow()
    for group in joined:
        added = _add(session, org_id, group.id, ref)
        if not added:
            continue
        group.version += 1
        group.updated_at = now
        _record_group_event(session, group, "group.patch", {}, added, [])
        _record_member_events(session, group, added, [])


def _forget_default(session: Session, org_id: str, group: Group) -> None:
    """A deleted group leaves the default groups, with the settings' own event.

    The settings are read in the delete's transaction anyway (the rules' remap); only
    when they name the group is the organization row locked and written: ``FOR NO KEY
    UPDATE``, as a settings save locks it (``directory.update_settings``), so that the
    audit INSERT of a concurrent write, whose foreign-key check locks the row ``FOR KEY
    SHARE`` while that write holds the audit head (which this delete takes at its commit),
    does not wait for it: ``FOR UPDATE`` would deadlock the two.
    """
    if group.id not in settings.get_settings(session, org_id).default_groups:
        return
    org = session.scalar(
        select(Organization)
        .where(Organization.id == org_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    if org is None:
        return
    before = list(settings.load(org).default_groups)
    after = [gid for gid in before if gid != group.id]
    if after == before:
        return
    org.settings = {**(org.settings or {}), "default_groups": after}
    record(
        session,
        org_id,
        "settings.update",
        resource_type="Organization",
        resource_id=org_id,
        detail=f"group {group.display_name!r} deleted: no longer a default group",
        changes={"default_groups": {"before": before, "after": after}},
    )


# -- memberships ---------------------------------------------------------------


Members = list[tuple[str, str]]  # (member id, "User" | "Group")


def _apply_member_change(
    session: Session, org_id: str, group_id: str, change: MemberChange
) -> tuple[Members, Members]:
    """Apply one change; return the members actually added and removed."""
    where = [GroupMember.org_id == org_id, GroupMember.group_id == group_id]
    if change.kind == "add":
        return _add(session, org_id, group_id, change.values), []
    if change.kind == "remove":
        ids = list(dict.fromkeys(ref["value"] for ref in change.values))
        return [], _delete_ids(session, org_id, group_id, ids)
    if change.kind == "remove_where":
        assert change.where is not None, "remove_where names its members by a condition"
        removed = _delete_where(session, *where, member_sql(org_id, change.where))
        if change.must_match and not removed:
            # RFC 7644 §3.5.2.3: a replace through a filter that matches nothing is noTarget;
            # raised in the transaction, so the whole PATCH is rolled back.
            raise NoTargetError("No member of the group matches the filter.")
        return [], removed
    if change.kind == "clear" or (change.kind == "replace" and not change.values):
        return [], _delete_where(session, *where)
    if change.kind == "replace":
        # Only the difference is written, so that replacing the members with
        # the same members changes nothing (and keeps the version).
        wanted = {member_key(ref["value"]) for ref in change.values}
        current = session.scalars(select(GroupMember.member_id).where(*where)).all()
        removed = _delete_ids(session, org_id, group_id, [m for m in current if m not in wanted])
        return _add(session, org_id, group_id, change.values), removed
    raise ValueError(f"unknown member change {change.kind!r}")


def _touch_users(session: Session, org_id: str, members: Members) -> None:
    """A user's ``groups`` is part of its representation: a membership change is a new version.

    Only the users whose membership changed are written, never the whole group.
    (A rename of the group leaves its members' versions alone: it would rewrite
    every member.)
    """
    user_ids = [member_id for member_id, kind in members if kind == "User"]
    now = utcnow()
    for start in range(0, len(user_ids), CHUNK):
        session.execute(
            update(User)
            .where(User.org_id == org_id, User.id.in_(user_ids[start : start + CHUNK]))
            .values(version=User.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )


def _delete_where(session: Session, *conditions: Any) -> Members:
    result = session.execute(
        delete(GroupMember)
        .where(*conditions)
        .returning(GroupMember.member_id, GroupMember.member_type)
    )
    return [(mid, kind) for mid, kind in result]


def _delete_ids(session: Session, org_id: str, group_id: str, ids: Sequence[str]) -> Members:
    """Delete the members of ``ids`` (compared without case: ``member_key``)."""
    ids = list(dict.fromkeys(member_key(i) for i in ids))
    deleted: Members = []
    for start in range(0, len(ids), CHUNK):
        deleted += _delete_where(
            session,
            GroupMember.org_id == org_id,
            GroupMember.group_id == group_id,
            GroupMember.member_id.in_(ids[start : start + CHUNK]),
        )
    return deleted


def _present(session: Session, org_id: str, group_id: str, ids: Sequence[str]) -> dict[str, str]:
    """Those of ``ids`` that are already members of the group, with their type."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(
            select(GroupMember.member_id, GroupMember.member_type).where(
                GroupMember.org_id == org_id,
                GroupMember.group_id == group_id,
                GroupMember.member_id.in_(ids[start : start + CHUNK]),
            )
        )
        found.update((member_id, kind) for member_id, kind in rows)
    return found


def _resolve(
    session: Session,
    org_id: str,
    group_id: str,
    refs: Sequence[Doc],
    present: dict[str, str],
) -> dict[str, str]:
    """Map member ids (as stored: ``member_key``) to their type; unknown ids are an error
    that changes nothing.

    ``present``: the members already in the group (``_present``), with their type: not
    looked up again. The others are read locked ``FOR KEY SHARE`` to the transaction's end
    (PostgreSQL; SQLite's writer holds the database): a delete of one of them (its
    ``FOR UPDATE``) waits for this change and then removes the member row it inserts, or
    this read waits for the delete and finds it gone (400, as after it). A plain read
    would see a user or group whose delete has not committed yet, and the member row
    inserted after the delete's own removal of its memberships would stay, naming an
    account or group that no longer exists. The same statements as a plain read. The lock
    does not wait for a PATCH of a group (``FOR NO KEY UPDATE``); it waits for a user's own
    write in progress (``FOR UPDATE``), as this transaction's UPDATE of the new member's
    version (``_touch_users``) already did a little later: the same order, the group first.
    Members already there are not locked: a group's PUT repeating its 50,000 members writes
    no lock on each, and re-adding a member whose delete waits for this group (to move its
    version) cannot deadlock with it.
    """
    ids = list(dict.fromkeys(member_key(ref["value"]) for ref in refs))
    if group_id in ids:
        raise InvalidValueError("A group cannot be a member of itself.")
    found: dict[str, str] = {i: present[i] for i in ids if i in present}
    new = [i for i in ids if i not in present]
    for chunk_start in range(0, len(new), CHUNK):
        chunk = new[chunk_start : chunk_start + CHUNK]
        for uid in session.scalars(
            select(User.id)
            .where(User.org_id == org_id, User.id.in_(chunk))
            .with_for_update(read=True, key_share=True)
        ):
            found[uid] = "User"
        for gid in session.scalars(
            select(Group.id)
            .where(Group.org_id == org_id, Group.id.in_(chunk))
            .with_for_update(read=True, key_share=True)
        ):
            found[gid] = "Group"
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidValueError(f"No User or Group with id {missing[0]!r} in this organization.")
    for ref in refs:
        declared = ref.get("type")
        kind = found[member_key(ref["value"])]
        if declared and declared.lower() != kind.lower():
            raise InvalidValueError(f"Member {ref['value']!r} is a {kind}, not a {declared}.")
    return found


# pg_advisory_xact_lock key: the changes that add groups to groups in one organization
# take turns for their cycle check (the organization's id is the second half).
GROUP_GRAPH_LOCK = 0x5C1A_6E57
_TAKE_GROUP_GRAPH_LOCK = text("SELECT pg_advisory_xact_lock(:key, hashtext(:org_id))").bindparams(
    key=GROUP_GRAPH_LOCK
)


def _lock_group_graph(session: Session, org_id: str) -> None:
    """Wait for the organization's other changes adding groups to groups to end, then hold
    the turn to this transaction's end (PostgreSQL; SQLite's writer holds the database).

    Each such change locks only its own group: two that add each other's group (A into B,
    B into A), or close a longer loop, would each find no cycle and both commit one.
    Locking the groups added is not enough (B in A and D in C: adding C to B and A to D at
    once closes A, B, C, D, A with no group locked by both). An advisory lock,
    not a row's: it conflicts with nothing but itself, so it joins no other lock order
    (the organization's row is locked by settings changes, which would then queue behind
    group changes; the audit head is every writer's last lock, taken at the commit). A
    change that adds only users never takes it.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_TAKE_GROUP_GRAPH_LOCK, {"org_id": org_id})


def _check_no_cycle(session: Session, org_id: str, group_id: str, added: Sequence[str]) -> None:
    """Refuse groups ``added`` to ``group_id`` that contain it, directly or through other
    groups: the membership graph stays free of cycles (a group in itself: ``_resolve``).

    One recursive query walks down from the added groups through ``group_members`` (the
    primary key serves each step; UNION, not UNION ALL, ends on any cycle already stored).
    The organization's group graph is locked first (``_lock_group_graph``): the walk,
    a statement of its own after the lock (a new snapshot under READ COMMITTED), sees every
    group added by a change that held the lock before, and none can be added until this
    transaction ends.
    """
    if not added:
        return
    _lock_group_graph(session, org_id)
    gm = GroupMember.__table__.c
    for start in range(0, len(added), CHUNK):
        below = (
            select(gm.member_id)
            .where(
                gm.org_id == org_id,
                gm.group_id.in_(added[start : start + CHUNK]),
                gm.member_type == "Group",
            )
            .cte("below", recursive=True)
        )
        step = select(gm.member_id).where(
            gm.org_id == org_id, gm.group_id == below.c.member_id, gm.member_type == "Group"
        )
        below = below.union(step)
        reached = select(below.c.member_id).where(below.c.member_id == group_id).limit(1)
        if session.scalar(reached) is not None:
            raise InvalidValueError(
                "A group cannot be a member of a group it contains: the membership would "
                "make a cycle."
            )


def _add(session: Session, org_id: str, group_id: str, refs: Sequence[Doc]) -> Members:
    """Insert the members not already there; a repeated add is a no-op. Returns those added.

    The count comes from looking the requested ids up, not from the INSERT's
    rowcount, which drivers do not report reliably for an executemany
    (psycopg reports -1). The group row is locked (on SQLite, the database
    is), so the look-up cannot go stale before the insert.
    """
    if not refs:
        return []
    ids = list(dict.fromkeys(member_key(ref["value"]) for ref in refs))
    present = _present(session, org_id, group_id, ids)
    types = _resolve(session, org_id, group_id, refs, present)
    # Only a group not yet a member adds an edge to the membership graph.
    joining = [mid for mid, kind in types.items() if kind == "Group" and mid not in present]
    _check_no_cycle(session, org_id, group_id, joining)
    # RFC 7643 §4.2: a member's display is set when it is added, then immutable: a
    # member already there keeps its own, and a member listed twice gets the first
    # display given. An empty display is no display.
    displays: dict[str, str] = {}
    for ref in refs:
        if ref.get("display"):
            displays.setdefault(member_key(ref["value"]), ref["display"])
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "org_id": org_id,
            "group_id": group_id,
            "member_id": mid,
            "member_type": kind,
            "display": displays.get(mid),
            "display_key": fold(displays[mid]) if mid in displays else None,
            "created_at": now,
        }
        for mid, kind in types.items()
        if mid not in present
    ]
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    session.execute(insert_for(dialect)(GroupMember).on_conflict_do_nothing(), rows)
    return [(row["member_id"], row["member_type"]) for row in rows]


# -- the provisioning log ------------------------------------------------------------

LISTED_MEMBERS = 1000


def _record_group_event(
    session: Session, group: Group, action: str, changes: Doc, added: Members, removed: Members
) -> None:
    """The group's own event; membership changes are summarised in its ``changes``."""
    if added or removed:
        changes = {
            **changes,
            "members": {
                "added": [m for m, _ in added[:LISTED_MEMBERS]],
                "removed": [m for m, _ in removed[:LISTED_MEMBERS]],
                "added_count": len(added),
                "removed_count": len(removed),
            },
        }
    record(
        session,
        group.org_id,
        action,
        resource_type="Group",
        resource_id=group.id,
        external_id=group.external_id,
        detail=group.display_name,
        changes=changes,
    )


def remap_moved_users(
    session: Session, group: Group, added: Members, removed: Members | None = None
) -> None:
    """Re-run the mapping rules for the users whose membership changed.

    Rules can look at groups, so a membership change can move a user's license
    (and the seats counted) and roles; each user whose outcome changed gets a
    ``user.mapping`` event. Only those ``added`` may be refused a seat (strict seat mode):
    one only ``removed`` is never (``provisioning.reevaluate``).
    """
    removed = removed or []
    moved = [*added, *removed]
    user_ids = [m for m, kind in moved if kind == "User"]
    left = {m for m, kind in removed if kind == "User"} - {m for m, _ in added}
    reevaluated = provisioning.reevaluate(
        session, group.org_id, user_ids, left=left, joined=group.id
    )
    for user_id, outcome in reevaluated.items():
        record(
            session,
            group.org_id,
            "user.mapping",
            resource_type="User",
            resource_id=user_id,
            user_name=outcome["user_name"],
            external_id=outcome["external_id"],
            detail=f"membership of {group.display_name!r} changed",
            changes=outcome["changes"],
            explanation={"rules": outcome["rules"]},
        )


def remap_renamed(
    session: Session, group: Group, before: tuple[str | None, str | None]
) -> list[Any]:
    """Re-run the mapping rules for the members of a group whose displayName or externalId
    changed from ``before``, when the active rules name the group by either, old or new
    (``member_of``): its members may no longer hold (or may now hold) what a rule gives.

    In the caller's transaction (after the rename is flushed), batch by batch, as ``rules
    apply`` evaluates (``rule_apply.apply_members``: a few queries per 500 members, never
    one per member); each user whose outcome changed gets a ``user.mapping`` event. A
    rename no rule names costs one cached read of the rules. Returns the users and contacts
    evaluated, for the caller to hold until the commit.
    """
    after = (group.display_name, group.external_id)
    if after == before:
        return []
    settings, rules = identity_config(session, group.org_id)
    if rules is None or not rules.names_group(*before, *after):
        return []
    done = rule_apply.apply_members(session, group.org_id, group.id, rules, settings, before)
    if before[0] != after[0]:
        why = f"group {before[0]!r} renamed to {after[0]!r}"
    else:
        why = f"externalId of group {after[0]!r} changed from {before[1]!r} to {after[1]!r}"
    for user_id, outcome in done.changed.items():
        user_name, external_id = done.names.get(user_id, (None, None))
        record(
            session,
            group.org_id,
            "user.mapping",
            resource_type="User",
            resource_id=user_id,
            user_name=user_name,
            external_id=external_id,
            detail=why,
            changes=outcome["changes"],
            explanation={"rules": outcome["rules"]},
        )
    return done.loaded


def _record_member_events(session: Session, group: Group, added: Members, removed: Members) -> None:
    """One event per membership change, for each member's timeline."""
    about = {"group": {"id": group.id, "displayName": group.display_name}}
    names = _user_names(session, group.org_id, [m for m, kind in added + removed if kind == "User"])
    for kind_action, members in (("group.member.add", added), ("group.member.remove", removed)):
        for member_id, kind in members:
            user_name, external_id = names.get(member_id, (None, None))
            record(
                session,
                group.org_id,
                kind_action,
                resource_type=kind,
                resource_id=member_id,
                user_name=user_name,
                external_id=external_id,
                detail=group.display_name,
                changes=about,
            )


def _user_names(session: Session, org_id: str, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    out: dict[str, tuple[str, str | None]] = {}
    for start in range(0, len(ids), CHUNK):
        rows = session.execute(
            select(User.id, User.user_name, User.external_id).where(
                User.org_id == org_id, User.id.in_(ids[start : start + CHUNK])
            )
        )
        out.update({uid: (name, ext) for uid, name, ext in rows})
    return out


def _check_inline(session: Session, org_id: str, group_id: str, limit: int) -> None:
    """Refuse a change whose answer would list more than ``limit`` members.

    The answer is refused after the change otherwise (``scim.render.render_group``):
    checked in the change's transaction, the refusal writes nothing.
    """
    first = (
        select(GroupMember.member_id)
        .where(GroupMember.org_id == org_id, GroupMember.group_id == group_id)
        .limit(limit + 1)
        .subquery()
    )
    if (session.scalar(select(func.count()).select_from(first)) or 0) > limit:
        raise TooManyError(
            f"This group would have more than {limit} members, too many to return inline; "
            "nothing was changed. Send the change again without asking for the members "
            "(excludedAttributes=members, or no attributes for an empty answer) and look "
            'members up with filter=members[value eq "<id>"].'
        )


def member_count(session: Session, org_id: str, group_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                GroupMember.org_id == org_id, GroupMember.group_id == group_id
            )
        )
        or 0
    )


def _members_of() -> Any:
    # Core aliases, built once: the ORM's aliased() adapted every column on each read,
    # which cost more than the rest of a GET of a group.
    gm = GroupMember.__table__.c
    users, groups = User.__table__.alias(), Group.__table__.alias()
    u, g = users.c, groups.c
    return (
        select(
            gm.member_id,
            gm.member_type,
            func.coalesce(gm.display, u.display_name, u.user_name, g.display_name),
        )
        .outerjoin(users, (u.org_id == gm.org_id) & (u.id == gm.member_id))
        .outerjoin(groups, (g.org_id == gm.org_id) & (g.id == gm.member_id))
        .where(gm.org_id == bindparam("org_id"), gm.group_id == bindparam("group_id"))
        .order_by(gm.member_id)
    )


_MEMBERS_OF = _members_of()
_MEMBERS_OF_LIMITED = _MEMBERS_OF.limit(bindparam("limit"))


def members_of(
    session: Session, org_id: str, group_id: str, limit: int | None = None
) -> list[tuple[str, str, str | None]]:
    """(member id, type, display) for one group, in a stable order.

    The display is the one the client set when adding the member, else the
    member's current name (a user's displayName or userName, a group's displayName).
    """
    params: dict[str, Any] = {"org_id": org_id, "group_id": group_id}
    stmt = _MEMBERS_OF
    if limit is not None:
        stmt, params["limit"] = _MEMBERS_OF_LIMITED, limit
    rows = session.connection().execute(stmt, params)
    return [(mid, kind, display) for mid, kind, display in rows]
