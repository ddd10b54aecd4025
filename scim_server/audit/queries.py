"""Reading the log: search with cursors, timelines, streaming, verification, reports, purge."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Select, bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from scim_server.audit import chain, statements
from scim_server.audit.recorder import (
    ACCEPTED_ACTION,
    ALTERED,
    SIGNED,
    UNSIGNED_ACTION,
    add_checkpoint,
    lock_head,
    record,
    signed_head,
    vouch,
)
from scim_server.db import KeyRead, reuse_plan, utcnow
from scim_server.errors import InvalidValueError
from scim_server.models import AuditCheckpoint, AuditEvent, AuditHead
from scim_server.text import MAX_INT

_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class EventFilter:
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    outcome: str | None = None
    actor: str | None = None
    resource_id: str | None = None
    user_name: str | None = None
    external_id: str | None = None
    request_id: str | None = None

    def apply(self, stmt: _Query) -> _Query:
        e = AuditEvent
        conditions = []
        if self.since is not None:
            conditions.append(e.occurred_at >= self.since)
        if self.until is not None:
            conditions.append(e.occurred_at < self.until)
        for column, value in (
            (e.action, self.action),
            (e.outcome, self.outcome),
            (e.resource_id, self.resource_id),
            (e.external_id, self.external_id),
            (e.request_id, self.request_id),
        ):
            if value is not None:
                conditions.append(column == value)
        if self.user_name is not None:
            conditions.append(self._named(self.user_name))
        if self.actor is not None:
            conditions.append(or_(e.actor_id == self.actor, e.actor_name == self.actor))
        return stmt.where(*conditions)

    def _named(self, user_name: str) -> ColumnElement[bool]:
        return AuditEvent.user_name == user_name

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in self.__dict__.items()
            if v is not None
        }


@dataclass(frozen=True)
class PersonFilter(EventFilter):
    """A search for a person by userName: the events recorded under that name, and the events
    about the accounts whose userName it is now (``account_ids``). An event stores the name
    at the time: after a rename, the person's earlier events are under the old one."""

    account_ids: tuple[str, ...] | None = None

    def _named(self, user_name: str) -> ColumnElement[bool]:
        named = super()._named(user_name)
        if not self.account_ids:
            return named
        return or_(named, AuditEvent.resource_id.in_(self.account_ids))


