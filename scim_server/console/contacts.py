"""Contacts (``/admin/contacts/``): persons and organizations, with or without an account.

The list searches as you type (htmx swaps the ``results`` block of
``contacts/list.html``; without JavaScript the same form loads the whole page),
filters by kind and by account, and pages by keyset. A contact's page edits its
fields (``directory.update_contact``, as PATCH /api/v1/contacts/{id}), shows its
organization and its account, or the Enable access form with the plan's warnings
(``services.access``: the admin API's POST /contacts/{id}/access), and for a
resource of an external system its availability hours (``services.availability``).
The contact of an account holding console roles beyond the signed-in person's is not
theirs to change (``access.refuse_beyond``, as the user profile's contact form).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, flash, redirect, request, url_for

from scim_server.console.access import person, refuse_beyond, require
from scim_server.console.forms import PersonFieldsForm, parse, text
from scim_server.console.render import is_htmx, render
from scim_server.db import db, utcnow
from scim_server.delivery import current_delivery
from scim_server.errors import DomainError, InvalidValueError
from scim_server.services import (
    access,
    availability,
    console_access,
    contact_search,
    contacts,
    directory,
)
from scim_server.services import licenses as license_service

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

QUERY_KEYS = ("q", "kind", "account")
KIND_CHOICES = [
    ("", "Any kind"),
    ("person", "Persons"),
    ("organization", "Organizations"),
]
ACCOUNT_CHOICES = [
    ("", "Any"),
    ("yes", "With an account"),
    ("no", "Without an account"),
]
WEEKDAY_LABELS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ContactForm(PersonFieldsForm):
    """The contact page edits its organization and resource system too."""

    organization_contact_id = text(36)
    resource_system = text(200)


def _query_args(source: Any) -> dict[str, str]:
    return {k: source.get(k) for k in QUERY_KEYS if source.get(k)}


@bp.get("/")
@require("contacts.read")
def list_contacts() -> Response:
    args = _query_args(request.args)
    query = contact_search.parse_query(
        {**args, "after": request.args.get("after", ""), "before": request.args.get("before", "")}
    )
    s = db.session
    page = contact_search.search_contacts(s, person().org_id, query)
    s.rollback()

    def link(**changes: str | None) -> str:
        merged: dict[str, Any] = {**args, **changes}
        return url_for("console.contacts.list_contacts", **{k: v for k, v in merged.items() if v})

    return render(
        "console/contacts/list.html",
        block="results",
        page=page,
        query=query,
        args=args,
        link=link,
        back=urlencode(args),
        kind_choices=KIND_CHOICES,
        account_choices=ACCOUNT_CHOICES,
        htmx=is_htmx(),
    )


def _hours_form(week: availability.Week) -> dict[str, str]:
    return {
        f"{p}_{d}": availability.day_text(week[p][d])
        for p in availability.PARITIES
        for d in availability.WEEKDAYS
    }


def detail_page(contact_id: str, *, status: int = 200, **extra: Any) -> Response:
    s = db.session
    org_id = person().org_id
    contact = contacts.get_contact(s, org_id, contact_id)
    company = (
        contacts.get_contact(s, org_id, contact.organization_contact_id)
        if contact.organization_contact_id
        else None
    )
    account = directory.account_of(s, org_id, contact.id)
    # The person of an account holding console roles beyond the viewer's: its contact and
    # hours are an organization admin's to change (the posts refuse with 403), so the page
    # offers no form for them (as ``user_profile.profile_page``).
    above = account is not None and bool(
        console_access.beyond(s, org_id, person().roles, [account.id])
    )
    members = (
        contact_search.search_contacts(
            s, org_id, contact_search.ContactQuery(member_of=contact.id, size=100)
        )
        if contact.kind == "organization"
        else None
    )
    hours = availability.hours_of(s, org_id, contact.id) if contact.resource_system else None
    contact_kind = contact.kind
    all_licenses = license_service.list_licenses(s, org_id)
    organizations = contact_search.organizations(s, org_id)
    s.rollback()
    plan = extra.pop("plan", None)
    if account is None and plan is None and contact_kind == "person":
        plan = access.preview(s, org_id, contact_id)
    today = availability.parity_of(_today())
    return render(
        "console/contacts/detail.html",
        status=status,
        active_nav="console.contacts.list_contacts",
        contact=contact,
        company=company,
        account=account,
        above=above,
        members=members,
        plan=plan,
        licenses=all_licenses,
        organizations=organizations,
        hours_form=extra.pop("hours_form", None) or (_hours_form(hours) if hours else {}),
        parities=[("odd", "Odd weeks"), ("even", "Even weeks")],
        weekdays=list(zip(availability.WEEKDAYS, WEEKDAY_LABELS, strict=True)),
        this_week=(_today().isocalendar().week, today),
        **extra,
    )


def _today() -> date:
    return utcnow().date()


def _refuse_beyond_account(contact_id: str) -> None:
    """403 when the contact is the person of an account holding console roles beyond the
    signed-in person's: its e-mail is where that account's reset links go, so changing it
    is a takeover. A contact has one account at most (Enable access refuses a second)."""
    s = db.session
    account = directory.account_of(s, person().org_id, contact_id)
    user_id = account.id if account is not None else None
    s.rollback()
    if user_id is not None:
        refuse_beyond(user_id)


def _back(contact_id: str, anchor: str = "") -> Response:
    target = url_for("console.contacts.show_contact", contact_id=contact_id)
    return redirect(target + (f"#{anchor}" if anchor else ""), code=303)  # type: ignore[return-value]


@bp.get("/<contact_id>")
@require("contacts.read")
def show_contact(contact_id: str) -> Response:
    return detail_page(contact_id)


@bp.post("/<contact_id>")
@require("contacts.write")
def update_contact(contact_id: str) -> Response:
    _refuse_beyond_account(contact_id)
    values, errors = parse(ContactForm, request.form)
    if errors:
        return detail_page(contact_id, status=400, contact_errors=errors, contact_form=request.form)
    # An organization's form has no person fields and no organization: only the fields
    # the form sent are set (the others would be cleared).
    values = {name: value for name, value in values.items() if name in request.form}
    s = db.session
    try:
        directory.update_contact(s, person().org_id, contact_id, values)
    except DomainError as err:
        s.rollback()
        return detail_page(
            contact_id, status=err.status, contact_problem=err.detail, contact_form=request.form
        )
    flash("Contact saved.", "ok")
    return _back(contact_id, "details")


@bp.post("/<contact_id>/access")
@require("contacts.write")
def enable_access(contact_id: str) -> Response:
    """Enable access; refused, the page shows the plan's errors and warnings again, with
    the override checkbox."""
    username = request.form.get("username") or None
    license_name = request.form.get("license") or None
    override = request.form.get("override") == "yes"
    s = db.session
    try:
        user = access.enable_access(
            s,
            person().org_id,
            contact_id,
            username=username,
            license=license_name,
            override=override,
            delivery=current_delivery(),
        )
    except access.AccessRefusedError as err:
        s.rollback()
        return detail_page(
            contact_id,
            status=409,
            plan=err.plan,
            access_form=request.form,
            access_refused=not override or bool(err.plan.errors),
        )
    except InvalidValueError as err:
        s.rollback()
        return detail_page(
            contact_id, status=400, access_problem=err.detail, access_form=request.form
        )
    flash(f"Access enabled: username {user.login_name or user.user_name}.", "ok")
    return _back(contact_id, "access")


@bp.post("/<contact_id>/availability")
@require("contacts.write")
def set_availability(contact_id: str) -> Response:
    """The 2 x 7 grid: each field a day's ranges (``08:00-12:00, 13:00-17:00``)."""
    _refuse_beyond_account(contact_id)
    week = availability.empty_week()
    errors: dict[str, str] = {}
    for parity, parity_label in (("odd", "Odd weeks"), ("even", "Even weeks")):
        for day, label in zip(availability.WEEKDAYS, WEEKDAY_LABELS, strict=True):
            name = f"{parity}_{day}"
            raw = request.form.get(name, "")
            try:
                week[parity][day] = availability.parse_day_text(
                    raw[:400], f"{parity_label}, {label}"
                )
            except InvalidValueError as err:
                errors[name] = err.detail
    form = {k: request.form.get(k, "")[:400] for k in _hours_form(availability.empty_week())}
    if errors:
        return detail_page(contact_id, status=400, hours_errors=errors, hours_form=form)
    availability.set_availability(db.session, person().org_id, contact_id, week)
    flash("Availability hours saved.", "ok")
    return _back(contact_id, "availability")
