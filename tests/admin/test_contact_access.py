"""Admin API: enabling access for an existing contact (POST /api/v1/contacts/{id}/access)."""

from __future__ import annotations

from sqlalchemy import func, select

from scim_server.models import Contact, CredentialSchedule, User
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import access
from tests.support.admin_api import (
    account,
    events,
    licenses_by_name,
    make_license,
    make_role,
    ok,
    person,
)


def _contact(admin, name="Ada Lovelace", **fields):
    body = {"kind": "person", "name": name, **fields}
    return ok(admin.post("/api/v1/contacts", body), 201)


def _access(admin, contact_id, body=None):
    return admin.post(f"/api/v1/contacts/{contact_id}/access", body if body is not None else {})


def _total_users(scim):
    return ok(scim.get("/scim/v2/Users", query_string={"count": 0}))["totalResults"]


def test_enable_access_makes_the_account_the_settings_say(scim, admin, session):
    """Username from the format, default license and roles, a welcome queued, counted,
    billed, one user.create event naming the contact; the contact is linked, not copied."""
    make_license(admin, "Engineer", 2, price_cents=4990)
    make_role(admin, "Dispatcher", "task")
    ok(
        admin.put(
            "/api/v1/settings",
            {
                "username_format": "{given}.{family}",
                "default_license": "Engineer",
                "default_roles": ["Dispatcher"],
            },
        )
    )
    company = ok(admin.post("/api/v1/contacts", {"kind": "organization", "name": "Initech"}), 201)
    contact = _contact(
        admin,
        given_name="Ada",
        family_name="Lovelace",
        email="ada@initech.example",
        title="Engineer",
        organization_contact_id=company["id"],
    )
    before_total = _total_users(scim)
    contacts_before = session.scalar(select(func.count()).select_from(Contact))

    user = ok(_access(admin, contact["id"]), 201)

    assert user["username"] == "Ada.Lovelace"
    assert user["userName"] == "ada@initech.example"  # what an IdP pushing her later finds
    assert user["contactId"] == contact["id"]
    assert user["status"] == "PROVISIONED"
    assert user["license"]["value"] == "Engineer"
    assert [r["value"] for r in user["roles"]] == ["Dispatcher"]
    stored = session.get(User, (admin.org_id, user["id"]))
    assert stored.source == "manual" and stored.contact_id == contact["id"]
    # Same stored form a SCIM create of this person keeps.
    assert parse_resource(USER, {"schemas": [USER_SCHEMA], **stored.data}, creating=True) == (
        stored.data
    )
    assert session.scalar(select(func.count()).select_from(Contact)) == contacts_before
    assert (
        session.get(Contact, (admin.org_id, contact["id"])).organization_contact_id
        == (company["id"])
    )
    # The welcome waits for the worker, as for a SCIM create.
    assert session.scalar(
        select(func.count())
        .select_from(CredentialSchedule)
        .where(CredentialSchedule.user_id == user["id"], CredentialSchedule.reason == "welcome")
    )
    assert _total_users(scim) == before_total + 1
    lic = licenses_by_name(admin)["Engineer"]
    assert lic["used"] == 1 and lic["seats_left"] == 1
    (event,) = events(admin, action="user.create", resource_id=user["id"])
    assert event["actor_type"] == "admin"
    assert event["explanation"]["access"] == {
        "contact_id": contact["id"],
        "username_from": "format",
        "override": False,
    }
    assert ok(admin.get(f"/api/v1/contacts/{contact['id']}"))["user"]["id"] == user["id"]


def test_no_seat_warns_then_override_creates_with_the_shortage(scim, admin, session):
    """No seat left is a 409 with the warning and nothing written; override: true creates
    the account waiting for a seat (not billed), and the event keeps the override."""
    make_license(admin, "Planner", 1, price_cents=1000)
    ok(admin.put("/api/v1/settings", {"default_license": "Planner"}))
    person(scim, "first@example.com")  # takes the one seat
    contact = _contact(admin, "Grace Hopper", email="grace@example.com")
    users_before = session.scalar(select(func.count()).select_from(User))

    refused = _access(admin, contact["id"])
    assert refused.status_code == 409
    body = refused.get_json()
    assert [w["code"] for w in body["warnings"]] == ["no_seat"]
    assert "Planner" in body["warnings"][0]["message"] and body["errors"] == []
    assert "override" in body["detail"]
    assert session.scalar(select(func.count()).select_from(User)) == users_before
    (failure,) = events(admin, action="contact.access", outcome="failure")
    assert failure["status"] == 409

    user = ok(_access(admin, contact["id"], {"override": True}), 201)
    assert user["license"] is None
    assert user["licenseShortage"] == {"value": "Planner"}
    lic = licenses_by_name(admin)["Planner"]
    assert lic["used"] == 1 and lic["shortage"] == 1  # billing unchanged: no seat taken
    (event,) = events(admin, action="user.create", resource_id=user["id"])
    assert event["explanation"]["access"]["override"] is True
    assert [w["code"] for w in event["explanation"]["access"]["warnings"]] == ["no_seat"]


