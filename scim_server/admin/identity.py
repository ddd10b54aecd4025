"""Admin API for the internal identity model: settings, contacts, licenses, roles.

Users (accounts) are in ``accounts``, rule sets in ``rule_sets``; importing this
module registers all of them on the admin blueprint ``bp`` (create_app takes
``bp`` from here). Views parse and validate, call one service, render JSON.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select

from scim_server.admin import operations
from scim_server.admin.common import PageArgs, audited, iso, json_object, load, page, text
from scim_server.admin.views import bp
from scim_server.db import db
from scim_server.models import Contact, Role
from scim_server.models.role import ROLE_KINDS
from scim_server.services import contacts, licenses, roles, settings

__all__ = ["bp"]


# -- settings -------------------------------------------------------------------------


@bp.get("/settings")
def get_settings() -> Response:
    return jsonify(settings.get_settings(db.session, g.org_id).as_dict())


@bp.put("/settings")
@audited("settings.update")
def replace_settings() -> Response:
    """The whole settings document; keys left out return to their defaults."""
    return jsonify(operations.update_settings(db.session, g.org_id, json_object()))


# -- contacts -------------------------------------------------------------------------


class ContactArgs(PageArgs):
    kind = fields.String(load_default=None, validate=validate.OneOf(["person", "organization"]))
    q = text(512, min_length=1, load_default=None)


class ContactFields(Schema):
    class Meta:
        unknown = RAISE

    name = text(512, min_length=1)
    given_name = text(512, allow_none=True)
    family_name = text(512, allow_none=True)
    email = text(512, allow_none=True)
    phone = text(64, allow_none=True)
    title = text(512, allow_none=True)
    department = text(512, allow_none=True)
    external_id = text(512, allow_none=True)
    organization_contact_id = text(36, allow_none=True)


class NewContact(ContactFields):
    kind = fields.String(required=True, validate=validate.OneOf(["person", "organization"]))
    name = text(512, min_length=1, required=True)


def contact_to_dict(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "kind": contact.kind,
        "name": contact.name,
        **{f: getattr(contact, f) for f in contacts.PERSON_FIELDS},
        "external_id": contact.external_id,
        "organization_contact_id": contact.organization_contact_id,
        "created_at": iso(contact.created_at),
        "updated_at": iso(contact.updated_at),
    }


@bp.get("/contacts")
def list_contacts() -> Response:
    """Persons and organizations, with or without an account; ``q``: name prefix or e-mail."""
    args = load(ContactArgs, request.args)
    total, rows = contacts.list_contacts(
        db.session,
        g.org_id,
        kind=args["kind"],
        query=args["q"],
        offset=args["offset"],
        limit=args["limit"],
    )
    return page(
        total, args["offset"], args["limit"], "contacts", [contact_to_dict(c) for c in rows]
    )


@bp.post("/contacts")
@audited("contact.create")
def create_contact() -> tuple[Response, int]:
    body = load(NewContact, json_object())
    kind, name = body.pop("kind"), body.pop("name")
    contact = operations.create_contact(db.session, g.org_id, kind, name, body)
    return jsonify(contact_to_dict(contact)), 201


@bp.get("/contacts/<contact_id>")
def get_contact(contact_id: str) -> Response:
    """The contact, the account it has (if any) and the organization it belongs to."""
    session = db.session
    contact = contacts.get_contact(session, g.org_id, contact_id)
    account = operations.account_of(session, g.org_id, contact.id)
    company = (
        contacts.get_contact(session, g.org_id, contact.organization_contact_id)
        if contact.organization_contact_id
        else None
    )
    user = None
    if account is not None:
        user = {
            "id": account.id,
            "userName": account.user_name,
            "username": account.login_name,
            "status": account.status,
        }
    return jsonify(
        {
            **contact_to_dict(contact),
            "user": user,
            "organization": {"id": company.id, "name": company.name} if company else None,
        }
    )


@bp.patch("/contacts/<contact_id>")
@audited("contact.update")
def patch_contact(contact_id: str) -> Response:
    """Set the given fields (null clears one). The IdP's next update may set them again."""
    fields_ = load(ContactFields, json_object())
    contact = operations.update_contact(db.session, g.org_id, contact_id, fields_)
    return jsonify(contact_to_dict(contact))


