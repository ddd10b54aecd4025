"""Admin API: user accounts, status actions, manual license and roles, deletion."""

from __future__ import annotations

from sqlalchemy import select

from scim_server.models import Contact, User, UserRole
from tests.support.admin_api import (
    PRODUCT,
    account,
    events,
    licenses_by_name,
    make_license,
    make_role,
    ok,
    person,
)


def test_list_and_get_users(scim, admin):
    """The account list shows status, license, roles and contact; filters narrow it."""
    make_license(admin, "Engineer", 5)
    ann = person(scim, "ann@example.com")
    bob = person(scim, "bob@example.com")
    ok(admin.put(f"/api/v1/users/{bob['id']}/license", {"license": "Engineer"}))
    listed = ok(admin.get("/api/v1/users"))
    assert listed["total"] == 2
    first = listed["users"][0]
    assert first["id"] == ann["id"] and first["userName"] == "ann@example.com"
    assert first["username"] == "ann@example.com" and first["status"] == "PROVISIONED"
    assert first["license"] is None and first["licenseShortage"] is None
    assert first["roles"] == [] and first["contactId"] and first["lastLogin"] is None
    by_license = ok(admin.get("/api/v1/users", query_string={"license": "engineer"}))
    assert [u["id"] for u in by_license["users"]] == [bob["id"]]
    assert by_license["users"][0]["license"] == {"value": "Engineer", "source": "manual"}
    paged = ok(admin.get("/api/v1/users", query_string={"offset": 1, "limit": 1}))
    assert paged["total"] == 2 and [u["id"] for u in paged["users"]] == [bob["id"]]
    detail = account(admin, ann["id"])
    assert detail["active"] is True and detail["groups"] == [] and detail["version"] >= 1
    assert admin.get("/api/v1/users", query_string={"license": "Ghost"}).status_code == 400
    assert admin.get("/api/v1/users", query_string={"status": "HAPPY"}).status_code == 400
    assert admin.get("/api/v1/users/nope").status_code == 404


def test_user_actions_follow_the_lifecycle(scim, admin, session):
    """lock, unlock, deactivate, activate... each moves the status and writes its event."""
    user = person(scim, "ann@example.com")
    url = f"/api/v1/users/{user['id']}/actions"
    steps = [
        ("lock", "LOCKED_BY_ADMIN"),
        ("unlock", "PROVISIONED"),
        ("require_new_password", "AWAITING_NEW_PASSWORD"),
        ("start_recovery", "AWAITING_NEW_PASSWORD"),  # the demand holds until a new password
        ("complete_recovery", "PROVISIONED"),
        ("deactivate", "DEACTIVATED"),
        ("activate", "PROVISIONED"),
    ]
    for op, status in steps:
        body = ok(admin.post(f"{url}/{op}", {"reason": f"ticket {op}"}))
        assert body["status"] == status, op
    ok(admin.post(f"{url}/deactivate", None))
    row = session.get(User, (admin.org_id, user["id"]))
    assert row.status == "DEACTIVATED" and row.active is False
    scim_view = scim.get(f"/scim/v2/Users/{user['id']}").get_json()
    assert scim_view["active"] is False and scim_view[PRODUCT]["status"] == "DEACTIVATED"
    timeline = ok(admin.get(f"/api/v1/audit/timeline/{user['id']}"))["events"]
    assert [e["action"] for e in timeline][1:] == [f"user.{op}" for op, _ in steps] + [
        "user.deactivate"
    ]
    lock = timeline[1]
    assert lock["actor_type"] == "admin" and lock["detail"] == "ticket lock"
    assert lock["changes"] == {"status": {"before": "PROVISIONED", "after": "LOCKED_BY_ADMIN"}}


