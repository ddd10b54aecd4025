"""Credentials and second factors in the console: the profile's buttons and the bulk actions.

Send now (to the user or to the signed-in admin), resend the new-user e-mail,
reset the password, reset MFA, schedule a send (or cancel it): each calls the
service the admin API calls (``services.credentials``, ``credential_schedules``,
``mfa``), which writes the audit event. An SSO-only organization is offered none
of them; a refusal (429 past three sends an hour, a locked account) is shown on
the profile with the service's reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort

from scim_server.console.access import person
from scim_server.db import db
from scim_server.delivery import current_delivery
from scim_server.errors import InvalidValueError
from scim_server.models import User
from scim_server.services import (
    bulk_actions,
    console_access,
    credential_schedules,
    credentials,
    mfa,
    settings,
)
from scim_server.services.addresses import user_address
from scim_server.services.bulk_actions import RowResult
from scim_server.services.users import get_user
from scim_server.urls import link_root

# Bulk operations of this module -> the capability each needs (the others: bulk_actions.OPS).
BULK_OPS = {
    "resend": "users.write",
    "reset_mfa": "mfa.reset",
    "schedule": "users.write",
    "unschedule": "users.write",
}
BULK_DONE = {
    "resend": "New-user e-mail sent",
    "reset_mfa": "Second factors removed",
    "unschedule": "Scheduled send cancelled",
}
BULK_TITLES = {
    "resend": "Resend new-user e-mail",
    "reset_mfa": "Reset MFA",
    "schedule": "Set credentials send date",
    "unschedule": "Cancel credentials send",
}


def passwords_allowed(org_id: str) -> bool:
    """Whether this organization's people have credentials at all (not SSO-only)."""
    return sign_in_method(org_id) != "sso_only"


def sign_in_method(org_id: str) -> str:
    s = db.session
    method = settings.sign_in_methods(s, org_id, settings.get_settings(s, org_id))
    s.rollback()
    return method


def parse_send_at(raw: str | None) -> datetime:
    """A ``datetime-local`` value (``2027-01-04T08:00``), read as UTC; else a clear refusal."""
    value = (raw or "").strip()
    if not value:
        raise InvalidValueError("Choose the date and time to send the credentials.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(
            f"{value[:40]!r} is not a date and time: use the form YYYY-MM-DD HH:MM (UTC)."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def my_address() -> str:
    """The signed-in admin's own e-mail address, for "to myself"."""
    s = db.session
    me = get_user(s, person().org_id, person().user_id)
    address = user_address(s, me)
    s.rollback()
    if address is None:
        raise InvalidValueError(
            "Your own account has no e-mail address: the credentials cannot be sent to you."
        )
    return address


def scheduled_dates(org_id: str, user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each user's waiting send: ``{"at": datetime, "state", "to"}`` (what the pages show)."""
    s = db.session
    views = credential_schedules.schedules_of(s, org_id, user_ids)
    s.rollback()
    return {
        user_id: {
            "at": datetime.fromisoformat(view["sendAt"].replace("Z", "+00:00")),
            "state": view["state"],
            "to": view["to"],
            "error": view["lastError"],
        }
        for user_id, view in views.items()
        if view["sendAt"]
    }


def profile_context(user: User) -> dict[str, Any]:
    """What the profile's "Sign-in and credentials" card shows."""
    s = db.session
    factors = mfa.describe(s, user)
    me = get_user(s, person().org_id, person().user_id)
    my_email = user_address(s, me)
    s.rollback()
    org_id = person().org_id
    method = sign_in_method(org_id)
    return {
        "sign_in_method": method,
        "credentials_allowed": method != "sso_only",
        "mfa": factors,
        "schedule": scheduled_dates(org_id, [user.id]).get(user.id),
        "my_email": my_email,
    }


def run_bulk(op: str, user_ids: list[str], form: Any) -> list[RowResult]:
    """One of ``BULK_OPS`` on the selected users, a result per row (a whole-request refusal
    such as a bad date or an SSO-only organization raises before any row is touched)."""
    if not person().can(BULK_OPS[op]):
        abort(403)
    s = db.session
    org_id = person().org_id
    # Credentials of an account above the actor's console roles go nowhere from here.
    beyond = console_access.beyond(s, org_id, person().roles, user_ids)
    s.rollback()  # each row's action begins its own transaction
    if op == "schedule":
        return _schedule_many(org_id, user_ids, form, beyond)
    if op == "resend":
        delivery = current_delivery()

        def resend(session: Any, org: str, user_id: str) -> object:
            return credentials.send_credentials(session, delivery, org, user_id, resend=True)

        return bulk_actions.run_each(s, org_id, user_ids, resend, BULK_DONE[op], beyond=beyond)
    if op == "reset_mfa":
        base_url = link_root()

        def reset(session: Any, org: str, user_id: str) -> object:
            return mfa.reset_mfa(session, org, user_id, None, base_url)

        return bulk_actions.run_each(s, org_id, user_ids, reset, BULK_DONE[op], beyond=beyond)
    return bulk_actions.run_each(
        s, org_id, user_ids, credential_schedules.cancel, BULK_DONE[op], beyond=beyond
    )


def _schedule_many(
    org_id: str, user_ids: list[str], form: Any, beyond: set[str]
) -> list[RowResult]:
    send_at = parse_send_at(form.get("send_at"))
    ids = list(dict.fromkeys(user_ids))
    s = db.session
    names = bulk_actions.user_names(s, org_id, ids)
    refused = [
        RowResult(i, names.get(i, i), False, bulk_actions.BEYOND) for i in ids if i in beyond
    ]
    ids = [i for i in ids if i not in beyond]
    if not ids:
        return refused
    results = credential_schedules.schedule(
        s,
        org_id,
        ids,
        send_at,
        base_url=link_root(),
        scheduled_by=person().user_name,
    )
    return [
        RowResult(
            r["id"],
            names.get(r["id"], r["id"]),
            r["status"] == 200,
            f"Credentials will be sent {send_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            if r["status"] == 200
            else r["error"],
        )
        for r in results
    ] + refused
