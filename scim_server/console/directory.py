"""Licenses (seats, used, price, monthly cost) and roles by kind: ``/admin/licenses``,
``/admin/roles``.

The same service calls as the admin API's ``licenses_api`` and ``roles_api``,
including the check that a rename or delete does not break the settings or the
active rules.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from marshmallow import ValidationError, fields, validate, validates

from scim_server.console.access import person, require
from scim_server.console.forms import FormSchema, parse, text
from scim_server.console.render import render
from scim_server.db import db
from scim_server.errors import DomainError
from scim_server.models.role import ROLE_KINDS
from scim_server.services import directory, licenses, roles
from scim_server.text import MAX_INT

bp = Blueprint("directory", __name__)


class LicenseForm(FormSchema):
    # The service's limits (``licenses._check``): a license the admin API made, or changed,
    # is one the console can edit.
    name = text(200, required=True)
    seat_limit = fields.Integer(
        allow_none=True,
        validate=validate.Range(
            min=0, max=MAX_INT, error=f"0 to {MAX_INT:,}, or empty for unlimited."
        ),
    )
    price = fields.String(required=True)
    currency = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z]{3}$", error="A three-letter code, e.g. EUR."),
    )

    @validates("price")
    def _price(self, value: str, **_kw: Any) -> None:
        price_cents(value)


def price_cents(value: str) -> int:
    """ "49.90" → 4990; a clear message for anything else."""
    try:
        amount = Decimal(value.replace(",", "."))
    except InvalidOperation:
        raise ValidationError("A price such as 49.90.") from None
    if not amount.is_finite():  # NaN, Infinity: Decimal parses them; they compare by raising
        raise ValidationError("A price such as 49.90.")
    if amount * 100 > MAX_INT:  # first: quantizing 1E+99 raises
        raise ValidationError(f"A price of at most {Decimal(MAX_INT) / 100:,}.")
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValidationError("A price such as 49.90 (two decimals at most, not negative).")
    return int(amount * 100)


def _values(form: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": form["name"],
        "seat_limit": form.get("seat_limit"),
        "price_cents": price_cents(form["price"]),
        "currency": form["currency"].upper(),
    }


def _licenses_page(status: int = 200, **extra: Any) -> Response:
    s = db.session
    listed = licenses.list_licenses(s, person().org_id)
    s.rollback()
    totals: dict[str, int] = {}
    for lic in listed:
        lic["monthly_cents"] = lic["used"] * lic["price_cents"]
        totals[lic["currency"]] = totals.get(lic["currency"], 0) + lic["monthly_cents"]
    return render(
        "console/directory/licenses.html",
        status=status,
        licenses=listed,
        totals=sorted(totals.items()),
        **extra,
    )


@bp.get("/licenses/")
@require("directory.read")
def list_licenses() -> Response:
    return _licenses_page()


@bp.post("/licenses/")
@require("directory.write")
def create_license() -> Response:
    values, errors = parse(LicenseForm, request.form)
    if errors:
        return _licenses_page(400, errors=errors, form=request.form)
    try:
        licenses.create_license(db.session, person().org_id, **_values(values))
    except DomainError as err:
        return _licenses_page(err.status, problem=err.detail, form=request.form)
    flash(f"License {values['name']} created.", "ok")
    return redirect(url_for("console.directory.list_licenses"), code=303)  # type: ignore[return-value]


def _edit_page(license_id: str, status: int = 200, **extra: Any) -> Response:
    s = db.session
    lic = next(
        (x for x in licenses.list_licenses(s, person().org_id) if x["id"] == license_id), None
    )
    s.rollback()
    if lic is None:
        licenses.get_license(s, person().org_id, license_id)  # the service's 404
    return render(
        "console/directory/license_edit.html",
        status=status,
        active_nav="console.directory.list_licenses",
        lic=lic,
        **extra,
    )


@bp.get("/licenses/<license_id>")
@require("directory.read")
def show_license(license_id: str) -> Response:
    return _edit_page(license_id)


@bp.post("/licenses/<license_id>")
@require("directory.write")
def update_license(license_id: str) -> Response:
    values, errors = parse(LicenseForm, request.form)
    if errors:
        return _edit_page(license_id, 400, errors=errors, form=request.form)
    s = db.session
    org_id = person().org_id
    try:
        directory.update_license(s, org_id, license_id, _values(values))
    except DomainError as err:
        s.rollback()
        return _edit_page(license_id, err.status, problem=err.detail, form=request.form)
    flash(f"License {values['name']} saved.", "ok")
    return redirect(url_for("console.directory.list_licenses"), code=303)  # type: ignore[return-value]


@bp.post("/licenses/<license_id>/delete")
@require("directory.write")
def delete_license(license_id: str) -> Response:
    s = db.session
    org_id = person().org_id
    try:
        current = licenses.get_license(s, org_id, license_id).name
        s.rollback()
        directory.delete_license(s, org_id, license_id)
    except DomainError as err:
        s.rollback()
        return _edit_page(license_id, err.status, problem=err.detail)
    flash(f"License {current} deleted.", "ok")
    return redirect(url_for("console.directory.list_licenses"), code=303)  # type: ignore[return-value]


class RoleForm(FormSchema):
    name = text(200, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ROLE_KINDS))


def _roles_page(status: int = 200, **extra: Any) -> Response:
    s = db.session
    by_kind: dict[str, list[Any]] = {kind: [] for kind in ROLE_KINDS}
    for role in roles.list_roles(s, person().org_id):
        by_kind.setdefault(role.kind, []).append(role)
    s.rollback()
    return render(
        "console/directory/roles.html",
        status=status,
        by_kind=by_kind,
        kinds=ROLE_KINDS,
        role_kind_choices=[(k, k.capitalize()) for k in ROLE_KINDS],
        **extra,
    )


@bp.get("/roles/")
@require("directory.read")
def list_roles() -> Response:
    return _roles_page()


@bp.post("/roles/")
@require("directory.write")
def create_role() -> Response:
    values, errors = parse(RoleForm, request.form)
    if errors:
        return _roles_page(400, errors=errors, form=request.form)
    try:
        roles.create_role(db.session, person().org_id, values["name"], values["kind"])
    except DomainError as err:
        return _roles_page(err.status, problem=err.detail, form=request.form)
    flash(f"Role {values['name']} ({values['kind']}) created.", "ok")
    return redirect(url_for("console.directory.list_roles"), code=303)  # type: ignore[return-value]


@bp.post("/roles/<role_id>/delete")
@require("directory.write")
def delete_role(role_id: str) -> Response:
    s = db.session
    org_id = person().org_id
    name = next((r.name for r in roles.list_roles(s, org_id) if r.id == role_id), None)
    s.rollback()
    if name is None:
        directory.delete_role(s, org_id, role_id)  # the service's 404
        return redirect(url_for("console.directory.list_roles"), code=303)  # type: ignore[return-value]
    try:
        directory.delete_role(s, org_id, role_id)
    except DomainError as err:
        s.rollback()
        return _roles_page(err.status, problem=err.detail)
    flash(f"Role {name} deleted.", "ok")
    return redirect(url_for("console.directory.list_roles"), code=303)  # type: ignore[return-value]