def test_invalid_transition_is_409_and_changes_nothing(scim, admin, session):
    """Unlocking an unlocked user is 409 with the lifecycle's reason; unknown ops are 404."""
    user = person(scim, "ann@example.com")
    url = f"/api/v1/users/{user['id']}/actions"
    resp = admin.post(f"{url}/unlock", None)
    assert resp.status_code == 409
    assert resp.get_json()["detail"] == (
        "Cannot unlock a user whose status is PROVISIONED "
        "(allowed from: AUTO_LOCKED, LOCKED_BY_ADMIN)."
    )
    ok(admin.post(f"{url}/deactivate", None))
    assert admin.post(f"{url}/lock", None).status_code == 409
    unknown = admin.post(f"{url}/auto_lock", None)
    assert unknown.status_code == 404 and "Unknown user action" in unknown.get_json()["detail"]
    assert admin.post(f"{url}/lock", {"reason": 5}).status_code == 400
    assert admin.post("/api/v1/users/nope/actions/lock", None).status_code == 404
    assert session.get(User, (admin.org_id, user["id"])).status == "DEACTIVATED"
    failed = events(admin, outcome="failure")
    assert [(e["action"], e["status"]) for e in failed] == [
        ("user.unlock", 409),
        ("user.lock", 409),
        ("user.action", 404),
        ("user.lock", 400),
        ("user.lock", 404),
    ]
    assert failed[0]["resource_id"] == user["id"] and "Cannot unlock" in failed[0]["detail"]


def test_manual_license_assignment_and_seats(scim, admin, session):
    """A manual license takes a seat; a full license is 409 (no silent shortage); null clears."""
    make_license(admin, "Engineer", 1)
    ann = person(scim, "ann@example.com")
    bob = person(scim, "bob@example.com")
    body = ok(admin.put(f"/api/v1/users/{ann['id']}/license", {"license": "Engineer"}))
    assert body["license"] == {"value": "Engineer", "source": "manual"}
    assert licenses_by_name(admin)["Engineer"] | {"id": None} == {
        "id": None,
        "name": "Engineer",
        "seat_limit": 1,
        "price_cents": 0,
        "currency": "EUR",
        "used": 1,
        "seats_left": 0,
        "shortage": 0,
    }
    full = admin.put(f"/api/v1/users/{bob['id']}/license", {"license": "Engineer"})
    assert full.status_code == 409 and "No seat left" in full.get_json()["detail"]
    assert session.get(User, (admin.org_id, bob["id"])).license_id is None
    assert admin.put(f"/api/v1/users/{bob['id']}/license", {"license": "Ghost"}).status_code == 400
    assert admin.put(f"/api/v1/users/{bob['id']}/license", {}).status_code == 400
    scim_view = scim.get(f"/scim/v2/Users/{ann['id']}").get_json()
    assert scim_view[PRODUCT]["license"] == {"value": "Engineer", "source": "manual"}
    cleared = ok(admin.put(f"/api/v1/users/{ann['id']}/license", {"license": None}))
    assert cleared["license"] is None
    row = session.get(User, (admin.org_id, ann["id"]))
    assert row.license_id is None and row.license_source == "manual"
    assert licenses_by_name(admin)["Engineer"]["used"] == 0
    changes = [e["changes"] for e in events(admin, action="user.license", outcome="success")]
    engineer = licenses_by_name(admin)["Engineer"]["id"]
    assert changes == [
        {
            "license": {"before": None, "after": "Engineer"},
            "license_id": {"before": None, "after": engineer},
            "license_source": {"before": None, "after": "manual"},
        },
        {
            "license": {"before": "Engineer", "after": None},
            "license_id": {"before": engineer, "after": None},
        },
    ]
    failed = events(admin, action="user.license", outcome="failure")
    assert [e["status"] for e in failed] == [409, 400, 400]


def test_release_manual_license_without_rules(scim, admin, session):
    """Handing the license back with no rules in place leaves none; releasing twice is 404."""
    make_license(admin, "Engineer", 1)
    ann = person(scim, "ann@example.com")
    ok(admin.put(f"/api/v1/users/{ann['id']}/license", {"license": "Engineer"}))
    body = ok(admin.delete(f"/api/v1/users/{ann['id']}/license/manual"))
    assert body["license"] is None
    row = session.get(User, (admin.org_id, ann["id"]))
    assert row.license_id is None and row.license_source is None
    again = admin.delete(f"/api/v1/users/{ann['id']}/license/manual")
    assert again.status_code == 404 and "no manual license" in again.get_json()["detail"]


