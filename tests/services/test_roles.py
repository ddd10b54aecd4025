"""Roles: deleting one that people hold is a change of each holder, in the log and the feed."""

from __future__ import annotations

from typing import Any

from scim_server.db import db
from scim_server.models import UserRole
from tests.support.admin_api import account, events, make_role, ok, person


def feed(admin, **params: Any) -> list[dict[str, Any]]:
    return ok(admin.get("/api/v1/events", query_string={"limit": 1000, **params}))["events"]


def _product_events(admin, types: str) -> list[dict[str, Any]]:
    return ok(admin.get("/api/v1/events", query_string={"types": types, "limit": 100}))["events"]


def test_deleting_a_role_gives_each_holder_a_roles_changed_event(scim, admin):
    """DELETE /api/v1/roles/<id> takes the role from every holder (their version moves, GET
    /api/v1/users/<id> no longer lists it) and writes each holder's ``user.roles_changed``
    product event (README: "Every change to a user ... is written as a product event")."""
    role = make_role(admin, "Ops")
    ann = person(scim, "ann@example.com")
    ok(admin.post(f"/api/v1/users/{ann['id']}/roles", {"role": "Ops"}))
    version_before = ok(admin.get(f"/api/v1/users/{ann['id']}"))["version"]
    cursor = ok(admin.get("/api/v1/events", query_string={"after": "now"}))["next_cursor"]

    assert admin.delete(f"/api/v1/roles/{role['id']}").status_code == 204

    account_now = ok(admin.get(f"/api/v1/users/{ann['id']}"))
    assert account_now["roles"] == [] and account_now["version"] > version_before
    after = feed(admin, after=cursor)
    about_ann = [e for e in after if e["data"]["resource"] == {"type": "User", "id": ann["id"]}]
    assert [e["type"] for e in about_ann] == ["user.roles_changed"], after
    assert about_ann[0]["data"]["state"]["roles"] == []
    assert about_ann[0]["data"]["state"]["version"] == account_now["version"]
    assert about_ann[0]["data"]["changes"] == {
        "roles.manual": {"added": [], "removed": [role["id"]]}
    }


def test_deleting_a_held_role_tells_the_product_and_the_holders_log(scim, admin):
    """An admin deletes the role ``Approver`` that two users hold (manual): both lose it, each
    gets a ``user.roles_changed`` product event and a ``user.roles`` audit event on their
    timeline (audit by resource), beside the role's own ``role.delete``."""
    role = make_role(admin, "Approver", "task")
    holders = [person(scim, f"r{i}@example.com") for i in range(2)]
    for user in holders:
        ok(admin.post(f"/api/v1/users/{user['id']}/roles", {"role": "Approver"}))
    granted = len(_product_events(admin, "user.roles_changed"))
    assert granted == 2
    assert admin.delete(f"/api/v1/roles/{role['id']}").status_code == 204
    for user in holders:
        assert account(admin, user["id"])["roles"] == []
    changed = _product_events(admin, "user.roles_changed")[granted:]
    assert sorted(e["data"]["resource"]["id"] for e in changed) == sorted(
        u["id"] for u in holders
    ), changed
    for user in holders:
        trail = [e["action"] for e in events(admin, resource_id=user["id"])]
        assert trail.count("user.roles") == 2, trail
    deleted = events(admin, action="role.delete")
    assert [e["changes"] for e in deleted] == [{"holders": 2}]


def test_deleting_an_unheld_role_records_the_role_only(scim, admin):
    """A role nobody holds: its ``role.delete`` and no user event, no product event."""
    role = make_role(admin, "Idle")
    person(scim, "ann@example.com")
    cursor = ok(admin.get("/api/v1/events", query_string={"after": "now"}))["next_cursor"]
    assert admin.delete(f"/api/v1/roles/{role['id']}").status_code == 204
    assert feed(admin, after=cursor) == []
    assert [e["action"] for e in events(admin, action="user.roles")] == []


def test_a_role_held_from_two_sources_is_one_event_naming_both(app, scim, admin):
    """A holder with the role by hand and from the IdP (a SCIM app role) loses both: one
    ``user.roles`` event whose changes name each source, one product event."""
    role = make_role(admin, "Both")
    ann = person(scim, "ann@example.com")
    ok(admin.post(f"/api/v1/users/{ann['id']}/roles", {"role": "Both"}))
    with db.writer(app)() as s, s.begin():
        s.add(UserRole(org_id=scim.org_id, user_id=ann["id"], role_id=role["id"], source="scim"))
    cursor = ok(admin.get("/api/v1/events", query_string={"after": "now"}))["next_cursor"]
    assert admin.delete(f"/api/v1/roles/{role['id']}").status_code == 204
    after = feed(admin, after=cursor)
    assert [e["type"] for e in after] == ["user.roles_changed"]
    assert after[0]["data"]["changes"] == {
        "roles.manual": {"added": [], "removed": [role["id"]]},
        "roles.scim": {"added": [], "removed": [role["id"]]},
    }
    assert [e["changes"] for e in events(admin, action="user.roles")][-1] == after[0]["data"][
        "changes"
    ]
