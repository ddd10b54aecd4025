"""Admin API: licenses (seats, usage, shortage) and roles."""

from __future__ import annotations

from sqlalchemy import func, select

from scim_server.models import License, Role, User, UserRole
from tests.support.admin_api import events, licenses_by_name, make_license, make_role, ok, person


def test_license_create_list_update_delete(admin, session):
    """A license is created with seats and price, listed with usage, changed and deleted."""
    created = make_license(admin, "Engineer", 10, price_cents=4900, currency="usd")
    assert created == {
        "id": created["id"],
        "name": "Engineer",
        "seat_limit": 10,
        "price_cents": 4900,
        "currency": "USD",
        "used": 0,
        "seats_left": 10,
        "shortage": 0,
    }
    make_license(admin, "Viewer")  # unlimited
    listed = licenses_by_name(admin)
    assert listed["Viewer"]["seat_limit"] is None and listed["Viewer"]["seats_left"] is None
    patched = ok(admin.patch(f"/api/v1/licenses/{created['id']}", {"seat_limit": 12}))
    assert patched["seat_limit"] == 12 and patched["seats_left"] == 12
    renamed = ok(admin.patch(f"/api/v1/licenses/{created['id']}", {"name": "Engineering"}))
    assert renamed["name"] == "Engineering"
    assert admin.delete(f"/api/v1/licenses/{created['id']}").status_code == 204
    assert session.get(License, (admin.org_id, created["id"])) is None
    assert [e["action"] for e in events(admin) if e["action"].startswith("license.")] == [
        "license.create",
        "license.create",
        "license.update",
        "license.update",
        "license.delete",
    ]
    update = events(admin, action="license.update")[0]
    assert update["changes"] == {"seat_limit": {"before": 10, "after": 12}}
    assert update["actor_type"] == "admin"


def test_license_bad_input_is_clear_and_changes_nothing(admin, session):
    """Duplicates (any case), negative seats, wrong types and unknown fields are refused."""
    lic = make_license(admin, "Planner", 2)
    cases = [
        ({"name": "planner", "seat_limit": 1}, 409),
        ({"name": "X", "seat_limit": -1}, 400),
        ({"name": "X", "seat_limit": "5"}, 400),
        ({"name": "X", "seat_limit": True}, 400),
        ({"name": "X"}, 400),
        ({"name": "", "seat_limit": 1}, 400),
        ({"name": "X", "seat_limit": 1, "currency": "EURO"}, 400),
        ({"name": "X", "seat_limit": 1, "colour": "red"}, 400),
        # Control characters: one of them joins names in the settings' fingerprint.
        ({"name": "Plan\x1fner", "seat_limit": 1}, 400),
        ({"name": "Plan\nner", "seat_limit": 1}, 400),
    ]
    for body, status in cases:
        resp = admin.post("/api/v1/licenses", body)
        assert resp.status_code == status, (body, resp.get_json())
    assert admin.patch(f"/api/v1/licenses/{lic['id']}", {"price_cents": -5}).status_code == 400
    renamed = admin.patch(f"/api/v1/licenses/{lic['id']}", {"name": "A\x1fB"})
    assert renamed.status_code == 400
    assert "control characters" in renamed.get_json()["detail"]
    assert admin.patch("/api/v1/licenses/nope", {"seat_limit": 1}).status_code == 404
    assert admin.delete("/api/v1/licenses/nope").status_code == 404
    assert session.scalar(select(func.count()).select_from(License)) == 1
    assert licenses_by_name(admin)["Planner"]["seat_limit"] == 2
    failed = events(admin, outcome="failure")
    assert {e["action"] for e in failed} == {"license.create", "license.update", "license.delete"}


def test_license_name_differing_only_by_surrounding_spaces_is_a_duplicate(admin, session):
    """'Eng' exists; "Eng " or " eng" is the same license (409), not a second, billed one
    that reads the same in every list and invoice line. Names are stored trimmed, on create
    and on rename, and found by their trimmed name."""
    eng = make_license(admin, "Eng", 5)
    for name in ("Eng ", " eng", "\u00a0ENG "):
        resp = admin.post("/api/v1/licenses", {"name": name, "seat_limit": 5})
        assert resp.status_code == 409, (name, resp.status_code, resp.get_data(as_text=True))
    assert [lic["name"] for lic in ok(admin.get("/api/v1/licenses"))["licenses"]] == ["Eng"]
    ops = make_license(admin, "  Ops  ", 1)
    assert ops["name"] == "Ops"
    assert session.get(License, (admin.org_id, ops["id"])).name_key == "ops"
    clash = admin.patch(f"/api/v1/licenses/{ops['id']}", {"name": " Eng"})
    assert clash.status_code == 409, clash.get_data(as_text=True)
    renamed = ok(admin.patch(f"/api/v1/licenses/{ops['id']}", {"name": " Operations "}))
    assert renamed["name"] == "Operations"
    assert (
        ok(admin.put("/api/v1/settings", {"default_license": "Eng "}))["default_license"] == "Eng"
    )
    assert sorted(licenses_by_name(admin)) == ["Eng", "Operations"]
    assert eng["id"] == licenses_by_name(admin)["Eng"]["id"]


def test_license_held_by_a_user_cannot_be_deleted(scim, admin, session):
    """Deleting a license that users hold is refused with the reason."""
    lic = make_license(admin, "Engineer", 3)
    user = person(scim, "ann@example.com")
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Engineer"}))
    resp = admin.delete(f"/api/v1/licenses/{lic['id']}")
    assert resp.status_code == 400 and "held by users" in resp.get_json()["detail"]
    assert session.get(License, (admin.org_id, lic["id"])) is not None
    assert licenses_by_name(admin)["Engineer"]["used"] == 1


