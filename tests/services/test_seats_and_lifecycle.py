"""Licenses, seats, roles and the account lifecycle (DESIGN.md §2) as the rules, Enable
access and the admin API change them: what SCIM, billing and the log then say."""

from __future__ import annotations

from tests.admin.rules import activate
from tests.support.admin_api import (
    PRODUCT,
    account,
    apply_rules,
    events,
    licenses_by_name,
    make_license,
    make_role,
    ok,
    person,
)

CONTRACTORS_DEACTIVATED = {
    "mode": "first-match",
    "rules": [
        {
            "name": "contractors",
            "when": {"attribute": "userType", "equals": "Contractor"},
            "then": {"status": "DEACTIVATED"},
        }
    ],
}


def _contact(admin, name: str, email: str) -> dict:
    return ok(admin.post("/api/v1/contacts", {"kind": "person", "name": name, "email": email}), 201)


def test_a_user_the_rules_deactivated_is_not_reactivated_by_an_unrelated_patch(scim, admin):
    """A rule ``status: DEACTIVATED`` makes the new account DEACTIVATED, and its stored
    document says ``active: false`` too: the IdP's next PATCH of another attribute is not
    read as "active went false → true" (a reactivation nobody sent)."""
    activate(admin, CONTRACTORS_DEACTIVATED)
    user = person(scim, "cat@example.com", userType="Contractor")
    assert user["active"] is False and user[PRODUCT]["status"] == "DEACTIVATED"

    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Welder"}
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["title"] == "Welder"
    # Nobody asked for the account to be active again.
    assert body["active"] is False
    assert account(admin, user["id"])["status"] == "DEACTIVATED"
    assert events(admin, action="user.activate", resource_id=user["id"]) == []


def test_enable_access_with_a_chosen_license_is_a_billed_seat(scim, admin):
    """Enable access with ``{"license": "Engineer"}`` takes a seat: the billing report's
    seat changes show it (``explanation.changes.license``, where a create's seat is read)."""
    make_license(admin, "Engineer", 5, price_cents=1000)
    contact = _contact(admin, "Ada Lovelace", "ada@example.com")
    user = ok(admin.post(f"/api/v1/contacts/{contact['id']}/access", {"license": "Engineer"}), 201)
    assert user["license"] == {"value": "Engineer", "source": "manual"}
    bill = ok(admin.get("/api/v1/billing"))
    assert [lic["used"] for lic in bill["licenses"]] == [1]
    assert [(c["license"], c["change"], c["user_id"]) for c in bill["changes"]] == [
        ("Engineer", 1, user["id"])
    ]
    (line,) = bill["per_license"]
    assert (line["assigned"], line["net"]) == (1, 1)


def test_deleting_a_held_role_moves_the_holders_version(scim, admin):
    """The SCIM view shows the user's roles (product extension): deleting a role takes it
    from its holders, whose versions move, so a stale ``If-None-Match`` is not a 304."""
    role = make_role(admin, "Planner", "task")
    user = person(scim, "ann@example.com")
    ok(admin.post(f"/api/v1/users/{user['id']}/roles", {"role": "Planner"}))
    before = scim.get(f"/scim/v2/Users/{user['id']}")
    assert [r["value"] for r in before.get_json()[PRODUCT]["roles"]] == ["Planner"]
    assert admin.delete(f"/api/v1/roles/{role['id']}").status_code == 204
    after = scim.get(
        f"/scim/v2/Users/{user['id']}", headers={"If-None-Match": before.headers["ETag"]}
    )
    assert after.status_code == 200
    assert "roles" not in after.get_json()[PRODUCT]


