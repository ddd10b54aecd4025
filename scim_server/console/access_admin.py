"""Who may use the console (``/admin/access/``): org admins grant and take back console roles.

A person is found by userName, else by their contact's e-mail when one account has it
(``console_access.find_user_by_email``: an address several accounts share asks for the
userName); the organization always keeps one org_admin (the service refuses to remove
the last).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for

from scim_server.console.access import person, require
from scim_server.console.render import render
from scim_server.db import db
from scim_server.errors import DomainError, InvalidValueError
from scim_server.models.console_access import CONSOLE_ROLES
from scim_server.services import console_access

bp = Blueprint("access", __name__, url_prefix="/access")

ROLE_HELP = {
    "org_admin": "Everything, including who may use the console",
    "user_manager": "Users, contacts, licenses, roles, rules",
    "security_admin": "Single sign-on, policies, MFA resets, revoking tokens",
    "auditor": "Read-only: the log, reports, exports",
}


def _page(status: int = 200, **extra: Any) -> Response:
    s = db.session
    members = console_access.list_members(s, person().org_id)
    s.rollback()
    return render(
        "console/access/members.html",
        status=status,
        members=members,
        roles=CONSOLE_ROLES,
        role_help=ROLE_HELP,
        **extra,
    )


@bp.get("/")
@require("access.write")
def list_members() -> Response:
    return _page()


@bp.post("/")
@require("access.write")
def grant() -> Response:
    who = (request.form.get("who") or "").strip()
    role = request.form.get("role", "")
    if not who or len(who) > 320:
        return _page(400, who_error="The person's e-mail address or username.", form=request.form)
    s = db.session
    try:
        found = console_access.find_user_by_email(s, person().org_id, who)
    except DomainError as err:
        s.rollback()
        return _page(err.status, who_error=err.detail, form=request.form)
    target = (found.id, found.user_name) if found else None
    s.rollback()
    if target is None:
        return _page(404, who_error=f"No user {who} in this organization.", form=request.form)
    try:
        added = console_access.grant(s, person().org_id, target[0], role)
    except DomainError as err:
        return _page(err.status, problem=err.detail, form=request.form)
    flash(f"{target[1]} is now {role}." if added else f"{target[1]} already was {role}.", "ok")
    return redirect(url_for("console.access.list_members"), code=303)  # type: ignore[return-value]


@bp.post("/<user_id>/<role>/revoke")
@require("access.write")
def revoke(user_id: str, role: str) -> Response:
    if role not in CONSOLE_ROLES:
        raise InvalidValueError(f"Unknown console role {role!r}.")
    try:
        held = console_access.revoke(db.session, person().org_id, user_id, role)
    except DomainError as err:
        return _page(err.status, problem=err.detail)
    if not held:  # not held, or not an account of this organization: nothing was done
        return _page(404, problem=f"That account does not hold the console role {role}.")
    flash(f"Console role {role} taken back.", "ok")
    return redirect(url_for("console.access.list_members"), code=303)  # type: ignore[return-value]
