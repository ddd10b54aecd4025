"""``provisioning``: strict seats refuse only a write that itself asks for a seat."""

from __future__ import annotations

from typing import Any

from tests.admin.rules import activate
from tests.support import USER_SCHEMA
from tests.support.admin_api import PRODUCT, account, events, make_license, ok, person


def _always(then: dict[str, Any], name: str = "all") -> dict[str, Any]:
    return {
        "mode": "first-match",
        "rules": [{"name": name, "when": {"always": True}, "then": then}],
    }


def _by_department(department: str, license_name: str) -> dict[str, Any]:
    return {
        "mode": "first-match",
        "rules": [
            {
                "name": "dept",
                "when": {"attribute": "department", "equals": department},
                "then": {"license": license_name},
            },
            {"name": "others", "when": {"always": True}, "then": {"license": "Viewer"}},
        ],
    }


def _full_engineer(admin, scim) -> dict[str, Any]:
    """Strict seats, Viewer (unlimited) for all; the one Engineer seat held by hand."""
    make_license(admin, "Engineer", 1)
    make_license(admin, "Viewer", None)
    activate(admin, _always({"license": "Viewer"}))
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    holder = person(scim, "holder@example.com")
    ok(admin.put(f"/api/v1/users/{holder['id']}/license", {"license": "Engineer"}))
    return holder


def test_strict_seats_never_block_a_leavers_deactivation(scim, admin):
    """Strict seats, a new rule set (not yet applied) wants the full Engineer license for
    everyone: the IdP's deactivation of a leaver (``replace active false``, with a path as
    Entra sends it, without as Okta does) is not refused; the leaver is DEACTIVATED."""
    _full_engineer(admin, scim)
    leaver = person(scim, "leaver@example.com")
    activate(admin, _always({"license": "Engineer"}))
    for body in (
        {"op": "replace", "path": "active", "value": False},
        {"op": "replace", "value": {"active": False}},
    ):
        resp = scim.patch_ops(f"/scim/v2/Users/{leaver['id']}", body)
        assert resp.status_code in (200, 204), (body, resp.status_code, resp.get_json())
        assert account(admin, leaver["id"])["status"] == "DEACTIVATED"
    # The license the leaver held stays; the one the rules want is a shortage, not a refusal.
    view = account(admin, leaver["id"])
    assert view["license"]["value"] == "Viewer"
    assert view["licenseShortage"] == {"value": "Engineer"}
    assert events(admin, action="user.patch", outcome="failure") == []


def test_strict_seats_let_a_deactivated_user_be_created(scim, admin):
    """Strict seats, no seat left: a user the IdP creates inactive is created (it asks for no
    seat), waiting for the license; an active one is still refused with 409."""
    _full_engineer(admin, scim)
    activate(admin, _always({"license": "Engineer"}))
    body = {"schemas": [USER_SCHEMA], "userName": "gone@example.com", "active": False}
    resp = scim.post("/scim/v2/Users", body)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()[PRODUCT]["licenseShortage"] == {"value": "Engineer"}
    body = {"schemas": [USER_SCHEMA], "userName": "new@example.com"}
    assert scim.post("/scim/v2/Users", body).status_code == 409


def test_strict_seats_refuse_only_the_write_that_asks_for_the_seat(scim, admin):
    """Strict seats, a new rule set not yet applied wants the full Engineer license for the
    Eng department: an IdP write of another attribute of a user of Eng is not refused (the
    user waits for the seat), while moving a user into Eng is refused with 409."""
    _full_engineer(admin, scim)
    eng = person(scim, "eng@example.com", department="Eng")
    ops = person(scim, "ops@example.com", department="Ops")
    activate(admin, _by_department("Eng", "Engineer"))
    title = {"op": "replace", "path": "title", "value": "Lead"}
    resp = scim.patch_ops(f"/scim/v2/Users/{eng['id']}", title)
    assert resp.status_code in (200, 204), resp.get_json()
    view = account(admin, eng["id"])
    assert view["license"]["value"] == "Viewer"
    assert view["licenseShortage"] == {"value": "Engineer"}
    # A second write: still waiting, nothing new about the license in the event.
    again = {"op": "replace", "path": "title", "value": "Principal"}
    assert scim.patch_ops(f"/scim/v2/Users/{eng['id']}", again).status_code in (200, 204)
    last = events(admin, action="user.patch", resource_id=eng["id"])[-1]
    assert not any(k.startswith("license") for k in last["explanation"].get("changes", {}))
    move = {
        "op": "replace",
        "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "value": "Eng",
    }
    refused = scim.patch_ops(f"/scim/v2/Users/{ops['id']}", move)
    assert refused.status_code == 409
    assert "No seat left on license 'Engineer'" in refused.get_json()["detail"]
    assert account(admin, ops["id"])["license"]["value"] == "Viewer"


def test_strict_seats_refuse_a_reactivation_without_a_seat(scim, admin):
    """A leaver deactivated while no Engineer seat was left waits for one; its reactivation
    asks for the seat, and strict seats refuse it (409) while none is free."""
    _full_engineer(admin, scim)
    leaver = person(scim, "leaver@example.com")
    activate(admin, _always({"license": "Engineer"}))
    off = {"op": "replace", "path": "active", "value": False}
    assert scim.patch_ops(f"/scim/v2/Users/{leaver['id']}", off).status_code in (200, 204)
    on = {"op": "replace", "path": "active", "value": True}
    resp = scim.patch_ops(f"/scim/v2/Users/{leaver['id']}", on)
    assert resp.status_code == 409
    assert account(admin, leaver["id"])["status"] == "DEACTIVATED"