def test_renaming_a_license_moves_its_holders_and_waiters_versions(scim, admin):
    """The SCIM view names the license a user holds (product extension ``license``) and the
    one it waits for (``licenseShortage``): renaming it changes both users' representation,
    so their versions move and a stale ``If-None-Match`` gets the new name, not a 304. A
    user with another license keeps its version."""
    held = make_license(admin, "Engineer", 1)
    make_license(admin, "Planner", None)
    always = {"name": "all", "when": {"always": True}}
    activate(admin, {"mode": "first-match", "rules": [{**always, "then": {"license": "Engineer"}}]})
    holder = person(scim, "hal@example.com")
    waiter = person(scim, "wes@example.com")  # no seat left: waits for it
    activate(admin, {"mode": "first-match", "rules": [{**always, "then": {"license": "Planner"}}]})
    other = person(scim, "oli@example.com")
    assert holder[PRODUCT]["license"]["value"] == "Engineer"
    assert waiter[PRODUCT]["licenseShortage"] == {"value": "Engineer"}
    assert other[PRODUCT]["license"]["value"] == "Planner"
    tags = {
        u["id"]: scim.get(f"/scim/v2/Users/{u['id']}").headers["ETag"]
        for u in (holder, waiter, other)
    }

    ok(admin.patch(f"/api/v1/licenses/{held['id']}", {"name": "Engineering"}))

    def fresh(user: dict) -> object:
        return scim.get(f"/scim/v2/Users/{user['id']}", headers={"If-None-Match": tags[user["id"]]})

    got = fresh(holder)
    assert got.status_code == 200, "a stale ETag of the license's holder was answered 304"
    assert got.get_json()[PRODUCT]["license"]["value"] == "Engineering"
    assert got.headers["ETag"] != tags[holder["id"]]
    got = fresh(waiter)
    assert got.status_code == 200, "a stale ETag of a user waiting for the license was a 304"
    assert got.get_json()[PRODUCT]["licenseShortage"] == {"value": "Engineering"}
    assert fresh(other).status_code == 304


def test_deleting_a_license_users_wait_for_leaves_no_dangling_shortage(scim, admin):
    """A license users wait for (``license_wanted``, no foreign key) but nobody holds is
    not deleted: they would show a shortage of a license that is gone."""
    lic = make_license(admin, "Engineer", 0)
    make_license(admin, "Planner", None)
    always = {"name": "all", "when": {"always": True}}
    activate(admin, {"mode": "first-match", "rules": [{**always, "then": {"license": "Engineer"}}]})
    user = person(scim, "bob@example.com")
    assert user[PRODUCT]["licenseShortage"] == {"value": "Engineer"}
    activate(admin, {"mode": "first-match", "rules": [{**always, "then": {"license": "Planner"}}]})
    resp = admin.delete(f"/api/v1/licenses/{lic['id']}")
    assert resp.status_code == 400 and "waiting for a seat" in resp.get_json()["detail"]
    assert account(admin, user["id"])["licenseShortage"] == {"value": "Engineer"}


def test_a_user_waiting_for_a_chosen_license_gets_the_freed_seat(scim, admin):
    """Enable access with a full license, overridden: the account waits for a seat "as a
    SCIM create's would" (services.access), so the apply after a seat frees gives it, and
    says so in the log."""
    make_license(admin, "Planner", 1)
    make_role(admin, "Staff", "task")
    always = {"name": "all", "when": {"always": True}, "then": {"roles": ["Staff"]}}
    activate(admin, {"mode": "first-match", "rules": [always]})
    first = _contact(admin, "Ada Lovelace", "ada@example.com")
    holder = ok(admin.post(f"/api/v1/contacts/{first['id']}/access", {"license": "Planner"}), 201)
    second = _contact(admin, "Grace Hopper", "grace@example.com")
    resp = admin.post(
        f"/api/v1/contacts/{second['id']}/access", {"license": "Planner", "override": True}
    )
    waiting = ok(resp, 201)
    assert waiting["license"] is None and waiting["licenseShortage"] == {"value": "Planner"}
    apply_rules(admin)  # no seat yet: still waiting
    assert account(admin, waiting["id"])["license"] is None
    assert scim.delete(f"/scim/v2/Users/{holder['id']}").status_code == 204
    apply_rules(admin)
    now = account(admin, waiting["id"])
    assert now["license"] == {"value": "Planner", "source": "manual"}
    assert now["licenseShortage"] is None
    assert licenses_by_name(admin)["Planner"]["used"] == 1
