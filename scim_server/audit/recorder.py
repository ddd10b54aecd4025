"""Writing events: in the caller's transaction for changes, in their own for failures.

``record`` notes an event in the open transaction; the transaction's events are
written as it commits (``flush``, from ``before_commit``): each organization's
head is locked, the events are numbered and hashed onto it in the order they
were recorded, inserted with prebuilt Core statements, and the head moves once.
So the head row, which serialises an organization's writers, is held from just
before the commit to the commit rather than from the first event on, a write
pays no ORM unit of work for its log, and a change that records 5,000 member
events pays one INSERT and one UPDATE. The chain stays gap-free: numbers are
given only under the lock, in the transaction that commits them. A rolled-back
savepoint takes its events with it. An explicit ``lock_head`` (a checkpoint, a
purge) writes what is pending first, so it sees the true head.

The head is read with its signature, and checked (one HMAC) where it is read: a head the
server did not sign (its newest events deleted and the head moved back, its seq or hash
altered) is never signed over, which would make the tampering verify. The first write
onto it records ``audit.head_unsigned`` (the head as found) after the log's last event,
logs an error, and the head it moves carries ``chain.marked_head_signature``: the log
stays unverified (``queries.verify`` names the marker) until an operator accepts it
(``queries.accept_head``), and provisioning goes on.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    String,
    bindparam,
    cast,
    event,
    insert,
    literal_column,
    null,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from scim_server import bulk_rows
from scim_server.audit import chain, statements
from scim_server.audit.context import current_context
from scim_server.db import KeyRead, commits_connection, insert_for, reuse_plan, utcnow, within
from scim_server.errors import ConflictError
from scim_server.events import pending as pending_events
from scim_server.fixed import Fixed
from scim_server.models import AuditCheckpoint, AuditEvent, AuditHead

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1000
# Written onto a head the server finds not signed by it (``_over_unsigned``); the operator's
# acceptance of the head (``queries.accept_head``) settles the markers before it.
UNSIGNED_ACTION = "audit.head_unsigned"
ACCEPTED_ACTION = "audit.head_accepted"
# What the server's signature of a head read says (``Head.state``).
SIGNED = "signed"  # the server's head signature: the chain up to it is the server's
MARKED = "marked"  # the server's mark: written onto a head it had not signed (a marker)
ALTERED = "altered"  # neither: the next write records a marker before its events
# The texts ``record`` cuts to their column's length.
_TEXT_LIMITS = {"detail": 2000, "user_agent": 512, "external_id": 512, "user_name": 512}
_ROWS = "audit_pending_rows"  # [(transaction that recorded it, Recorded)], in order
_HEADS = "audit_heads"  # {org_id: (deepest transaction that moved it, Head)}
# Events written inside a savepoint: [(transaction that recorded it, savepoint, Recorded)].
# If the savepoint rolls back, the database forgets them; those recorded outside
# it are pending again (numbered anew at the next write).
_IN_SAVEPOINT = "audit_written_in_savepoint"


@dataclass(slots=True)
class Recorded:
    """An event recorded in the open transaction; ``seq``, ``prev_hash`` and ``hash``
    are given when it is written (``flush``). Read like a stored ``AuditEvent``."""

    org_id: str
    occurred_at: datetime
    received_at: datetime | None
    actor_type: str
    actor_id: str | None
    actor_name: str | None
    source_ip: str | None
    user_agent: str | None
    request_id: str | None
    correlation_id: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    external_id: str | None
    user_name: str | None
    outcome: str
    status: int | None
    scim_type: str | None
    detail: str | None
    changes: dict[str, Any] | None
    explanation: dict[str, Any] | None
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""
    # Its hash made ready before the head is locked (``prepare``), not a column.
    unchained: chain.Unchained | None = field(default=None, repr=False, compare=False)

    def row(self, prefix: str = "") -> dict[str, Any]:
        return dict(zip(_prefixed(prefix), _ROW_VALUES(self), strict=True))


_COLUMNS = [c.name for c in AuditEvent.__table__.columns]
assert sorted([*_COLUMNS, "unchained"]) == sorted(f.name for f in dataclass_fields(Recorded))
_ROW_VALUES = operator.attrgetter(*_COLUMNS)


@cache
def _prefixed(prefix: str) -> list[str]:
    """The column names with ``prefix`` (``Recorded.row``)."""
    return [prefix + name for name in _COLUMNS]


@dataclass(slots=True)
class Head:
    """An organization's chain head as this transaction holds it (row locked), with what its
    signature said when it was read (``state``: checked then, so a purge's new base set on
    it before the next move is not taken for an alteration)."""

    org_id: str
    seq: int
    hash: str
    base_seq: int
    base_hash: str
    signature: str = ""
    state: str = SIGNED
    # Set by ``vouch`` (an operator's acceptance): the next move is signed as the server's.
    vouch: bool = False
    # The log had events and no head row (deleted): made here, at its last event, unsigned.
    missing: bool = False


def _held(
    key: bytes, org_id: str, seq: int, head_hash: str, base_seq: int, base_hash: str, signature: Any
) -> Head:
    """The head as read, its signature checked: one HMAC (two for a head not signed)."""
    stored = signature if isinstance(signature, str) else ""
    state = SIGNED
    expected = chain.head_signature(key, org_id, seq, head_hash, base_seq, base_hash)
    if not chain.signatures_match(expected, stored):
        marked = chain.marked_head_signature(key, org_id, seq, head_hash, base_seq, base_hash)
        state = MARKED if chain.signatures_match(marked, stored) else ALTERED
    return Head(org_id, seq, head_hash, base_seq, base_hash, stored, state)


# Prebuilt statements: the write path builds none per event. By keys, or INSERTs of
# given rows: their plans are reused (``db.reuse_plan``). The DML runs as ``Fixed``
# statements (compiled once; no per-execution cache key or parameter construction).
# The head's read runs from its compiled form (``db.KeyRead``): no cache key per write.
def _locked_head() -> Any:
    """The head's row with its signature (checked where it is read: ``_held``), locked."""
    return (
        select(
            AuditHead.seq,
            AuditHead.hash,
            AuditHead.base_seq,
            AuditHead.base_hash,
            AuditHead.signature,
        )
        .where(AuditHead.org_id == bindparam("org_id"))
        .with_for_update()
    )


