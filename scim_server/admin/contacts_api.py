"""Admin API for contacts (``/api/v1/contacts``): persons and organizations.

With or without an account; a person may belong to an organization contact.

Views parse and validate, call one service, render JSON.
"""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from scim_server.admin.accounts_api import UserDetailOut, user_detail
from scim_server.admin.apidoc import Content, Out, PageOut, always, api_doc, nullable
from scim_server.admin.blueprint import bp
from scim_server.admin.common import (
    JsonBoolean,
    PageArgs,
    audited,
    iso,
    json_object,
    load,
    page,
    text,
)
from scim_server.db import db, utcnow
from scim_server.delivery import current_delivery
from scim_server.models import Contact
from scim_server.services import access, availability, contacts, directory


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
    organization_contact_id = text(
        36,
        min_length=1,
        allow_none=True,
        metadata={"description": "The id of an organization contact; null for none."},
    )
    resource_system = text(
        200,
        min_length=1,
        allow_none=True,
        metadata={
            "description": "The external system the contact is a resource of; null for none."
        },
    )

    @validates("resource_system")
    def _named_system(self, value: str | None, **_kw: Any) -> None:
        # Blank is no system: it would make the contact a resource of nothing.
        if value is not None and not value.strip():
            raise ValidationError("A system's name, or null for none.")


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
    resource_system = nullable(fields.String)
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
        "resource_system": contact.resource_system,
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


# -- enabling access -------------------------------------------------------------------


class AccessBody(Schema):
    class Meta:
        unknown = RAISE

    username = text(256, allow_none=True, load_default=None)
    license = text(200, allow_none=True, load_default=None)
    override = JsonBoolean(load_default=False)


class ProblemOut(Out):
    code = always(fields.String)
    message = always(fields.String)
    user_id = fields.String(metadata={"description": "has_account: the account to open"})


class AccessRefusedOut(Out):
    """Enabling access refused: ``errors`` (nothing overrides them) or ``warnings`` (send
    ``override: true`` to go ahead deliberately)."""

    error = always(fields.String)
    detail = always(fields.String)
    errors = always(fields.List, cls_or_instance=fields.Nested(ProblemOut))
    warnings = always(fields.List, cls_or_instance=fields.Nested(ProblemOut))


@bp.post("/contacts/<contact_id>/access")
@audited("contact.access")
@api_doc(
    tag="contacts",
    body=AccessBody,
    body_required=False,
    responses={201: UserDetailOut, 409: AccessRefusedOut},
)
def enable_access(contact_id: str) -> tuple[Response, int]:
    """Enable access: create the person contact's account as its rules and settings say.

    Username from the organization's format (or the e-mail) unless given; license
    from the rules and defaults unless given. Warnings (no seat left, e-mail of
    another contact) refuse with 409 unless ``override`` is true; errors
    (organization contact, an account already, username taken) always refuse.
    """
    body = load(AccessBody, json_object(optional=True))
    try:
        user = access.enable_access(
            db.session,
            g.org_id,
            contact_id,
            username=body["username"],
            license=body["license"],
            override=body["override"],
            delivery=current_delivery(),
        )
    except access.AccessRefusedError as err:
        db.session.rollback()
        plan = err.plan
        return jsonify(
            error="AccessRefusedError",
            detail=err.detail,
            errors=[p.as_dict() for p in plan.errors],
            warnings=[p.as_dict() for p in plan.warnings],
        ), 409
    return jsonify(user_detail(user.id)), 201


# -- availability hours ----------------------------------------------------------------

_RANGES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["start", "end"],
        "additionalProperties": False,
        "properties": {
            "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
            "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        },
    },
}
_WEEK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {day: _RANGES for day in availability.WEEKDAYS},
}
WEEK_SCHEMA = {
    "type": "object",
    "required": ["odd", "even"],
    "additionalProperties": False,
    "properties": {"odd": _WEEK, "even": _WEEK},
}


class AvailabilityOut(Out):
    """A resource contact's hours: odd and even ISO weeks, each weekday a list of
    ``{start, end}`` (HH:MM, end up to 24:00); ``this_week`` says which applies now."""

    contact_id = always(fields.String)
    resource_system = always(fields.String)
    odd = always(fields.Dict)
    even = always(fields.Dict)
    this_week = always(fields.Dict)


def _availability_out(found: availability.Availability) -> Response:
    today = utcnow().date()
    return jsonify(
        contact_id=found.contact_id,
        resource_system=found.resource_system,
        **availability.week_to_dict(found.week),
        this_week={"iso_week": today.isocalendar().week, "parity": availability.parity_of(today)},
    )


@bp.get("/contacts/<contact_id>/availability")
@api_doc(tag="contacts", response=AvailabilityOut)
def get_availability(contact_id: str) -> Response:
    """The daily availability hours of a contact that is a resource of an external system."""
    return _availability_out(availability.read_availability(db.session, g.org_id, contact_id))


@bp.put("/contacts/<contact_id>/availability")
@audited("contact.availability")
@api_doc(
    tag="contacts",
    body=Content(("application/json",), WEEK_SCHEMA),
    response=AvailabilityOut,
)
def replace_availability(contact_id: str) -> Response:
    """Replace the hours: both weeks, a weekday left out has none. Ranges within a day
    must not overlap; 400 names the day and range of any problem."""
    week = availability.parse_week(json_object())
    return _availability_out(availability.set_availability(db.session, g.org_id, contact_id, week))
