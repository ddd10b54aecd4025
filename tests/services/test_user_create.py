"""A SCIM create's first statement: the userName's holder, the settings, the contact match."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, select

from scim_server.db import _insert_values, db, utcnow
from scim_server.errors import InvalidValueError
from scim_server.models import AttributeValue, Contact, CredentialSchedule, User
from scim_server.services import contacts, counts, idp_credentials, users
from scim_server.services.credentials import Delivery
from scim_server.services.indexing import index_rows
from scim_server.services.passwords import Hashing
from tests.support import USER_SCHEMA, Scim, make_org
from tests.support.admin_api import account, ok


def _contact(admin: Scim, name: str, **fields: str) -> str:
    body = ok(admin.post("/api/v1/contacts", {"kind": "person", "name": name, **fields}), 201)
    return str(body["id"])


def test_the_match_follows_settings_changed_since_they_were_cached(scim, admin):
    """The create matches with the match keys stored now, not those this process cached."""
    scim.create_user("warm@example.org")  # the process now holds the default keys
    by_external_id = _contact(admin, "By Id", external_id="ext-7")
    by_email = _contact(admin, "By Mail", email="ann@example.org")
    ok(admin.put("/api/v1/settings", {"match_keys": ["email"]}))
    user = scim.create_user(
        "ann@example.org",
        externalId="ext-7",
        emails=[{"type": "work", "value": "ann@example.org", "primary": True}],
    )
    assert account(admin, user["id"])["contactId"] == by_email != by_external_id


def test_the_first_free_person_by_the_keys_order(scim, admin):
    """externalId before email; a contact that has an account or is a company is skipped."""
    taken = scim.create_user("taken@example.org", externalId="ext-1")
    taken_contact = account(admin, taken["id"])["contactId"]
    ok(
        admin.post("/api/v1/contacts", {"kind": "organization", "name": "Co", "email": "b@x.org"}),
        201,
    )
    by_email = _contact(admin, "Mail", email="b@x.org")
    mail = [{"type": "work", "value": "b@x.org", "primary": True}]
    user = scim.create_user("b@x.org", externalId="ext-1", emails=mail)
    assert account(admin, user["id"])["contactId"] == by_email != taken_contact
    by_id = _contact(admin, "Id", external_id="ext-2")
    _contact(admin, "Mail 2", email="c@x.org")
    mail = [{"type": "work", "value": "c@x.org", "primary": True}]
    user = scim.create_user("c@x.org", externalId="ext-2", emails=mail)
    assert account(admin, user["id"])["contactId"] == by_id


def test_a_taken_user_name_is_a_409_naming_its_holder(scim):
    """Same userName in another case: 409 uniqueness with the holder's id, nothing written."""
    first = scim.create_user("Dup@Example.org")
    resp = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "dup@example.ORG"})
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["scimType"] == "uniqueness" and first["id"] in body["detail"]
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 1


def _values(obj: Any) -> dict[str, Any]:
    return {attr.key: getattr(obj, attr.key) for attr in inspect(type(obj)).column_attrs}


