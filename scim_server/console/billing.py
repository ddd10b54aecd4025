"""Billing (``/admin/billing/``): the monthly total per license now, and the seat changes of a
period from the log, with a CSV of them. Read-only (``billing.read``).

The numbers are ``services.billing``'s, the same as ``GET /api/v1/billing``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime

from flask import Blueprint, Response, request, stream_with_context

from scim_server.console import filters
from scim_server.console.access import person, require
from scim_server.console.render import csv_cell, render
from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.services import billing

bp = Blueprint("billing", __name__, url_prefix="/billing")

CSV_COLUMNS = (
    "occurred_at",
    "license",
    "change",
    "monthly_cost_cents",
    "currency",
    "user_name",
    "user_id",
    "action",
    "actor",
    "seq",
)


def _period(form: filters.Form) -> tuple[date, date]:
    """The period asked for (``from``, ``to``: days, both included), else this month."""
    first, last = billing.default_period(datetime.now(UTC).date())
    since = filters.day(request.args, "from", form)
    until = filters.day(request.args, "to", form)
    since, until = since or first, until or last
    # The form shows the period it is about (this month unless asked otherwise).
    for name, value in (("from", since), ("to", until)):
        form.values[name] = form.values[name] or value.isoformat()
    if form.ok:
        try:
            billing.check_period(since, until)
        except InvalidValueError as err:
            form.errors["to"] = err.detail
    return since, until


def _bad_period(form: filters.Form) -> Response:
    """The page with the period's errors at their fields and today's totals (400)."""
    current = billing.current_totals(db.session, person().org_id)
    return render(
        "console/billing/billing.html",
        status=400,
        form=form,
        report=None,
        current=current,
        totals=billing.monthly_totals(current),
    )


@bp.get("/")
@require("billing.read")
def show_billing() -> Response:
    form = filters.Form()
    since, until = _period(form)
    if not form.ok:
        return _bad_period(form)
    report = billing.report(db.session, person().org_id, since, until)
    return render(
        "console/billing/billing.html",
        form=form,
        report=report,
        current=report.current,
        totals=report.totals,
    )


@bp.get("/changes.csv")
@require("billing.read")
def export_changes() -> Response:
    """Every seat change of the period, one per line (streamed)."""
    form = filters.Form()
    since, until = _period(form)
    if not form.ok:
        return _bad_period(form)
    org_id = person().org_id
    session = db.session

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for change in billing.period_changes(session, org_id, since, until):
            doc = billing.change_to_dict(change)
            writer.writerow([csv_cell(doc[c]) for c in CSV_COLUMNS])
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    name = f"license-changes-{since.isoformat()}-{until.isoformat()}.csv"
    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