def in_log(org_id: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The conditions of the organization's log: its events up to its signed head.

    Writers insert events and move the head in one transaction, so a committed row past
    the head was written outside the log (``verify`` names it): never listed as part of
    it. The head is read in the same statement as the events (one snapshot). Without a
    head row (``verify``: the chain head is missing) nothing bounds the events: they are
    shown, unverified."""
    head_seq = select(AuditHead.seq).where(AuditHead.org_id == org_id).scalar_subquery()
    # From 1 (a log's first event) up: a row numbered below it was written outside the log.
    return AuditEvent.org_id == org_id, AuditEvent.seq.between(1, func.coalesce(head_seq, MAX_INT))


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for column in AuditEvent.__table__.columns:
        value = getattr(event, column.name)
        doc[column.name] = (
            value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value
        )
    return doc


def search(
    session: Session, org_id: str, flt: EventFilter, *, before_seq: int | None, limit: int
) -> tuple[list[AuditEvent], int | None]:
    """Newest first; ``before_seq`` is the cursor (keyset, never an OFFSET scan)."""
    stmt = select(AuditEvent).where(*in_log(org_id))
    if before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < before_seq)
    stmt = flt.apply(stmt).order_by(AuditEvent.seq.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    next_cursor = rows[limit - 1].seq if len(rows) > limit else None
    return rows[:limit], next_cursor


def timeline(session: Session, org_id: str, resource_id: str) -> list[AuditEvent]:
    """Every event about one user or group, oldest first: joiner, movers, leaver."""
    stmt = (
        select(AuditEvent)
        .where(*in_log(org_id), AuditEvent.resource_id == resource_id)
        .order_by(AuditEvent.seq)
    )
    return list(session.scalars(stmt))


def stream(
    session: Session,
    org_id: str,
    flt: EventFilter,
    batch: int = 1000,
    through: int | None = None,
) -> Iterator[AuditEvent]:
    """Oldest first, in keyset batches: constant memory whatever the size. ``through``:
    the last position to read (a chain head read before: what commits after it is not
    part of what is being read)."""
    last = -1
    while True:
        stmt = flt.apply(select(AuditEvent).where(*in_log(org_id), AuditEvent.seq > last))
        if through is not None:
            stmt = stmt.where(AuditEvent.seq <= through)
        stmt = stmt.order_by(AuditEvent.seq).limit(batch)
        rows = list(session.scalars(stmt))
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def count(session: Session, org_id: str, flt: EventFilter) -> int:
    stmt = flt.apply(select(func.count()).select_from(AuditEvent).where(*in_log(org_id)))
    return session.scalar(stmt) or 0


def head(session: Session, org_id: str) -> AuditHead | None:
    # Fresh: the recorder moves the head with Core statements, not through this object.
    return session.get(AuditHead, org_id, populate_existing=True)


_HEAD_SEQ = KeyRead(
    reuse_plan(select(AuditHead.seq).where(AuditHead.org_id == bindparam("org_id")))
)


def head_seq(connection: Connection, org_id: str) -> int | None:
    """The organization's audit head (its last event's ``seq``; None before any): every
    change an organization's services make moves it in the change's own transaction, so
    what was read at one head is still current while the head is there."""
    seq: int | None = _HEAD_SEQ.execute(connection, {"org_id": org_id}).scalar()
    return seq


# -- verification ---------------------------------------------------------------


@dataclass
class Verification:
    ok: bool
    org_id: str
    checked: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    head_hash: str | None = None
    broken_seq: int | None = None
    reason: str | None = None
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def head_signed(session: Session, head_row: AuditHead) -> bool:
    """Whether the head carries the server's signature (HMAC with a key kept out of the
    database): a chain rewritten with its hashes recomputed needs a new head, which
    only the server can sign."""
    return _carries(chain.head_signature, chain.signing_key(session), head_row)


def head_marked(session: Session, head_row: AuditHead, key: bytes | None = None) -> bool:
    """Whether the head carries the server's mark (``chain.marked_head_signature``, with
    ``key`` or the session's): the server wrote it, onto a head it had not signed (an
    ``audit.head_unsigned`` event in the chain says which)."""
    return _carries(chain.marked_head_signature, key or chain.signing_key(session), head_row)


def _carries(sign: Any, key: bytes, head_row: AuditHead) -> bool:
    """Whether ``head_row``'s signature is ``sign``'s (a head's, or the mark) with ``key``."""
    expected = sign(
        key, head_row.org_id, head_row.seq, head_row.hash, head_row.base_seq, head_row.base_hash
    )
    return chain.signatures_match(expected, head_row.signature)


# Events after which the markers before them are settled: the operator's acceptance, and
# ``audit.rekey`` (``rekey.ACTION``), which signs a marked head again only when each marker
# records a head signed with the key before the change (``signed_before_key_change``).
_SETTLING = frozenset({ACCEPTED_ACTION, "audit.rekey"})


def _found_at(marker: AuditEvent) -> Any:
    """The seq of the head a marker records (as found: not the server's word)."""
    changes = marker.changes if isinstance(marker.changes, dict) else {}
    found = changes.get("head")
    return found.get("seq") if isinstance(found, dict) else None


def _unsigned_reason(marker: AuditEvent) -> str:
    changes = marker.changes if isinstance(marker.changes, dict) else {}
    if "head" in changes and changes["head"] is None:  # ``recorder._make_head``
        return (
            f"event {marker.seq} was written onto a log whose chain head row was missing "
            "(deleted): the log is not vouched for from there"
        )
    return (
        f"event {marker.seq} was written onto a chain head that did not carry the server's "
        f"signature, found at {_found_at(marker)} (altered, or moved back after events were "
        "removed): the log is not vouched for from there"
    )


# The head and the first event past it, in one statement: one snapshot on every database.
# Without a head row, "past it" is any event, and the first checkpoint says there was a log.
_HEAD = select(AuditHead.seq).where(AuditHead.org_id == bindparam("org_id")).scalar_subquery()
_ENDS = select(
    _HEAD,
    select(func.min(AuditEvent.seq))
    .where(AuditEvent.org_id == bindparam("org_id"), AuditEvent.seq > func.coalesce(_HEAD, -1))
    .scalar_subquery(),
    select(func.min(AuditCheckpoint.seq))
    .where(AuditCheckpoint.org_id == bindparam("org_id"))
    .scalar_subquery(),
    select(func.min(AuditEvent.seq))
    .where(AuditEvent.org_id == bindparam("org_id"), AuditEvent.seq < 1)
    .scalar_subquery(),
)


def unvouched(session: Session, org_id: str) -> tuple[int, str] | None:
    """The first row of the organization's log its signed head does not vouch for, and why:
    (seq, reason); None when there is none.

    Every organization starts with an ``organization.create`` event, and writers insert
    events and move the head in one transaction. So an event or a checkpoint without a head
    row is a head deleted, and a committed event past the committed head was written
    outside the log (added, or moved in from another organization by its org_id).

    The head and the events past it are read in one statement, so one snapshot: a writer
    that commits meanwhile commits both its events and its head in it, or neither. Read in
    two statements (the head, then the events beyond it) a write committing in between
    would look like a forged event.
    """
    head_seq, beyond, checkpoint, below = session.execute(_ENDS, {"org_id": org_id}).one()
    if below is not None:
        return below, (
            f"event {below} is numbered before the log's first (1): written outside the log"
        )
    if head_seq is None:
        first = beyond if beyond is not None else checkpoint
        if first is None:
            # Not even its ``organization.create`` event: the log was wiped (events, head and
            # checkpoints deleted), which a log of no events at all would hide.
            return 1, "the log is gone: no event, no chain head, no checkpoint (wiped)"
        return first, (
            "chain head missing: the log has events but its signed head row is gone (deleted)"
        )
    if beyond is not None:
        return beyond, (
            f"event {beyond} is beyond the signed head at {head_seq} "
            "(written outside the log: added, or moved from another organization)"
        )
    return None


def verify(session: Session, org_id: str) -> Verification:
    """Walk the chain; name the first broken event (edited, deleted, reordered), a cut tail,
    a head deleted or an event past it, or the first event written onto a head the server
    had not signed (``audit.head_unsigned``) that no acceptance settled since."""
    result = Verification(ok=True, org_id=org_id)
    head_row = head(session, org_id)
    if head_row is None:
        outside = unvouched(session, org_id)
        return result if outside is None else _fail(result, *outside)
    head_ok = head_signed(session, head_row)
    if not head_ok and not head_marked(session, head_row):
        return _fail(
            result, head_row.seq, "the chain head's signature does not match (head altered)"
        )
    unsettled: list[AuditEvent] = []
    fault = _walk(session, org_id, head_row, result, unsettled)
    if unsettled:
        # The first head the server found not signed, and did not sign over: no later
        # fault (one it would explain) is named before it. A signed head over a marker no
        # acceptance settled is no head the server wrote: the marker stands.
        return _fail(result, unsettled[0].seq, _unsigned_reason(unsettled[0]))
    if fault is None and not head_ok:
        fault = head_row.seq, "the chain head's signature does not match (head altered)"
    if fault is not None:
        return _fail(result, *fault)
    # The walk stopped at the head it read first; what is past the head now is no part of
    # the log (listed by no search), and must not be there.
    outside = unvouched(session, org_id)
    if outside is not None:
        return _fail(result, *outside)
    result.head_hash = head_row.hash
    key = chain.signing_key(session)
    keys = statements.public_keys(session)
    checkpoints = list(
        session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.org_id == org_id))
    )
    # The head as it is now, read after the checkpoints: a checkpoint made while the chain
    # was walked is within it; one beyond it means the head was put back (tail cut).
    now_seq = max(head_row.seq, getattr(head(session, org_id), "seq", head_row.seq))
    for cp in checkpoints:
        result.checkpoints += 1
        if not chain.signatures_match(
            chain.checkpoint_signature(key, org_id, cp.seq, cp.hash, cp.kind),
            cp.signature,
        ):
            return _fail(result, cp.seq, f"checkpoint at {cp.seq} has a bad signature")
        problem = statements.check(session, cp, keys)
        if problem:
            return _fail(result, cp.seq, f"checkpoint at {cp.seq}: {problem}")
        if cp.seq > now_seq:
            return _fail(
                result, cp.seq, f"a checkpoint at {cp.seq} is beyond the head (tail truncated)"
            )
        signed = session.get(AuditEvent, (org_id, cp.seq))
        if signed is not None and signed.hash != cp.hash:
            return _fail(result, cp.seq, f"event {cp.seq} differs from its signed checkpoint")
    return result


