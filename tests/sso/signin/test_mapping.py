"""A known user signing in goes through the mapping rules with what SCIM gave it plus the sign-in.

The license and roles a rule gives for a SAML group claim (or an OIDC groups
claim, see test_oidc_login.py) reach an existing account before the license
check; a refusal changes nothing; test mode only previews.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.models import License, Role, User, UserRole
from scim_server.services.lifecycle import DEACTIVATED
from tests.sso.saml_idp import WS, FakeIdp, valid_response
from tests.support import Scim
from tests.support.admin_api import make_license, make_role, ok, person
from tests.support.sso import (
    SamlConnection,
    assert_refused,
    events,
    make_person,
    read,
    sign_ins,
    start_test_login,
)

GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
ENGINEERING = {
    "mode": "first-match",
    "rules": [
        {
            "name": "engineering",
            "when": {"member_of": "Engineering"},
            "then": {"license": "Engineer", "roles": ["Builder"]},
        }
    ],
}


def activate(admin: Scim, document: dict[str, Any]) -> None:
    stored = ok(admin.post("/api/v1/rulesets", {"name": "main", "document": document}), 201)
    ok(admin.post(f"/api/v1/rulesets/{stored['id']}/activate", {}), 200)


def engineering_rules(admin: Scim, seats: int | None = None) -> None:
    """License Engineer (``seats``) and role Builder for members of Engineering."""
    make_license(admin, "Engineer", seats)
    make_role(admin, "Builder")
    activate(admin, ENGINEERING)


def attributes(groups: list[str] | None = None, **extra: list[str]) -> dict[str, list[str]]:
    """Alice's assertion attributes, with a groups claim when ``groups`` is given."""
    attrs = {WS + "emailaddress": ["alice@example.com"], **extra}
    if groups is not None:
        attrs[GROUPS] = groups
    return attrs


def saml_login(conn: SamlConnection, idp: FakeIdp, attrs: dict[str, list[str]]) -> Any:
    request_id = conn.start()
    return conn.post(valid_response(conn.assertion(request_id, attributes=attrs), idp))


def state(app: Flask, org_id: str, user_id: str) -> dict[str, Any]:
    """What a sign-in may change on the account, by names."""
    with read(app) as s:
        user = s.get(User, (org_id, user_id))
        lic = s.get(License, (org_id, user.license_id)) if user.license_id else None
        wanted = (
            s.get(License, (org_id, user.license_wanted_id)) if user.license_wanted_id else None
        )
        held = s.execute(
            select(Role.name, UserRole.source, UserRole.rule)
            .join(Role, (Role.org_id == UserRole.org_id) & (Role.id == UserRole.role_id))
            .where(UserRole.org_id == org_id, UserRole.user_id == user_id)
        ).all()
        return {
            "license": lic.name if lic else None,
            "license_source": user.license_source,
            "license_rule": user.license_rule,
            "license_wanted": wanted.name if wanted else None,
            "roles": sorted(tuple(r) for r in held),
            "version": user.version,
            "status": user.status,
            "last_login_at": user.last_login_at,
        }


def mapping_events(app: Flask, org_id: str) -> list[Any]:
    return events(app, org_id, "user.mapping")