def test_default_license_cannot_be_renamed_or_deleted(admin, session):
    """A license the settings name as default is protected until the settings change."""
    lic = make_license(admin, "Planner", 3)
    ok(admin.put("/api/v1/settings", {"default_license": "Planner"}))
    resp = admin.patch(f"/api/v1/licenses/{lic['id']}", {"name": "Planner 2"})
    assert resp.status_code == 409 and "default license" in resp.get_json()["detail"]
    assert admin.delete(f"/api/v1/licenses/{lic['id']}").status_code == 409
    assert (
        ok(admin.patch(f"/api/v1/licenses/{lic['id']}", {"name": "PLANNER"}))["name"] == "PLANNER"
    )
    assert session.get(License, (admin.org_id, lic["id"])) is not None


def test_roles_create_list_delete(scim, admin, session):
    """Roles with a kind; deleting one takes it from its holders; the log has each step."""
    engineer = make_role(admin, "Engineer", "task")
    make_role(admin, "Portal user", "portal")
    listed = ok(admin.get("/api/v1/roles"))["roles"]
    assert [(r["name"], r["kind"]) for r in listed] == [
        ("Engineer", "task"),
        ("Portal user", "portal"),
    ]
    user = person(scim, "ann@example.com")
    ok(admin.post(f"/api/v1/users/{user['id']}/roles", {"role": "Engineer"}))
    assert admin.delete(f"/api/v1/roles/{engineer['id']}").status_code == 204
    assert session.get(Role, (admin.org_id, engineer["id"])) is None
    assert session.scalar(select(func.count()).select_from(UserRole)) == 0
    assert session.get(User, (admin.org_id, user["id"])) is not None
    assert [e["action"] for e in events(admin) if e["action"].startswith("role.")] == [
        "role.create",
        "role.create",
        "role.delete",
    ]


def test_role_bad_input(admin, session):
    """Unknown kind, duplicate name (any case), missing name and unknown id are refused."""
    make_role(admin, "Engineer")
    assert admin.post("/api/v1/roles", {"name": "X", "kind": "wizard"}).status_code == 400
    assert admin.post("/api/v1/roles", {"name": "ENGINEER", "kind": "task"}).status_code == 409
    assert admin.post("/api/v1/roles", {"kind": "task"}).status_code == 400
    for name in ("A\x1fB", "Eng\tineer", "Eng\x85"):
        resp = admin.post("/api/v1/roles", {"name": name, "kind": "task"})
        assert resp.status_code == 400, name
        assert "control characters" in resp.get_json()["detail"]
    assert admin.delete("/api/v1/roles/nope").status_code == 404
    assert session.scalar(select(func.count()).select_from(Role)) == 1


def test_role_name_differing_only_by_surrounding_spaces_is_a_duplicate(admin, session):
    """'Planner' exists; " Planner " is the same role (409), not a second one that looks the
    same (the uniqueness key folds case, not surrounding whitespace); names are stored
    trimmed."""
    make_role(admin, "Planner")
    for name in (" Planner ", "planner\u00a0", "\u2003PLANNER"):
        resp = admin.post("/api/v1/roles", {"name": name, "kind": "task"})
        assert resp.status_code == 409, (name, resp.status_code, resp.get_data(as_text=True))
    assert [r["name"] for r in ok(admin.get("/api/v1/roles"))["roles"]] == ["Planner"]
    reader = make_role(admin, " Reader  ", "profile")
    assert reader["name"] == "Reader"
    assert session.get(Role, (admin.org_id, reader["id"])).name_key == "reader"
    assert admin.post("/api/v1/roles", {"name": "   ", "kind": "task"}).status_code == 400
    assert admin.post("/api/v1/roles", {"name": "Planner\t", "kind": "task"}).status_code == 400


def test_default_role_cannot_be_deleted(admin, session):
    """A role the settings grant by default is protected until the settings change."""
    role = make_role(admin, "Reader", "profile")
    ok(admin.put("/api/v1/settings", {"default_roles": ["Reader"]}))
    resp = admin.delete(f"/api/v1/roles/{role['id']}")
    assert resp.status_code == 409 and "default role" in resp.get_json()["detail"]
    assert session.get(Role, (admin.org_id, role["id"])) is not None


def test_a_save_that_changes_nothing_writes_no_event(admin):
    """A license or contact saved as it is (a form saved untouched, a replayed PATCH): 200,
    and no ``license.update`` / ``contact.update`` saying it was updated ("changes": {})."""
    lic = make_license(admin, "E3", 5)
    same = {"name": "E3", "seat_limit": 5}
    ok(admin.patch(f"/api/v1/licenses/{lic['id']}", same))
    assert events(admin, action="license.update") == []
    ok(admin.patch(f"/api/v1/licenses/{lic['id']}", {"seat_limit": 6}))
    assert [e["changes"] for e in events(admin, action="license.update")] == [
        {"seat_limit": {"before": 5, "after": 6}}
    ]
    contact = ok(admin.post("/api/v1/contacts", {"kind": "person", "name": "Ada"}), 201)
    ok(admin.patch(f"/api/v1/contacts/{contact['id']}", {"name": "Ada"}))
    assert events(admin, action="contact.update") == []