def test_email_of_another_contact_warns(admin):
    """Two contacts with one e-mail: a warning naming the other, overridable."""
    _contact(admin, "Barbara Liskov", email="BL@example.com")
    twin = _contact(admin, "Barbara L.", email="bl@example.com")
    body = _access(admin, twin["id"]).get_json()
    assert [w["code"] for w in body["warnings"]] == ["email_in_use"]
    assert "Barbara Liskov" in body["warnings"][0]["message"]
    ok(_access(admin, twin["id"], {"override": True}), 201)


def test_errors_are_not_overridable(scim, admin, session):
    """An organization contact, a contact with an account (named, to open), a taken
    username: 409 errors even with override; a free username given instead works."""
    company = ok(admin.post("/api/v1/contacts", {"kind": "organization", "name": "Globex"}), 201)
    body = _access(admin, company["id"], {"override": True}).get_json()
    assert [e["code"] for e in body["errors"]] == ["organization_contact"]

    existing = person(scim, "alan@example.com")
    contact_id = account(admin, existing["id"])["contactId"]
    body = _access(admin, contact_id, {"override": True}).get_json()
    assert body["errors"] == [
        {
            "code": "has_account",
            "message": "alan@example.com already has an account.",
            "user_id": existing["id"],
        }
    ]

    namesake = _contact(admin, "Alan T.", email="alan@example.com")
    body = _access(admin, namesake["id"], {"override": True}).get_json()
    assert "username_taken" in [e["code"] for e in body["errors"]]
    users_before = session.scalar(select(func.count()).select_from(User))
    assert _access(admin, namesake["id"], {"username": "alan@example.com"}).status_code == 409
    assert session.scalar(select(func.count()).select_from(User)) == users_before

    user = ok(_access(admin, namesake["id"], {"username": "aturing", "override": True}), 201)
    assert user["username"] == "aturing" and user["userName"] == "aturing"


def test_given_license_is_manual_and_rules_leave_it(admin):
    """A license the admin names is a manual assignment (seats counted, billed)."""
    make_license(admin, "Engineer", 5)
    make_license(admin, "Manager", 5, price_cents=9900)
    ok(admin.put("/api/v1/settings", {"default_license": "Engineer"}))
    contact = _contact(admin, "Edsger Dijkstra", email="ewd@example.com")
    user = ok(_access(admin, contact["id"], {"license": "manager"}), 201)
    assert user["license"] == {"value": "Manager", "source": "manual"}
    assert licenses_by_name(admin)["Manager"]["used"] == 1
    assert licenses_by_name(admin)["Engineer"]["used"] == 0


def test_no_username_without_email_or_format(admin):
    """A person with neither e-mail nor format needs a username; given one, it works."""
    contact = _contact(admin, "Nameless")
    body = _access(admin, contact["id"]).get_json()
    assert [e["code"] for e in body["errors"]] == ["no_username"]
    user = ok(_access(admin, contact["id"], {"username": "nameless"}), 201)
    assert user["username"] == "nameless"


def test_bad_input_is_400_or_404(admin, session):
    """Unknown fields, a non-boolean override, a bad username, an unknown license or
    contact: clear errors, nothing created."""
    contact = _contact(admin, "Ann", email="ann@example.com")
    cases = [
        ({"shoe": 1}, 400),
        ({"override": "yes"}, 400),
        ({"username": "has space"}, 400),
        ({"username": "x" * 300}, 400),
        ({"license": "Ghost"}, 400),
    ]
    for body, status in cases:
        resp = _access(admin, contact["id"], body)
        assert resp.status_code == status, (body, resp.get_json())
    assert admin.post("/api/v1/contacts/nope/access", {}).status_code == 404
    bad = admin.client.post(
        f"/api/v1/contacts/{contact['id']}/access",
        data=b"[1]",
        headers=admin.headers({"Content-Type": "application/json"}),
    )
    assert bad.status_code == 400
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_other_organization_contact_is_not_found(admin, other_scim):
    """A contact of another organization does not exist for this admin."""
    from scim_server.db import db

    with db.reader(admin.client.application)() as s, s.begin():
        from scim_server.services import contacts

        other = contacts.create_contact(s, other_scim.org_id, "person", "Eve", email="e@x.example")
        other_id = other.id
    assert _access(admin, other_id, {"override": True}).status_code == 404


def test_preview_matches_what_enable_does(admin, session):
    """The console's preview is the plan enable_access checks: same username and license."""
    make_license(admin, "Engineer", None)
    ok(admin.put("/api/v1/settings", {"default_license": "Engineer"}))
    contact = _contact(admin, "Ada", email="ada@example.com")
    plan = access.preview(session, admin.org_id, contact["id"])
    assert (plan.username, plan.license, plan.license_from, plan.warnings, plan.errors) == (
        "ada@example.com",
        "Engineer",
        "rules",
        (),
        (),
    )
    user = ok(_access(admin, contact["id"]), 201)
    assert user["username"] == plan.username
