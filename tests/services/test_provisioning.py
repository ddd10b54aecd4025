"""``provisioning``: strict seats refuse only a write that itself asks for a seat."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.rules import activate, catalogue
from tests.support import ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA
from tests.support.admin_api import (
    PRODUCT,
    account,
    events,
    licenses_by_name,
    make_license,
    ok,
    person,
    person_sorting_before,
)


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


def _mover_in_engineering(scim, admin) -> tuple[str, str]:
    """Strict seats; ann (department Sales) holds Engineer and its role through Engineering;
    the Sales rule's Planner has one seat, taken by bob: leaving Engineering, the rules want
    Planner for ann, which is full."""
    catalogue(admin, planner_seats=1)
    activate(admin)
    ann = scim.create_user("ann@example.com", **{ENTERPRISE: {"department": "Sales"}})["id"]
    group = scim.create_group("Engineering", [ann])["id"]
    assert account(admin, ann)["license"]["value"] == "Engineer"
    person(scim, "bob@example.com", department="Sales")
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    return ann, group


def _left(scim, admin, ann: str) -> None:
    """Out of Engineering and its role at once; Engineer kept until a Planner seat is free
    (as in lenient mode: a mover keeps signing in), Planner the shortage; nothing refused."""
    assert scim.get(f"/scim/v2/Users/{ann}").get_json().get("groups", []) == []
    view = account(admin, ann)
    assert [r["value"] for r in view.get("roles", [])] == []
    assert view["license"]["value"] == "Engineer"
    assert view["licenseShortage"] == {"value": "Planner"}
    assert events(admin, outcome="failure") == []


@pytest.mark.parametrize(
    "removal",
    [
        pytest.param(lambda ann: {"op": "remove", "path": f'members[value eq "{ann}"]'}, id="okta"),
        pytest.param(
            lambda ann: {"op": "Remove", "path": "members", "value": [{"value": ann}]}, id="entra"
        ),
    ],
)
def test_strict_seats_never_refuse_a_removal_from_a_group(scim, admin, removal):
    """Okta's and Entra's removal of a member whose rules then want a full license: 204, the
    membership and what it gave end (was 409: the member kept the group, its role and its
    license, and the IdP retried for ever)."""
    ann, group = _mover_in_engineering(scim, admin)
    resp = scim.patch_ops(f"/scim/v2/Groups/{group}", removal(ann))
    assert resp.status_code == 204, resp.get_json()
    _left(scim, admin, ann)


def test_strict_seats_never_refuse_a_group_put_or_delete_that_removes_members(scim, admin):
    """Okta's whole-group PUT without the member, then the group's DELETE: neither refused
    (a DELETE was refused for every member because of one whose rules wanted a full license)."""
    ann, group = _mover_in_engineering(scim, admin)
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": []}
    assert scim.put(f"/scim/v2/Groups/{group}", body).status_code == 200
    _left(scim, admin, ann)
    assert (
        scim.patch_ops(
            f"/scim/v2/Groups/{group}", {"op": "add", "path": "members", "value": [{"value": ann}]}
        ).status_code
        == 204
    )
    assert scim.delete(f"/scim/v2/Groups/{group}").status_code == 204
    _left(scim, admin, ann)


def test_strict_seats_still_refuse_an_addition_onto_a_full_license(scim, admin):
    """An addition asks for a seat: a member added to a group whose rule gives a full license
    is still refused (409), and nothing changes."""
    catalogue(admin, engineer_seats=1)
    activate(admin)
    first = scim.create_user("first@example.com")["id"]
    group = scim.create_group("Engineering", [first])["id"]
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    second = scim.create_user("second@example.com")["id"]
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{group}", {"op": "add", "path": "members", "value": [{"value": second}]}
    )
    assert resp.status_code == 409, resp.get_json()
    assert scim.get(f"/scim/v2/Users/{second}").get_json().get("groups", []) == []


def _renamed_away(scim, admin, ann: str, group: str) -> None:
    """The rename went through; ann lost what Engineering gave as by a removal (``_left``),
    still a member of the group under its new name."""
    assert scim.get(f"/scim/v2/Groups/{group}").get_json()["displayName"] == "Platform"
    view = account(admin, ann)
    assert [r["value"] for r in view.get("roles", [])] == []
    assert view["license"]["value"] == "Engineer"
    assert view["licenseShortage"] == {"value": "Planner"}
    assert events(admin, outcome="failure") == []


@pytest.mark.parametrize("form", ["patch", "put"])
def test_strict_seats_never_refuse_a_rename_away_from_the_group_a_rule_names(scim, admin, form):
    """The IdP renames Engineering (Entra's PATCH, Okta's whole-group PUT with the same
    members): the rules no longer give ann what Engineering gave, access the IdP ends as
    by a removal, and want Planner, which is full. Not refused (was 409: the group kept its
    old name and ann its role and license, the IdP retrying for ever); ann is evaluated as
    a member removed is, the role gone at once and Planner waited for."""
    ann, group = _mover_in_engineering(scim, admin)
    if form == "patch":
        op = {"op": "replace", "path": "displayName", "value": "Platform"}
        resp = scim.patch_ops(f"/scim/v2/Groups/{group}", op)
        assert resp.status_code == 204, resp.get_json()
    else:
        body = {"schemas": [GROUP_SCHEMA], "displayName": "Platform", "members": [{"value": ann}]}
        resp = scim.put(f"/scim/v2/Groups/{group}", body)
        assert resp.status_code == 200, resp.get_json()
    _renamed_away(scim, admin, ann, group)


def test_strict_seats_still_refuse_a_rename_onto_a_full_license(scim, admin):
    """A rename onto the name a rule gives a full license for asks for its members' seats,
    as adding them would: refused (409), the name and their licenses unchanged."""
    catalogue(admin, engineer_seats=1)
    activate(admin)
    first = scim.create_user("first@example.com")["id"]
    scim.create_group("Engineering", [first])
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    second = scim.create_user("second@example.com")["id"]
    group = scim.create_group("Eng", [second])["id"]
    op = {"op": "replace", "path": "displayName", "value": "Engineering Two"}
    activate(
        admin,
        {
            "mode": "first-match",
            "rules": [
                {
                    "name": "eng",
                    "when": {
                        "any": [{"member_of": "Engineering"}, {"member_of": "Engineering Two"}]
                    },
                    "then": {"license": "Engineer"},
                }
            ],
        },
    )
    resp = scim.patch_ops(f"/scim/v2/Groups/{group}", op)
    assert resp.status_code == 409, resp.get_json()
    assert "seat" in resp.get_json()["detail"], resp.get_json()
    assert scim.get(f"/scim/v2/Groups/{group}").get_json()["displayName"] == "Eng"
    assert account(admin, second).get("license") is None


def _licenses(admin, user: str) -> tuple[str | None, str | None]:
    """(license held, license waited for) of a user, by name."""
    view = account(admin, user)
    held, wanted = view.get("license") or {}, view.get("licenseShortage") or {}
    return held.get("value"), wanted.get("value")


ENGINEERING_GIVES_ENGINEER = {
    "mode": "first-match",
    "rules": [
        {
            "name": "eng",
            "when": {"any": [{"member_of": "Engineering"}, {"member_of": "Engineering Two"}]},
            "then": {"license": "Engineer"},
        }
    ],
}


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "replace", "path": "externalId", "value": "eng-2"}, id="externalId"),
        pytest.param(
            {"op": "replace", "path": "displayName", "value": "Engineering Two"}, id="same-rule"
        ),
    ],
)
def test_strict_seats_never_refuse_a_group_change_that_moves_no_one(scim, admin, op):
    """Rules activated and not yet applied want the full Engineer license for Engineering's
    members by either of its names. The IdP changes the group's externalId, or renames it to
    the other name: the rules want for ann what they wanted before the change, which asks
    for nothing (was 409, the IdP retrying for ever); ann waits for the seat, as her own
    PATCH of another attribute would leave her."""
    catalogue(admin, engineer_seats=1)
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    holder = scim.create_user("holder@example.com")["id"]
    ok(admin.put(f"/api/v1/users/{holder}/license", {"license": "Engineer"}))
    ann = scim.create_user("ann@example.com")["id"]
    group = scim.create_group("Engineering", [ann], externalId="eng-1")["id"]
    activate(admin, ENGINEERING_GIVES_ENGINEER)
    resp = scim.patch_ops(f"/scim/v2/Groups/{group}", op)
    assert resp.status_code == 204, resp.get_json()
    assert _licenses(admin, ann) == (None, "Engineer")
    assert events(admin, outcome="failure") == []


def test_strict_seats_never_refuse_adding_a_waiting_member_to_a_group_no_rule_names(scim, admin):
    """ann waits for Planner (renamed away from Engineering, as above); the IdP adds her to a
    group no rule names: nothing new asked for, not refused (was 409, and Okta's whole-group
    PUT carrying her failed for every member)."""
    ann, engineering = _mover_in_engineering(scim, admin)
    staff = scim.create_group("All Staff")["id"]
    rename = {"op": "replace", "path": "displayName", "value": "Platform"}
    assert scim.patch_ops(f"/scim/v2/Groups/{engineering}", rename).status_code == 204
    assert _licenses(admin, ann) == ("Engineer", "Planner")
    add = {"op": "add", "path": "members", "value": [{"value": ann}]}
    resp = scim.patch_ops(f"/scim/v2/Groups/{staff}", add)
    assert resp.status_code == 204, resp.get_json()
    body = {"schemas": [GROUP_SCHEMA], "displayName": "All Staff", "members": [{"value": ann}]}
    assert scim.put(f"/scim/v2/Groups/{staff}", body).status_code == 200
    assert _licenses(admin, ann) == ("Engineer", "Planner")
    assert events(admin, outcome="failure") == []


def test_strict_seats_never_refuse_adding_a_member_to_a_group_no_rule_names(scim, admin):
    """Rules not yet applied want the full Engineer license for bob's department; the IdP
    adds him to a group no rule names: the addition is not what asks for the seat, so it is
    not refused and bob waits for it."""
    catalogue(admin, engineer_seats=1)
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    holder = scim.create_user("holder@example.com")["id"]
    ok(admin.put(f"/api/v1/users/{holder}/license", {"license": "Engineer"}))
    bob = scim.create_user("bob@example.com", **{ENTERPRISE: {"department": "Eng"}})["id"]
    group = scim.create_group("Misc")["id"]
    eng = {"name": "eng", "when": {"attribute": "department", "equals": "Eng"}}
    activate(admin, {"mode": "first-match", "rules": [{**eng, "then": {"license": "Engineer"}}]})
    add = {"op": "add", "path": "members", "value": [{"value": bob}]}
    resp = scim.patch_ops(f"/scim/v2/Groups/{group}", add)
    assert resp.status_code == 204, resp.get_json()
    assert _licenses(admin, bob) == (None, "Engineer")


_ENG_GROUP = {
    "mode": "first-match",
    "rules": [{"name": "eng", "when": {"member_of": "Eng"}, "then": {"license": "Engineer"}}],
}


def _seat_held_through_eng(scim, admin) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Strict seats; Engineer's only seat held by a leaver through group Eng; a joiner, not in
    Eng, whose id sorts before the leaver's (the order that refused the move)."""
    make_license(admin, "Engineer", 1)
    activate(admin, _ENG_GROUP)
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    leaver = person(scim, "leaver@example.com")
    group = scim.create_group("Eng", [leaver["id"]])["id"]
    joiner = person_sorting_before(scim, leaver)
    assert account(admin, leaver["id"])["license"]["value"] == "Engineer"
    return leaver, group, joiner


