"""``rules apply`` in batches: read a batch of users in a few queries, skip the unchanged.

For each batch of users (keyset on id): one query for the users' rule inputs
and stored hashes, one for their groups, one for their rule roles, one for
their contacts' rule-set fields. A user whose hash (``rule_inputs``) matches
is skipped; the others are loaded whole (two queries) and evaluated through
``provisioning.apply_result`` with ``BatchLookups``: licenses, roles and
companies read once per batch, each license locked and its seats counted once
per batch, new rule roles inserted together (and those taken away deleted together,
one statement per role), and the columns the rules decide
written for the whole batch at once (``write_batch``: one ``UPDATE ... FROM
unnest`` on PostgreSQL for the users, one for their contacts) rather than one
UPDATE per user by the ORM's flush. The caller commits the batch with its audit
events (``rule_sets.run_apply``).

A renamed group's members are evaluated the same way (``apply_members``: a keyset on
the group's member rows), in the rename's transaction (``groups.remap_renamed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, inspect, select, update
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import instance_state, set_committed_value

import mappings
from scim_server import bulk_rows
from scim_server.db import utcnow
from scim_server.models import Contact, Group, GroupMember, License, Role, User, UserRole
from scim_server.services import contacts, licenses, provisioning, rule_inputs
from scim_server.services.roles import regiven, role_change
from scim_server.services.settings import IdentitySettings
from scim_server.text import fold


class SerialStepError(Exception):
    """An overlapped batch (``apply_batch(overlap=True)``) met what only a step holding its
    locks from the start may decide: a license with a seat limit (its seats counted under
    its lock, which the previous, uncommitted batch may hold), or a company contact to
    create (the previous batch may have created it, not yet visible). Nothing of the batch
    is kept; the apply runs it as a plain step (``rule_sets.run_apply``).

    ``for_rest``: the next batches would meet it too (seats): stay with plain steps.
    """

    def __init__(self, reason: str, for_rest: bool) -> None:
        super().__init__(reason)
        self.for_rest = for_rest


@dataclass
class Batch:
    """What one batch did: the last user id read, counts, and each changed user's outcome."""

    last: str | None
    after: str = ""  # the user id the batch read after (the checkpoint it continues)
    checked: int = 0
    evaluated: int = 0
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Strict seats: the users a license with no seat left was refused to (user id -> the
    # refusal: license name, seat limit). They keep the license they hold; the rest of
    # their changes, and the batch, apply (``BatchLookups(refusals=True)``).
    refused: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The userName and externalId of each changed or refused user (their events name them,
    # as every event about a user does: the log's search by userName finds them).
    names: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    role_rows: int = 0
    contacts_changed: int = 0
    # Overlapped: the licenses it gave without locking them (all without a seat limit when
    # evaluated); the step that commits it locks them and checks they still have none.
    licenses: set[str] = field(default_factory=set)
    # Overlapped: the new rule roles, inserted when it commits (``insert_roles``).
    roles: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # The evaluated users and their contacts, held until the step commits: the session
    # keeps clean objects only weakly, and the product events read their state at commit
    # (``events.writer``) from the identity map rather than loading a thousand users again.
    loaded: list[Any] = field(default_factory=list, repr=False)


# The columns the rules decide, written for a batch at once (``write_batch``): the
# user's license and status (``provisioning.apply_result``), its hash; the contact's
# fields (``contacts.update_fields``, which also sets ``email_key`` and ``updated_at``).
USER_COLUMNS = (
    "license_id",
    "license_source",
    "license_rule",
    "license_wanted_id",
    "rules_input_hash",
    "status",
    "active",
    "session_epoch",  # a license taken away ends the sessions (``licenses.end_sessions_if_lost``)
    "version",
    "updated_at",
)
CONTACT_COLUMNS = (*rule_inputs.CONTACT_STATE, "email_key", "updated_at")
# A batch's own statements need none of its pending changes written first (``write_batch``
# writes them, once); an autoflush would write them one UPDATE per user.
_NO_FLUSH = {"synchronize_session": False, "autoflush": False}
CHUNK = 500  # ids per IN (...) list, well under every driver's parameter limit


def write_batch(session: Session, objects: Sequence[Any], names: Sequence[str]) -> int:
    """Write those of ``names`` whose values changed on each of ``objects`` (ORM objects of
    one model, loaded in this transaction), one statement per set of changed columns
    (``bulk_rows.update_rows``; a batch has one or two sets); the objects are then clean
    for those names (the ORM's flush writes none of them again). A column whose value did
    not change is not written: another writer's change to it (a console edit of a contact
    field the rules do not set) is not put back. Other changed attributes, if any, are left
    to the flush. Returns how many objects were written.
    """
    if not objects:
        return 0
    mapper = inspect(objects[0]).mapper
    keys = [(column.key, column.name) for column in mapper.primary_key]
    columns = {name: mapper.get_property(name).columns[0].name for name in names}
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    written = []
    for obj in objects:
        state = instance_state(obj)
        # What the ORM would write: an attribute set since its load to a different value
        # (``committed_state`` keeps the loaded one; not loaded at all counts as changed).
        before, now = state.committed_state, state.dict
        touched = [n for n in names if n in before]
        changed = tuple(n for n in touched if before[n] != now.get(n))
        if not changed:
            continue
        row = {name: getattr(obj, key) for key, name in keys}
        row.update({columns[attr]: getattr(obj, attr) for attr in changed})
        by_columns.setdefault(changed, []).append(row)
        written.append((obj, touched))
    for rows in by_columns.values():
        bulk_rows.update_rows(session.connection(), mapper.class_, rows)
    for obj, touched in written:
        for name in touched:
            set_committed_value(obj, name, getattr(obj, name))
    return len(written)


class BatchLookups:
    """``provisioning.Lookups`` for many users in one transaction.

    ``users`` and ``people``: the batch's users and their contacts, whose changes
    ``write`` sends for all at once (before a license's seats are counted, and at
    the end), never an autoflush one UPDATE per user.

    ``overlap``: the batch is evaluated while the previous one may still be committing
    (``SerialStepError``): it locks no license (one without a seat limit needs no count;
    one with a limit stops the batch) and creates no company contact.

    ``refusals``: strict seat mode refuses one user, not the batch (``rules apply``: a
    user the seats cannot fit would otherwise roll back, and fail, everyone's changes):
    the user keeps the license it holds, the refusal is kept in ``refused``. Without it
    (a renamed group's members, in the rename's transaction) ``SeatsExhaustedError``
    refuses the whole change, as a membership change is refused, but only for a user
    whose license the change itself asks for (``asks``; None: every one): the others
    wait for a seat, as in lenient mode.
    """

    def __init__(
        self,
        session: Session,
        org_id: str,
        current: dict[str, dict[str, str | None]],
        users: Sequence[User] = (),
        people: Sequence[Contact] = (),
        overlap: bool = False,
        refusals: bool = False,
        asks: Callable[[User, License], bool] | None = None,
    ) -> None:
        self.session, self.org_id, self.current = session, org_id, current
        self.refusals = refusals
        self.asks = asks
        self.refused: dict[str, dict[str, Any]] = {}
        self.users, self.people = users, people
        self.licenses = {
            lic.name_key: lic
            for lic in session.scalars(select(License).where(License.org_id == org_id))
        }
        self.role_keys = {
            role.name_key: role
            for role in session.scalars(select(Role).where(Role.org_id == org_id))
        }
        self.seats: dict[str, tuple[int | None, int]] = {}
        self.overlap = overlap
        self.given: set[str] = set()
        if overlap:  # no count for these: licenses.assign takes no lock
            self.seats = {
                lic.id: (None, 0) for lic in self.licenses.values() if lic.seat_limit is None
            }
        self.companies: dict[str, Contact] = {}
        self.inserts: list[dict[str, Any]] = []
        self.deletes: dict[str, list[str]] = {}  # role id -> users losing it (``flush``)
        self.role_rows = 0

    def license(self, name: str) -> License | None:
        return self.licenses.get(fold(name))

    def license_by_id(self, license_id: str) -> License | None:
        return next((lic for lic in self.licenses.values() if lic.id == license_id), None)

    def roles(self, names: list[str]) -> dict[str, Role]:
        keys = {fold(n) for n in names}
        return {k: self.role_keys[k] for k in keys if k in self.role_keys}

    def assign_license(
        self, user: User, lic: License | None, rule: str | None, strict: bool, source: str = "rule"
    ) -> dict[str, Any]:
        if lic is not None and lic.id not in self.seats and user.license_id != lic.id:
            if self.overlap:
                raise SerialStepError(f"license {lic.name!r} has a seat limit", for_rest=True)
            # Its seats are about to be counted: the batch's changes so far count too.
            self.write()
        if lic is not None and self.overlap and user.license_id != lic.id:
            self.given.add(lic.id)
        if lic is not None and user.license_wanted_id == lic.id:
            strict = False  # waiting for it already: no new seat asked, nothing to refuse
        try:
            return licenses.assign(
                self.session,
                self.org_id,
                user,
                lic,
                source=source,
                rule=rule,
                strict=strict,
                seats=self.seats,
            )
        except licenses.SeatsExhaustedError:
            if lic is not None and self.asks is not None and not self.asks(user, lic):
                # Not asked for by this change: waited for, never refused. ``assign``
                # refuses before it changes anything: the lenient one starts clean.
                return licenses.assign(
                    self.session,
                    self.org_id,
                    user,
                    lic,
                    source=source,
                    rule=rule,
                    strict=False,
                    seats=self.seats,
                )
            if not self.refusals or lic is None:
                raise
            # Refused before anything changed: the user keeps what it holds.
            self.refused[user.id] = {"wanted": lic.name, "seat_limit": self.seats[lic.id][0]}
            return {}

    def set_rule_roles(self, user_id: str, wanted: dict[str, str | None]) -> dict[str, Any]:
        """As ``roles.set_source_roles`` for source "rule", against the batch's reading."""
        current = self.current.get(user_id, {})
        removed = sorted(rid for rid in current if rid not in wanted)
        added = sorted(rid for rid in wanted if rid not in current)
        for rid in removed:
            self.deletes.setdefault(rid, []).append(user_id)
        now = utcnow()
        self.inserts += [
            {
                "org_id": self.org_id,
                "user_id": user_id,
                "role_id": rid,
                "source": "rule",
                "rule": wanted[rid],
                "created_at": now,
            }
            for rid in added
        ]
        given_by = regiven(current, wanted)
        for rid in given_by:
            self.session.execute(
                update(UserRole)
                .where(
                    UserRole.org_id == self.org_id,
                    UserRole.user_id == user_id,
                    UserRole.source == "rule",
                    UserRole.role_id == rid,
                )
                .values(rule=wanted[rid]),
                execution_options=_NO_FLUSH,
            )
        self.current[user_id] = dict(wanted)
        self.role_rows += len(added) + len(removed)
        return role_change("rule", added, removed, given_by)

    def organization_contact(self, name: str) -> Contact:
        key = fold(name)
        if key not in self.companies:
            self.write()  # the query below would flush the batch's changes one row at a time
            if self.overlap:
                found = contacts.find_organization_contact(self.session, self.org_id, name)
                if found is None:
                    raise SerialStepError(f"company contact {name!r} to create", for_rest=False)
                self.companies[key] = found
            else:
                self.companies[key] = contacts.organization_contact(self.session, self.org_id, name)
        return self.companies[key]

    def write(self) -> None:
        """Write the users' and contacts' changes so far, one statement for each table."""
        write_batch(self.session, self.users, USER_COLUMNS)
        write_batch(self.session, self.people, CONTACT_COLUMNS)

    def flush(self, roles: bool = True) -> None:
        """Write the batch's changes: users and contacts (``write``), whatever else the ORM
        holds (a new company contact), the rule roles taken away (one DELETE per role, not
        per user: a renamed group's rule taken from thousands), the queued role rows (one
        INSERT of many rows) unless ``roles`` is False (``Batch.roles``: written when it
        commits)."""
        self.write()
        self.session.flush()
        self.delete_roles()
        if self.inserts and roles:
            insert_roles(self.session, self.inserts)
            self.inserts = []

    def delete_roles(self) -> None:
        """The queued removals of rule roles, a DELETE per role and ``CHUNK`` users."""
        for rid, user_ids in sorted(self.deletes.items()):
            for start in range(0, len(user_ids), CHUNK):
                self.session.execute(
                    delete(UserRole).where(
                        UserRole.org_id == self.org_id,
                        UserRole.role_id == rid,
                        UserRole.source == "rule",
                        UserRole.user_id.in_(user_ids[start : start + CHUNK]),
                    ),
                    execution_options=_NO_FLUSH,
                )
        self.deletes = {}


def insert_roles(session: Session, rows: list[dict[str, Any]]) -> None:
    """New rule roles, one INSERT (or COPY) for many; an overlapped batch's at its commit."""
    if rows:
        bulk_rows.insert_rows(session.connection(), UserRole, rows)


def groups_by_user(
    session: Session, org_id: str, ids: list[str], listed: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Each user's groups as the rules see them (``provisioning.user_groups``), in one query.

    ``ids`` are a keyset batch, in the database's id order: the query takes the
    range between the first and the last (one cached statement, an index range
    scan) rather than a list of a thousand parameters compiled for every batch.
    ``listed``: the ids are not every user of their range (a group's members,
    ``apply_members``): the query names them.
    """
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = session.connection().execute(
        _GROUPS_LISTED if listed else _GROUPS,
        {"org_id": org_id, "ids": ids} if listed else _range(org_id, ids),
    )
    for member_id, gid, name, ext in rows:
        found = out.get(member_id)  # a nested group's id may fall in the range
        if found is not None:
            found.append({"id": gid, "displayName": name, "externalId": ext})
    return out


def rule_roles_by_user(
    session: Session, org_id: str, ids: list[str], listed: bool = False
) -> dict[str, dict[str, str | None]]:
    """Each user's ``rule`` roles, role id -> rule, in one query (the batch's id range;
    ``listed``: the ids themselves, as ``groups_by_user``)."""
    out: dict[str, dict[str, str | None]] = {i: {} for i in ids}
    if not ids:
        return out
    rows = session.connection().execute(
        _RULE_ROLES_LISTED if listed else _RULE_ROLES,
        {"org_id": org_id, "ids": ids} if listed else _range(org_id, ids),
    )
    for user_id, role_id, rule in rows:
        found = out.get(user_id)
        if found is not None:
            found[role_id] = rule
    return out


def _range(org_id: str, ids: list[str]) -> dict[str, str]:
    return {"org_id": org_id, "first": ids[0], "last": ids[-1]}


_ALL_GROUPS = select(GroupMember.member_id, Group.id, Group.display_name, Group.external_id).join(
    Group, (Group.org_id == GroupMember.org_id) & (Group.id == GroupMember.group_id)
)
_GROUPS = _ALL_GROUPS.where(
    GroupMember.org_id == bindparam("org_id"),
    GroupMember.member_id.between(bindparam("first"), bindparam("last")),
)
_GROUPS_LISTED = _ALL_GROUPS.where(
    GroupMember.org_id == bindparam("org_id"),
    GroupMember.member_id.in_(bindparam("ids", expanding=True)),
)
_ALL_RULE_ROLES = select(UserRole.user_id, UserRole.role_id, UserRole.rule).where(
    UserRole.org_id == bindparam("org_id"), UserRole.source == "rule"
)
_RULE_ROLES = _ALL_RULE_ROLES.where(UserRole.user_id.between(bindparam("first"), bindparam("last")))
_RULE_ROLES_LISTED = _ALL_RULE_ROLES.where(UserRole.user_id.in_(bindparam("ids", expanding=True)))


_INPUTS = select(
    User.id,
    User.data,
    User.contact_id,
    User.license_id,
    User.license_source,
    User.license_rule,
    User.license_wanted_id,
    User.rules_input_hash,
    User.version,
    Contact.id.label("person_id"),
    *(getattr(Contact, name) for name in rule_inputs.CONTACT_STATE),
)
# The user's contact joined in: its rule-set fields are part of the hash.
_READ = (
    _INPUTS.select_from(User)
    .outerjoin(Contact, (Contact.org_id == User.org_id) & (Contact.id == User.contact_id))
    .where(User.org_id == bindparam("org_id"), User.id > bindparam("after"))
    .order_by(User.id)
    .limit(bindparam("size"))
)
# The same for given users (``_refreshed``: those another writer changed meanwhile).
_READ_IDS = (
    _INPUTS.select_from(User)
    .outerjoin(Contact, (Contact.org_id == User.org_id) & (Contact.id == User.contact_id))
    .where(User.org_id == bindparam("org_id"), User.id.in_(bindparam("ids", expanding=True)))
    .order_by(User.id)
)
# The same for the next user members of a group (``apply_members``: its member rows' key).
_READ_MEMBERS = (
    _INPUTS.select_from(GroupMember)
    .join(User, (User.org_id == GroupMember.org_id) & (User.id == GroupMember.member_id))
    .outerjoin(Contact, (Contact.org_id == User.org_id) & (Contact.id == User.contact_id))
    .where(
        GroupMember.org_id == bindparam("org_id"),
        GroupMember.group_id == bindparam("group_id"),
        GroupMember.member_id > bindparam("after"),
        GroupMember.member_type == "User",
    )
    .order_by(GroupMember.member_id)
    .limit(bindparam("size"))
)
_STATE_AT = 10  # the first CONTACT_STATE column in an _INPUTS row

# A step that finds nothing to evaluate goes on reading, up to this many batches, in
# the same transaction: a re-apply with little to change pays the job's per-step
# work (its row locked, the rules read, a commit) once per many batches (10,000 users
# in batches of ``rule_sets.APPLY_BATCH``).
SCAN_BATCHES = 20
# A renamed group's members evaluated at a time (``apply_members``), as ``rules apply``'s
# batches (``rule_sets.APPLY_BATCH``).
MEMBER_BATCH = 500


def _stale(
    digest: str,
    rows: Sequence[Any],
    ids: list[str],
    session: Session,
    org_id: str,
    listed: bool = False,
) -> tuple[list[str], dict[str, list[dict[str, Any]]], dict[str, dict[str, str | None]]]:
    """The ids whose stored hash differs (or who have none), with the batch's groups and roles
    (``listed``: see ``groups_by_user``)."""
    groups = groups_by_user(session, org_id, ids, listed)
    current = rule_roles_by_user(session, org_id, ids, listed)
    stale = []
    for r in rows:
        if r.person_id is None:
            continue  # no person contact: nothing the rules could apply to (as one at a time)
        stored = rule_inputs.input_hash(
            digest, r.data, groups[r.id], (r[3], r[4], r[5], r[6]), current[r.id], r[_STATE_AT:]
        )
        if stored is None or stored != r.rules_input_hash:
            stale.append(r.id)
    return stale, groups, current


def _refreshed(
    session: Session,
    org_id: str,
    digest: str,
    ids: list[str],
    data: dict[str, Any],
    groups: dict[str, list[dict[str, Any]]],
    current: dict[str, dict[str, str | None]],
) -> set[str]:
    """Read these users' rule inputs again (they are locked now), into ``data``, ``groups``
    and ``current``; returns those still to evaluate (another writer may have evaluated
    the rules for them already: their hash matches)."""
    rows = session.connection().execute(_READ_IDS, {"org_id": org_id, "ids": ids}).all()
    found = [r.id for r in rows]
    stale, fresh_groups, fresh_current = _stale(digest, rows, found, session, org_id)
    for r in rows:
        data[r.id] = r.data
        groups[r.id] = fresh_groups[r.id]
        current[r.id] = fresh_current[r.id]
    return set(stale)


def apply_batch(
    session: Session,
    org_id: str,
    rules: mappings.RuleSet,
    settings: IdentitySettings,
    after: str,
    size: int,
    scan: int = SCAN_BATCHES,
    overlap: bool = False,
) -> Batch:
    """Evaluate the next users (ids after ``after``) whose inputs changed; no commit.

    Reads ``size`` users at a time; stops after the first read that has users to
    evaluate (at most ``size`` evaluated per call), or after ``scan`` reads.
    The users to evaluate are locked (``FOR UPDATE``) as they are loaded: a SCIM
    write of one of them waits for the batch's commit; one that committed between
    the first read and the lock (its version moved) is read again and evaluated on
    what it holds now, so the batch never writes a decision taken on stale inputs.
    ``overlap``: see ``BatchLookups`` (``SerialStepError``).
    """
    digest = rule_inputs.rules_digest(rules, settings)
    # Core reads (no ORM objects) for what every user needs; ORM objects only for the stale.
    conn = session.connection()
    batch = Batch(last=None, after=after)
    stale: list[str] = []
    for _ in range(scan):
        rows = conn.execute(_READ, {"org_id": org_id, "after": after, "size": size}).all()
        if not rows:
            break
        ids = [r.id for r in rows]
        stale, groups, current = _stale(digest, rows, ids, session, org_id)
        batch.last, after = ids[-1], ids[-1]
        batch.checked += len(ids)
        if stale:
            break
    if not stale:
        return batch
    _evaluate(
        session,
        org_id,
        rules,
        settings,
        digest,
        batch,
        rows,
        stale,
        groups,
        current,
        overlap,
        refusals=True,
    )
    return batch


def apply_members(
    session: Session,
    org_id: str,
    group_id: str,
    rules: mappings.RuleSet,
    settings: IdentitySettings,
    before: tuple[str | None, str | None],
    size: int = MEMBER_BATCH,
) -> Batch:
    """Evaluate the rules for those of a group's user members whose inputs changed (the
    group renamed from ``before``, its displayName and externalId:
    ``groups.remap_renamed``), in the caller's transaction, as ``apply_batch``
    evaluates a batch: ``size`` members read at a time (a keyset on the group's member
    rows), in a few queries per batch, the changes written for a batch at once. Returns
    one ``Batch`` for them all: ``changed`` (each changed user's outcome) and ``loaded``
    (to hold until the commit, as ``Batch.loaded`` says).
    """
    digest = rule_inputs.rules_digest(rules, settings)
    conn = session.connection()
    out = Batch(last=None)
    after = ""
    while True:
        params = {"org_id": org_id, "group_id": group_id, "after": after, "size": size}
        rows = conn.execute(_READ_MEMBERS, params).all()
        if not rows:
            return out
        ids = [r.id for r in rows]
        stale, groups, current = _stale(digest, rows, ids, session, org_id, listed=True)
        after = ids[-1]
        out.checked += len(ids)
        if stale:
            batch = Batch(last=after)
            _evaluate(
                session,
                org_id,
                rules,
                settings,
                digest,
                batch,
                rows,
                stale,
                groups,
                current,
                asks=_asked_by_group(rules, groups, group_id, before),
            )
            out.evaluated += batch.evaluated
            out.changed.update(batch.changed)
            out.refused.update(batch.refused)
            out.names.update(batch.names)
            out.loaded += batch.loaded
            out.role_rows += batch.role_rows
            out.contacts_changed += batch.contacts_changed
        out.last = after


def _asked_by_group(
    rules: mappings.RuleSet,
    groups: dict[str, list[dict[str, Any]]],
    group_id: str,
    before: tuple[str | None, str | None],
) -> Callable[[User, License], bool]:
    """Whether a change of the group ``group_id``'s name or externalId (from ``before``)
    asks for a member's seat of a license: the rules wanted it for the member neither
    with the group as it was nor without the group at all. A rename away from the group a
    rule names ends access, as a removal does (``provisioning.reevaluate``'s ``left``), and
    one the same rules name in both forms (or rules activated and not yet applied) moves no
    one: neither is refused in strict seat mode, the license then wanted is waited for. A
    rename onto a name a rule gives a full license for asks."""
    old_name, old_external_id = before
    was = {"id": group_id, "displayName": old_name, "externalId": old_external_id}

    def asks(user: User, lic: License) -> bool:
        others = [g for g in groups[user.id] if g["id"] != group_id]
        return not (
            provisioning.rules_want(rules, user.data, [*others, was], lic)
            or provisioning.rules_want(rules, user.data, others, lic)
        )

    return asks


def _evaluate(
    session: Session,
    org_id: str,
    rules: mappings.RuleSet,
    settings: IdentitySettings,
    digest: str,
    batch: Batch,
    rows: Sequence[Any],
    stale: list[str],
    groups: dict[str, list[dict[str, Any]]],
    current: dict[str, dict[str, str | None]],
    overlap: bool = False,
    refusals: bool = False,
    asks: Callable[[User, License], bool] | None = None,
) -> None:
    """Evaluate the ``stale`` users of ``rows`` (a batch's reading, with their groups and
    rule roles), locked as they are loaded; what it did goes into ``batch``
    (``refusals``, ``asks``: see ``BatchLookups``)."""
    data = {r.id: r.data for r in rows}
    read_versions = {r.id: r.version for r in rows}
    users = session.scalars(
        select(User)
        .options(defer(User.data))
        .where(User.org_id == org_id, User.id.in_(stale))
        .order_by(User.id)
        .with_for_update()
    ).all()
    moved = [u.id for u in users if u.version != read_versions[u.id]]
    if moved:  # another writer committed since the read: its inputs as they are now
        still = _refreshed(session, org_id, digest, moved, data, groups, current)
        users = [u for u in users if u.id not in moved or u.id in still]
    for user in users:  # read above already: not decoded twice
        set_committed_value(user, "data", data[user.id])
    batch.evaluated = len(users)
    people = {
        c.id: c
        for c in session.scalars(
            select(Contact).where(
                Contact.org_id == org_id, Contact.id.in_({u.contact_id for u in users})
            )
        )
    }
    lookups = BatchLookups(
        session, org_id, current, users, list(people.values()), overlap, refusals, asks
    )
    before = {c.id: rule_inputs.contact_state(c) for c in people.values()}
    now = utcnow()
    results = {
        user.id: mappings.resolve(
            mappings.ExternalIdentity.from_scim(user.data, groups[user.id]), rules
        )
        for user in users
    }
    # Those the rules take a license from first: the seats they give back go to those the
    # rules now want on them, in the same batch (in id order, one who sorted first waited
    # next to the seat freed after it, or was refused it in strict seat mode).
    for user in sorted(users, key=lambda u: not _gives_back(lookups, u, results[u.id])):
        contact = people[user.contact_id or ""]
        result = results[user.id]
        changes, rule_roles = provisioning.apply_result(
            session, org_id, user, contact, result, settings, False, user.data, lookups
        )
        user.rules_input_hash = provisioning.inputs_hash(
            rules, settings, user.data, groups[user.id], user, rule_roles, contact, digest
        )
        if user.id in lookups.refused:
            # Evaluated again by the next apply: a seat may have been freed by then.
            user.rules_input_hash = None
            batch.refused[user.id] = lookups.refused[user.id]
        if changes:
            # The SCIM view shows license, roles, status and the contact's fields: a changed
            # user is a new version (its ETag moves; If-None-Match must not answer 304).
            user.version += 1
            user.updated_at = now
            batch.changed[user.id] = {"changes": changes, "rules": list(result.explanation)}
        if changes or user.id in batch.refused:
            batch.names[user.id] = (user.user_name, user.external_id)
    # Overlapped, the rule roles' COPY goes with the commit (the writer thread's part,
    # which has less to do than the evaluation): what reads them (the product events'
    # state) runs at the commit, after it.
    lookups.flush(roles=not overlap)
    batch.roles, lookups.inserts = lookups.inserts, []
    batch.licenses = lookups.given
    batch.loaded = [*users, *people.values()]
    batch.role_rows = lookups.role_rows
    batch.contacts_changed = sum(
        1 for c in people.values() if rule_inputs.contact_state(c) != before[c.id]
    )


def _gives_back(lookups: BatchLookups, user: User, result: mappings.MappingResult) -> bool:
    """Whether the rules take from ``user`` the license it holds (none, or another)."""
    if user.license_id is None or user.license_source == "manual":
        return False
    wanted = lookups.license(result.license) if result.license else None
    return wanted is None or wanted.id != user.license_id


def check_licenses(session: Session, org_id: str, ids: set[str]) -> None:
    """Lock the licenses an overlapped batch gave (``BatchLookups``: without a lock, as they
    had no seat limit); ``SerialStepError`` if one has a limit now (set meanwhile).

    ``FOR NO KEY UPDATE``: it waits for a seat count (``licenses.assign``, ``FOR UPDATE``)
    or a change of the limit, never for the next batch, whose users' new license ids hold
    the license ``FOR KEY SHARE`` (the foreign key's check) until that batch commits, after
    this one: ``FOR UPDATE`` would wait for it, and it for this commit.
    """
    if not ids:
        return
    limits = session.execute(
        select(License.id, License.seat_limit)
        .where(License.org_id == org_id, License.id.in_(sorted(ids)))
        .order_by(License.id)
        .with_for_update(key_share=True)
    ).all()
    limited = [lic_id for lic_id, limit in limits if limit is not None]
    if limited:
        raise SerialStepError(f"license {limited[0]} has a seat limit now", for_rest=True)
