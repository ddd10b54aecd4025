"""The organization's identity settings (``/admin/settings/``): one form, one document.

The same document and the same service as ``PUT /api/v1/settings``
(``directory.update_settings``): every key the form shows is sent, so a box
left unticked is false, not "unchanged". The username format has a live
preview (htmx) of what it makes of the newest accounts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for

from scim_server.console.access import person, require
from scim_server.console.render import render
from scim_server.db import db
from scim_server.errors import DomainError
from scim_server.services import directory, groups, licenses, roles, settings, username_preview
from scim_server.text import small_int

bp = Blueprint("settings", __name__, url_prefix="/settings")

# Groups listed as boxes to tick (by name); the chosen ones are always listed too.
GROUP_CHOICES = 500

FLAGS = ("strict_seats", "must_change_on_first_login", "refuse_common_passwords", "require_mfa")
NUMBERS = (
    "temporary_password_days",
    "activation_link_days",
    "password_min_length",
    "password_max_length",
    "password_history",
    "lockout_threshold",
    "lockout_window_minutes",
    "lockout_minutes",
    "lockout_max_minutes",
)


# What each setting is called on the page: the service's messages name the document's keys.
LABELS = {
    "username_format": "Username format",
    "match_keys": "Find the existing contact",
    "default_license": "Default license",
    "default_roles": "Default roles",
    "default_groups": "Default groups",
    "sign_in_methods": "Sign-in methods",
    "credentials_delivery": "First credentials",
    "temporary_password_days": "Temporary password valid (days)",
    "activation_link_days": "Activation link valid (days)",
    "password_min_length": "Password length, at least",
    "password_max_length": "Password length, at most",
    "password_history": "Earlier passwords that may not be reused",
    "lockout_threshold": "Failed sign-ins before a lock",
    "lockout_window_minutes": "Counted over (minutes)",
    "lockout_minutes": "First lock lasts (minutes)",
    "lockout_max_minutes": "Longest lock (minutes)",
}


def readable(detail: str) -> str:
    """The service's message with each setting's key replaced by its label on the page."""
    for key in sorted(LABELS, key=len, reverse=True):
        detail = detail.replace(key, f"“{LABELS[key]}”")
    return detail


def document_from_form(form: Any) -> dict[str, Any]:
    """The settings document a submitted form stands for (checked by the service)."""
    doc: dict[str, Any] = {
        "username_format": (form.get("username_format") or "").strip() or None,
        "match_keys": [k for k in settings.MATCH_KEYS if k in form.getlist("match_keys")],
        "default_license": form.get("default_license") or None,
        "default_roles": form.getlist("default_roles"),
        "default_groups": form.getlist("default_groups"),
        "sign_in_methods": form.get("sign_in_methods") or None,
        "credentials_delivery": form.get("credentials_delivery") or "",
    }
    for flag in FLAGS:
        doc[flag] = flag in form
    for name in NUMBERS:
        raw = (form.get(name) or "").strip()
        number = small_int(raw, 9)
        doc[name] = raw if number is None else number
    return doc


def _page(values: dict[str, Any] | None = None, *, status: int = 200, **extra: Any) -> Response:
    s = db.session
    org_id = person().org_id
    current = settings.get_settings(s, org_id)
    effective = settings.sign_in_methods(s, org_id, current)
    shown = {**current.as_dict(), **(values or {})}
    problem, samples = username_preview.preview(s, org_id, shown.get("username_format") or "")
    listed = groups.choices(s, org_id, GROUP_CHOICES + 1)
    chosen = [g for g in shown.get("default_groups") or [] if isinstance(g, str)]
    shown_ids = {gid for gid, _ in listed[:GROUP_CHOICES]}
    names = groups.names_of(s, org_id, [g for g in chosen if g not in shown_ids])
    options = {
        "licenses": [name for _, name in licenses.choices(s, org_id)],
        "roles": [(r.name, r.kind) for r in roles.list_roles(s, org_id)],
        "groups": [*listed[:GROUP_CHOICES], *names.items()],
        "more_groups": len(listed) > GROUP_CHOICES,
        "group_limit": GROUP_CHOICES,
    }
    s.rollback()
    return render(
        "console/settings/settings.html",
        block="preview",
        status=status,
        values=shown,
        effective_methods=effective,
        preview_problem=problem,
        samples=samples,
        match_keys=settings.MATCH_KEYS,
        sign_in_methods=settings.SIGN_IN_METHODS,
        deliveries=settings.CREDENTIALS_DELIVERY,
        **options,
        **extra,
    )


@bp.get("/")
@require("settings.read")
def show_settings() -> Response:
    return _page()


@bp.get("/username-preview")
@require("settings.read")
def preview_username() -> Response:
    """htmx: the preview block for the format being typed."""
    return _page({"username_format": request.args.get("username_format", "")[:400]})


@bp.post("/")
@require("settings.write")
def save_settings() -> Response:
    doc = document_from_form(request.form)
    try:
        directory.update_settings(db.session, person().org_id, doc)
    except DomainError as err:
        db.session.rollback()
        return _page(doc, status=err.status, problem=readable(err.detail))
    flash("Settings saved.", "ok")
    return redirect(url_for("console.settings.show_settings"), code=303)  # type: ignore[return-value]