def _walk(
    session: Session,
    org_id: str,
    head_row: AuditHead,
    result: Verification,
    unsettled: list[AuditEvent],
) -> tuple[int, str] | None:
    """Walk the chain from its base to ``head_row``: the first fault (seq, reason), or None.
    The markers of heads found not signed (``audit.head_unsigned``) no acceptance settled
    yet are added to ``unsettled``; those settled, to ``result.problems``."""
    walked = _Walked(head_row.base_seq + 1)
    try:
        return _walk_events(session, org_id, head_row, result, unsettled, walked)
    except (ValueError, TypeError, OverflowError):
        # A row whose stored value no column type reads back (SQLite keeps whatever was
        # written: a time that is no time, changes that are no JSON): edited outside the
        # server, named as the first event the walk could not read, never a server error.
        walked.seq = _first_unreadable(session, org_id, walked.seq, head_row.seq)
        return walked.seq, (
            f"event {walked.seq} cannot be read: a stored value is not one the server writes "
            "(edited)"
        )


def _first_unreadable(session: Session, org_id: str, start: int, through: int) -> int:
    """The first event from ``start`` that cannot be read (its batch failed as a whole):
    one read per event, from the batch's start, only once a batch failed."""
    for seq in range(start, through + 1):
        try:
            session.execute(
                select(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.seq == seq)
            ).all()
        except (ValueError, TypeError, OverflowError):
            return seq
    return start


