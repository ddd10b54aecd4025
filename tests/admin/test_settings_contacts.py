"""Admin API: identity settings and contacts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from scim_server.db import db
from scim_server.models import Contact, Organization
from scim_server.services.tokens import create_token
from tests.support import Scim
from tests.support.admin_api import account, events, make_license, make_role, ok, person


def test_settings_defaults_and_replace(admin, session):
    """GET shows the defaults; PUT replaces them, stores them and logs before/after."""
    assert ok(admin.get("/api/v1/settings")) == {
        "username_format": None,
        "match_keys": ["externalId", "email"],
        "strict_seats": False,
        "default_license": None,
        "default_roles": [],
        "default_groups": [],
        "default_groups_display": [],
        "sign_in_methods": None,
        "effective_sign_in_methods": "password_allowed",
        "credentials_delivery": "temporary_password",
        "must_change_on_first_login": True,
        "refuse_common_passwords": True,
        "require_mfa": False,
        "temporary_password_days": 7,
        "activation_link_days": 7,
        "password_min_length": 12,
        "password_max_length": 128,
        "password_history": 5,
        "lockout_threshold": 10,
        "lockout_window_minutes": 15,
        "lockout_minutes": 15,
        "lockout_max_minutes": 1440,
    }
    body = ok(admin.put("/api/v1/settings", {"strict_seats": True, "match_keys": ["email"]}))
    assert body["strict_seats"] is True and body["match_keys"] == ["email"]
    assert ok(admin.get("/api/v1/settings")) == {
        **body,
        "effective_sign_in_methods": "password_allowed",
    }
    assert session.get(Organization, admin.org_id).settings["strict_seats"] is True
    (event,) = events(admin, action="settings.update")
    assert event["actor_type"] == "admin" and event["actor_name"] == "compliance"
    assert event["changes"] == {
        "strict_seats": {"before": False, "after": True},
        "match_keys": {"before": ["externalId", "email"], "after": ["email"]},
    }


def test_settings_bad_input_is_400_and_changes_nothing(admin, session):
    """Unknown keys, wrong types, unknown defaults and malformed JSON are clear 400s."""
    cases = [
        ({"strict": True}, "Unknown settings: strict"),
        ({"strict_seats": "yes"}, "strict_seats must be true or false"),
        ({"match_keys": ["phone"]}, "match_keys"),
        ({"default_license": "Ghost"}, "unknown license 'Ghost'"),
        ({"default_roles": ["Nobody"]}, "unknown role(s) 'Nobody'"),
    ]
    for body, message in cases:
        resp = admin.put("/api/v1/settings", body)
        assert resp.status_code == 400, body
        assert message in resp.get_json()["detail"], resp.get_json()
    bad_json = admin.client.put(
        "/api/v1/settings",
        data=b'{"strict_seats": true, "strict_seats": false}',
        headers=admin.headers({"Content-Type": "application/json"}),
    )
    assert bad_json.status_code == 400 and "Duplicate key" in bad_json.get_json()["detail"]
    assert admin.put("/api/v1/settings", [1, 2]).status_code == 400
    assert session.get(Organization, admin.org_id).settings in ({}, None)
    failures = events(admin, action="settings.update", outcome="failure")
    assert len(failures) == len(cases) + 2 and failures[0]["status"] == 400


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{bogus}", "username_format has unknown placeholder {bogus}"),
        ("{given", "username_format is malformed"),
        ("no placeholder", "username_format has no placeholder"),
        ("{email}" * 60, "username_format is longer than 200 characters"),
        ("{given!r}", "username_format placeholder {given} takes no format spec"),
    ],
)
def test_settings_refuse_a_malformed_username_format(admin, session, template, message):
    """PUT /api/v1/settings checks username_format as a create would use it
    (``parse_template``): a broken one is a 400 saying why, and nothing is stored (it used to
    be stored, and every later create fell back to the IdP's userName, unseen)."""
    before = ok(admin.get("/api/v1/settings"))
    resp = admin.put("/api/v1/settings", {"username_format": template})
    assert resp.status_code == 400, (resp.status_code, resp.get_data(as_text=True))
    assert message in resp.get_json()["detail"]
    assert ok(admin.get("/api/v1/settings")) == before
    assert session.get(Organization, admin.org_id).settings in ({}, None)


def test_settings_username_format_good_or_blank(admin):
    """A valid format is stored as given; a blank one means none (the IdP's userName)."""
    body = ok(admin.put("/api/v1/settings", {"username_format": "{given}.{family}"}))
    assert body["username_format"] == "{given}.{family}"
    assert ok(admin.put("/api/v1/settings", {"username_format": "  "}))["username_format"] is None


def test_settings_default_roles_are_trimmed_and_fold_deduplicated(admin):
    """["Planner", "planner", " Planner "] name one role: stored once, in the first spelling
    (as default_groups drops a repeated id), not refused."""
    make_role(admin, "Planner")
    make_role(admin, "Reader", "profile")
    body = ok(
        admin.put(
            "/api/v1/settings",
            {"default_roles": ["Planner", "planner", " Planner ", "READER", ""]},
        )
    )
    assert body["default_roles"] == ["Planner", "READER"]
    assert ok(admin.get("/api/v1/settings"))["default_roles"] == ["Planner", "READER"]


def test_settings_default_license_must_exist(admin):
    """A default license that exists is accepted."""
    make_license(admin, "Planner", 5)
    body = ok(admin.put("/api/v1/settings", {"default_license": "Planner"}))
    assert body["default_license"] == "Planner"
    body = ok(admin.put("/api/v1/settings", {"default_license": " Planner "}))
    assert body["default_license"] == "Planner"  # license names are trimmed


def test_contacts_create_list_get_patch(admin, session):
    """Persons and organizations: created, found by name prefix or e-mail, linked, updated."""
    company = ok(admin.post("/api/v1/contacts", {"kind": "organization", "name": "Initech"}), 201)
    supplier = ok(
        admin.post(
            "/api/v1/contacts",
            {
                "kind": "person",
                "name": "Peter Gibbons",
                "email": "Peter@Initech.example",
                "organization_contact_id": company["id"],
            },
        ),
        201,
    )
    assert supplier["organization_contact_id"] == company["id"]
    listed = ok(admin.get("/api/v1/contacts", query_string={"kind": "person"}))
    assert listed["total"] == 1 and listed["contacts"][0]["id"] == supplier["id"]
    by_mail = ok(admin.get("/api/v1/contacts", query_string={"q": "peter@initech.example"}))
    assert [c["id"] for c in by_mail["contacts"]] == [supplier["id"]]
    by_prefix = ok(admin.get("/api/v1/contacts", query_string={"q": "ini"}))
    assert [c["id"] for c in by_prefix["contacts"]] == [company["id"]]
    detail = ok(admin.get(f"/api/v1/contacts/{supplier['id']}"))
    assert detail["organization"] == {"id": company["id"], "name": "Initech"}
    assert detail["user"] is None
    patched = ok(
        admin.patch(f"/api/v1/contacts/{supplier['id']}", {"title": "Engineer", "phone": None})
    )
    assert patched["title"] == "Engineer"
    assert session.get(Contact, (admin.org_id, supplier["id"])).title == "Engineer"
    (event,) = events(admin, action="contact.update")
    assert event["resource_id"] == supplier["id"]
    assert event["changes"] == {"title": {"before": None, "after": "Engineer"}}


def test_contact_shows_its_user_account(scim, admin):
    """A SCIM user's person contact names the account that belongs to it."""
    user = person(
        scim, "bjensen@example.com", name={"givenName": "Barbara", "familyName": "Jensen"}
    )
    contact_id = account(admin, user["id"])["contactId"]
    detail = ok(admin.get(f"/api/v1/contacts/{contact_id}"))
    assert detail["kind"] == "person" and detail["email"] == "bjensen@example.com"
    assert detail["user"]["id"] == user["id"]
    assert detail["user"]["userName"] == "bjensen@example.com"


def test_contact_bad_input_is_400_or_404(admin, session):
    """Unknown kind or field, empty name, NUL, a person as company, unknown id: clear errors."""
    person_contact = ok(admin.post("/api/v1/contacts", {"kind": "person", "name": "Ann"}), 201)
    cases = [
        ({"kind": "robot", "name": "R2"}, 400),
        ({"kind": "person"}, 400),
        ({"kind": "person", "name": ""}, 400),
        ({"kind": "person", "name": "X", "shoe_size": "9"}, 400),
        ({"kind": "person", "name": "Nul\u0000l"}, 400),
        ({"kind": "person", "name": "Y", "organization_contact_id": person_contact["id"]}, 400),
        ({"kind": "person", "name": "Z", "organization_contact_id": "nope"}, 404),
        (
            {"kind": "organization", "name": "Q", "organization_contact_id": person_contact["id"]},
            400,
        ),
    ]
    for body, status in cases:
        resp = admin.post("/api/v1/contacts", body)
        assert resp.status_code == status, (body, resp.get_json())
        assert resp.get_json()["error"] and resp.get_json()["detail"]
    assert session.scalar(select(func.count()).select_from(Contact)) == 1
    assert (
        admin.patch(f"/api/v1/contacts/{person_contact['id']}", {"name": None}).status_code == 400
    )
    assert (
        admin.patch(
            f"/api/v1/contacts/{person_contact['id']}", {"kind": "organization"}
        ).status_code
        == 400
    )
    assert admin.patch("/api/v1/contacts/nope", {"title": "x"}).status_code == 404
    assert admin.get("/api/v1/contacts/nope").status_code == 404
    assert admin.get("/api/v1/contacts", query_string={"limit": 0}).status_code == 400
    assert session.get(Contact, (admin.org_id, person_contact["id"])).name == "Ann"


def test_contacts_need_an_admin_token_of_their_organization(app, scim, admin, other_scim):
    """A SCIM token is not an admin token; another organization's contacts are 404."""
    assert scim.get("/api/v1/contacts").status_code == 401
    assert admin.client.get("/api/v1/settings").status_code == 401
    mine = ok(admin.post("/api/v1/contacts", {"kind": "person", "name": "Mine"}), 201)
    with db.reader(app)() as s:
        _token, secret = create_token(s, other_scim.org_id, "other", kind="admin")
    other = Scim(admin.client, secret, other_scim.org_id)
    assert other.get(f"/api/v1/contacts/{mine['id']}").status_code == 404
    assert other.patch(f"/api/v1/contacts/{mine['id']}", {"title": "x"}).status_code == 404
    assert ok(other.get("/api/v1/contacts"))["total"] == 0


def test_settings_store_the_default_license_as_the_license_is_named(admin):
    """``e3`` finds license ``E3`` (names fold); it is stored and shown as ``E3``, as the
    default roles are (it was kept as typed)."""
    make_license(admin, "E3")
    assert ok(admin.put("/api/v1/settings", {"default_license": "e3"}))["default_license"] == "E3"
    assert ok(admin.get("/api/v1/settings"))["default_license"] == "E3"
