"""A user's profile (``/admin/users/<id>``): contact details, status, license, roles, delete.

Each form posts to its own URL, calls one service (the admin API's), and redirects
back with a message (post/redirect/get); a refusal shows the service's reason.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, request, url_for

from scim_server.audit import queries as audit_queries
from scim_server.console import credentials as console_credentials
from scim_server.console.access import person, require
from scim_server.console.forms import PersonFieldsForm, parse
from scim_server.console.render import render
from scim_server.console.users import SOURCE_LABELS, bp
from scim_server.db import db
from scim_server.errors import DomainError, InvalidValueError
from scim_server.services import (
    accounts,
    console_access,
    contacts,
    directory,
    licenses,
    roles,
    users,
)
from scim_server.services.lifecycle import TRANSITIONS

# The status actions the profile offers (the others belong to sign-in and recovery).
STATUS_ACTIONS = {
    "activate": "Activate",
    "deactivate": "Deactivate",
    "lock": "Lock",
    "unlock": "Unlock",
}
DONE = {
    "activate": "activated",
    "deactivate": "deactivated",
    "lock": "locked",
    "unlock": "unlocked",
}
# What change_status refuses on one's own account (a lock or deactivation would end the
# session doing it): the profile does not offer them there.
SELF_REFUSED = frozenset({"lock", "deactivate"})
PICKED_KINDS = ("task", "ticket")  # one hand-picked role each: the dashboard's columns


def _back(user_id: str, anchor: str = "") -> Response:
    target = url_for("console.users.show_user", user_id=user_id) + (f"#{anchor}" if anchor else "")
    return redirect(target, code=303)  # type: ignore[return-value]


def profile_page(user_id: str, *, status: int = 200, **extra: Any) -> Response:
    s = db.session
    org_id = person().org_id
    user = users.get_user(s, org_id, user_id)
    contact = contacts.get_contact(s, org_id, user.contact_id) if user.contact_id else None
    held = roles.roles_of(s, org_id, [user.id]).get(user.id, [])
    all_roles = roles.list_roles(s, org_id)
    all_licenses = licenses.list_licenses(s, org_id)
    groups = users.groups_of(s, org_id, [user.id])[user.id]
    recent, _more = audit_queries.search(
        s, org_id, audit_queries.EventFilter(resource_id=user.id), before_seq=None, limit=15
    )
    sign_ins, _more = audit_queries.search(
        s,
        org_id,
        audit_queries.EventFilter(resource_id=user.id, action="signin.success"),
        before_seq=None,
        limit=5,
    )
    # Holds console roles beyond the viewer's: its status, contact, license, credentials and
    # second factors are an organization admin's to change (``access.require(account=)``).
    above = bool(console_access.beyond(s, org_id, person().roles, [user.id]))
    own = user.id == person().user_id
    s.rollback()
    manual_by_kind = {
        kind: next((r["id"] for r in held if r["kind"] == kind and "manual" in r["sources"]), "")
        for kind in PICKED_KINDS
    }
    current_license = next((lic for lic in all_licenses if lic["id"] == user.license_id), None)
    wanted_license = next(
        (lic for lic in all_licenses if lic["id"] == user.license_wanted_id), None
    )
    return render(
        "console/users/profile.html",
        status=status,
        active_nav="console.users.list_users",
        user=user,
        above=above,
        contact=contact,
        held=held,
        all_roles=all_roles,
        picked_kinds=PICKED_KINDS,
        manual_by_kind=manual_by_kind,
        licenses=all_licenses,
        current_license=current_license,
        wanted_license=wanted_license,
        groups=groups,
        recent=recent,
        sign_ins=sign_ins,
        source_label=SOURCE_LABELS.get(user.source or "", "Unknown"),
        status_actions=[
            (op, label)
            for op, label in STATUS_ACTIONS.items()
            if user.status in TRANSITIONS[op].sources and not (own and op in SELF_REFUSED)
        ],
        confirm_name=user.login_name or user.user_name,
        **console_credentials.profile_context(user),
        **extra,
    )


@bp.get("/<user_id>")
@require("users.read")
def show_user(user_id: str) -> Response:
    return profile_page(user_id)


@bp.post("/<user_id>/status")
@require("users.write", account="user_id")
def change_status(user_id: str) -> Response:
    op = request.form.get("op", "")
    if op not in STATUS_ACTIONS:
        raise InvalidValueError(f"Unknown action {op!r}.")
    if op in SELF_REFUSED and user_id == person().user_id:
        raise InvalidValueError("You cannot lock or deactivate your own account here.")
    user = accounts.act(db.session, person().org_id, user_id, op, None)
    flash(f"{user.login_name or user.user_name} is {DONE[op]}.", "ok")
    return _back(user_id)


@bp.post("/<user_id>/contact")
@require("users.write", account="user_id")
def update_contact(user_id: str) -> Response:
    values, errors = parse(PersonFieldsForm, request.form)
    if errors:
        return profile_page(user_id, status=400, contact_errors=errors, contact_form=request.form)
    s = db.session
    user = users.get_user(s, person().org_id, user_id)
    contact_id = user.contact_id
    s.rollback()
    if contact_id is None:
        raise InvalidValueError("This user has no contact to edit.")
    try:
        directory.update_contact(s, person().org_id, contact_id, values)
    except DomainError as err:
        return profile_page(
            user_id, status=err.status, contact_problem=err.detail, contact_form=request.form
        )
    flash("Contact details saved.", "ok")
    return _back(user_id, "contact")


@bp.post("/<user_id>/license")
@require("users.write", account="user_id")
def set_license(user_id: str) -> Response:
    """A license by id, "none" (explicitly none), or "rules" (hand it back to the rules).
    By id, not name: a license may be named "none" or "rules" (ids never are), and a rename
    since the page was shown still assigns the license picked. Without a license the account
    cannot sign in: as a lock, not for a lower role to do to an account beyond theirs."""
    choice = request.form.get("license", "")
    s = db.session
    org_id = person().org_id
    own = user_id == person().user_id  # never one's own way in (``accounts.OWN_LICENSE``)
    if choice == "rules":
        accounts.release_manual_license(s, org_id, user_id, own=own)
        flash("The license is the mapping rules' choice again.", "ok")
    elif choice == "none":
        accounts.set_manual_license(s, org_id, user_id, None, own=own)
        flash("License removed: this user can no longer sign in.", "ok")
    elif choice:
        accounts.set_manual_license(s, org_id, user_id, None, own=own, license_id=choice)
        name = licenses.get_license(s, org_id, choice).name
        s.rollback()
        flash(f"License {name} assigned.", "ok")
    else:
        raise InvalidValueError("Choose a license.")
    return _back(user_id, "license")


@bp.post("/<user_id>/picked-role")
@require("users.write")
def set_picked_role(user_id: str) -> Response:
    kind = request.form.get("kind", "")
    if kind not in PICKED_KINDS:
        raise InvalidValueError(f"Unknown role kind {kind!r}.")
    role_id = request.form.get("role") or None
    accounts.set_manual_role_of_kind(db.session, person().org_id, user_id, kind, role_id)
    flash(f"Role {kind} saved.", "ok")
    return _back(user_id, "roles")


@bp.post("/<user_id>/roles")
@require("users.write")
def add_role(user_id: str) -> Response:
    name = (request.form.get("role") or "").strip()
    if not name:
        raise InvalidValueError("Choose a role.")
    accounts.add_manual_role(db.session, person().org_id, user_id, name)
    flash(f"Role {name} added.", "ok")
    return _back(user_id, "roles")


@bp.post("/<user_id>/roles/<role_id>/remove")
@require("users.write")
def remove_role(user_id: str, role_id: str) -> Response:
    accounts.remove_manual_role(db.session, person().org_id, user_id, role_id)
    flash("Manual role removed.", "ok")
    return _back(user_id, "roles")


@bp.post("/<user_id>/delete")
@require("users.write", account="user_id")
def delete_user(user_id: str) -> Response:
    """Deleting cannot be undone: the username must be typed to confirm."""
    s = db.session
    user = users.get_user(s, person().org_id, user_id)
    expected = user.login_name or user.user_name
    s.rollback()
    if user_id == person().user_id:
        raise InvalidValueError("You cannot delete your own account.")
    if (request.form.get("confirm") or "").strip() != expected:
        return profile_page(
            user_id, status=400, delete_problem=f"Type the username {expected} exactly to delete."
        )
    users.delete_user(s, person().org_id, user_id)
    flash(f"User {expected} deleted. Their contact and history stay.", "ok")
    return redirect(url_for("console.users.list_users"), code=303)  # type: ignore[return-value]