@dataclass
class _Walked:
    """Where the walk is: the next event it expects."""

    seq: int


def _walk_events(
    session: Session,
    org_id: str,
    head_row: AuditHead,
    result: Verification,
    unsettled: list[AuditEvent],
    walked: _Walked,
) -> tuple[int, str] | None:
    expected_seq = head_row.base_seq + 1
    prev_hash = head_row.base_hash
    # The chain up to the head read above: on PostgreSQL each statement below sees what
    # committed before it, and a write that commits meanwhile is after this head, not
    # a sign that the head was cut back.
    for event in stream(session, org_id, EventFilter(), through=head_row.seq):
        if result.first_seq is None:
            result.first_seq = event.seq
        if event.seq != expected_seq:
            reason = (
                f"event {expected_seq} is missing (next present is {event.seq})"
                if event.seq > expected_seq
                else f"event {event.seq} is out of order"
            )
            return expected_seq, reason
        if event.prev_hash != prev_hash:
            return (
                event.seq,
                "prev_hash does not link to the previous event (reordered or removed)",
            )
        if chain.event_hash(event) != event.hash:
            return event.seq, "content does not match its hash (edited)"
        if event.action == UNSIGNED_ACTION:
            unsettled.append(event)
        elif event.action in _SETTLING and unsettled:
            result.problems += [
                f"{_unsigned_reason(marker)}; accepted at event {event.seq} ({event.action})"
                for marker in unsettled
            ]
            unsettled.clear()
        prev_hash = event.hash
        expected_seq += 1
        walked.seq = expected_seq
        result.checked += 1
        result.last_seq = event.seq
    if expected_seq - 1 != head_row.seq or prev_hash != head_row.hash:
        return (
            expected_seq,
            f"the log ends at {expected_seq - 1} but the signed head is at {head_row.seq} "
            "(tail truncated)",
        )
    return None


def _fail(result: Verification, seq: int, reason: str) -> Verification:
    result.ok = False
    result.broken_seq = seq
    result.reason = reason
    return result


# -- a chain head the server did not sign ---------------------------------------------------


def _unsettled(
    session: Session, org_id: str, after_seq: int, through: int | None = None
) -> list[AuditEvent]:
    """The markers of heads found not signed (``audit.head_unsigned``) after ``after_seq``
    (up to ``through``) that no acceptance after them settled, oldest first."""
    stmt = select(AuditEvent).where(
        AuditEvent.org_id == org_id,
        AuditEvent.action.in_([UNSIGNED_ACTION, *sorted(_SETTLING)]),
        AuditEvent.seq > after_seq,
    )
    if through is not None:
        stmt = stmt.where(AuditEvent.seq <= through)
    markers: list[AuditEvent] = []
    for event in session.scalars(stmt.order_by(AuditEvent.seq)):
        if event.action == UNSIGNED_ACTION:
            markers.append(event)
        else:
            markers.clear()
    return markers


