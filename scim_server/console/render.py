"""Console pages: a whole page, or for htmx one block of the same template.

An htmx request gets the same template rendered down to the block it swaps
(jinja2-fragments), never a second template with copied markup. Every answer
carries the strict headers of the sign-in pages (CSP without inline script,
``frame-ancestors 'none'``, no caching).
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, render_template, request
from jinja2_fragments.flask import render_block

from scim_server.console.access import template_context
from sso.signin.pages import HTML_HEADERS

# What each account status is called on a page (css: .badge-<STATUS>).
STATUS_LABELS = {
    "PROVISIONED": "Not activated",
    "ACTIVE": "Active",
    "DEACTIVATED": "Deactivated",
    "LOCKED_BY_ADMIN": "Locked",
    "AUTO_LOCKED": "Locked (sign-in failures)",
    "AWAITING_NEW_PASSWORD": "Awaiting new password",
    "RECOVERY": "Recovery",
}

# What a person reads for the events a user's timeline shows most; the log keeps the
# action code beside it (compliance teams search by it). Others show as their code.
ACTION_LABELS = {
    "user.create": "Created",
    "user.patch": "Updated",
    "user.replace": "Replaced",
    "user.delete": "Deleted",
    "user.deactivate": "Deactivated",
    "user.activate": "Reactivated",
    "user.lock": "Locked by an admin",
    "user.unlock": "Unlocked",
    "user.auto_lock": "Locked after failed sign-ins",
    "user.require_new_password": "Must choose a new password",
    "user.start_recovery": "Password reset started",
    "user.complete_recovery": "New password chosen",
    "user.first_sign_in": "First sign-in",
    "user.license": "License changed",
    "user.roles": "Roles changed",
    "user.mapping": "Mapping rules applied",
    "user.password.set": "Password set",
    "user.password.removed": "Password removed",
    "user.mfa.enrolled": "Second factor added",
    "user.mfa.removed": "Second factor removed",
    "user.mfa.reset": "Second factors reset by an admin",
    "user.credentials.welcome": "Welcome credentials made",
    "user.credentials.send": "Credentials sent",
    "user.credentials.resend": "New-user e-mail resent",
    "user.credentials.reset": "Password reset by an admin",
    "user.credentials.schedule": "Credentials send scheduled",
    "user.credentials.schedule.cancel": "Scheduled credentials send cancelled",
    "group.member.add": "Added to a group",
    "group.member.remove": "Removed from a group",
    "signin.success": "Signed in",
    "signin.sign_out": "Signed out",
    "signin.failure": "Sign-in refused",
}


def is_htmx() -> bool:
    """A request htmx made (it swaps part of the page), not a navigation."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get(
        "HX-History-Restore-Request"
    )


def render(
    template: str, *, block: str | None = None, status: int = 200, **context: Any
) -> Response:
    """The page, or only ``block`` when htmx asks (a block the template defines)."""
    context = {
        "product_name": current_app.config["PRODUCT_NAME"],
        **template_context(),
        **context,
    }
    if block is not None and is_htmx():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    return Response(body, status=status, headers=HTML_HEADERS)


def csv_cell(value: object) -> object:
    """A CSV cell as a download gives it: empty for None, and a text a spreadsheet would
    run as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) quoted."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
