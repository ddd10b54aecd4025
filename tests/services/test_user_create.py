"""A SCIM create's first statement: the userName's holder, the settings, the contact match."""

from __future__ import annotations

from tests.support import USER_SCHEMA, Scim
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