def signed_before_key_change(
    session: Session, head_row: AuditHead, key: bytes, previous: bytes
) -> bool:
    """Whether a head is marked only because the audit key changed under it: the server
    marked it with ``key`` (the current one), and each marker no acceptance settled records
    the head it was written onto as the log's last event, signed by the server with one of
    the two keys (the first marker's, as the server's head: ``head_signature``; a later one's
    may be a head marked by a node on the other key). Writes made between the key change and
    the rekey (``audit.rekey``) find a head signed with a key not theirs and mark it: the
    rekey may sign such a head again, as it signs a head the old key signed. A head altered
    (cut back, moved) is signed with neither key where its marker records it: left marked."""
    if not head_marked(session, head_row, key):
        return False
    markers = _unsettled(session, head_row.org_id, head_row.base_seq, head_row.seq)
    kinds = [chain.head_signature]
    for marker in markers:
        changes = marker.changes if isinstance(marker.changes, dict) else {}
        found = changes.get("head")
        if not isinstance(found, dict) or not isinstance(found.get("signature"), str):
            return False
        try:
            values = (found["seq"], found["hash"], found["base_seq"], found["base_hash"])
            signed = any(
                chain.signatures_match(sign(k, head_row.org_id, *values), found["signature"])
                for k in (key, previous)
                for sign in kinds
            )
        except (KeyError, TypeError):
            return False
        if not signed or values[:2] != (marker.seq - 1, marker.prev_hash):
            return False
        kinds = [chain.head_signature, chain.marked_head_signature]
    return bool(markers)


@dataclass
class Acceptance:
    """What ``accept_head`` found and did."""

    org_id: str
    accepted: bool  # False: the head was the server's, nothing was done
    found_seq: int | None = None  # the head as found
    markers: list[int] = field(default_factory=list)  # the markers the acceptance settles
    marked_now: bool = False  # the head was altered since the last write: a marker first
    removed: list[int] = field(default_factory=list)  # checkpoints of history no longer there


def accept_head(session: Session, org_id: str, reason: str) -> Acceptance:
    """An operator's acceptance of the log as it is, after the server found its head not
    signed: the head is signed as the server's again, with an ``audit.head_accepted`` event
    (why, the head as found, the markers it settles). ``verify`` then walks the chain as
    ever, so an event edited, deleted or added is still found; the markers it settled are
    listed in its ``problems``. A head found altered since the last write gets its marker
    first (``recorder``), so the acceptance always follows one.

    The checkpoints of history removed in the incident (at or past where it was found, and
    not agreeing with the events there now) are deleted, and listed in the event: kept, they
    would fail verify for good, and a periodic one would refuse the write reaching its seq.
    Those before it are left: one that disagrees is history the server had vouched for,
    rewritten, and verify goes on naming it. A head the server signed is left as it is."""
    with session.begin():
        held = lock_head(session, org_id)
        if held.state == SIGNED:
            return Acceptance(org_id, accepted=False)
        held_altered = held.state == ALTERED
        found: dict[str, Any] = {
            "seq": held.seq,
            "hash": held.hash,
            "base_seq": held.base_seq,
            "base_hash": held.base_hash,
            "signature": held.signature,
        }
        markers = [m.seq for m in _unsettled(session, org_id, held.base_seq)]
        if markers:
            start = markers[0]
        else:  # altered since the last write, or its marker purged since
            last = session.scalar(
                select(func.max(AuditEvent.seq)).where(AuditEvent.org_id == org_id)
            )
            start = (last if last is not None else held.base_seq) + 1
        removed = [
            cp
            for cp in session.scalars(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.org_id == org_id, AuditCheckpoint.seq >= start)
                .order_by(AuditCheckpoint.seq)
            )
            if session.scalar(
                select(AuditEvent.hash).where(AuditEvent.org_id == org_id, AuditEvent.seq == cp.seq)
            )
            != cp.hash
        ]
        gone: list[dict[str, Any]] = [
            {"seq": cp.seq, "hash": cp.hash, "kind": cp.kind} for cp in removed
        ]
        for cp in removed:
            session.delete(cp)
        session.flush()
        vouch(session, org_id)
        record(
            session,
            org_id,
            ACCEPTED_ACTION,
            detail=f"chain head accepted by the operator: {reason}",
            changes={"head": found, "unsigned_events": markers, "checkpoints_removed": gone},
        )
    return Acceptance(org_id, True, found["seq"], markers, held_altered, [g["seq"] for g in gone])