def _seat_moved(admin, leaver: dict[str, Any], joiner: dict[str, Any]) -> None:
    assert account(admin, joiner["id"])["license"] == {
        "value": "Engineer",
        "source": "rule",
        "rule": "eng",
    }
    assert account(admin, leaver["id"])["license"] is None
    engineer = licenses_by_name(admin)["Engineer"]
    assert (engineer["used"], engineer["seats_left"]) == (1, 0)
    assert events(admin, outcome="failure") == []


@pytest.mark.parametrize("order", ["remove_then_add", "add_then_remove"])
def test_strict_seats_let_one_group_patch_hand_a_seat_from_the_leaver_to_the_joiner(
    scim, admin, order
):
    """One PATCH of Eng removes the seat's holder and adds another user: the seat freed is
    the one taken, the license stays within its limit, so it succeeds (204) in either
    operation order (was 409 "No seat left" when the joiner's id sorted first: the joiner
    was evaluated before the leaver gave the seat back)."""
    leaver, group, joiner = _seat_held_through_eng(scim, admin)
    remove = {"op": "remove", "path": f'members[value eq "{leaver["id"]}"]'}
    add = {"op": "add", "path": "members", "value": [{"value": joiner["id"]}]}
    ops = [remove, add] if order == "remove_then_add" else [add, remove]

    resp = scim.patch_ops(f"/scim/v2/Groups/{group}", *ops)

    assert resp.status_code == 204, resp.get_json()
    members = scim.get(f"/scim/v2/Groups/{group}").get_json()["members"]
    assert [m["value"] for m in members] == [joiner["id"]]
    _seat_moved(admin, leaver, joiner)


def test_strict_seats_let_a_group_put_replace_the_seat_holder(scim, admin):
    """A group PUT (how several IdPs push a group) replacing members [leaver] with [joiner]
    on Engineer's only seat: 200, the seat moves (was 409 when the joiner's id sorted first,
    a PUT the IdP retried for ever)."""
    leaver, group, joiner = _seat_held_through_eng(scim, admin)
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Eng", "members": [{"value": joiner["id"]}]}

    resp = scim.put(f"/scim/v2/Groups/{group}", body)

    assert resp.status_code == 200, resp.get_json()
    assert [m["value"] for m in resp.get_json()["members"]] == [joiner["id"]]
    _seat_moved(admin, leaver, joiner)