def test_the_rows_a_create_writes_read_back_as_created(app, session):
    """Contact, user, index rows, welcome schedule and count: stored exactly (PostgreSQL
    sends them as JSON in one statement), the objects attached to the session as loaded."""
    org_id, _secret = make_org(app, "rows")
    before = counts.read(session, org_id, "User")
    doc = {
        "schemas": [USER_SCHEMA],
        "userName": "Zoë.Ørsted@example.org",
        "externalId": "ext-ø",
        "name": {"givenName": "Zoë", "familyName": "Ørsted"},
        "displayName": 'Zoë "Z" Ørsted',
        "emails": [{"value": "zoe@example.org", "type": "work", "primary": True}],
        "title": "x" * 600,
        "x-number": 1234567890123,
    }
    delivery = Delivery(hashing=Hashing.from_config(app.config), base_url="http://localhost")
    with db.writer(app)() as s:
        user = users.create_user(s, org_id, doc, delivery=delivery)
        made = _values(user)
        contact = s.get(Contact, (org_id, user.contact_id))
        assert contact is not None  # attached as loaded: no query
        contact_made = _values(contact)
    session.expire_all()
    stored = session.get(User, (org_id, user.id))
    assert _values(stored) == made
    stored_contact = session.get(Contact, (org_id, user.contact_id))
    assert _values(stored_contact) == (contact_made)
    rows = session.scalars(select(AttributeValue).where(AttributeValue.resource_id == user.id))
    index = {(r.attr, r.pos): (r.value, r.value_key) for r in rows}
    expected = index_rows(org_id, user.id, made["data"])
    assert index == {(r["attr"], r["pos"]): (r["value"], r["value_key"]) for r in expected}
    (schedule,) = session.scalars(
        select(CredentialSchedule).where(CredentialSchedule.user_id == user.id)
    )
    assert schedule.reason == "welcome" and schedule.send_at == schedule.created_at
    assert schedule.send_at.tzinfo is not None and schedule.attempts == 0
    after = counts.read(session, org_id, "User")
    assert before is not None and after == (before[0] + 1, before[1] + 1)


def _contact_values(contact: Contact) -> dict[str, Any]:
    return {
        k: v for k, v in _values(contact).items() if k not in ("id", "created_at", "updated_at")
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"given_name": "Zoë", "family_name": None, "email": "Zoë@Example.org", "external_id": "x"},
        {"given_name": None, "email": "", "phone": "+1", "title": "T", "department": "D"},
        {"email": None, "external_id": None},
        {"name": "Other Name", "email": "a@b.c"},
    ],
)
def test_a_new_person_is_the_contact_create_contact_and_update_fields_make(fields):
    """``contacts.new_person`` (a create's contact, its values set at once): the same
    contact, the same changes, updated_at moved only when a field is given."""
    made, changes = contacts.new_person("org", "Zoë Ørsted", fields)
    old = contacts.create_contact(None, "org", "person", "Zoë Ørsted", audit=False)  # type: ignore[arg-type]
    old_changes = contacts.update_fields(old, {k: v for k, v in fields.items() if v is not None})
    assert changes == old_changes and list(changes) == list(old_changes)
    assert _contact_values(made) == _contact_values(old)
    assert inspect(made).transient and (made.updated_at > made.created_at) == bool(changes)


@pytest.mark.parametrize(
    ("name", "fields", "message"),
    [
        ("", {}, "A contact needs a name of 1 to 512 characters."),
        ("x" * 513, {"title": 5}, "A contact needs a name of 1 to 512 characters."),
        ("Ann", {"title": 5}, "Contact field 'title' must be a string."),
        ("Ann", {"nickname": "A"}, "Unknown contact field 'nickname'."),
    ],
)
def test_a_new_person_refuses_what_create_contact_refuses(name, fields, message):
    with pytest.raises(InvalidValueError) as new_error:
        contacts.new_person("org", name, fields)
    with pytest.raises(InvalidValueError) as old_error:
        old = contacts.create_contact(None, "org", "person", name, audit=False)  # type: ignore[arg-type]
        contacts.update_fields(old, fields)
    assert str(new_error.value) == str(old_error.value) == message


def test_the_welcome_row_is_the_row_of_the_schedule_object():
    """The welcome's plain row (a create's batch) has every column, as ``insert_now``
    wrote the ``CredentialSchedule`` object's (its defaults applied), in the same order."""
    user = User(org_id="org", id="user-1")
    now = utcnow()
    row = {**idp_credentials._WELCOME_ROW, **idp_credentials._welcome(user, "http://x", now)}
    made = _insert_values(CredentialSchedule(**idp_credentials._welcome(user, "http://x", now)))
    assert row == made and list(row) == list(made)