# -- retention -------------------------------------------------------------------------


# A purge keeps at least the last day: a later cutoff (a date typed in the future, a
# retention of 0) would delete every event, what was just logged with them.
PURGE_MIN_AGE = timedelta(days=1)


def purge(session: Session, org_id: str, before: datetime, *, now: datetime | None = None) -> int:
    """Delete events older than ``before``; the chain stays verifiable from the new start.

    The head remembers the last purged event (base seq and hash), a signed
    checkpoint marks it, and the purge itself is an event. ``before`` must be at least
    ``PURGE_MIN_AGE`` before ``now`` (the clock, the current time unless given): every
    caller is refused the cutoff that empties the log.
    """
    latest = (now or utcnow()) - PURGE_MIN_AGE
    if before > latest:
        raise InvalidValueError(
            f"A purge's cutoff must be at least a day ago (on or before {latest.isoformat()}),"
            f" got {before.isoformat()}: a later one deletes what was just logged."
        )
    with session.begin():
        head_row = signed_head(
            session,
            org_id,
            "a purge would delete history an incident may be about and sign a checkpoint at "
            "its new start",
        )
        last = session.scalar(
            select(func.max(AuditEvent.seq)).where(
                AuditEvent.org_id == org_id, AuditEvent.occurred_at < before
            )
        )
        if last is None:
            record(session, org_id, "audit.purge", detail=f"nothing before {before.isoformat()}")
            return 0
        boundary = session.get(AuditEvent, (org_id, last))
        assert boundary is not None
        removed = session.execute(
            delete(AuditEvent).where(AuditEvent.org_id == org_id, AuditEvent.seq <= last)
        ).rowcount  # type: ignore[attr-defined]
        head_row.base_seq = last
        head_row.base_hash = boundary.hash
        add_checkpoint(session, org_id, last, boundary.hash, "purge")
        session.flush()
        record(
            session,
            org_id,
            "audit.purge",
            detail=f"purged {removed} events before {before.isoformat()} (up to seq {last})",
        )
    return removed


# -- reports ------------------------------------------------------------------------------


def deprovisioning(
    session: Session, org_id: str, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """Users deactivated or deleted in a period, and how long after the IdP's request each took."""
    rows = []
    for action in ("user.deactivate", "user.delete"):
        flt = EventFilter(since=since, until=until, action=action, outcome="success")
        for event in stream(session, org_id, flt):
            latency = None
            if event.received_at is not None:
                latency = round((event.occurred_at - event.received_at).total_seconds() * 1000, 3)
            rows.append(
                {
                    "seq": event.seq,
                    "action": event.action,
                    "user_id": event.resource_id,
                    "user_name": event.user_name,
                    "external_id": event.external_id,
                    "requested_at": event.received_at.isoformat() if event.received_at else None,
                    "effective_at": event.occurred_at.isoformat(),
                    "latency_ms": latency,
                    "actor": event.actor_name,
                    "request_id": event.request_id,
                }
            )
    return sorted(rows, key=lambda r: r["seq"])


def failures(
    session: Session, org_id: str, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """Failed operations grouped by action, status and scimType."""
    stmt = (
        EventFilter(since=since, until=until, outcome="failure")
        .apply(
            select(AuditEvent.action, AuditEvent.status, AuditEvent.scim_type, func.count()).where(
                *in_log(org_id)
            )
        )
        .group_by(AuditEvent.action, AuditEvent.status, AuditEvent.scim_type)
    )
    out = [
        {"action": a, "status": s, "scim_type": t, "count": n}
        for a, s, t, n in session.execute(stmt)
    ]
    return sorted(out, key=lambda r: (-r["count"], r["action"]))
