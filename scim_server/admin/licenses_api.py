"""Admin API for licenses (``/api/v1/licenses``): seats, prices, and what they are used for.

A rename or delete that the settings or the active rules depend on is refused
(409), so that later SCIM writes do not fail on rules that no longer validate.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify
from marshmallow import RAISE, Schema, fields, validate

from scim_server.admin.apidoc import Out, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import MAX_INT, audited, json_object, load, text
from scim_server.db import db
from scim_server.services import directory, licenses

CURRENCY_ERROR = "A three-letter currency code, e.g. EUR."
# Seats and cents are Integer columns: 32-bit on PostgreSQL, so bounded at MAX_INT.
AMOUNT = validate.Range(min=0, max=MAX_INT)


class LicenseFields(Schema):
    class Meta:
        unknown = RAISE

    name = text(200, min_length=1)
    seat_limit = fields.Integer(allow_none=True, strict=True, validate=AMOUNT)
    price_cents = fields.Integer(strict=True, validate=AMOUNT)
    currency = fields.String(validate=validate.Regexp(r"^[A-Za-z]{3}$", error=CURRENCY_ERROR))


class NewLicense(LicenseFields):
    name = text(200, min_length=1, required=True)
    seat_limit = fields.Integer(required=True, allow_none=True, strict=True, validate=AMOUNT)
    price_cents = fields.Integer(load_default=0, strict=True, validate=AMOUNT)
    currency = fields.String(
        load_default="EUR",
        validate=validate.Regexp(r"^[A-Za-z]{3}$", error=CURRENCY_ERROR),
    )


class LicenseOut(Out):
    """A license with its usage: seats used and left, users waiting for a seat."""

    id = always(fields.String)
    name = always(fields.String)
    seat_limit = nullable(fields.Integer)
    price_cents = always(fields.Integer)
    currency = always(fields.String)
    used = always(fields.Integer)
    seats_left = nullable(fields.Integer)
    shortage = always(fields.Integer)


class LicenseListOut(Out):
    """Every license of the organization."""

    licenses = always(fields.List, cls_or_instance=fields.Nested(LicenseOut))


def _license(license_id: str) -> dict[str, Any]:
    """One license with its usage (the same figures as the list)."""
    listed = licenses.list_licenses(db.session, g.org_id)
    return next(item for item in listed if item["id"] == license_id)


@bp.get("/licenses")
@api_doc(tag="licenses", response=LicenseListOut)
def list_licenses() -> Response:
    """Each license with seats used, seats left and the shortage (users waiting for a seat)."""
    return jsonify(licenses=licenses.list_licenses(db.session, g.org_id))


@bp.post("/licenses")
@audited("license.create")
@api_doc(tag="licenses", body=NewLicense, response=LicenseOut, status=201)
def create_license() -> tuple[Response, int]:
    body = load(NewLicense, json_object())
    lic = licenses.create_license(db.session, g.org_id, **body)
    return jsonify(_license(lic.id)), 201


@bp.patch("/licenses/<license_id>")
@audited("license.update")
@api_doc(tag="licenses", body=LicenseFields, response=LicenseOut)
def patch_license(license_id: str) -> Response:
    """Rename, resize or reprice; a rename the settings or active rules depend on is refused."""
    body = load(LicenseFields, json_object())
    if "currency" in body:
        body["currency"] = body["currency"].upper()
    directory.update_license(db.session, g.org_id, license_id, body)
    return jsonify(_license(license_id))


@bp.delete("/licenses/<license_id>")
@audited("license.delete")
@api_doc(tag="licenses", status=204)
def delete_license(license_id: str) -> Response:
    """Delete a license; refused while users hold it or the settings or active rules name it."""
    directory.delete_license(db.session, g.org_id, license_id)
    return Response(status=204)
