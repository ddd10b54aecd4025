"""Write the product events of a transaction just before it commits, in that transaction.

``install`` hooks ``before_commit`` (which SQLAlchemy also fires when a
savepoint is released): the audit events noted since (``events.pending``) are
mapped to product events (``events.types``), the state of each resource they
are about is read once per resource, as ``GET /api/v1/users/<id>`` shows it,
and the rows are inserted with one executemany. Nothing else: webhook
deliveries are made from the events by the worker (``services.webhook_fanout``),
so a write costs the same whatever the number of subscriptions.

Positions: every transaction that writes an event has recorded its audit
event, so it holds its organization's audit head lock until it commits; the
next position is read under that lock (``max + 1``), which makes positions
gap-free and increasing per organization without a second lock. The rows ride
with the audit events (``recorder.Rider``): on PostgreSQL a write's one or few
events are inserted by the recorder's statement itself (audit events, head,
product events: one round trip).
"""

from __future__ import annotations

import os
from collections import defaultdict
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, event, func, insert, select
from sqlalchemy.orm import Session

from scim_server import bulk_rows
from scim_server.audit import recorder
from scim_server.audit.recorder import Recorded
from scim_server.db import KeyRead, reuse_plan
from scim_server.events import pending
from scim_server.events.types import Derived, derive
from scim_server.fixed import Fixed
from scim_server.models import Event, Group, User
from scim_server.services import account_views, counts, users

# By the organization's key (the last position: the primary key's end); plans reused.
_LAST = reuse_plan(select(func.max(Event.position)).where(Event.org_id == bindparam("org_id")))
_NEXT = (
    select(func.coalesce(func.max(Event.position), 0) + 1)
    .where(Event.org_id == bindparam("next_org_id"))
    .scalar_subquery()
)
_COLUMNS = [c.name for c in Event.__table__.columns]
# One event (the usual write): its position is computed by the INSERT itself (``inline``:
# nothing read back).
_INSERT_NEXT = Fixed(
    reuse_plan(insert(Event).values(position=_NEXT).inline()),
    keys=[name for name in _COLUMNS if name != "position"],
)
# One user's groups, roles and license names, and the organization's audit head (locked):
# the state of a write's user and the head it then writes its events onto, one round trip.
_EXTRAS_AND_HEAD = users.extras_of_one_statement(recorder.head_read())
_EXTRAS_AND_HEAD_READ = KeyRead(_EXTRAS_AND_HEAD)


def install() -> None:
    """Register the commit hook (and the savepoint rollback one); idempotent.

    First among the ``before_commit`` hooks: the resources' states are read
    before the recorder's flush locks the audit head.
    """
    pending.install()
    if not event.contains(Session, "before_commit", write_pending):
        event.listen(Session, "before_commit", write_pending, insert=True)


def write_pending(session: Session) -> None:
    """Derive and insert the events of the audit events noted in this transaction.

    The states are read first, then the organizations' counts change and their
    audit heads are locked (both held from there to the commit), the audit events
    are written, then the product events, numbered under that lock.
    """
    noted: list[Recorded] = pending.take(session) if session.info.get(pending.KEY) else []
    if noted:
        # The audit events' hashes, but for their place in the chain, before any head is
        # locked below (on PostgreSQL the head's holder makes its organization's writers wait).
        recorder.prepare(session)
    by_org: dict[str, list[tuple[Recorded, Derived]]] = defaultdict(list)
    for audit_event in noted:
        for derived in derive(
            audit_event.action,
            audit_event.outcome,
            audit_event.resource_type,
            audit_event.resource_id,
            audit_event.changes,
            audit_event.explanation,
        ):
            by_org[audit_event.org_id].append((audit_event, derived))
    states: dict[str, dict[str, dict[str, Any] | None]] = {}
    if by_org:
        session.flush()  # the states below are read after the change
        # One organization (a SCIM write): its head is locked by the state's read, unless
        # a count changes (``counts.apply_pending`` takes the count row, then the head).
        with_head = (
            len(by_org) == 1
            and not counts.any_pending(session)
            and recorder.may_read_head_with(session, next(iter(by_org)))
        )
        states = {
            org_id: _states(session, org_id, items, with_head=with_head)
            for org_id, items in by_org.items()
        }
        for items in by_org.values():
            # A deletion comes after the transaction's other events (a group deleted with
            # its members: the member_removed events first), so nothing follows a
            # resource's end.
            items.sort(key=lambda item: item[1].type.endswith(".deleted"))
    # The rows built before the count and the head are taken (only the audit events'
    # numbers are given under them, ``_Rider.rows``).
    rider = _Rider(by_org, states) if by_org else None
    # The counts, then the heads (every writer takes them in that order), as late as can
    # be: the rows are held from here to the commit, and concurrent writers wait for them.
    counts.apply_pending(session)
    if rider is None:
        return
    # Nothing runs after the recorder's statement when every organization's product events
    # ride with audit events it writes now: it may go out with the COMMIT.
    last = by_org.keys() <= recorder.unwritten_orgs(session)
    # The audit events (their seq, the head lock), then ours.
    recorder.flush(session, rider, last=last)
    for org_id in sorted(by_org.keys() - rider.done):
        # Audit events written before (``recorder.lock_head``): the head is held already.
        rider.write(session.connection(), org_id, rider.rows(org_id))