_SELECT_HEAD = KeyRead(reuse_plan(_locked_head()))
# The log's last event, read only for a head found not signed (``_over_unsigned``) or
# missing (``_make_head``), and its first, for a missing head's base.
_LAST_EVENT = (
    select(AuditEvent.seq, AuditEvent.hash)
    .where(AuditEvent.org_id == bindparam("org_id"))
    .order_by(AuditEvent.seq.desc())
    .limit(1)
)
_FIRST_EVENT = (
    select(AuditEvent.seq, AuditEvent.prev_hash)
    .where(AuditEvent.org_id == bindparam("org_id"))
    .order_by(AuditEvent.seq)
    .limit(1)
)
_MOVE_HEAD = Fixed(
    reuse_plan(
        update(AuditHead)
        .where(AuditHead.org_id == bindparam("h_org_id"))
        .values(
            seq=bindparam("h_seq"),
            hash=bindparam("h_hash"),
            base_seq=bindparam("h_base_seq"),
            base_hash=bindparam("h_base_hash"),
            signature=bindparam("h_signature"),
        )
    )
)
# SQLite, or more than COMBINED_UP_TO (below COPY's size).
_INSERT_EVENTS = reuse_plan(insert(AuditEvent))
_INSERT_EVENT = Fixed(_INSERT_EVENTS, keys=_COLUMNS)  # one event (a SCIM write's, on SQLite)
# PostgreSQL: a write's few events are inserted and the head moved in one statement
# (a status change from SCIM records two: the change and the transition), with the
# rows a ``Rider`` (the product events) adds.
COMBINED_UP_TO = 4


