"""The rules at work through SCIM: creates, group moves, seat exhaustion, manual choices, preview."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from scim_server.models import AuditEvent, User, UserRole
from tests.admin.rules import RULES, activate, catalogue
from tests.support import USER_SCHEMA, Scim
from tests.support.admin_api import (
    PRODUCT,
    account,
    apply_rules,
    events,
    licenses_by_name,
    ok,
    person,
)


def _join(scim: Scim, group_id: str, user_id: str) -> None:
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{group_id}",
        {"op": "add", "path": "members", "value": [{"value": user_id}]},
    )
    assert resp.status_code == 204, resp.get_json()


def _leave(scim: Scim, group_id: str, user_id: str) -> None:
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{group_id}", {"op": "remove", "path": f'members[value eq "{user_id}"]'}
    )
    assert resp.status_code == 204, resp.get_json()


def test_rules_drive_scim_creates(scim, admin):
    """A Sales joiner gets Planner from the sales rule, visible in SCIM and the admin API."""
    catalogue(admin)
    activate(admin)
    user = person(scim, "sam@example.com", department="Sales")
    assert user[PRODUCT]["license"] == {"value": "Planner", "source": "rule", "rule": "sales"}
    assert "roles" not in user[PRODUCT]
    other = person(scim, "olga@example.com", department="Operations")
    assert "license" not in other[PRODUCT]
    (create,) = events(admin, action="user.create", resource_id=user["id"])
    rules = create["explanation"]["rules"]
    assert [(r["rule"], r["matched"]) for r in rules] == [("engineering", False), ("sales", True)]


def test_group_membership_moves_license_and_roles(scim, admin, session):
    """Joining Engineering moves a Sales user to Engineer (+ role); leaving moves them back."""
    catalogue(admin)
    activate(admin)
    engineering = scim.create_group("Engineering")
    user = person(scim, "sam@example.com", department="Sales")
    _join(scim, engineering["id"], user["id"])
    view = account(admin, user["id"])
    assert view["license"] == {"value": "Engineer", "source": "rule", "rule": "engineering"}
    assert [(r["value"], r["kind"], r["sources"]) for r in view["roles"]] == [
        ("Engineer", "task", ["rule:engineering"])
    ]
    # The SCIM view of one user shows the same account as the admin API.
    scim_view = scim.get(f"/scim/v2/Users/{user['id']}").get_json()[PRODUCT]
    assert scim_view["license"] == view["license"]
    assert scim_view["roles"] == [{k: v for k, v in r.items() if k != "id"} for r in view["roles"]]
    listed = scim.get("/scim/v2/Users", query_string={"filter": 'userName eq "sam@example.com"'})
    assert listed.get_json()["Resources"][0][PRODUCT] == scim_view
    assert licenses_by_name(admin)["Engineer"]["used"] == 1
    assert licenses_by_name(admin)["Planner"]["used"] == 0
    _leave(scim, engineering["id"], user["id"])
    view = account(admin, user["id"])
    assert view["license"] == {"value": "Planner", "source": "rule", "rule": "sales"}
    assert view["roles"] == []
    moves = events(admin, action="user.mapping", resource_id=user["id"])
    assert [m["detail"] for m in moves] == ["membership of 'Engineering' changed"] * 2
    assert moves[0]["changes"]["license"]["name"] == "Engineer"


def test_seat_exhaustion_is_lenient_by_default(scim, admin, session):
    """With no seat left the user is still created, without a license, and the shortage shows."""
    catalogue(admin, planner_seats=1)
    activate(admin)
    first = person(scim, "one@example.com", department="Sales")
    second = person(scim, "two@example.com", department="Sales")
    assert first[PRODUCT]["license"]["value"] == "Planner"
    assert "license" not in second[PRODUCT]
    assert second[PRODUCT]["licenseShortage"] == {"value": "Planner"}
    fetched = scim.get(f"/scim/v2/Users/{second['id']}").get_json()
    assert fetched[PRODUCT]["licenseShortage"] == {"value": "Planner"}
    planner = licenses_by_name(admin)["Planner"]
    assert (planner["used"], planner["seats_left"], planner["shortage"]) == (1, 0, 1)
    assert account(admin, second["id"])["licenseShortage"] == {"value": "Planner"}
    (create,) = events(admin, action="user.create", resource_id=second["id"])
    assert create["explanation"]["changes"]["license_shortage"] == {
        "wanted": "Planner",
        "seat_limit": 1,
    }
    # A seat freed and the rules re-applied: the waiting user gets it.
    ok(admin.patch(f"/api/v1/licenses/{planner['id']}", {"seat_limit": 2}))
    assert apply_rules(admin)["state"] == "succeeded"
    assert account(admin, second["id"])["license"]["value"] == "Planner"
    assert licenses_by_name(admin)["Planner"]["shortage"] == 0


def test_seat_exhaustion_in_strict_mode_refuses_the_create(scim, admin, session):
    """Strict seats: the create that needs a full license fails with 409 and nothing is created."""
    catalogue(admin, planner_seats=1)
    activate(admin)
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    person(scim, "one@example.com", department="Sales")
    before = session.scalar(select(func.count()).select_from(User))
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "two@example.com",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"},
    }
    resp = scim.post("/scim/v2/Users", body)
    assert resp.status_code == 409
    assert "No seat left on license 'Planner'" in resp.get_json()["detail"]
    assert session.scalar(select(func.count()).select_from(User)) == before
    listed = scim.get("/scim/v2/Users", query_string={"filter": 'userName eq "two@example.com"'})
    assert listed.get_json()["totalResults"] == 0
    (failure,) = events(admin, action="user.create", outcome="failure")
    assert failure["status"] == 409 and failure["user_name"] == "two@example.com"
    assert licenses_by_name(admin)["Planner"]["shortage"] == 0


def test_manual_assignments_survive_reevaluation(scim, admin, session):
    """A manual license and manual role stay through group moves and apply; release restores rules."""
    catalogue(admin)
    activate(admin)
    engineering = scim.create_group("Engineering")
    user = person(scim, "sam@example.com", department="Sales")
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Engineer"}))
    ok(admin.post(f"/api/v1/users/{user['id']}/roles", {"role": "Portal"}))
    _join(scim, engineering["id"], user["id"])
    _leave(scim, engineering["id"], user["id"])
    assert apply_rules(admin)["state"] == "succeeded"
    scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Lead"}
    )
    view = account(admin, user["id"])
    assert view["license"] == {"value": "Engineer", "source": "manual"}
    assert [(r["value"], r["sources"]) for r in view["roles"]] == [("Portal", ["manual"])]
    released = ok(admin.delete(f"/api/v1/users/{user['id']}/license/manual"))
    assert released["license"] == {"value": "Planner", "source": "rule", "rule": "sales"}
    assert [(r["value"], r["sources"]) for r in released["roles"]] == [("Portal", ["manual"])]
    event = events(admin, action="user.license", resource_id=user["id"])[-1]
    assert event["detail"] == "manual license released to the rules"
    assert event["changes"]["license"] == {"before": "Engineer", "after": "Planner"}
    assert event["changes"]["license_source"] == {"before": "manual", "after": "rule"}
    assert [r["rule"] for r in event["explanation"]["rules"]] == ["engineering", "sales"]


def test_manual_no_license_is_kept_over_the_rules(scim, admin):
    """An admin's explicit "no license" is not undone by the rules."""
    catalogue(admin)
    activate(admin)
    user = person(scim, "sam@example.com", department="Sales")
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": None}))
    assert apply_rules(admin)["state"] == "succeeded"
    assert account(admin, user["id"])["license"] is None
    assert licenses_by_name(admin)["Planner"]["used"] == 0