class _Rider:
    """The product events of each organization, as ``recorder.flush`` asks for them."""

    def __init__(
        self,
        by_org: dict[str, list[tuple[Recorded, Derived]]],
        states: dict[str, dict[str, dict[str, Any] | None]],
    ) -> None:
        self.by_org = by_org
        # Built now, before the heads are locked; ``audit_seq`` is given in ``rows``.
        self.built = {
            org_id: [
                (audit_event, _row(org_id, audit_event, derived, states[org_id]))
                for audit_event, derived in items
            ]
            for org_id, items in by_org.items()
        }
        self.done: set[str] = set()

    def rows(self, org_id: str) -> list[dict[str, Any]]:
        """The rows (``position`` None: given by the INSERT) of ``org_id``'s events, with
        their audit events' numbers (given by now: ``recorder.flush``)."""
        self.done.add(org_id)
        built = self.built.get(org_id)
        if not built:
            return []
        for audit_event, row in built:
            row["audit_seq"] = audit_event.seq
        return [row for _audit_event, row in built]

    def insert_sql(self, count: int) -> tuple[str, list[Any]]:
        return _insert_sql(count)

    def params(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for i, row in enumerate(rows):
            params.update(zip(_param_names(i), [row[name] for name in _PARAMETERS], strict=True))
        return params

    def write(self, connection: Connection, org_id: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if len(rows) == 1:
            _INSERT_NEXT.run(connection, {**rows[0], "next_org_id": org_id})
            return
        # Many (a batch of rules apply, a group's members): COPY on PostgreSQL.
        last = connection.scalar(_LAST, {"org_id": org_id}) or 0
        for position, row in enumerate(rows, start=last + 1):
            row["position"] = position
        bulk_rows.insert_rows(connection, Event, rows)


_PARAMETERS = [name for name in _COLUMNS if name != "position"]  # bound (``_insert_sql``)


@cache
def _param_names(i: int) -> list[str]:
    """The i-th row's parameter names (``_insert_sql``'s)."""
    return [f"r{i}_{name}" for name in _PARAMETERS]


def _insert_sql(count: int) -> tuple[str, list[Any]]:
    """PostgreSQL: ``count`` events in one INSERT, the i-th at ``max(position) + i`` (all
    its subqueries see the table as it was before the statement)."""
    table = Event.__table__
    values = []
    for i in range(count):
        cells = [
            f"(SELECT coalesce(max(position), 0) + {i + 1} FROM events WHERE org_id = :r{i}_org_id)"
            if name == "position"
            else f":r{i}_{name}"
            for name in _COLUMNS
        ]
        values.append("(" + ", ".join(cells) + ")")
    sql = f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES {', '.join(values)}"
    params = [
        bindparam(f"r{i}_{name}", type_=table.c[name].type)
        for i in range(count)
        for name in _COLUMNS
        if name != "position"
    ]
    return sql, params


def _states(
    session: Session, org_id: str, items: list[tuple[Recorded, Derived]], *, with_head: bool
) -> dict[str, dict[str, Any] | None]:
    """The state of each User and Group the events are about; none for a deleted one.
    ``with_head``: one user's state is read with the audit head (``recorder.head_read``)."""
    deleted = {d.resource_id for _a, d in items if d.type.endswith(".deleted")}
    user_ids = {d.resource_id for _a, d in items if d.resource_type == "User"} - deleted
    group_ids = {d.resource_id for _a, d in items if d.resource_type == "Group"} - deleted
    return {
        **dict.fromkeys(deleted),
        **user_states(session, org_id, user_ids, with_head=with_head),
        **group_states(session, org_id, group_ids),
    }


def _row(
    org_id: str,
    audit_event: Recorded,
    derived: Derived,
    states: dict[str, dict[str, Any] | None],
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "actor": {
            "type": audit_event.actor_type,
            "id": audit_event.actor_id,
            "name": audit_event.actor_name,
        },
        "resource": {"type": derived.resource_type, "id": derived.resource_id},
        "state": states.get(derived.resource_id)
        if derived.resource_type in ("User", "Group")
        else _other_state(audit_event, derived),
        "changes": derived.changes,
    }
    if derived.member is not None:
        data["member"] = derived.member
    return {
        "org_id": org_id,
        "position": None,
        "id": _event_id(),
        "type": derived.type,
        "occurred_at": audit_event.occurred_at,
        "resource_type": derived.resource_type,
        "resource_id": derived.resource_id,
        "audit_seq": audit_event.seq,
        "data": data,
    }


_VERSION_4 = ~(0xF000 << 64) & ~(0xC000 << 48)  # the bits a version 4 UUID sets


def _event_id() -> str:
    """``evt_`` and a random (version 4) UUID's hex, as ``uuid.uuid4().hex`` makes it
    without its objects."""
    bits = int.from_bytes(os.urandom(16)) & _VERSION_4 | (0x4000 << 64) | (0x8000 << 48)
    return f"evt_{bits:032x}"


def _other_state(audit_event: Recorded, derived: Derived) -> dict[str, Any] | None:
    if derived.type == "connection.deactivated" and not derived.changes:
        return None  # deleted
    if derived.resource_type == "Connection":
        enabled = derived.type == "connection.activated"
        return {"id": derived.resource_id, "name": audit_event.detail, "enabled": enabled}
    return None


def _loaded(session: Session, model: Any, org_id: str, ids: set[str]) -> list[Any]:
    """The rows with these ids, from the session's identity map where possible (no query)."""
    found, missing = [], []
    for resource_id in sorted(ids):
        obj = session.identity_map.get(session.identity_key(model, (org_id, resource_id)))
        if obj is not None and obj not in session.deleted:
            found.append(obj)
        else:
            missing.append(resource_id)
    if missing:
        found += session.scalars(
            select(model).where(model.org_id == org_id, model.id.in_(missing))
        ).all()
    return found


def user_states(
    session: Session, org_id: str, ids: set[str], *, with_head: bool = False
) -> dict[str, dict[str, Any] | None]:
    """Each user's account as the admin API shows it; None for a deleted one.

    ``with_head`` and one user: its groups, roles and license names are read in one
    statement with the organization's audit head, locked (``recorder.adopt_head``), which
    the audit events are then written onto: one round trip less per write.
    """
    if not ids:
        return {}
    rows = _loaded(session, User, org_id, ids)
    extras_rows = None
    if len(rows) == 1 and session.info.get(users.CREATED_INFO) == (
        org_id,
        rows[0].id,
        rows[0].version,
    ):
        # Created alone in this transaction with no group, role or license
        # (``users.create_user``): what the read would return is known, nothing.
        extras_rows = []
    elif with_head and len(rows) == 1:
        params = users.extras_params(org_id, rows[0])
        read = _EXTRAS_AND_HEAD_READ.execute(session.connection(), params).all()
        extras_rows = [row for row in read if row[0] != "h"]
        head = [row for row in read if row[0] == "h"]
        if head:  # none: the organization's first event (the recorder makes its head)
            recorder.adopt_head(session, org_id, head[0])
    # Kept for the write's own response (the same query, once per write).
    details = (
        account_views.account_details(session, org_id, rows, remember=True, extras_rows=extras_rows)
        if rows
        else {}
    )
    return {resource_id: details.get(resource_id) for resource_id in ids}


def group_states(session: Session, org_id: str, ids: set[str]) -> dict[str, dict[str, Any] | None]:
    """Each group's name, external id and version; None for a deleted one."""
    if not ids:
        return {}
    out: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
    for group in _loaded(session, Group, org_id, ids):
        out[group.id] = {
            "id": group.id,
            "displayName": group.display_name,
            "externalId": group.external_id,
            "version": group.version,
            "created": account_views.iso(group.created_at),
            "modified": account_views.iso(group.updated_at),
        }
    return out