def test_group_claim_gives_a_known_user_the_license(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Known user, no license; rule on the SAML groups claim: let in with it, audited with why."""
    engineering_rules(admin)
    user_id = person(scim, "alice@example.com")["id"]
    before = state(app, scim.org_id, user_id)
    assert before["license"] is None and before["roles"] == []

    resp = saml_login(saml_connection, saml_idp, attributes(["Engineering"]))

    assert resp.status_code == 303 and resp.headers["Location"] == "/after"
    after = state(app, scim.org_id, user_id)
    assert (after["license"], after["license_source"], after["license_rule"]) == (
        "Engineer",
        "rule",
        "engineering",
    )
    assert after["roles"] == [("Builder", "rule", "engineering")]
    assert after["version"] > before["version"] and after["last_login_at"] is not None
    (mapped,) = mapping_events(app, scim.org_id)
    assert (mapped.resource_id, mapped.actor_id) == (user_id, saml_connection.id)
    assert "sign-in" in mapped.detail and "saml" in mapped.detail
    assert mapped.changes["license"]["name"] == "Engineer"
    assert mapped.changes["license"]["rule"] == "engineering"
    assert mapped.changes["roles.rule"]["added"]
    rule = next(r for r in mapped.explanation["rules"] if r["rule"] == "engineering")
    assert rule["matched"] and rule["effects"]["license"] == "Engineer"
    success = events(app, scim.org_id)[-1]
    assert success.action == "signin.success" and success.seq > mapped.seq
    explained = success.explanation["mapping"]
    assert explained["applied"] is True
    assert [r["rule"] for r in explained["matched"]] == ["engineering"]
    record = sign_ins(app, scim.org_id)[-1]
    assert record.outcome == "success" and record.user_id == user_id
    assert record.data["mapping"]["changes"]["license"]["name"] == "Engineer"


def test_sign_in_value_wins_over_scim_for_a_single_valued_attribute(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """SCIM says Sales, the assertion says Engineering: the rule on department sees Engineering."""
    make_license(admin, "Engineer")
    rule = {"attribute": "department", "equals": "Engineering"}
    activate(
        admin,
        {"rules": [{"name": "by-department", "when": rule, "then": {"license": "Engineer"}}]},
    )
    user_id = person(scim, "alice@example.com", department="Sales")["id"]
    assert state(app, scim.org_id, user_id)["license"] is None

    resp = saml_login(saml_connection, saml_idp, attributes(department=["Engineering"]))

    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert state(app, scim.org_id, user_id)["license_rule"] == "by-department"


def test_scim_groups_still_count_when_the_sign_in_has_none(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """License from a SCIM group; an assertion without a groups claim keeps it; nothing logged."""
    engineering_rules(admin)
    user_id = person(scim, "alice@example.com")["id"]
    scim.create_group("Engineering", members=[user_id])
    before = state(app, scim.org_id, user_id)
    assert before["license"] == "Engineer" and before["license_source"] == "rule"
    mapped_before = len(mapping_events(app, scim.org_id))

    resp = saml_login(saml_connection, saml_idp, attributes())

    assert resp.status_code == 303, resp.get_data(as_text=True)
    after = state(app, scim.org_id, user_id)
    assert {k: v for k, v in after.items() if k not in ("status", "last_login_at", "version")} == {
        k: v for k, v in before.items() if k not in ("status", "last_login_at", "version")
    }
    # Only PROVISIONED -> ACTIVE moves the version: the rules wrote nothing.
    assert after["version"] == before["version"] + 1
    assert len(mapping_events(app, scim.org_id)) == mapped_before
    assert "mapping" not in events(app, scim.org_id)[-1].explanation
    assert sign_ins(app, scim.org_id)[-1].data is None


def test_manual_license_and_roles_are_untouched(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """A manual license stays over a rule that gives another; manual roles stay too."""
    user_id = make_person(app, scim)  # manual Engineer
    make_license(admin, "Premium")
    make_role(admin, "Builder")
    make_role(admin, "Reviewer")
    ok(admin.post(f"/api/v1/users/{user_id}/roles", {"role": "Reviewer"}))
    activate(
        admin,
        {
            "rules": [
                {
                    "name": "engineering",
                    "when": {"member_of": "Engineering"},
                    "then": {"license": "Premium", "roles": ["Builder"]},
                }
            ]
        },
    )

    resp = saml_login(saml_connection, saml_idp, attributes(["Engineering"]))

    assert resp.status_code == 303, resp.get_data(as_text=True)
    after = state(app, scim.org_id, user_id)
    assert (after["license"], after["license_source"]) == ("Engineer", "manual")
    assert after["roles"] == [("Builder", "rule", "engineering"), ("Reviewer", "manual", None)]
    (mapped,) = mapping_events(app, scim.org_id)
    assert "license" not in mapped.changes and "roles.rule" in mapped.changes


def test_seat_exhaustion_refuses_and_changes_nothing(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Lenient seats, none left: missing_license, and no shortage, role or version is kept."""
    engineering_rules(admin, seats=1)
    bob = person(scim, "bob@example.com")["id"]
    scim.create_group("Engineering", members=[bob])  # takes the one seat
    user_id = person(scim, "alice@example.com")["id"]
    before = state(app, scim.org_id, user_id)
    mapped_before = len(mapping_events(app, scim.org_id))

    resp = saml_login(saml_connection, saml_idp, attributes(["Engineering"]))

    record = assert_refused(app, scim.org_id, resp, "missing_license")
    assert "No license" in resp.get_data(as_text=True)
    assert "no seat left in 'Engineer'" in record.detail
    assert state(app, scim.org_id, user_id) == before
    assert len(mapping_events(app, scim.org_id)) == mapped_before
    explained = events(app, scim.org_id)[-1].explanation["mapping"]
    assert explained["applied"] is False
    assert explained["changes"]["license_shortage"]["wanted"] == "Engineer"
    assert record.data["mapping"]["applied"] is False


def test_seat_exhaustion_in_strict_mode_refuses_the_same_way(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Strict seats, none left, no license held: the same missing_license refusal; nothing
    changes, and the record says what the rules wanted (it said nothing in strict mode)."""
    engineering_rules(admin, seats=1)
    bob = person(scim, "bob@example.com")["id"]
    scim.create_group("Engineering", members=[bob])
    user_id = person(scim, "alice@example.com")["id"]
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    before = state(app, scim.org_id, user_id)
    mapped_before = len(mapping_events(app, scim.org_id))

    resp = saml_login(saml_connection, saml_idp, attributes(["Engineering"]))

    record = assert_refused(app, scim.org_id, resp, "missing_license")
    assert "No license" in resp.get_data(as_text=True)
    assert "no seat left in 'Engineer'" in record.detail
    assert state(app, scim.org_id, user_id) == before
    assert len(mapping_events(app, scim.org_id)) == mapped_before
    explained = events(app, scim.org_id)[-1].explanation["mapping"]
    assert explained["applied"] is False
    assert explained["changes"]["license_shortage"]["wanted"] == "Engineer"
    assert record.data["mapping"]["applied"] is False


def _holding_viewer(admin: Scim, scim: Scim, rules: dict[str, Any] = ENGINEERING) -> str:
    """Alice holds Viewer (by the rules' defaults); Engineer's one seat is bob's; strict seats."""
    make_license(admin, "Engineer", 1)
    make_license(admin, "Viewer", None)
    make_role(admin, "Builder")
    activate(admin, {**rules, "defaults": {"license": "Viewer"}})
    bob = person(scim, "bob@example.com")["id"]
    scim.create_group("Engineering", members=[bob])
    alice = person(scim, "alice@example.com")["id"]
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    return alice


def test_strict_seats_never_lock_out_a_holder_whose_sign_in_wants_a_full_license(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Alice holds Viewer; her sign-in's groups claim makes the rules want Engineer, which
    is full. She signs in with Viewer, waits for Engineer, gets the role at once (as in
    lenient mode). She was refused with "no license" while holding one: strict mode refuses
    an IdP's write that asks a seat, never a person's sign-in."""
    alice = _holding_viewer(admin, scim)
    assert state(app, scim.org_id, alice)["license"] == "Viewer"

    resp = saml_login(saml_connection, saml_idp, attributes(["Engineering"]))

    assert resp.status_code == 303, resp.get_data(as_text=True)
    after = state(app, scim.org_id, alice)
    assert (after["license"], after["license_wanted"]) == ("Viewer", "Engineer")
    assert after["roles"] == [("Builder", "rule", "engineering")]
    (mapped,) = mapping_events(app, scim.org_id)[-1:]
    assert mapped.resource_id == alice and mapped.user_name == "alice@example.com"


def test_strict_seats_never_lock_out_a_holder_under_rules_not_yet_applied(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Alice holds Viewer; rules activated and not applied want the full Engineer for
    everyone. Her SCIM PATCH goes through (she waits), and so does her sign-in, which
    carries nothing new (it was refused)."""
    everyone = {"name": "all", "when": {"always": True}, "then": {"license": "Engineer"}}
    alice = _holding_viewer(admin, scim)
    activate(admin, {"mode": "first-match", "rules": [everyone]})
    patch = {"op": "replace", "path": "title", "value": "Lead"}
    assert scim.patch_ops(f"/scim/v2/Users/{alice}", patch).status_code == 200

    resp = saml_login(saml_connection, saml_idp, attributes())

    assert resp.status_code == 303, resp.get_data(as_text=True)
    after = state(app, scim.org_id, alice)
    assert (after["license"], after["license_wanted"]) == ("Viewer", "Engineer")


def test_inactive_account_is_refused_for_its_status_and_gets_nothing(
    app: Flask, admin: Scim, scim: Scim, saml_connection: SamlConnection, saml_idp: FakeIdp
) -> None:
    """Deactivated: inactive_account (not missing_license), and the rule's license is not given."""
    engineering_rules(admin)
    user_id = make_person(app, scim, licensed=False, status=DEACTIVATED)
    before = state(app, scim.org_id, user_id)

    resp = saml_login(saml_connection, saml_idp, attributes(["Engineering"]))

    assert_refused(app, scim.org_id, resp, "inactive_account")
    assert state(app, scim.org_id, user_id) == before
    assert mapping_events(app, scim.org_id) == []


def test_test_mode_previews_the_rules_and_writes_nothing(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """Test mode: 'would sign in' with the license the rules would give; the account is unchanged."""
    engineering_rules(admin)
    user_id = person(scim, "alice@example.com")["id"]
    before = state(app, scim.org_id, user_id)
    request_id = start_test_login(admin, client, saml_connection.id)
    seq_before = events(app, scim.org_id, "")[-1].seq
    assertion = saml_connection.assertion(request_id, attributes=attributes(["Engineering"]))

    resp = saml_connection.post(valid_response(assertion, saml_idp))

    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "would sign in" in body and "mapping_changes" in body
    assert state(app, scim.org_id, user_id) == before
    assert [e.action for e in events(app, scim.org_id, "") if e.seq > seq_before] == []
    record = sign_ins(app, scim.org_id)[-1]
    assert record.outcome == "test"
    decision = record.data["decision"]
    assert decision["outcome"] == "would sign in" and decision["user_id"] == user_id
    assert decision["mapping_changes"]["changes"]["license"]["name"] == "Engineer"
    assert record.data["mapping"]["license"] == "Engineer"
    with client.session_transaction() as sess:
        assert "sso" not in sess


def test_test_mode_previews_a_seat_refusal(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """Test mode, no seat left: refused with missing_license, the shortage shown, none kept."""
    engineering_rules(admin, seats=0)
    user_id = person(scim, "alice@example.com")["id"]
    before = state(app, scim.org_id, user_id)
    request_id = start_test_login(admin, client, saml_connection.id)
    assertion = saml_connection.assertion(request_id, attributes=attributes(["Engineering"]))

    resp = saml_connection.post(valid_response(assertion, saml_idp))

    assert resp.status_code == 200 and "missing_license" in resp.get_data(as_text=True)
    decision = sign_ins(app, scim.org_id)[-1].data["decision"]
    assert (decision["outcome"], decision["reason_code"]) == ("refused", "missing_license")
    assert decision["mapping_changes"]["changes"]["license_shortage"]["wanted"] == "Engineer"
    assert state(app, scim.org_id, user_id) == before


def test_test_mode_maps_a_known_user_with_its_scim_groups(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
) -> None:
    """Test mode, no groups claim: the mapping shown still sees the SCIM group; nothing to change."""
    engineering_rules(admin)
    user_id = person(scim, "alice@example.com")["id"]
    scim.create_group("Engineering", members=[user_id])
    request_id = start_test_login(admin, client, saml_connection.id)
    assertion = saml_connection.assertion(request_id, attributes=attributes())

    resp = saml_connection.post(valid_response(assertion, saml_idp))

    assert resp.status_code == 200 and "would sign in" in resp.get_data(as_text=True)
    data = sign_ins(app, scim.org_id)[-1].data
    assert data["decision"]["outcome"] == "would sign in"
    assert "mapping_changes" not in data["decision"]
    assert data["mapping"]["license"] == "Engineer"
