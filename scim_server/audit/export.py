"""The export of the provisioning log: NDJSON or CSV, ending with a manifest or an error record.

Shared by the admin API's streamed download and ``scim-server audit export``;
neither knows about the other.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

from scim_server.audit import queries
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
        log.exception("audit export for org %s failed after %s events", org_id, progress["count"])
        if progress["manifest"]:
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
            yield "# error " + json.dumps(error, sort_keys=True) + "\n"
        else:
            yield json.dumps({"error": error}, sort_keys=True) + "\n"


def _export_body(
    factory: Any, org_id: str, flt: EventFilter, fmt: str, progress: dict[str, Any]
) -> Iterator[str]:
    columns = [c.name for c in queries.AuditEvent.__table__.columns]
    with factory() as session:
        first = None
        if fmt == "csv":
            yield _csv_row(columns)
        for event in queries.stream(session, org_id, flt):
            doc = event_to_dict(event)
            if fmt == "csv":
                yield _csv_row([_cell(doc[c]) for c in columns])
            else:
                yield json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n"
            progress["count"] += 1
            first = event.seq if first is None else first
            progress["last_seq"] = event.seq
        head = queries.head(session, org_id)
        manifest = {
            "organization": org_id,
            "parameters": flt.as_dict(),
            "format": fmt,
            "count": progress["count"],
            "first_seq": first,
            "last_seq": progress["last_seq"],
            "chain_head": {"seq": head.seq, "hash": head.hash} if head else None,
            "generated_at": utcnow().isoformat(),
        }
        progress["manifest"] = True
        if fmt == "csv":
            yield "# manifest " + json.dumps(manifest, sort_keys=True) + "\n"
        else:
            yield json.dumps({"manifest": manifest}, sort_keys=True) + "\n"


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return "" if value is None else value


def _csv_row(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()
