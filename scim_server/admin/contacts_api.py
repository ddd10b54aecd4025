"""Admin API for contacts (``/api/v1/contacts``): persons and organizations.

With or without an account; a person may belong to an organization contact.

Views parse and validate, call one service, render JSON.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import RAISE, Schema, fields, validate

from scim_server.admin.apidoc import Out, PageOut, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import PageArgs, audited, iso, json_object, load, page, text
from scim_server.db import db
from scim_server.models import Contact
from scim_server.services import contacts, directory


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


class ContactOut(Out):
    """A person or organization contact."""

    id = always(fields.String)
    kind = always(fields.String)
    name = always(fields.String)
    given_name = nullable(fields.String)
    family_name = nullable(fields.String)
    email = nullable(fields.String)
    phone = nullable(fields.String)
    title = nullable(fields.String)
    department = nullable(fields.String)
    external_id = nullable(fields.String)
    organization_contact_id = nullable(fields.String)
    created_at = nullable(fields.String)
    updated_at = nullable(fields.String)


class ContactDetailOut(ContactOut):
    """A contact with its account (if any) and the organization it belongs to."""

    user = nullable(fields.Dict)
    organization = nullable(fields.Dict)


class ContactPageOut(PageOut):
    """A page of contacts."""

    contacts = always(fields.List, cls_or_instance=fields.Nested(ContactOut))


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
@api_doc(tag="contacts", query=ContactArgs, response=ContactPageOut)
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
@api_doc(tag="contacts", body=NewContact, response=ContactOut, status=201)
def create_contact() -> tuple[Response, int]:
    body = load(NewContact, json_object())
    kind, name = body.pop("kind"), body.pop("name")
    contact = directory.create_contact(db.session, g.org_id, kind, name, body)
    return jsonify(contact_to_dict(contact)), 201


@bp.get("/contacts/<contact_id>")
@api_doc(tag="contacts", response=ContactDetailOut)
def get_contact(contact_id: str) -> Response:
    """The contact, the account it has (if any) and the organization it belongs to."""
    session = db.session
    contact = contacts.get_contact(session, g.org_id, contact_id)
    account = directory.account_of(session, g.org_id, contact.id)
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
@api_doc(tag="contacts", body=ContactFields, response=ContactOut)
def patch_contact(contact_id: str) -> Response:
    """Set the given fields (null clears one). The IdP's next update may set them again."""
    fields_ = load(ContactFields, json_object())
    contact = directory.update_contact(db.session, g.org_id, contact_id, fields_)
    return jsonify(contact_to_dict(contact))