# -- licenses -------------------------------------------------------------------------


CURRENCY_ERROR = "A three-letter currency code, e.g. EUR."


class LicenseFields(Schema):
    class Meta:
        unknown = RAISE

    name = text(200, min_length=1)
    seat_limit = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0))
    price_cents = fields.Integer(strict=True, validate=validate.Range(min=0))
    currency = fields.String(validate=validate.Regexp(r"^[A-Za-z]{3}$", error=CURRENCY_ERROR))


class NewLicense(LicenseFields):
    name = text(200, min_length=1, required=True)
    seat_limit = fields.Integer(
        required=True, allow_none=True, strict=True, validate=validate.Range(min=0)
    )
    price_cents = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0))
    currency = fields.String(
        load_default="EUR",
        validate=validate.Regexp(r"^[A-Za-z]{3}$", error=CURRENCY_ERROR),
    )


def _license(license_id: str) -> dict[str, Any]:
    """One license with its usage (the same figures as the list)."""
    listed = licenses.list_licenses(db.session, g.org_id)
    return next(item for item in listed if item["id"] == license_id)


@bp.get("/licenses")
def list_licenses() -> Response:
    """Each license with seats used, seats left and the shortage (users waiting for a seat)."""
    return jsonify(licenses=licenses.list_licenses(db.session, g.org_id))


@bp.post("/licenses")
@audited("license.create")
def create_license() -> tuple[Response, int]:
    body = load(NewLicense, json_object())
    lic = licenses.create_license(db.session, g.org_id, **body)
    return jsonify(_license(lic.id)), 201


@bp.patch("/licenses/<license_id>")
@audited("license.update")
def patch_license(license_id: str) -> Response:
    """Rename, resize or reprice; a rename the settings or active rules depend on is refused."""
    body = load(LicenseFields, json_object())
    if "currency" in body:
        body["currency"] = body["currency"].upper()
    session = db.session
    if "name" in body:
        current = licenses.get_license(session, g.org_id, license_id).name
        session.rollback()
        operations.check_references(session, g.org_id, license_rename=(current, body["name"]))
    licenses.update_license(session, g.org_id, license_id, body)
    return jsonify(_license(license_id))


@bp.delete("/licenses/<license_id>")
@audited("license.delete")
def delete_license(license_id: str) -> Response:
    session = db.session
    current = licenses.get_license(session, g.org_id, license_id).name
    session.rollback()
    operations.check_references(session, g.org_id, license_rename=(current, None))
    licenses.delete_license(session, g.org_id, license_id)
    return Response(status=204)


# -- roles ----------------------------------------------------------------------------


class NewRole(Schema):
    class Meta:
        unknown = RAISE

    name = text(200, min_length=1, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ROLE_KINDS))


def role_to_dict(role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "kind": role.kind, "created_at": iso(role.created_at)}


@bp.get("/roles")
def list_roles() -> Response:
    return jsonify(roles=[role_to_dict(r) for r in roles.list_roles(db.session, g.org_id)])


@bp.post("/roles")
@audited("role.create")
def create_role() -> tuple[Response, int]:
    body = load(NewRole, json_object())
    role = roles.create_role(db.session, g.org_id, body["name"], body["kind"])
    return jsonify(role_to_dict(role)), 201


@bp.delete("/roles/<role_id>")
@audited("role.delete")
def delete_role(role_id: str) -> Response:
    """Delete a role (holders lose it); refused while the settings or active rules name it."""
    session = db.session
    name = session.scalar(select(Role.name).where(Role.org_id == g.org_id, Role.id == role_id))
    session.rollback()  # the check and the delete run in transactions of their own
    if name is not None:
        operations.check_references(session, g.org_id, role_removed=name)
    roles.delete_role(session, g.org_id, role_id)
    return Response(status=204)


# Registered here so that importing this module sets up the whole identity admin API.
from scim_server.admin import accounts, jobs, rule_sets  # noqa: E402, F401