def _state(session: Any) -> Any:
    users = session.execute(
        select(
            User.id, User.license_id, User.license_wanted_id, User.license_source, User.version
        ).order_by(User.id)
    ).all()
    roles = session.execute(
        select(UserRole.user_id, UserRole.role_id, UserRole.source).order_by(UserRole.user_id)
    ).all()
    return users, roles, session.scalar(select(func.count()).select_from(AuditEvent))


def test_preview_reports_and_changes_nothing(scim, admin, session):
    """Preview of a document or a stored version summarises the moves; the database is untouched."""
    catalogue(admin)
    engineering = scim.create_group("Engineering")
    ann = person(scim, "ann@example.com")
    person(scim, "sam@example.com", department="Sales")
    person(scim, "olga@example.com", department="Operations")
    _join(scim, engineering["id"], ann["id"])
    stored = ok(admin.post("/api/v1/rulesets", {"name": "main", "document": RULES}), 201)
    session.expire_all()
    before = _state(session)
    summary = ok(admin.post("/api/v1/rulesets/preview", RULES))
    assert summary["users"] == 3 and summary["would_change"] == 2
    assert summary["license_moves"] == {"- -> Engineer": 1, "- -> Planner": 1}
    assert summary["roles_added"] == {"Engineer": 1} and summary["roles_removed"] == {}
    assert {e["userName"] for e in summary["examples"]} == {"ann@example.com", "sam@example.com"}
    example = next(e for e in summary["examples"] if e["userName"] == "ann@example.com")
    assert example["license"] == {"before": None, "after": "Engineer"}
    assert example["roles"] == {"added": ["Engineer"], "removed": []}
    assert ok(admin.post(f"/api/v1/rulesets/{stored['id']}/preview", None)) == summary
    assert (
        ok(admin.post("/api/v1/rulesets/preview", {"format": "yaml", "text": "rules: []\n"}))[
            "would_change"
        ]
        == 0
    )
    session.expire_all()
    assert _state(session) == before
    bad = admin.post("/api/v1/rulesets/preview", {"rules": [{"name": "x"}]})
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_rule_set"
    assert admin.post("/api/v1/rulesets/nope/preview", None).status_code == 404


