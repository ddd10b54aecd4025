"""The profile's credential buttons (``/admin/users/<id>/credentials/...``, ``.../mfa/reset``).

Each posts to its own URL, calls the service the admin API calls, and redirects
back with what was sent and to whom (never the secret); a refusal (429 past three
sends an hour, an SSO-only organization, a locked account) shows the profile again
with the service's reason.
"""

from __future__ import annotations

from datetime import UTC

from flask import Response, abort, flash, redirect, request, url_for

from scim_server.console.access import person, require
from scim_server.console.credentials import my_address, parse_send_at
from scim_server.console.user_profile import profile_page
from scim_server.console.users import bp
from scim_server.db import db
from scim_server.delivery import current_delivery
from scim_server.errors import DomainError, InvalidValueError
from scim_server.services import credential_schedules, credentials, mfa
from scim_server.urls import link_root


def _recipient() -> str | None:
    to = request.form.get("to", "user")
    if to not in ("user", "me"):
        raise InvalidValueError("Send to the user or to yourself.")
    return my_address() if to == "me" else None


def _done(user_id: str, message: str) -> Response:
    flash(message, "ok")
    target = url_for("console.users.show_user", user_id=user_id) + "#credentials"
    return redirect(target, code=303)  # type: ignore[return-value]


def _refused(user_id: str, err: DomainError) -> Response:
    return profile_page(user_id, status=err.status, credentials_problem=err.detail)


def _sent_message(sent: credentials.Sent, what: str) -> str:
    how = {
        "temporary_password": "a temporary password",
        "activation_link": "an activation link",
        "reset_link": "a reset link",
    }.get(sent.method, sent.method)
    return f"{what}: {how} is on its way to {sent.recipient}."


@bp.post("/<user_id>/credentials/<action>")
@require("users.write", account="user_id")
def credentials_action(user_id: str, action: str) -> Response:
    """send | resend | reset (the password), to the user or to the signed-in admin."""
    if action not in ("send", "resend", "reset"):
        abort(404)
    s = db.session
    try:
        recipient = _recipient()
        if action == "reset":
            sent = credentials.reset_password(
                s, current_delivery(), person().org_id, user_id, recipient=recipient
            )
            return _done(user_id, _sent_message(sent, "Password reset"))
        sent = credentials.send_credentials(
            s,
            current_delivery(),
            person().org_id,
            user_id,
            recipient=recipient,
            resend=action == "resend",
        )
    except DomainError as err:
        s.rollback()
        return _refused(user_id, err)
    label = "New-user e-mail resent" if action == "resend" else "Credentials sent"
    return _done(user_id, _sent_message(sent, label))


@bp.post("/<user_id>/credentials/schedule")
@require("users.write", account="user_id")
def schedule_credentials(user_id: str) -> Response:
    s = db.session
    try:
        send_at = parse_send_at(request.form.get("send_at"))
        (result,) = credential_schedules.schedule(
            s,
            person().org_id,
            [user_id],
            send_at,
            base_url=link_root(),
            recipient=_recipient(),
            scheduled_by=person().user_name,
            scheduled_by_id=person().user_id,
        )
    except DomainError as err:
        s.rollback()
        return _refused(user_id, err)
    if result["status"] == 404:
        abort(404)
    if result["status"] != 200:
        return _refused(user_id, InvalidValueError(result["error"]))
    return _done(user_id, f"Credentials will be sent {send_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC.")


@bp.post("/<user_id>/credentials/schedule/cancel")
@require("users.write", account="user_id")
def cancel_schedule(user_id: str) -> Response:
    s = db.session
    try:
        credential_schedules.cancel(s, person().org_id, user_id)
    except DomainError as err:
        s.rollback()
        return _refused(user_id, err)
    return _done(user_id, "The scheduled credentials send is cancelled.")


@bp.post("/<user_id>/mfa/reset")
@require("mfa.reset", account="user_id")
def reset_mfa(user_id: str) -> Response:
    s = db.session
    try:
        mfa.reset_mfa(s, person().org_id, user_id, None, link_root())
    except DomainError as err:
        s.rollback()
        return _refused(user_id, err)
    return _done(user_id, "Second factors removed: they enrol again at their next sign-in.")
