"""The sign-in log (``/admin/sign-ins``): each attempt, its outcome and its precise reason.

The same records the admin API's ``/api/v1/sso/sign-ins`` reads
(``sso.connections.records``); the person signing in saw only a generic message.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from scim_server.console import filters
from scim_server.console.access import person, require
from scim_server.console.render import is_htmx, render
from scim_server.db import db
from sso.connections import records, service

bp = Blueprint("signins", __name__, url_prefix="/sign-ins")

PAGE = 50


@bp.get("/")
@require("log.read")
def list_sign_ins() -> Response:
    form = filters.Form()
    since = filters.when(request.args, "since", form)
    until = filters.when(request.args, "until", form)
    filters.check_range(since, until, form)
    outcome = filters.choice(request.args, "outcome", form, records.OUTCOMES)
    reason = filters.text(request.args, "reason_code", form, 64)
    connections = service.list_connections(db.session, person().org_id)
    names = {c.id: c.name for c in connections}
    connection = filters.choice(request.args, "connection_id", form, tuple(names))
    cursor = filters.text(request.args, "cursor", form, 300)
    rows: list[Any] = []
    next_cursor = None
    if form.ok:
        rows, next_cursor = records.list_sign_ins(
            db.session,
            person().org_id,
            limit=PAGE,
            cursor=cursor,
            since=since,
            until=until,
            outcome=outcome,
            reason_code=reason,
            connection_id=connection,
        )
    query = {k: v for k, v in form.values.items() if v and k != "cursor"}
    return render(
        "console/signins/list.html",
        block="results",
        status=200 if form.ok or is_htmx() else 400,  # htmx swaps only 2xx
        form=form,
        rows=rows,
        next_cursor=next_cursor,
        query=query,
        connections=names,
        outcomes=records.OUTCOMES,
    )
