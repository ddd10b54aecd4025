"""The users dashboard (``/admin/users/``): search as you type, filters, sort, keyset pages,
and bulk actions with a result per row.

htmx swaps only the ``results`` block of ``users/list.html`` (the count, the table, the
pager); without JavaScript the same form and links load the whole page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, abort, request, session, url_for

from scim_server.console import credentials as console_credentials
from scim_server.console.access import person, require
from scim_server.console.render import STATUS_LABELS, is_htmx, render
from scim_server.db import db
from scim_server.errors import DomainError, InvalidValueError
from scim_server.services import bulk_actions, console_access, licenses, roles, user_search
from scim_server.services.lifecycle import STATUSES

bp = Blueprint("users", __name__, url_prefix="/users")

_SIZE = "console_users_size"  # the page size this person chose last (remembered)
# The dashboard's own query parameters: what a link keeps when it changes one of them.
QUERY_KEYS = ("q", "status", "license", "role", "source", "sort", "dir", "size")
COLUMNS = (
    ("name", "Name"),
    ("email", "E-mail"),
    ("username", "Username"),
    ("role_task", "Role task"),
    ("role_ticket", "Role ticket"),
    ("license", "License"),
    ("status", "Status"),
    ("last_login", "Last signed in"),
    ("added", "Added"),
    ("modified", "Modified"),
)


def _query_args(source: Any) -> dict[str, str]:
    return {k: source.get(k) for k in QUERY_KEYS if source.get(k)}


SOURCE_LABELS = {"scim": "SCIM", "manual": "Manual", "jit": "JIT (first sign-in)"}


def _choices(s: Any) -> dict[str, list[tuple[str, str]]]:
    """The filter menus: (value, label) pairs, the first one meaning "any"."""
    org_id = person().org_id
    return {
        "status_choices": [("", "Any status"), *((k, STATUS_LABELS[k]) for k in STATUSES)],
        "license_choices": [
            ("", "Any license"),
            ("none", "No license"),
            *licenses.choices(s, org_id),
        ],
        "role_choices": [
            ("", "Any role"),
            *((r.id, f"{r.name} ({r.kind})") for r in roles.list_roles(s, org_id)),
        ],
        "source_choices": [("", "Any source"), *SOURCE_LABELS.items()],
    }


def _linker(args: dict[str, str]) -> Any:
    """link(**changes): this list's URL with some parameters changed (None drops one)."""

    def link(**changes: str | None) -> str:
        merged: dict[str, Any] = {**args, **changes}
        return url_for("console.users.list_users", **{k: v for k, v in merged.items() if v})

    return link


def _list_page(args: dict[str, str], *, status: int = 200, **extra: Any) -> Response:
    s = db.session
    remembered = session.get(_SIZE)
    query = user_search.parse_query(
        {**args, "after": request.args.get("after", ""), "before": request.args.get("before", "")}
        if request.method == "GET"
        else args,
        remembered if isinstance(remembered, int) else None,
    )
    if args.get("size"):
        session[_SIZE] = query.size
    page = user_search.search_users(s, person().org_id, query)
    # The filter menus are outside the block htmx swaps: a keystroke need not read them.
    filters = {} if is_htmx() else _choices(s)
    s.rollback()
    org_id = person().org_id
    return render(
        "console/users/list.html",
        block="results",
        status=status,
        page=page,
        query=query,
        args=args,
        columns=COLUMNS,
        page_sizes=user_search.PAGE_SIZES,
        back=urlencode(args),
        link=_linker(args),
        scheduled=console_credentials.scheduled_dates(org_id, [row.id for row in page.rows]),
        credentials_allowed=console_credentials.passwords_allowed(org_id),
        bulk_titles=console_credentials.BULK_TITLES,
        **filters,
        **extra,
    )


@bp.get("/")
@require("users.read")
def list_users() -> Response:
    return _list_page(_query_args(request.args))


@bp.post("/bulk")
@require("users.read")
def bulk() -> Response:
    """Lock, unlock, deactivate or delete (type DELETE) the selected users; or resend their
    new-user e-mail, reset their MFA, set or cancel their credentials send date. Each
    operation checks its own capability (users.write; mfa.reset for MFA)."""
    args = _query_args(dict(parse_qsl(request.form.get("back", ""))))
    op = request.form.get("op", "")
    selected = request.form.getlist("user")
    if op in console_credentials.BULK_OPS:
        if not person().can(console_credentials.BULK_OPS[op]):
            abort(403)
        if not selected:
            return _list_page(args, status=400, bulk_problem="Select at least one user first.")
        try:
            results = console_credentials.run_bulk(op, selected, request.form)
            _record_refusals(op, results)
        except DomainError as err:
            db.session.rollback()
            return _list_page(
                args,
                status=err.status,
                bulk_problem=err.detail,
                send_at=request.form.get("send_at"),
            )
        return _list_page(args, bulk_op=op, bulk_results=results)
    if op not in bulk_actions.OPS:
        raise InvalidValueError(f"Unknown bulk action {op!r}.")
    if not person().can("users.write"):
        abort(403)
    if not selected:
        return _list_page(args, status=400, bulk_problem="Select at least one user first.")
    if op == "delete" and request.form.get("confirm", "").strip() != "DELETE":
        return _list_page(
            args,
            status=200 if "confirm" not in request.form else 400,
            confirm_delete=selected,
            bulk_problem="Type DELETE to confirm." if "confirm" in request.form else None,
        )
    beyond = console_access.beyond(db.session, person().org_id, person().roles, selected)
    db.session.rollback()  # each row's action begins its own transaction
    results = bulk_actions.run(
        db.session, person().org_id, op, selected, acting_user_id=person().user_id, beyond=beyond
    )
    _record_refusals(op, results)
    return _list_page(args, bulk_op=op, bulk_results=results)


def _record_refusals(op: str, results: list[bulk_actions.RowResult]) -> None:
    """The rows refused, in the log as the console's other refusals are (``console.<view>``)."""
    if db.session.in_transaction():
        db.session.rollback()  # the rows' reads; the events get a transaction of their own
    bulk_actions.record_refusals(db.session, person().org_id, "console.users.bulk", op, results)