class Rider(Protocol):
    """Rows of another table written with an organization's audit events, under its head
    lock: the product events (``events.writer``). On PostgreSQL a few of them ride in the
    recorder's own statement (one round trip for the audit events, the head and them)."""

    def rows(self, org_id: str) -> list[dict[str, Any]]:
        """The rows for ``org_id``, built once its audit events are numbered (``seq``)."""
        ...

    def insert_sql(self, count: int) -> tuple[str, list[Any]]:
        """PostgreSQL: an INSERT of ``count`` rows as SQL text with its typed bind parameters
        (named ``r<i>_<column>``), to run as a data-modifying CTE of the recorder's statement."""
        ...

    def params(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The bind parameters of ``insert_sql(len(rows))`` for ``rows``."""
        ...

    def write(self, connection: Connection, org_id: str, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` with statements of its own (SQLite, many rows)."""
        ...


def _combined(
    count: int, rider: tuple[str, list[Any]] | None = None, shared: frozenset[str] = frozenset()
) -> Any:
    """``WITH recorded AS (INSERT ... VALUES (...), ...) UPDATE audit_heads ...`` as text
    (with ``rider``: ``WITH recorded AS (...), rider AS (INSERT ...) UPDATE ...``):
    SQLAlchemy does not cache a DML CTE, and compiling it cost more than the round trip
    it saves. The typed bind parameters keep the columns' conversions (JSON, UTC).
    The columns in ``shared`` hold the first event's value in every event: the others
    bind ``e0_<column>`` again (``_shared``)."""
    table = AuditEvent.__table__

    def name_of(i: int, column: str) -> str:
        return f"e0_{column}" if column in shared else f"e{i}_{column}"

    values = ", ".join(
        "(" + ", ".join(f":{name_of(i, c)}" for c in _COLUMNS) + ")" for i in range(count)
    )
    ctes = f"recorded AS (INSERT INTO audit_events ({', '.join(_COLUMNS)}) VALUES {values})"
    params = [
        bindparam(f"e{i}_{name}", type_=table.c[name].type)
        for i in range(count)
        for name in _COLUMNS
        if i == 0 or name not in shared
    ]
    if rider is not None:
        ctes += f", rider AS ({rider[0]})"
        params += rider[1]
    sql = (
        f"WITH {ctes} "
        "UPDATE audit_heads SET seq = :h_seq, hash = :h_hash, base_seq = :h_base_seq, "
        "base_hash = :h_base_hash, signature = :h_signature WHERE org_id = :h_org_id"
    )
    return Fixed(reuse_plan(text(sql).bindparams(*params)))


# The columns a request's events of one resource repeat (who, when, from where, about
# what). Bound once: psycopg re-parses a statement of more than 50 parameters on every
# execution (~0.3 ms), and a status change's two events with their product event had 63.
_SHAREABLE = (
    "org_id",
    "occurred_at",
    "received_at",
    "actor_type",
    "actor_id",
    "actor_name",
    "source_ip",
    "user_agent",
    "request_id",
    "correlation_id",
    "resource_type",
    "resource_id",
    "external_id",
    "user_name",
)
assert set(_SHAREABLE) <= set(_COLUMNS)
_SHAREABLE_VALUES = operator.attrgetter(*_SHAREABLE)


def _shared(events: list[Recorded]) -> frozenset[str]:
    """The shareable columns whose value is the same (type and value) in every event."""
    first, *rest = [_SHAREABLE_VALUES(recorded) for recorded in events]
    same = []
    for i, name in enumerate(_SHAREABLE):
        value = first[i]
        for other in rest:
            kin = other[i]
            if kin is not value and (type(kin) is not type(value) or kin != value):
                break
        else:
            same.append(name)
    return frozenset(same)


# (audit events, rider type or None, rider rows, shared columns) -> statement, built on first use
_STATEMENTS: dict[tuple[int, type | None, int, frozenset[str]], Any] = {}


def _insert_and_move(count: int, rider: Rider | None, rows: int, shared: frozenset[str]) -> Any:
    key = (count, None if rider is None else type(rider), rows, shared)
    statement = _STATEMENTS.get(key)
    if statement is None:
        sql = rider.insert_sql(rows) if rider is not None else None
        statement = _STATEMENTS[key] = _combined(count, sql, shared)
    return statement


def _current(session: Session) -> SessionTransaction:
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        session.connection()  # begins one
        transaction = session.get_transaction()
    assert transaction is not None
    return transaction


def head_read() -> Any:
    """A select of the head as a row of seven columns (``'h'``, hash, base hash, seq and base
    seq as text, signature, a NULL), locked (``FOR UPDATE``, in a CTE: PostgreSQL refuses it
    in a UNION's branch), for a statement that reads more in the same round trip (the events
    writer: the state of the user a write changed); its parameter is ``org_id``. The row
    goes to ``adopt_head``; no row (a first event): the recorder makes the head itself."""
    locked = _locked_head().cte("locked_head")
    return select(
        literal_column("'h'"),
        locked.c.hash,
        locked.c.base_hash,
        cast(locked.c.seq, String),
        cast(locked.c.base_seq, String),
        locked.c.signature,
        null(),
    )


def may_read_head_with(session: Session, org_id: str) -> bool:
    """Whether a statement of the caller may take ``org_id``'s head (``head_read``): it is
    not held yet, and it is the only head this transaction's events need (heads are
    locked in one order, by the recorder, when there are several)."""
    if org_id in (session.info.get(_HEADS) or {}):
        return False
    noted: list[tuple[SessionTransaction, Recorded]] = session.info.get(_ROWS) or []
    return bool(noted) and all(recorded.org_id == org_id for _t, recorded in noted)


def unwritten_orgs(session: Session) -> set[str]:
    """The organizations with events recorded in this transaction and not written yet."""
    return {recorded.org_id for _t, recorded in session.info.get(_ROWS) or ()}


def may_take_head(session: Session, org_id: str) -> bool:
    """SQLite: whether a write's first read may bring ``org_id``'s head along (``hold_head``):
    this transaction holds none of it yet. SQLite's writers hold the database's write lock
    from their first statement (``BEGIN IMMEDIATE``), so the head read then is the one the
    events are written onto; a transaction that began without it and saw an older head
    cannot commit over a newer one (SQLite refuses a stale writer: busy)."""
    return org_id not in (session.info.get(_HEADS) or {})


def head_columns() -> tuple[Any, ...]:
    """The head's columns for a write's first read (``may_take_head``), outer-joined on the
    organization (no head row yet: NULLs); the row then goes to ``hold_head``."""
    return (
        AuditHead.seq.label("head_seq"),
        AuditHead.hash.label("head_hash"),
        AuditHead.base_seq.label("head_base_seq"),
        AuditHead.base_hash.label("head_base_hash"),
        AuditHead.signature.label("head_signature"),
    )


def hold_head(session: Session, org_id: str, row: Mapping[Any, Any]) -> None:
    """Hold the head the caller read with ``head_columns`` (``may_take_head``), as ``_head``
    would have read it; none read (the organization's first event): the recorder makes it."""
    if row["head_seq"] is None:
        return
    head = _held(
        chain.signing_key(session),
        org_id,
        row["head_seq"],
        row["head_hash"],
        row["head_base_seq"],
        row["head_base_hash"],
        row["head_signature"],
    )
    session.info.setdefault(_HEADS, {})[org_id] = (_current(session), head)


def adopt_head(session: Session, org_id: str, row: Any) -> None:
    """Hold the head read (and locked) by the caller's statement (``head_read``'s row)."""
    _kind, head_hash, base_hash, seq, base_seq, signature = tuple(row)[:6]
    key = chain.signing_key(session)
    head = _held(key, org_id, int(seq), head_hash, int(base_seq), base_hash, signature)
    session.info.setdefault(_HEADS, {})[org_id] = (_current(session), head)


def lock_head(session: Session, org_id: str) -> Head:
    """The organization's head, locked until commit, with this transaction's events written.

    A caller may set ``base_seq``/``base_hash`` (a purge): the next write of the
    head (its ``record`` at commit) stores them.
    """
    flush(session)
    return _head(session, org_id)


def signed_head(session: Session, org_id: str, refused: str) -> Head:
    """The head, locked, for work that vouches for the chain up to it (a checkpoint, a
    purge's new start); ``ConflictError`` naming ``refused`` (what that work would do)
    while the server did not sign it (``queries.accept_head`` settles it)."""
    head = lock_head(session, org_id)
    if head.state != SIGNED:
        raise ConflictError(
            "The audit log's chain head is not signed by this server (the log was altered or "
            "cut back, or the audit key changed without `scim-server audit rekey` / `sso "
            f"encrypt-secrets`; `scim-server audit verify` says where): {refused}. Settle the "
            "head first (`scim-server audit accept-head`, after checking the log against "
            "checkpoints filed earlier)."
        )
    return head


def vouch(session: Session, org_id: str) -> Head:
    """Sign the head's next move (this transaction's events, at commit) as the server's,
    whatever its signature said: an operator's acceptance of a head the server had not
    signed (``queries.accept_head``, which records why). The head is locked (``lock_head``)."""
    head = lock_head(session, org_id)
    head.vouch = True
    return head


def _head(session: Session, org_id: str) -> Head:
    """The head, selected FOR UPDATE once per transaction (savepoint rollbacks aside)."""
    heads: dict[str, tuple[SessionTransaction, Head]] = session.info.setdefault(_HEADS, {})
    held = heads.get(org_id)
    if held is not None:
        return held[1]
    connection = session.connection()
    row = _SELECT_HEAD.execute(connection, {"org_id": org_id}).first()
    missing = False
    if row is None:
        missing = _make_head(session, connection, org_id)
        row = _SELECT_HEAD.execute(connection, {"org_id": org_id}).first()
        assert row is not None
    key = chain.signing_key(session)
    head = _held(key, org_id, row.seq, row.hash, row.base_seq, row.base_hash, row.signature)
    head.missing = missing and head.state == ALTERED
    heads[org_id] = (_current(session), head)
    return head


_GENESIS = "audit_genesis_orgs"


def _make_head(session: Session, connection: Connection, org_id: str) -> bool:
    """Insert the organization's head row (unless a concurrent write just did): at genesis,
    signed, before its first event. A log that has events and no head row lost it (deleted
    by someone who can write the database): then made at the log's last event, its base
    before the first, not signed, so the write that finds it marks it (``_over_unsigned``)
    and verify reports it, as a head moved back; never a signed genesis head, whose events
    would be numbered again (every later write refused) or, numbered on, vouch for a log
    the server cannot. True when this made such a head."""
    genesis = chain.genesis_hash(org_id)
    last = connection.execute(_LAST_EVENT, {"org_id": org_id}).first()
    if last is None:
        values = {"seq": 0, "hash": genesis, "base_seq": 0, "base_hash": genesis, "signature": ""}
        if org_id in session.info.get(_GENESIS, ()):
            key = chain.signing_key(session)
            values["signature"] = chain.head_signature(key, org_id, 0, genesis, 0, genesis)
        # Else no event and no head, and this write is not the organization's creation (its
        # log starts with ``organization.create``): the log was wiped. A head at genesis,
        # not signed: the write marks it as a deleted head is marked, and verify says so.
    else:
        first = connection.execute(_FIRST_EVENT, {"org_id": org_id}).one()
        values = {
            "seq": last.seq,
            "hash": last.hash,
            "base_seq": first.seq - 1,
            "base_hash": first.prev_hash,
            "signature": "",
        }
    values["org_id"] = org_id
    insert = insert_for(connection.dialect.name)(AuditHead).values(values)
    made = connection.execute(insert.on_conflict_do_nothing().returning(AuditHead.org_id))
    return made.first() is not None and not values["signature"]


def _over_unsigned(connection: Connection, head: Head) -> Recorded:
    """The marker written first onto a head the server finds not signed (``ALTERED``), and
    the head moved to the log's last event, which the write's events follow (a head moved
    back over events still there would have them numbered again, the write refused).

    Who tampered cannot be told; the marker records the head as found, the request that
    found it, and the server (``system``) as its actor. One extra read, this once."""
    found = (
        None
        if head.missing
        else {
            "seq": head.seq,
            "hash": head.hash,
            "base_seq": head.base_seq,
            "base_hash": head.base_hash,
            "signature": head.signature,
        }
    )
    last = connection.execute(_LAST_EVENT, {"org_id": head.org_id}).first()
    head.seq, head.hash = (
        (last.seq, last.hash) if last is not None else (head.base_seq, head.base_hash)
    )
    what = (
        "no chain head was found (its row deleted, the log having events)"
        if found is None
        else f"the chain head found at event {found['seq']} does not carry the server's "
        "signature (altered, or moved back after events were removed)"
    )
    log.log(
        logging.WARNING if head.vouch else logging.ERROR,
        "audit: organization %s: %s; event %s marks it (audit.head_unsigned), %s",
        head.org_id,
        what,
        head.seq + 1,
        "accepted by the operator"
        if head.vouch
        else "not signed over: `scim-server audit verify` reports it",
    )
    ctx = current_context()
    return Recorded(
        head.org_id,
        utcnow(),
        ctx.received_at,
        "system",
        None,
        "scim-server audit recorder",
        ctx.source_ip,
        ctx.user_agent[:512] if ctx.user_agent else None,
        ctx.request_id,
        ctx.correlation_id,
        UNSIGNED_ACTION,
        None,
        None,
        None,
        None,
        "failure",
        None,
        None,
        f"{what}; this event follows the log's last event ({head.seq})",
        {"head": found, "last_event": head.seq},
        None,
    )


def record(
    session: Session,
    org_id: str,
    action: str,
    *,
    outcome: str = "success",
    # Typed as the ``**fields: Any`` they replace: callers pass them on from dicts of theirs.
    resource_type: Any = None,
    resource_id: Any = None,
    external_id: Any = None,
    user_name: Any = None,
    status: Any = None,
    scim_type: Any = None,
    detail: Any = None,
    changes: Any = None,
    explanation: Any = None,
) -> Recorded:
    """Append one event to the organization's chain, in the caller's transaction (at its commit).

    The fields as keywords (an unknown one: ``TypeError``); texts past their column's
    limit (``_TEXT_LIMITS``) are cut."""
    ctx = current_context()
    user_agent = ctx.user_agent
    recorded = Recorded(
        org_id,
        utcnow(),
        ctx.received_at,
        ctx.actor_type,
        ctx.actor_id,
        ctx.actor_name,
        ctx.source_ip,
        user_agent[:512] if user_agent else None,
        ctx.request_id,
        ctx.correlation_id,
        action,
        resource_type,
        resource_id,
        external_id[:512] if isinstance(external_id, str) else external_id,
        user_name[:512] if isinstance(user_name, str) else user_name,
        outcome,
        status,
        scim_type,
        detail[:2000] if isinstance(detail, str) else detail,
        # As the database gives them back (a float of a rule set's document): its hash is
        # then the hash of what verification reads.
        chain.as_stored(changes),
        chain.as_stored(explanation),
    )
    transaction = _current(session)
    session.info.setdefault(_ROWS, []).append((transaction, recorded))
    # Product events (webhooks, the events feed) are derived from it at commit.
    pending_events.note(session, recorded, transaction)
    return recorded


def prepare(session: Session) -> None:
    """Make the hashes of the events recorded so far ready but for their place in the chain
    (``chain.Unchained``), before the commit locks the heads (``events.writer``): their
    serialisation, the hash's larger part, is then not done while the organization's
    other writers wait for its head. Nothing changes an event between this and its
    ``flush`` (both in the commit hook); ``flush`` drops what it used."""
    for _transaction, recorded in session.info.get(_ROWS) or ():
        if recorded.unchained is None:
            recorded.unchained = chain.unchained(recorded)


def flush(session: Session, rider: Rider | None = None, *, last: bool = False) -> None:
    """Write the events recorded so far: per organization (in id order, so two
    transactions lock heads in one order), lock the head, number and hash the
    events onto it, insert them, move the head once; then ``rider``'s rows of that
    organization (on PostgreSQL, a few of them in the same statement).

    ``last``: the caller's transaction runs nothing after this but its COMMIT. On
    PostgreSQL its final statement then goes out with the COMMIT, in one round trip
    (``Fixed.run_and_commit``): the heads, held from their lock to the commit, are held
    one round trip, and one wait of the thread for the GIL, less; SQLAlchemy's COMMIT
    after it finds the transaction ended and sends nothing."""
    noted: list[tuple[SessionTransaction, Recorded]] | None = session.info.pop(_ROWS, None)
    if not noted:
        return
    by_org: dict[str, list[Recorded]] = {}
    for _transaction, recorded in noted:
        by_org.setdefault(recorded.org_id, []).append(recorded)
    current = _current(session)
    if current.nested:
        written = session.info.setdefault(_IN_SAVEPOINT, [])
        written += [(t, current, recorded) for t, recorded in noted]
    # The organizations whose log this transaction starts (``_make_head``: a signed genesis).
    session.info[_GENESIS] = {
        org_id for org_id, events in by_org.items() if events[0].action == "organization.create"
    }
    key = chain.signing_key(session)
    connection = session.connection()
    combined = connection.dialect.name == "postgresql"
    final = sorted(by_org)[-1]
    for org_id in sorted(by_org):
        events = by_org[org_id]
        head = _head(session, org_id)
        if head.state == ALTERED:
            events = [_over_unsigned(connection, head), *events]
        # Signed as the server's only over a head it signed (or an operator vouched for);
        # no periodic checkpoint vouches for a chain that is not.
        signed = head.state == SIGNED or head.vouch
        for recorded in events:
            recorded.seq = seq = head.seq + 1
            recorded.prev_hash = prev_hash = head.hash
            unchained, recorded.unchained = recorded.unchained, None
            event_hash = unchained.hash(prev_hash, seq) if unchained is not None else None
            recorded.hash = event_hash or chain.event_hash(recorded)
            head.seq, head.hash = recorded.seq, recorded.hash
            if signed and recorded.seq % CHECKPOINT_EVERY == 0:
                add_checkpoint(session, org_id, recorded.seq, recorded.hash, "periodic")
        sign = chain.head_signature if signed else chain.marked_head_signature
        head.signature = sign(key, org_id, head.seq, head.hash, head.base_seq, head.base_hash)
        head.state, head.vouch = (SIGNED if signed else MARKED), False
        moved = {
            "h_org_id": org_id,
            "h_seq": head.seq,
            "h_hash": head.hash,
            "h_base_seq": head.base_seq,
            "h_base_hash": head.base_hash,
            "h_signature": head.signature,
        }
        ridden = rider.rows(org_id) if rider is not None else []
        if combined and len(events) <= COMBINED_UP_TO:
            params = dict(moved)
            shared = _shared(events) if len(events) > 1 else frozenset()
            for i, recorded in enumerate(events):
                row = recorded.row(f"e{i}_")
                if i:
                    for name in shared:
                        del row[f"e{i}_{name}"]
                params.update(row)
            if rider is not None and 0 < len(ridden) <= COMBINED_UP_TO:
                params.update(rider.params(ridden))
                statement = _insert_and_move(len(events), rider, len(ridden), shared)
                ridden = []
            else:
                statement = _insert_and_move(len(events), None, 0, shared)
            committed = (
                last
                and org_id == final
                and not ridden
                # Nothing for the commit's own flush to write (a checkpoint row, say).
                and not (session.new or session.dirty or session.deleted)
                # Not in a savepoint, nor in a transaction the session joined (the tests',
                # a caller's own).
                and commits_connection(session, connection)
                # False on a connection it cannot commit that way (SQLite): then run as ever.
                and statement.run_and_commit(connection, params)
            )
            if not committed:
                statement.run(connection, params)
        else:
            rows = [recorded.row() for recorded in events]
            if len(rows) == 1:
                _INSERT_EVENT.run(connection, rows[0])
            elif len(rows) < bulk_rows.COPY_FROM:
                connection.execute(_INSERT_EVENTS, rows)
            else:  # many (a batch of rules apply): one COPY on PostgreSQL
                bulk_rows.insert_rows(connection, AuditEvent, rows)
            _MOVE_HEAD.run(connection, moved)
        if ridden:
            assert rider is not None
            rider.write(connection, org_id, ridden)
        # Moved in the current (sub)transaction: its rollback forgets this state.
        session.info[_HEADS][org_id] = (current, head)


def _write_at_commit(session: Session) -> None:
    if session.info.get(_ROWS):
        flush(session, last=True)  # the last of the commit hooks (``install``)


def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back (sub)transaction's events are gone, and its head moves; the events
    recorded outside it but written inside it (``lock_head`` in a savepoint) wait again."""
    again: list[tuple[SessionTransaction, Recorded]] = []
    written = session.info.get(_IN_SAVEPOINT)
    if written:
        kept = []
        for recorded_in, written_in, recorded in written:
            if not within(written_in, previous_transaction):
                kept.append((recorded_in, written_in, recorded))
            elif not within(recorded_in, previous_transaction):
                again.append((recorded_in, recorded))
        session.info[_IN_SAVEPOINT] = kept
    noted = session.info.get(_ROWS) or []
    noted = again + [(t, r) for t, r in noted if not within(t, previous_transaction)]
    if noted:
        session.info[_ROWS] = noted
    else:
        session.info.pop(_ROWS, None)
    heads = session.info.get(_HEADS)
    if heads:
        for org_id, (t, _head_state) in list(heads.items()):
            if within(t, previous_transaction):
                del heads[org_id]


def _forget_ended(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended: its head locks are released."""
    if transaction.parent is None:
        for name in (_ROWS, _HEADS, _IN_SAVEPOINT):
            session.info.pop(name, None)


def install() -> None:
    """Write recorded events at commit; forget them at rollback; idempotent. The commit hook
    is appended, the others (``events.writer``, ``services.counts``) put themselves first:
    it runs last, so what it writes may go out with the COMMIT (``flush``'s ``last``)."""
    for name, listener in (
        ("before_commit", _write_at_commit),
        ("after_soft_rollback", _forget_rolled_back),
        ("after_transaction_end", _forget_ended),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


install()


def add_checkpoint(
    session: Session, org_id: str, seq: int, head_hash: str, kind: str
) -> AuditCheckpoint:
    checkpoint = AuditCheckpoint(
        org_id=org_id,
        seq=seq,
        hash=head_hash,
        kind=kind,
        created_at=utcnow(),
        signature=chain.checkpoint_signature(
            chain.signing_key(session), org_id, seq, head_hash, kind
        ),
    )
    statements.seal(session, checkpoint)  # Ed25519: checkable with the public key alone
    session.add(checkpoint)
    return checkpoint


def record_failure(factory: sessionmaker[Session], org_id: str, action: str, **fields: Any) -> None:
    """Record a refused or failed operation in a transaction of its own.

    The operation's own transaction has rolled back; the failure must still be
    in the log. A failure to log is itself logged, never raised over the
    client's real error.
    """
    try:
        with factory() as session, session.begin():
            record(session, org_id, action, outcome="failure", **fields)
    except Exception:
        log.exception("could not record audit failure event %s for org %s", action, org_id)
