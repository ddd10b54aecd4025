"""The export of the provisioning log: NDJSON or CSV, ending with a manifest or an error record.

Shared by the admin API's streamed download and ``scim-server audit export``;
neither knows about the other.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from scim_server.audit import chain, offline, queries, signing, statements
from scim_server.audit.queries import EventFilter, event_to_dict
from scim_server.db import utcnow

log = logging.getLogger(__name__)


def export_lines(factory: Any, org_id: str, flt: EventFilter, fmt: str) -> Iterator[str]:
    """The export, line by line, ending with its manifest (parameters, count, range, chain head).

    A compliance export must never end silently short: if anything fails
    midway (the database goes away, a statement times out), the last line is
    an explicit error record saying how far it got, in place of the manifest.
    A body without either was cut in transit.
    """
    progress: dict[str, Any] = {"count": 0, "last_seq": None, "manifest": False}
    try:
        yield from _export_body(factory, org_id, flt, fmt, progress)
    except Exception as exc:
        if progress["manifest"]:
            log.exception("audit export for org %s: releasing its connection failed", org_id)
            return  # complete already; only releasing the connection failed
        error = {
            "organization": org_id,
            "parameters": flt.as_dict(),
            "format": fmt,
            "detail": "The export failed before its end; it is incomplete. Run it again.",
            "reason": type(exc).__name__,
            "count": progress["count"],
            "last_seq": progress["last_seq"],
            "generated_at": utcnow().isoformat(),
        }
        if fmt == "csv":
            error["csv_version"] = offline.CSV_VERSION  # how the rows before it are written
        if isinstance(exc, Unverifiable):
            log.error("audit export for org %s refused: %s", org_id, exc)
            error["detail"] = (
                f"The log does not verify: {exc}. The server signs no export of it "
                "(run `scim-server audit verify`)."
            )
            error["broken_seq"] = exc.seq
        elif isinstance(exc, PurgedWhileReading):
            log.warning("audit export for org %s: %s", org_id, exc)
        else:
            log.exception(
                "audit export for org %s failed after %s events", org_id, progress["count"]
            )
        if fmt == "csv":
            yield "# error " + json.dumps(error, sort_keys=True) + "\n"
        else:
            yield json.dumps({"error": error}, sort_keys=True) + "\n"


def _export_body(
    factory: Any, org_id: str, flt: EventFilter, fmt: str, progress: dict[str, Any]
) -> Iterator[str]:
    columns = _columns()
    with factory() as session:
        signer = signing.session_signer(session)
        with session.begin():
            signing.register_key(session, signer)  # published before anything it signs
    with factory() as session:
        span = _Span()
        # What the manifest signs is checked as it is read, as ``queries.verify`` checks it:
        # the head's signature (a chain rewritten with recomputed hashes needs a new head,
        # which only the server can sign), each event's hash, and the links between
        # consecutive events. The events up to that head: what commits meanwhile is after it.
        read_at = utcnow()  # before the head is read: a checkpoint made earlier is within it
        head = queries.head(session, org_id)
        if head is None:
            # No head: no log, or a log whose head row was deleted (every organization has
            # an event). Nothing vouches for such a log's events, whatever the filter: an
            # export of it would sign "0 events" over what is there.
            outside = queries.unvouched(session, org_id)
            if outside is not None:
                raise Unverifiable(*outside)
        elif not queries.head_signed(session, head):
            raise Unverifiable(head.seq, "the chain head's signature does not match")
        if fmt == "csv":
            yield _csv_row(columns)
        through = head.seq if head is not None else 0
        # Unfiltered, the export is the whole log and is checked as ``queries.verify`` walks
        # it: from the head's base (genesis, or the last purged event) to the head itself,
        # without a gap. Links alone miss an event deleted outright, or the last few.
        whole = not flt.as_dict()
        # A period's export (times alone) is a slice of the chain: an event missing inside
        # it was deleted, unless it is there and only dated outside the period (times are
        # taken before the head's lock: neighbours at a period's edge may be out of order).
        period = not whole and set(flt.as_dict()) <= {"since", "until"}
        expected_seq, expected_prev = (head.base_seq + 1, head.base_hash) if head else (1, None)
        for event in queries.stream(session, org_id, flt, through=through):
            if chain.event_hash(event) != event.hash:
                raise Unverifiable(event.seq, "its content does not match its hash")
            if whole and event.seq != expected_seq:
                _check_not_purged(session, org_id, head)
                raise Unverifiable(
                    expected_seq, f"event {expected_seq} is missing (next present is {event.seq})"
                )
            if period and span.count and event.seq > expected_seq:
                missing = _absent(session, org_id, expected_seq, event.seq - 1)
                if missing is not None:
                    _check_not_purged(session, org_id, head)
                    raise Unverifiable(
                        missing, f"event {missing} is missing (next present is {event.seq})"
                    )
            # The whole log's first event links to the base; any event to the one before it.
            follows = whole or (span.count and event.seq == expected_seq)
            if follows and event.prev_hash != expected_prev:
                raise Unverifiable(event.seq, "its prev_hash does not link to the event before")
            expected_seq, expected_prev = event.seq + 1, event.hash
            doc = event_to_dict(event)
            if fmt == "csv":
                yield _csv_row([_cell(doc[c]) for c in columns])
            else:
                yield json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n"
            span.add(event.seq, event.prev_hash, event.hash)
            progress["count"] += 1
            progress["last_seq"] = event.seq
        if (
            whole
            and head is not None
            and (expected_seq - 1, expected_prev) != (head.seq, head.hash)
        ):
            _check_not_purged(session, org_id, head)
            raise Unverifiable(
                expected_seq,
                f"the log ends at {expected_seq - 1} but the signed head is at {head.seq} "
                "(tail truncated)",
            )
        if whole:
            # As ``queries.verify`` after its walk: an event past the head (or the head gone
            # meanwhile) is a log that does not verify, and the whole log is not signed.
            outside = queries.unvouched(session, org_id)
            if outside is not None:
                raise Unverifiable(*outside)
        elif head is not None:
            # Filtered, the export read what matched: a purge committing meanwhile removed
            # some of it unseen (on PostgreSQL each batch reads what committed before it).
            _check_not_purged(session, org_id, head)
        manifest = _manifest(session, org_id, flt, fmt, span, head, read_at)
        signed = signer.sign(manifest)
        progress["manifest"] = True
        if fmt == "csv":
            yield "# manifest " + json.dumps(signed, sort_keys=True, ensure_ascii=False) + "\n"
        else:
            yield json.dumps({"manifest": signed}, sort_keys=True, ensure_ascii=False) + "\n"


class _Span:
    """What the manifest says of the events exported: range, ends, contiguity, digest."""

    def __init__(self) -> None:
        self.count = 0
        self.first_seq: int | None = None
        self.first_prev_hash: str | None = None
        self.last_seq: int | None = None
        self.last_hash: str | None = None
        self.contiguous = True
        self.digest = hashlib.sha256()

    def add(self, seq: int, prev_hash: str, hash_: str) -> None:
        if self.first_seq is None:
            self.first_seq, self.first_prev_hash = seq, prev_hash
        elif seq != (self.last_seq or 0) + 1 or prev_hash != self.last_hash:
            self.contiguous = False
        self.last_seq, self.last_hash = seq, hash_
        self.digest.update(offline.digest_line(seq, hash_))
        self.count += 1


def _columns() -> list[str]:
    """A CSV export's header: every column of the log, in the table's order."""
    return [c.name for c in queries.AuditEvent.__table__.columns]


def _absent(session: Any, org_id: str, first: int, last: int) -> int | None:
    """The first seq from ``first`` to ``last`` with no event, or None: one count, and a
    search only when one is missing (a period's gaps are rare: its edges)."""
    in_range = (
        queries.AuditEvent.org_id == org_id,
        queries.AuditEvent.seq.between(first, last),
    )
    present = session.scalar(select(func.count()).select_from(queries.AuditEvent).where(*in_range))
    if present == last - first + 1:
        return None
    seqs = set(session.scalars(select(queries.AuditEvent.seq).where(*in_range)))
    return next(seq for seq in range(first, last + 1) if seq not in seqs)


def _check_not_purged(session: Any, org_id: str, head: Any) -> None:
    """Raise ``PurgedWhileReading`` if a purge committed since ``head`` was read (its base
    moved): the events it removed are missing from what was read, yet the log verifies."""
    now = queries.head(session, org_id)
    if now is not None and now.base_seq != head.base_seq:
        raise PurgedWhileReading(
            f"a purge up to seq {now.base_seq} committed while the export read the log"
        )


class PurgedWhileReading(Exception):
    """A purge removed events the export had not read yet: it is incomplete, not refused."""


class Unverifiable(Exception):
    """The log does not verify where the export reads it: it ends with an error record, and
    nothing of it is signed."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"event {seq}: {reason}")
        self.seq = seq


def _manifest(
    session: Any,
    org_id: str,
    flt: EventFilter,
    fmt: str,
    span: _Span,
    head: Any,
    read_at: datetime,
) -> dict[str, Any]:
    """The export's signed manifest (``audit.offline`` checks it): parameters, range, hashes;
    the chain head the export was checked against, and when it was read (a checkpoint filed
    before that time and beyond that head vouches for history since removed)."""
    checkpoints = []
    if span.first_seq is not None and span.last_seq is not None:
        checkpoints = statements.nearest(session, org_id, span.first_seq, span.last_seq)
    manifest: dict[str, Any] = {
        "type": offline.MANIFEST_TYPE,
        "organization": org_id,
        "parameters": flt.as_dict(),
        "format": fmt,
        "count": span.count,
        "first_seq": span.first_seq,
        "last_seq": span.last_seq,
        "first_prev_hash": span.first_prev_hash,
        "last_hash": span.last_hash,
        # Links are checked only between consecutive events: a filtered export (one
        # action, one actor) skips events, and says so.
        "contiguous": span.contiguous,
        # A period's export verifies from its first event's prev_hash, not from genesis.
        "starts_mid_chain": span.first_seq is not None and span.first_seq > 1,
        "events_digest": span.digest.hexdigest(),
        "chain_head": (
            {
                "seq": head.seq,
                "hash": head.hash,
                "read_at": read_at.isoformat(timespec="microseconds"),
            }
            if head
            else None
        ),
        "chain_base": {"seq": head.base_seq, "hash": head.base_hash} if head else None,
        "checkpoints": checkpoints,
        "generated_at": utcnow().isoformat(timespec="microseconds"),
    }
    if fmt == "csv":
        manifest["columns"] = CSV_TYPES
        manifest["header"] = _columns()  # csv_version 3: the verifier wants exactly these
        manifest["csv_version"] = offline.CSV_VERSION
    return manifest


# How the CSV's text cells are read back (other columns are text; an empty cell is null).
CSV_TYPES = {"seq": "integer", "status": "integer", "changes": "json", "explanation": "json"}


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def _csv_row(values: list[Any]) -> str:
    """One RFC 4180 record; a null is an empty cell and an empty text is ``""``.

    The difference matters: the event's hash covers null and "" as different
    values, and the offline verifier must read back exactly what was hashed.
    A cell a spreadsheet would run as a formula (a userName an IdP sent as
    ``=HYPERLINK(...)``) is written as text: ``offline.csv_escape``, which the
    verifier undoes for an export whose manifest says ``csv_version`` 2.
    """
    return ",".join(_csv_field(v) for v in values) + "\r\n"


def _csv_field(value: Any) -> str:
    if value is None:
        return ""
    text = offline.csv_escape(str(value))
    if text == "" or any(ch in text for ch in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text