def test_manual_roles(scim, admin, session):
    """Manual roles are added by name, removed by id, logged, and shown with their source."""
    engineer = make_role(admin, "Engineer", "task")
    make_role(admin, "Portal", "portal")
    ann = person(scim, "ann@example.com")
    url = f"/api/v1/users/{ann['id']}/roles"
    ok(admin.post(url, {"role": "engineer"}))
    body = ok(admin.post(url, {"role": "Portal"}))
    assert [(r["value"], r["kind"], r["sources"]) for r in body["roles"]] == [
        ("Engineer", "task", ["manual"]),
        ("Portal", "portal", ["manual"]),
    ]
    assert body["roles"][0]["id"] == engineer["id"]
    again = ok(admin.post(url, {"role": "Engineer"}))  # already held: no change
    assert len(again["roles"]) == 2
    body = ok(admin.delete(f"{url}/{engineer['id']}"))
    assert [r["value"] for r in body["roles"]] == ["Portal"]
    held = session.scalars(select(UserRole).where(UserRole.user_id == ann["id"])).all()
    assert [(r.source, r.rule) for r in held] == [("manual", None)]
    scim_view = scim.get(f"/scim/v2/Users/{ann['id']}").get_json()
    assert scim_view[PRODUCT]["roles"] == [
        {"value": "Portal", "kind": "portal", "sources": ["manual"]}
    ]
    logged = events(admin, action="user.roles", outcome="success")
    assert [e["detail"] for e in logged] == [
        "manual role 'Engineer' (task) added",
        "manual role 'Portal' (portal) added",
        "manual role 'Engineer' (task) added",
        "manual role 'Engineer' removed",
    ]
    assert logged[0]["changes"] == {"roles.manual": {"added": [engineer["id"]], "removed": []}}
    assert logged[2]["changes"] == {}
    assert admin.post(url, {"role": "Ghost"}).status_code == 400
    assert admin.post(url, {"name": "Portal"}).status_code == 400
    missing = admin.delete(f"{url}/{engineer['id']}")
    assert missing.status_code == 404 and "holds no manual role" in missing.get_json()["detail"]


def test_license_and_role_changes_move_the_scim_version(scim, admin):
    """The SCIM view shows license and roles, so its ETag changes with them."""
    make_license(admin, "Engineer")
    make_role(admin, "Engineer")
    user = person(scim, "ann@example.com")
    etag = user["meta"]["version"]
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Engineer"}))
    after_license = scim.get(f"/scim/v2/Users/{user['id']}").get_json()["meta"]["version"]
    ok(admin.post(f"/api/v1/users/{user['id']}/roles", {"role": "Engineer"}))
    after_role = scim.get(f"/scim/v2/Users/{user['id']}").get_json()["meta"]["version"]
    assert len({etag, after_license, after_role}) == 3


def test_delete_user_keeps_the_contact(scim, admin, session):
    """Deleting the account removes access; the person contact stays and can be found."""
    make_license(admin, "Engineer", 1)
    user = person(scim, "ann@example.com", name={"givenName": "Ann", "familyName": "Lee"})
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Engineer"}))
    contact_id = account(admin, user["id"])["contactId"]
    assert admin.delete(f"/api/v1/users/{user['id']}").status_code == 204
    assert session.get(User, (admin.org_id, user["id"])) is None
    contact = session.get(Contact, (admin.org_id, contact_id))
    assert contact is not None and contact.email == "ann@example.com"
    assert ok(admin.get(f"/api/v1/contacts/{contact_id}"))["user"] is None
    assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 404
    assert licenses_by_name(admin)["Engineer"]["used"] == 0
    (event,) = events(admin, action="user.delete")
    assert event["actor_type"] == "admin" and event["resource_id"] == user["id"]
    assert admin.delete(f"/api/v1/users/{user['id']}").status_code == 404
