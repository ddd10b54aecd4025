"""Compliance reports (``/admin/reports``): deprovisioning latency, failures, and two charts.

The reports are the admin API's (``audit.queries.deprovisioning`` / ``failures``);
the charts (SCIM requests and failures per hour, seats used per license) are SVG
drawn on the server (``console.charts``), each with its numbers in a table.
"""

from __future__ import annotations

from statistics import median

from flask import Blueprint, Response, request

from scim_server.audit import insights, queries
from scim_server.console import charts, filters
from scim_server.console.access import person, require
from scim_server.console.log import default_period
from scim_server.console.render import render
from scim_server.db import db
from scim_server.services import licenses

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.get("/")
@require("log.read")
def show_reports() -> Response:
    form = filters.Form()
    since, until = default_period(request.args, form)
    org_id = person().org_id
    if not form.ok:
        return render("console/reports/reports.html", status=400, form=form, ready=False)
    session = db.session
    leavers = queries.deprovisioning(session, org_id, since, until)
    latencies = [r["latency_ms"] for r in leavers if r["latency_ms"] is not None]
    return render(
        "console/reports/reports.html",
        form=form,
        ready=True,
        since=since,
        until=until,
        leavers=leavers,
        latency={
            "count": len(latencies),
            "median": median(latencies) if latencies else None,
            "max": max(latencies) if latencies else None,
        },
        failures=queries.failures(session, org_id, since, until),
        hourly=charts.hourly(insights.scim_requests_per_hour(session, org_id, since, until)),
        seats=charts.seats(licenses.list_licenses(session, org_id)),
    )
