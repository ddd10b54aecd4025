"""Enable access (``services.access``): the plan sees the account the create makes, and the
account's later evaluations see what the create saw. Each test failed before its fix
(found by a probe of accounts made outside a SCIM POST)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scim_server.services import access
from sso.local.accounts import find_account
from tests.support import Scim
from tests.support.admin_api import account, apply_rules, make_license, ok, person

MAIL_RULES = [
    {
        "name": "mail",
        "when": {"attribute": "userName", "contains": "@"},
        "then": {"license": "Mail"},
    },
    {"name": "plain", "when": {"always": True}, "then": {"license": "Plain"}},
]


def _rules(admin: Scim, rules: list[dict[str, Any]]) -> None:
    document = {"mode": "first-match", "rules": rules}
    stored = ok(admin.post("/api/v1/rulesets", {"name": "main", "document": document}), 201)
    ok(admin.post(f"/api/v1/rulesets/{stored['id']}/activate", {}))


def _contact(admin: Scim, name: str, email: str, **fields: Any) -> dict[str, Any]:
    body = {"kind": "person", "name": name, "email": email, **fields}
    return ok(admin.post("/api/v1/contacts", body), 201)


def _access(admin: Scim, contact_id: str, body: dict[str, Any] | None = None) -> Any:
    return admin.post(f"/api/v1/contacts/{contact_id}/access", body or {})


def test_a_username_that_is_another_accounts_user_name_is_taken(
    scim: Scim, admin: Scim, session: Session
) -> None:
    """With a username format Bob signs in as Robert.Smith or by his userName ``bob`` (the
    password sign-in compares both): a new account given the username ``bob`` was made,
    and ``bob`` then named two accounts and signed neither in. Refused as taken now."""
    settings = {"username_format": "{given}.{family}", "sign_in_methods": "password_only"}
    ok(admin.put("/api/v1/settings", settings))
    bob = person(scim, "bob", name={"givenName": "Robert", "familyName": "Smith"})
    contact = _contact(admin, "Bob Other", "bob.other@example.com")
    resp = _access(admin, contact["id"], {"username": "bob", "override": True})
    assert resp.status_code == 409
    assert [e["code"] for e in resp.get_json()["errors"]] == ["username_taken"]
    found = find_account(session, "bob")
    assert found.user is not None and found.user.id == bob["id"]


def test_the_plan_evaluates_the_user_name_the_account_gets(
    scim: Scim, admin: Scim, session: Session
) -> None:
    """A format and a given username: the account's userName is the e-mail, which a rule
    gives Mail. The plan evaluated the username instead (Plain), so its seat checks missed
    that Mail has none: the account was made waiting, with no warning. Now the plan says
    Mail, warns, and with the override the account waits for Mail."""
    make_license(admin, "Mail", 0)
    make_license(admin, "Plain")
    _rules(admin, MAIL_RULES)
    ok(admin.put("/api/v1/settings", {"username_format": "{given}.{family}"}))
    contact = _contact(admin, "Ada Lovelace", "ada@example.com", given_name="Ada")
    plan = access.preview(session, admin.org_id, contact["id"], username="ada")
    assert (plan.user_name, plan.license) == ("ada@example.com", "Mail")
    resp = _access(admin, contact["id"], {"username": "ada"})
    assert resp.status_code == 409
    assert [w["code"] for w in resp.get_json()["warnings"]] == ["no_seat"]
    made = ok(_access(admin, contact["id"], {"username": "ada", "override": True}), 201)
    assert made["userName"] == "ada@example.com"
    assert account(admin, made["id"])["licenseShortage"] == {"value": "Mail"}


def test_strict_seats_refuse_by_the_plan_for_the_user_name_the_account_gets(
    scim: Scim, admin: Scim
) -> None:
    """Strict: the same refusal is the plan's (``errors``: ``no_seat``), not a bare 409."""
    make_license(admin, "Mail", 0)
    make_license(admin, "Plain")
    _rules(admin, MAIL_RULES)
    settings = {"username_format": "{given}.{family}", "strict_seats": True}
    ok(admin.put("/api/v1/settings", settings))
    contact = _contact(admin, "Ada Lovelace", "ada@example.com", given_name="Ada")
    resp = _access(admin, contact["id"], {"username": "ada", "override": True})
    assert resp.status_code == 409
    assert [e["code"] for e in resp.get_json()["errors"]] == ["no_seat"]


def test_what_the_company_gave_stays_at_the_next_apply(scim: Scim, admin: Scim) -> None:
    """A rule on ``organization`` gives Partner to the people of Initech: Enable access gave
    it (the contact's company), and the next ``rules apply``, nothing changed, took it
    away (the stored document had no organization). The document has it now, and the
    person stays in their company."""
    make_license(admin, "Partner")
    make_license(admin, "Plain")
    partner = {"attribute": "organization", "equals": "Initech"}
    _rules(
        admin,
        [
            {"name": "partner", "when": partner, "then": {"license": "Partner"}},
            {"name": "plain", "when": {"always": True}, "then": {"license": "Plain"}},
        ],
    )
    older = ok(admin.post("/api/v1/contacts", {"kind": "organization", "name": "Initech"}), 201)
    company = ok(admin.post("/api/v1/contacts", {"kind": "organization", "name": "Initech"}), 201)
    contact = _contact(admin, "P", "p@example.com", organization_contact_id=company["id"])
    made = ok(_access(admin, contact["id"]), 201)
    assert made["license"]["value"] == "Partner"
    job = apply_rules(admin)
    assert job["state"] == "succeeded"
    assert account(admin, made["id"])["license"]["value"] == "Partner"
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert ok(scim.get(f"/scim/v2/Users/{made['id']}"))[ent]["organization"] == "Initech"
    resp = scim.patch_ops(
        f"/scim/v2/Users/{made['id']}", {"op": "replace", "path": "title", "value": "Lead"}
    )
    assert resp.status_code == 200
    stored = ok(admin.get(f"/api/v1/contacts/{contact['id']}"))
    assert stored["organization_contact_id"] == company["id"] != older["id"]


def test_strict_seats_never_refuse_an_account_the_rules_create_deactivated(
    scim: Scim, admin: Scim
) -> None:
    """The rules create everyone DEACTIVATED with Field, which has no seat: a SCIM create
    goes through (waiting for a seat), Enable access was refused for the seat. Now it
    warns, as in lenient mode, and the account waits; so does an admin's chosen license."""
    make_license(admin, "Field", 0)
    rule = {"name": "f", "when": {"always": True}, "then": {"license": "Field"}}
    rule["then"]["status"] = "DEACTIVATED"
    _rules(admin, [rule])
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    assert account(admin, person(scim, "scim@example.com")["id"])["status"] == "DEACTIVATED"
    contact = _contact(admin, "Ada", "ada@example.com")
    resp = _access(admin, contact["id"])
    assert resp.status_code == 409
    assert [w["code"] for w in resp.get_json()["warnings"]] == ["no_seat"]
    made = ok(_access(admin, contact["id"], {"override": True}), 201)
    assert account(admin, made["id"])["status"] == "DEACTIVATED"
    chosen = _contact(admin, "Bo", "bo@example.com")
    body = {"license": "Field", "override": True}
    assert _access(admin, chosen["id"], body).status_code == 201
