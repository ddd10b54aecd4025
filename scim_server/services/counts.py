"""Each organization's number of Users and Groups, kept in step with every create and delete."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    bindparam,
    column,
    event,
    func,
    literal_column,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import Session, SessionTransaction

from scim_server.audit import recorder
from scim_server.db import KeyRead, reuse_plan, within
from scim_server.fixed import Fixed
from scim_server.models import Group, ResourceCount, User

MODELS: dict[str, type[User] | type[Group]] = {"User": User, "Group": Group}
# [(transaction that noted it, org_id, resource_type, delta)], in order (``changed``).
_PENDING = "counts_pending"

# PostgreSQL: a write's one count change and its organization's audit head, locked, in
# one round trip, in that order (a UNION ALL's branches run in turn: the count's UPDATE,
# then the head's FOR UPDATE, as every writer takes them). Rows: ('c', ...) once when the
# count row was there; the head as ``recorder.head_read`` gives it (none: a first event).
_COUNTED = (
    # As text: an UPDATE construct run with a parameter named as a column (the head's
    # ``org_id``) would set that column.
    text(
        "UPDATE resource_counts SET total = total + :delta, generation = generation + 1 "
        "WHERE org_id = :org_id AND resource_type = :resource_type RETURNING 1"
    )
    .bindparams(
        bindparam("delta", type_=Integer),
        bindparam("org_id", type_=String),
        bindparam("resource_type", type_=String),
    )
    .columns(column("one", Integer))
    .cte("counted")
)
_CHANGE_AND_HEAD = KeyRead(
    reuse_plan(
        union_all(
            select(literal_column("'c'"), *[null()] * 6).select_from(_COUNTED),
            recorder.head_read(),
        )
    )
)

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


def read(session: Session, org_id: str, resource_type: str) -> tuple[int, int] | None:
    """(total, generation), or None when the organization has no count row yet; the total
    includes this transaction's changes not yet applied (``changed``)."""
    row = (
        session.connection()
        .execute(_READ, {"org_id": org_id, "resource_type": resource_type})
        .first()
    )
    if row is None:
        return None
    return row.total + pending_delta(session, org_id, resource_type), row.generation


def changed(session: Session, org_id: str, resource_type: str, delta: int) -> None:
    """Note that one resource was created (+1) or deleted (-1) in the caller's transaction;
    the row changes at its commit (``apply_pending``).

    Applied then, just before the organization's audit head is taken (``events.writer``,
    ``audit.recorder``), the count row is held only from there to the commit: a writer
    that updated it at its insert held it through the rest of its work, and on
    PostgreSQL an organization's concurrent writers queued on it (an initial sync's
    creates spent most of their time waiting for this one row). Every writer still
    takes the count before the head, and after any other row it locks (a license), so
    no two writers wait for each other in opposite orders.
    """
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        session.connection()  # begins one
        transaction = session.get_transaction()
    session.info.setdefault(_PENDING, []).append((transaction, org_id, resource_type, delta))


def apply_pending(session: Session) -> None:
    """Apply the changes noted in the (sub)transaction now committing: one UPDATE per
    organization and type, in key order (two writers lock count rows in one order). A
    change whose total is 0 still moves the generation: the set is not the same set."""
    noted: list[tuple[Any, str, str, int]] | None = session.info.get(_PENDING)
    if not noted:
        return
    committing = session.get_nested_transaction() or session.get_transaction()
    mine: list[tuple[Any, str, str, int]] = []
    kept: list[tuple[Any, str, str, int]] = []
    for n in noted:
        (mine if committing is None or within(n[0], committing) else kept).append(n)
    if not mine:
        return
    if kept:
        session.info[_PENDING] = kept
    else:
        del session.info[_PENDING]
    deltas: dict[tuple[str, str], int] = {}
    for _transaction, org_id, resource_type, delta in mine:
        deltas[org_id, resource_type] = deltas.get((org_id, resource_type), 0) + delta
    session.flush()  # a resource's row before its count (``start`` counts the rows)
    connection = session.connection()
    if len(deltas) == 1 and connection.dialect.name == "postgresql":
        (((org_id, resource_type), delta),) = deltas.items()
        if recorder.may_read_head_with(session, org_id):
            params = {"org_id": org_id, "resource_type": resource_type, "delta": delta}
            rows = _CHANGE_AND_HEAD.execute(connection, params).all()
            if not any(row[0] == "c" for row in rows):
                start(session, org_id, resource_type)
            for row in rows:
                if row[0] == "h":
                    recorder.adopt_head(session, org_id, row)
            return
    for (org_id, resource_type), delta in sorted(deltas.items()):
        params = {"b_org_id": org_id, "b_type": resource_type, "delta": delta}
        if _CHANGE.execute(connection, params).rowcount == 0:
            start(session, org_id, resource_type)


def any_pending(session: Session) -> bool:
    """Whether this transaction noted a change not yet applied (its commit takes the count
    row, then the audit head: a statement that would take the head first must not)."""
    return bool(session.info.get(_PENDING))


def pending_delta(session: Session, org_id: str, resource_type: str) -> int:
    """The changes noted in this transaction and not yet applied, for a read in it."""
    noted = session.info.get(_PENDING)
    if not noted:
        return 0
    return sum(d for _t, o, rt, d in noted if o == org_id and rt == resource_type)


def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    noted = session.info.get(_PENDING)
    if noted:
        kept = [n for n in noted if not within(n[0], previous_transaction)]
        if kept:
            session.info[_PENDING] = kept
        else:
            del session.info[_PENDING]


def _forget_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def install() -> None:
    """Forget noted changes with a rolled-back (sub)transaction; apply them at every
    commit. The app's commit hook (``events.writer.write_pending``) applies them itself,
    after the product events' states are read and before the audit head is taken, so this
    hook then finds nothing; it is there for sessions of a process without that hook, put
    before the recorder's (which takes the head). Idempotent."""
    if not event.contains(Session, "before_commit", apply_pending):
        event.listen(Session, "before_commit", apply_pending, insert=True)
    for name, listener in (
        ("after_soft_rollback", _forget_rolled_back),
        ("after_transaction_end", _forget_ended),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


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


install()
