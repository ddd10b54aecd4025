"""The provisioning log for compliance (``/admin/log``): search, event, timeline, verify, export.

Reads only, through the same ``scim_server.audit`` functions the admin API and
``scim-server audit`` use; every page needs ``log.read`` (auditors included).
Reports and charts are in ``console.reports``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, request, stream_with_context

from scim_server.audit import insights, queries
from scim_server.audit.export import export_lines
from scim_server.audit.queries import EventFilter, PersonFilter
from scim_server.console import filters
from scim_server.console.access import person, require
from scim_server.console.render import is_htmx, render
from scim_server.db import db
from scim_server.services import user_lookup
from scim_server.text import MAX_INT

bp = Blueprint("log", __name__, url_prefix="/log")

PAGE = 50
OUTCOMES = ("success", "failure")
FORMATS = ("csv", "ndjson")


def read_filter(args: Any) -> tuple[EventFilter, filters.Form]:
    """The search form's filter (time range, action, outcome, actor, user: an account's id,
    or a userName, then or now)."""
    form = filters.Form()
    since = filters.when(args, "since", form)
    until = filters.when(args, "until", form)
    filters.check_range(since, until, form)
    action = filters.text(args, "action", form, 64)
    outcome = filters.choice(args, "outcome", form, OUTCOMES)
    actor = filters.text(args, "actor", form)
    user = filters.text(args, "user", form, 512)
    flt = EventFilter(since=since, until=until, action=action, outcome=outcome, actor=actor)
    if user:
        # A user id (what timelines link by) or a userName (what people type).
        if _is_id(user):
            flt = EventFilter(**{**flt.__dict__, "resource_id": user})
        else:
            # An event keeps the userName of its time: the person's events from before a
            # rename are found by the account(s) of this organization named so now.
            accounts = user_lookup.by_user_names(db.session, person().org_id, [user])
            ids = tuple(sorted(account.id for account in accounts.values()))
            flt = PersonFilter(**{**flt.__dict__, "user_name": user}, account_ids=ids or None)
    return flt, form


@bp.get("/")
@require("log.read")
def search_log() -> Response:
    """Newest first, PAGE at a time (keyset: ``before`` is the last seq shown)."""
    flt, form = read_filter(request.args)
    before = filters.number(request.args, "before", form)
    events: list[Any] = []
    next_cursor = None
    if form.ok:
        events, next_cursor = queries.search(
            db.session, person().org_id, flt, before_seq=before, limit=PAGE
        )
    query = {k: v for k, v in form.values.items() if v}
    return render(
        "console/log/search.html",
        block="results",
        status=200 if form.ok or is_htmx() else 400,  # htmx swaps only 2xx
        form=form,
        events=events,
        next_cursor=next_cursor,
        query=query,
        actions=insights.actions(db.session, person().org_id),
        outcomes=OUTCOMES,
    )


@bp.get(f"/events/<int(max={MAX_INT}):seq>")  # a larger number is no event (404), not a 500
@require("log.read")
def show_event(seq: int) -> Response:
    """One event: who, what, from where; its before/after; the rules that caused it."""
    event = insights.get_event(db.session, person().org_id, seq)
    if event is None:
        abort(404)
    return render(
        "console/log/event.html",
        event=event,
        rows=_change_rows(event.changes),
        active_nav="console.log.search_log",
    )


def _change_rows(changes: Any) -> list[dict[str, Any]]:
    """``{attribute: {before, after}}`` as table rows; anything else as one raw row."""
    if not isinstance(changes, dict):
        return [] if changes is None else [{"name": "", "raw": changes}]
    rows = []
    for name, value in changes.items():
        if isinstance(value, dict) and ({"before", "after"} & set(value)):
            rows.append({"name": name, "before": value.get("before"), "after": value.get("after")})
        else:
            rows.append({"name": name, "raw": value})
    return rows


@bp.get("/timeline/<resource_id>")
@require("log.read")
def timeline(resource_id: str) -> Response:
    """Every event about one person (or group), oldest first: joiner, movers, leaver."""
    if len(resource_id) > 64:
        abort(404)
    events = queries.timeline(db.session, person().org_id, resource_id)
    name = next((e.user_name for e in reversed(events) if e.user_name), None)
    return render(
        "console/log/timeline.html",
        events=events,
        resource_id=resource_id,
        name=name,
        active_nav="console.log.search_log",
    )


@bp.get("/verify")
@require("log.read")
def verify_chain() -> Response:
    """Walk the hash chain now: OK with the range checked, or the first broken event."""
    result = queries.verify(db.session, person().org_id)
    return render(
        "console/log/verify.html",
        block="result",
        result=result,
        checked_at=datetime.now(UTC),
        active_nav="console.log.search_log",
    )


@bp.get("/export")
@require("log.read")
def export_log() -> Response:
    """The filtered period as CSV or NDJSON, streamed, ending with the manifest."""
    flt, form = read_filter(request.args)
    fmt = filters.choice(request.args, "format", form, FORMATS) or "csv"
    if not form.ok:
        return render(
            "console/log/search.html",
            status=400,
            form=form,
            events=[],
            next_cursor=None,
            query={},
            actions=insights.actions(db.session, person().org_id),
            outcomes=OUTCOMES,
        )
    org_id = person().org_id
    lines = export_lines(db.reader(), org_id, flt, fmt)
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    resp = Response(stream_with_context(lines), mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def default_period(args: Any, form: filters.Form) -> tuple[datetime, datetime]:
    """The reports' period: as given, else the last seven days."""
    now = datetime.now(UTC)
    since = filters.when(args, "since", form)
    until = filters.when(args, "until", form)
    filters.check_range(since, until, form)
    until = until or now
    return since or until - timedelta(days=7), until


def _is_id(text: str) -> bool:
    """An account's id (a UUID), not a userName that merely has its length and dashes."""
    try:
        return len(text) == 36 and str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False