def test_preview_counts_the_settings_defaults(scim, admin):
    """A document without defaults previews with the settings' defaults, as activation runs it."""
    catalogue(admin)
    ok(admin.put("/api/v1/settings", {"default_license": "Planner"}))
    activate(admin)
    olga = person(scim, "olga@example.com", department="Operations")
    assert account(admin, olga["id"])["license"] == {
        "value": "Planner",
        "source": "rule",
        "rule": "defaults",
    }
    summary = ok(admin.post("/api/v1/rulesets/preview", RULES))
    assert summary["would_change"] == 0 and summary["license_moves"] == {}


CONTRACTORS = {
    "mode": "first-match",
    "rules": [
        {
            "name": "contractors",
            "when": {"attribute": "userType", "equals": "Contractor"},
            "then": {
                "license": "Viewer",
                "contact": {"title": "External contractor", "department": "External"},
            },
        }
    ],
}


def _contact_claims(event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    explanation = event.get("explanation") or {}
    ruled = {k: v for k, v in (explanation.get("changes") or {}).items() if k.startswith("contact")}
    return explanation.get("contact_changes") or {}, ruled


def test_the_log_records_only_the_contact_changes_that_happen(scim, admin):
    """The README's contractors rule sets the contact's title and department; the IdP sends
    title Welder. The contact holds the rules' values, written once: the create logs them as
    the rules' changes (not Welder, then the rules' value over it), and an unrelated PATCH
    (displayName) or a PUT logs no contact change at all (each logged title "External
    contractor" -> "Welder" and back, department "External" -> None and back) and leaves
    the contact untouched."""
    ok(admin.post("/api/v1/licenses", {"name": "Viewer", "seat_limit": None}), 201)
    activate(admin, CONTRACTORS)
    user = person(scim, "cat@example.com", userType="Contractor", title="Welder")
    contact_id = user[PRODUCT]["contactId"]
    (create,) = events(admin, action="user.create", resource_id=user["id"])
    scim_set, ruled = _contact_claims(create)
    assert "title" not in scim_set and "department" not in scim_set, scim_set
    assert scim_set["email"] == {"before": None, "after": "cat@example.com"}
    assert ruled == {
        "contact.title": {"before": None, "after": "External contractor"},
        "contact.department": {"before": None, "after": "External"},
    }
    before = ok(admin.get(f"/api/v1/contacts/{contact_id}"))
    assert (before["title"], before["department"]) == ("External contractor", "External")

    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "Cat"}
    )
    assert resp.status_code == 200, resp.get_json()
    body = {**resp.get_json(), "title": "Welder, senior"}
    resp = scim.put(f"/scim/v2/Users/{user['id']}", body)
    assert resp.status_code == 200, resp.get_json()

    for action in ("user.patch", "user.replace"):
        (event,) = events(admin, action=action, resource_id=user["id"])
        assert _contact_claims(event) == ({}, {}), (action, event.get("explanation"))
    after = ok(admin.get(f"/api/v1/contacts/{contact_id}"))
    assert after == before
