"""Groups and their members (RFC 7643 §4.2, RFC 7644 §3.5.2), through HTTP only.

Group PATCH answers 204 with an ETag, unless ``attributes`` or
``excludedAttributes`` asks for a body (then 200 with that projection).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scim_server.models import GroupMember
from tests.support import GROUP_SCHEMA, USER_SCHEMA, Scim
from tests.support.data import insert_users

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def gurl(group: dict[str, Any] | str) -> str:
    gid = group if isinstance(group, str) else group["id"]
    return f"/scim/v2/Groups/{gid}"


def uurl(user: dict[str, Any]) -> str:
    return f"/scim/v2/Users/{user['id']}"


def read(scim: Scim, url: str) -> dict[str, Any]:
    resp = scim.get(url)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def member_ids(group: dict[str, Any]) -> set[str]:
    return {m["value"] for m in group.get("members", [])}


def group_ids(user: dict[str, Any]) -> set[str]:
    return {g["value"] for g in user.get("groups", [])}


def assert_error(resp: Any, status: int, scim_type: str | None) -> None:
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body


def assert_no_content(resp: Any) -> str:
    """A 204 with an empty body and an ETag; returns the ETag."""
    assert resp.status_code == 204, resp.get_json(silent=True)
    assert resp.get_data() == b""
    return resp.headers["ETag"]


@pytest.fixture
def people(scim: Scim) -> dict[str, dict[str, Any]]:
    """Four users of acme: alice and carol have a displayName, bob and dave do not."""
    return {
        "alice": scim.create_user("alice", displayName="Alice Adams"),
        "bob": scim.create_user("bob"),
        "carol": scim.create_user("carol", displayName="Carol Clark"),
        "dave": scim.create_user("dave"),
    }


@pytest.fixture
def team(scim: Scim, people: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The group "Team" with alice and bob."""
    return scim.create_group("Team", [people["alice"]["id"], people["bob"]["id"]])


# -- create and read ----------------------------------------------------------------------


def test_create_group_with_users_and_nested_group(
    scim: Scim, people: dict[str, dict[str, Any]]
) -> None:
    """A group created with two users and a group lists each with value, $ref, type and display."""
    alice, bob = people["alice"], people["bob"]
    sub = scim.create_group("Sub")
    resp = scim.post(
        "/scim/v2/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Parent",
            "members": [
                {"value": alice["id"]},
                {"value": bob["id"], "type": "User"},
                {"value": sub["id"]},
            ],
        },
    )
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    assert resp.headers["Location"].endswith(gurl(created))
    group = read(scim, gurl(created))
    assert created == group
    assert group["displayName"] == "Parent"
    by_id = {m["value"]: m for m in group["members"]}
    assert by_id == {
        alice["id"]: {
            "value": alice["id"],
            "$ref": f"http://localhost/scim/v2/Users/{alice['id']}",
            "type": "User",
            "display": "Alice Adams",
        },
        bob["id"]: {
            "value": bob["id"],
            "$ref": f"http://localhost/scim/v2/Users/{bob['id']}",
            "type": "User",
            "display": "bob",
        },
        sub["id"]: {
            "value": sub["id"],
            "$ref": f"http://localhost/scim/v2/Groups/{sub['id']}",
            "type": "Group",
            "display": "Sub",
        },
    }
    assert group["meta"]["resourceType"] == "Group"
    assert group["meta"]["version"] == resp.headers["ETag"]


def test_users_show_derived_groups(scim: Scim, people: dict[str, dict[str, Any]]) -> None:
    """A member's `groups` lists each direct group with value, $ref, display and type."""
    alice = people["alice"]
    team = scim.create_group("Team", [alice["id"]])
    other = scim.create_group("Other", [alice["id"]])
    groups = read(scim, uurl(alice))["groups"]
    assert sorted(groups, key=lambda g: g["display"]) == [
        {
            "value": other["id"],
            "$ref": f"http://localhost/scim/v2/Groups/{other['id']}",
            "display": "Other",
            "type": "direct",
        },
        {
            "value": team["id"],
            "$ref": f"http://localhost/scim/v2/Groups/{team['id']}",
            "display": "Team",
            "type": "direct",
        },
    ]
    assert "groups" not in read(scim, uurl(people["bob"]))


def test_create_group_with_unknown_member_fails(scim: Scim, people: dict[str, Any]) -> None:
    """Creating a group with an unknown member id is 400 invalidValue and creates nothing."""
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Ghosts",
        "members": [{"value": people["alice"]["id"]}, {"value": "no-such-id"}],
    }
    assert_error(scim.post("/scim/v2/Groups", body), 400, "invalidValue")
    listed = scim.get('/scim/v2/Groups?filter=displayName eq "Ghosts"').get_json()
    assert listed["totalResults"] == 0
    assert "groups" not in read(scim, uurl(people["alice"]))


# -- PATCH: adding ----------------------------------------------------------------------------


def test_patch_add_members(scim: Scim, people: dict[str, Any], team: dict[str, Any]) -> None:
    """Adding members answers 204 with the new ETag; the re-read group lists them too."""
    carol, dave = people["carol"], people["dave"]
    resp = scim.patch_ops(
        gurl(team),
        {"op": "Add", "path": "members", "value": [{"value": carol["id"]}, {"value": dave["id"]}]},
    )
    tag = assert_no_content(resp)
    group = read(scim, gurl(team))
    assert member_ids(group) == {people[n]["id"] for n in ("alice", "bob", "carol", "dave")}
    assert group["meta"]["version"] == tag != team["meta"]["version"]
    assert group_ids(read(scim, uurl(carol))) == {team["id"]}


def test_patch_add_nested_group(scim: Scim, team: dict[str, Any]) -> None:
    """A group can be added as a member of another group, typed Group."""
    sub = scim.create_group("Sub")
    assert_no_content(
        scim.patch_ops(
            gurl(team), {"op": "add", "path": "members", "value": [{"value": sub["id"]}]}
        )
    )
    members = {m["value"]: m for m in read(scim, gurl(team))["members"]}
    assert members[sub["id"]]["type"] == "Group"
    assert members[sub["id"]]["display"] == "Sub"


@pytest.mark.parametrize(
    ("query", "expected_keys"),
    [
        pytest.param("?attributes=members", {"schemas", "id", "members"}, id="attributes"),
        pytest.param(
            "?attributes=displayName", {"schemas", "id", "displayName"}, id="attributes-other"
        ),
        pytest.param(
            "?excludedAttributes=members", {"schemas", "id", "displayName", "meta"}, id="excluded"
        ),
    ],
)
def test_patch_group_with_projection_returns_body(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], query: str, expected_keys: set[str]
) -> None:
    """With attributes/excludedAttributes, group PATCH answers 200 with that projection."""
    carol = people["carol"]
    resp = scim.patch_ops(
        gurl(team) + query, {"op": "add", "path": "members", "value": [{"value": carol["id"]}]}
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == expected_keys
    group = read(scim, gurl(team))
    assert resp.headers["ETag"] == group["meta"]["version"]
    assert carol["id"] in member_ids(group)
    if "members" in body:
        assert body["members"] == group["members"]


@pytest.mark.parametrize(
    "names",
    [pytest.param(["alice"], id="one"), pytest.param(["alice", "bob"], id="two")],
)
def test_duplicate_member_add_is_noop(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], names: list[str]
) -> None:
    """Adding members who are already there is 204 and keeps the version and the members."""
    before = read(scim, gurl(team))
    value = [{"value": people[n]["id"]} for n in names]
    tag = assert_no_content(
        scim.patch_ops(gurl(team), {"op": "add", "path": "members", "value": value})
    )
    after = read(scim, gurl(team))
    assert after == before
    assert tag == before["meta"]["version"]


def test_same_member_twice_in_one_add(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """A member listed twice in one add is added once."""
    carol = people["carol"]["id"]
    value = [{"value": carol}, {"value": carol}]
    assert_no_content(scim.patch_ops(gurl(team), {"op": "add", "path": "members", "value": value}))
    members = [m["value"] for m in read(scim, gurl(team))["members"]]
    assert members.count(carol) == 1
    assert len(members) == 3


# -- PATCH: removing and replacing ---------------------------------------------------------------


def test_remove_member_by_filter(scim: Scim, people: dict[str, Any], team: dict[str, Any]) -> None:
    """remove with path members[value eq "id"] removes exactly that member."""
    alice, bob = people["alice"], people["bob"]
    path = f'members[value eq "{alice["id"]}"]'
    tag = assert_no_content(scim.patch_ops(gurl(team), {"op": "remove", "path": path}))
    group = read(scim, gurl(team))
    assert member_ids(group) == {bob["id"]}
    assert group["meta"]["version"] == tag != team["meta"]["version"]
    assert "groups" not in read(scim, uurl(alice))


@pytest.mark.parametrize(
    ("path", "left"),
    [
        pytest.param('members[type eq "Group"]', {"alice", "bob"}, id="type-group"),
        pytest.param('members[type eq "User"]', {"Sub"}, id="type-user"),
        pytest.param('members[display eq "alice adams"]', {"bob", "Sub"}, id="display"),
        pytest.param('members[value eq "no-such-id"]', {"alice", "bob", "Sub"}, id="no-match"),
    ],
)
def test_remove_members_by_other_filters(
    scim: Scim, people: dict[str, Any], path: str, left: set[str]
) -> None:
    """remove with a members[...] filter on type or display removes exactly the matches."""
    sub = scim.create_group("Sub")
    ids = {"alice": people["alice"]["id"], "bob": people["bob"]["id"], "Sub": sub["id"]}
    group = scim.create_group("Mixed", list(ids.values()))
    tag = assert_no_content(scim.patch_ops(gurl(group), {"op": "remove", "path": path}))
    assert member_ids(read(scim, gurl(group))) == {ids[n] for n in left}
    assert (tag == group["meta"]["version"]) == (len(left) == 3)


def test_remove_members_by_value_list(scim: Scim, people: dict[str, Any]) -> None:
    """Entra's remove with path "members" and a value list removes exactly the listed members."""
    ids = {n: people[n]["id"] for n in ("alice", "bob", "carol", "dave")}
    group = scim.create_group("Four", list(ids.values()))
    resp = scim.patch_ops(
        gurl(group),
        {
            "op": "Remove",
            "path": "members",
            "value": [{"value": ids["alice"]}, {"value": ids["carol"]}],
        },
    )
    assert_no_content(resp)
    assert member_ids(read(scim, gurl(group))) == {ids["bob"], ids["dave"]}


def test_remove_absent_member_is_noop(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """Removing someone who is not a member is 204 and keeps the version."""
    before = read(scim, gurl(team))
    value = [{"value": people["carol"]["id"]}]
    tag = assert_no_content(
        scim.patch_ops(gurl(team), {"op": "remove", "path": "members", "value": value})
    )
    assert read(scim, gurl(team)) == before
    assert tag == before["meta"]["version"]


def test_replace_members(scim: Scim, people: dict[str, Any], team: dict[str, Any]) -> None:
    """replace with path "members" makes the given list the whole membership."""
    carol, bob = people["carol"]["id"], people["bob"]["id"]
    resp = scim.patch_ops(
        gurl(team),
        {"op": "replace", "path": "members", "value": [{"value": carol}, {"value": bob}]},
    )
    assert_no_content(resp)
    assert member_ids(read(scim, gurl(team))) == {carol, bob}
    assert "groups" not in read(scim, uurl(people["alice"]))


def test_replace_filtered_member(scim: Scim, people: dict[str, Any], team: dict[str, Any]) -> None:
    """replace with path members[value eq "a"] swaps that member for the given one."""
    alice, bob, carol = (people[n]["id"] for n in ("alice", "bob", "carol"))
    resp = scim.patch_ops(
        gurl(team),
        {"op": "replace", "path": f'members[value eq "{alice}"]', "value": [{"value": carol}]},
    )
    assert_no_content(resp)
    assert member_ids(read(scim, gurl(team))) == {bob, carol}


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "remove", "path": "members"}, id="remove-path-members"),
        pytest.param({"op": "replace", "path": "members", "value": []}, id="replace-with-empty"),
    ],
)
def test_remove_all_members(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], op: dict[str, Any]
) -> None:
    """Removing all members leaves the group without a members attribute."""
    assert_no_content(scim.patch_ops(gurl(team), op))
    group = read(scim, gurl(team))
    assert "members" not in group
    assert group["displayName"] == "Team"
    assert "groups" not in read(scim, uurl(people["alice"]))


def test_add_and_remove_in_one_request(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """Several member operations in one PATCH apply in order."""
    alice, bob, carol = (people[n]["id"] for n in ("alice", "bob", "carol"))
    resp = scim.patch_ops(
        gurl(team),
        {"op": "add", "path": "members", "value": [{"value": carol}]},
        {"op": "remove", "path": f'members[value eq "{alice}"]'},
        {"op": "replace", "path": "displayName", "value": "Team 2"},
    )
    assert_no_content(resp)
    group = read(scim, gurl(team))
    assert member_ids(group) == {bob, carol}
    assert group["displayName"] == "Team 2"
    assert group["meta"]["version"] != team["meta"]["version"]


# -- PATCH: failures change nothing ----------------------------------------------------------


def _unknown_id(people: dict[str, Any], team: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"op": "add", "path": "members", "value": [{"value": people["carol"]["id"]}]},
        {
            "op": "add",
            "path": "members",
            "value": [{"value": "00000000-0000-0000-0000-000000000000"}],
        },
    ]


def _self(people: dict[str, Any], team: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"op": "add", "path": "members", "value": [{"value": people["carol"]["id"]}]},
        {"op": "add", "path": "members", "value": [{"value": team["id"]}]},
    ]


def _wrong_type(people: dict[str, Any], team: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "op": "add",
            "path": "members",
            "value": [{"value": people["carol"]["id"], "type": "Group"}],
        }
    ]


def _replace_unknown(people: dict[str, Any], team: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "members", "value": [{"value": "no-such-id"}]}]


def _no_value(people: dict[str, Any], team: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"op": "add", "path": "members", "value": [{"display": "Carol"}]}]


def _member_sub(people: dict[str, Any], team: dict[str, Any]) -> list[dict[str, Any]]:
    path = f'members[value eq "{people["alice"]["id"]}"].display'
    return [{"op": "replace", "path": path, "value": "Someone"}]


def _rename_then_fail(people: dict[str, Any], team: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"op": "replace", "path": "displayName", "value": "Renamed"},
        {"op": "remove", "path": f'members[value eq "{people["alice"]["id"]}"]'},
        {"op": "add", "path": "members", "value": [{"value": "no-such-id"}]},
    ]


def _remove_display_name(people: dict[str, Any], team: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"op": "add", "path": "members", "value": [{"value": people["carol"]["id"]}]},
        {"op": "remove", "path": "displayName"},
    ]


@pytest.mark.parametrize(
    ("build", "scim_type"),
    [
        pytest.param(_unknown_id, "invalidValue", id="unknown-member-id"),
        pytest.param(_self, "invalidValue", id="group-contains-itself"),
        pytest.param(_wrong_type, "invalidValue", id="declared-type-mismatch"),
        pytest.param(_replace_unknown, "invalidValue", id="replace-with-unknown-id"),
        pytest.param(_no_value, "invalidValue", id="member-without-value"),
        pytest.param(_member_sub, "mutability", id="member-sub-attribute"),
        pytest.param(_rename_then_fail, "invalidValue", id="rename-remove-then-unknown"),
        pytest.param(_remove_display_name, "mutability", id="remove-required-displayName"),
    ],
)
def test_failing_member_patch_changes_nothing(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], build: Any, scim_type: str
) -> None:
    """A group PATCH with a failing operation is 400 and leaves group and members as they were."""
    before = read(scim, gurl(team))
    assert_error(scim.patch_ops(gurl(team), *build(people, team)), 400, scim_type)
    assert read(scim, gurl(team)) == before
    assert "groups" not in read(scim, uurl(people["carol"]))


def test_put_group_containing_itself_fails(scim: Scim, team: dict[str, Any]) -> None:
    """PUT listing the group among its own members is 400 invalidValue and changes nothing."""
    before = read(scim, gurl(team))
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Team", "members": [{"value": team["id"]}]}
    assert_error(scim.put(gurl(team), body), 400, "invalidValue")
    assert read(scim, gurl(team)) == before


def test_group_patch_with_stale_etag_fails(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """If-Match with an old ETag on a group PATCH is 412 and changes nothing."""
    stale = team["meta"]["version"]
    assert_no_content(
        scim.patch_ops(gurl(team), {"op": "replace", "path": "displayName", "value": "T2"})
    )
    before = read(scim, gurl(team))
    add = {"op": "add", "path": "members", "value": [{"value": people["carol"]["id"]}]}
    assert_error(scim.patch_ops(gurl(team), add, headers={"If-Match": stale}), 412, None)
    assert read(scim, gurl(team)) == before
    tag = assert_no_content(
        scim.patch_ops(gurl(team), add, headers={"If-Match": before["meta"]["version"]})
    )
    assert tag != before["meta"]["version"]


# -- the user's derived groups -------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "add", "path": "groups"}, id="add-path"),
        pytest.param({"op": "replace", "path": "groups"}, id="replace-path"),
        pytest.param({"op": "remove", "path": "groups"}, id="remove-path"),
        pytest.param({"op": "replace"}, id="no-path"),
    ],
)
def test_user_groups_is_read_only(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], op: dict[str, Any]
) -> None:
    """PATCH on a user's `groups` is 400 mutability; memberships stay as they were."""
    alice, other = people["alice"], scim.create_group("Other")
    before = read(scim, uurl(alice))
    value = [{"value": other["id"]}]
    if op.get("path") is None:
        op = {**op, "value": {"groups": value}}
    elif op["op"] != "remove":
        op = {**op, "value": value}
    assert_error(scim.patch_ops(uurl(alice), op), 400, "mutability")
    assert read(scim, uurl(alice)) == before
    assert group_ids(before) == {team["id"]}
    assert "members" not in read(scim, gurl(other))


def test_put_user_ignores_groups(scim: Scim, people: dict[str, Any], team: dict[str, Any]) -> None:
    """`groups` sent in a user PUT is ignored: memberships do not change."""
    alice, other = people["alice"], scim.create_group("Other")
    body = read(scim, uurl(alice))
    body["groups"] = [{"value": other["id"]}]
    body["displayName"] = "Alice B. Adams"
    resp = scim.put(uurl(alice), body)
    assert resp.status_code == 200, resp.get_json()
    assert group_ids(read(scim, uurl(alice))) == {team["id"]}
    assert "members" not in read(scim, gurl(other))


def test_member_display_follows_user_rename(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """A member's display is derived: renaming the user changes it in the group."""
    alice = people["alice"]
    scim.patch_ops(uurl(alice), {"op": "replace", "path": "displayName", "value": "Alice Z"})
    members = {m["value"]: m for m in read(scim, gurl(team))["members"]}
    assert members[alice["id"]]["display"] == "Alice Z"


# -- deletion --------------------------------------------------------------------------------------


def test_deleting_user_removes_memberships(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """After a member user is deleted, the group no longer lists it."""
    alice, bob = people["alice"], people["bob"]
    assert scim.delete(uurl(alice)).status_code == 204
    assert scim.get(uurl(alice)).status_code == 404
    assert member_ids(read(scim, gurl(team))) == {bob["id"]}
    found = scim.get(f'/scim/v2/Groups?filter=members[value eq "{alice["id"]}"]').get_json()
    assert found["totalResults"] == 0


def test_deleting_group_removes_it_from_users(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """After a group is deleted, its former members' `groups` no longer include it."""
    alice, bob = people["alice"], people["bob"]
    other = scim.create_group("Other", [alice["id"]])
    assert scim.delete(gurl(team)).status_code == 204
    assert scim.get(gurl(team)).status_code == 404
    assert group_ids(read(scim, uurl(alice))) == {other["id"]}
    assert "groups" not in read(scim, uurl(bob))


def test_deleting_nested_group_removes_it_from_parent(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """After a nested group is deleted, its parent no longer lists it."""
    parent = scim.create_group("Parent", [team["id"], people["carol"]["id"]])
    assert scim.delete(gurl(team)).status_code == 204
    after = read(scim, gurl(parent))
    assert member_ids(after) == {people["carol"]["id"]}
    assert after["meta"]["version"] != parent["meta"]["version"]
    cached = scim.get(gurl(parent), headers={"If-None-Match": parent["meta"]["version"]})
    assert cached.status_code == 200


def test_deleting_user_moves_group_version(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """After a member user is deleted, the group's version moves and its old ETag is stale."""
    assert scim.delete(uurl(people["alice"])).status_code == 204
    cached = scim.get(gurl(team), headers={"If-None-Match": team["meta"]["version"]})
    assert cached.status_code == 200
    assert cached.get_json()["meta"]["version"] != team["meta"]["version"]


def test_deleting_parent_group_keeps_nested_group(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """Deleting a group that contains another group leaves the contained group and its members."""
    parent = scim.create_group("Parent", [team["id"]])
    before = read(scim, gurl(team))
    assert scim.delete(gurl(parent)).status_code == 204
    assert read(scim, gurl(team)) == before


# -- renaming and uniqueness -----------------------------------------------------------------------


def test_rename_by_no_path_replace_with_id(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """Okta's rename (no-path replace repeating the id) is 204; the new name shows everywhere."""
    resp = scim.patch_ops(
        gurl(team), {"op": "replace", "value": {"id": team["id"], "displayName": "Team Renamed"}}
    )
    tag = assert_no_content(resp)
    group = read(scim, gurl(team))
    assert group["displayName"] == "Team Renamed"
    assert group["meta"]["version"] == tag != team["meta"]["version"]
    assert member_ids(group) == member_ids(team)
    assert read(scim, uurl(people["alice"]))["groups"][0]["display"] == "Team Renamed"


def test_rename_with_other_id_fails(scim: Scim, team: dict[str, Any]) -> None:
    """A no-path replace carrying a different id is 400 mutability and renames nothing."""
    before = read(scim, gurl(team))
    resp = scim.patch_ops(
        gurl(team), {"op": "replace", "value": {"id": "other", "displayName": "X"}}
    )
    assert_error(resp, 400, "mutability")
    assert read(scim, gurl(team)) == before


def test_display_name_unique_on_create(scim: Scim) -> None:
    """Creating a group whose displayName is taken, in any case, is 409 uniqueness."""
    scim.create_group("Engineering")
    for name in ("Engineering", "engineering", "ENGINEERING"):
        resp = scim.post("/scim/v2/Groups", {"schemas": [GROUP_SCHEMA], "displayName": name})
        assert_error(resp, 409, "uniqueness")
    listed = scim.get('/scim/v2/Groups?filter=displayName eq "engineering"').get_json()
    assert listed["totalResults"] == 1


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "replace", "path": "displayName", "value": "ENGINEERING"}, id="path"),
        pytest.param({"op": "replace", "value": {"displayName": "engineering"}}, id="no-path"),
    ],
)
def test_display_name_unique_on_rename(
    scim: Scim, team: dict[str, Any], op: dict[str, Any]
) -> None:
    """Renaming a group to another group's name, in any case, is 409 and changes nothing."""
    scim.create_group("Engineering")
    before = read(scim, gurl(team))
    assert_error(scim.patch_ops(gurl(team), op), 409, "uniqueness")
    assert read(scim, gurl(team)) == before


def test_display_name_unique_on_put(scim: Scim, team: dict[str, Any]) -> None:
    """PUT renaming a group to a taken name is 409 and changes nothing."""
    scim.create_group("Engineering")
    before = read(scim, gurl(team))
    body = {"schemas": [GROUP_SCHEMA], "displayName": "engineering"}
    assert_error(scim.put(gurl(team), body), 409, "uniqueness")
    assert read(scim, gurl(team)) == before


def test_rename_to_own_name_in_other_case(scim: Scim, team: dict[str, Any]) -> None:
    """A group may change the case of its own displayName."""
    op = {"op": "replace", "path": "displayName", "value": "TEAM"}
    assert_no_content(scim.patch_ops(gurl(team), op))
    assert read(scim, gurl(team))["displayName"] == "TEAM"


def test_freed_name_can_be_reused(scim: Scim, team: dict[str, Any]) -> None:
    """After a rename, the old displayName is free for a new group."""
    assert_no_content(
        scim.patch_ops(gurl(team), {"op": "replace", "path": "displayName", "value": "Crew"})
    )
    assert scim.create_group("team")["displayName"] == "team"


# -- PUT -----------------------------------------------------------------------------------------------


def test_put_group_replaces_membership(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """PUT with a members list makes it the whole membership; 200 with the group."""
    bob, carol, dave = (people[n]["id"] for n in ("bob", "carol", "dave"))
    body = read(scim, gurl(team))
    body["members"] = [{"value": bob}, {"value": carol}, {"value": dave}]
    resp = scim.put(gurl(team), body)
    assert resp.status_code == 200, resp.get_json()
    group = read(scim, gurl(team))
    assert resp.get_json() == group
    assert resp.headers["ETag"] == group["meta"]["version"] != team["meta"]["version"]
    assert member_ids(group) == {bob, carol, dave}
    assert {m["value"]: m["display"] for m in group["members"]}[dave] == "dave"
    assert "groups" not in read(scim, uurl(people["alice"]))


def test_put_group_without_members_clears_them(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """PUT without members leaves the group with none."""
    resp = scim.put(gurl(team), {"schemas": [GROUP_SCHEMA], "displayName": "Team"})
    assert resp.status_code == 200, resp.get_json()
    assert "members" not in read(scim, gurl(team))
    assert "groups" not in read(scim, uurl(people["bob"]))


def test_put_group_unchanged_keeps_version(scim: Scim, team: dict[str, Any]) -> None:
    """PUT of the group exactly as read (members included) keeps meta.version."""
    before = read(scim, gurl(team))
    resp = scim.put(gurl(team), before)
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == before["meta"]["version"]
    assert read(scim, gurl(team)) == before


# -- organizations -------------------------------------------------------------------------------------


def test_other_org_member_cannot_be_added(
    scim: Scim, other_scim: Scim, team: dict[str, Any]
) -> None:
    """Adding another organization's user to an acme group is 400 invalidValue; nothing changes."""
    stranger = other_scim.create_user("stranger")
    before = read(scim, gurl(team))
    add = {"op": "add", "path": "members", "value": [{"value": stranger["id"]}]}
    assert_error(scim.patch_ops(gurl(team), add), 400, "invalidValue")
    assert read(scim, gurl(team)) == before
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Mixed",
        "members": [{"value": stranger["id"]}],
    }
    assert_error(scim.post("/scim/v2/Groups", body), 400, "invalidValue")
    assert "groups" not in read(other_scim, f"/scim/v2/Users/{stranger['id']}")


def test_other_org_cannot_see_or_change_group(
    scim: Scim, other_scim: Scim, team: dict[str, Any]
) -> None:
    """Another organization gets 404 for acme's group on GET, PATCH, PUT and DELETE."""
    stranger = other_scim.create_user("stranger")
    before = read(scim, gurl(team))
    add = {"op": "add", "path": "members", "value": [{"value": stranger["id"]}]}
    assert_error(other_scim.get(gurl(team)), 404, None)
    assert_error(other_scim.patch_ops(gurl(team), add), 404, None)
    assert_error(
        other_scim.put(gurl(team), {"schemas": [GROUP_SCHEMA], "displayName": "X"}), 404, None
    )
    assert_error(other_scim.delete(gurl(team)), 404, None)
    assert read(scim, gurl(team)) == before
    assert other_scim.get("/scim/v2/Groups").get_json()["totalResults"] == 0


def test_same_display_name_in_two_orgs(scim: Scim, other_scim: Scim, team: dict[str, Any]) -> None:
    """displayName uniqueness is per organization."""
    assert other_scim.create_group("Team")["displayName"] == "Team"


# -- database state ----------------------------------------------------------------------------------


def _rows(session: Session) -> set[tuple[str, str, str, str]]:
    rows = session.execute(
        select(
            GroupMember.org_id, GroupMember.group_id, GroupMember.member_id, GroupMember.member_type
        )
    ).all()
    session.commit()
    return {tuple(r) for r in rows}  # type: ignore[misc]


def test_patch_add_inserts_exactly_one_row(
    scim: Scim, session: Session, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """Adding one member via PATCH adds exactly that one row to group_members, nothing else."""
    scim.create_group("Other", [people["alice"]["id"], people["dave"]["id"]])
    before = _rows(session)
    assert len(before) == 4
    carol = people["carol"]["id"]
    assert_no_content(
        scim.patch_ops(gurl(team), {"op": "add", "path": "members", "value": [{"value": carol}]})
    )
    after = _rows(session)
    assert after - before == {(scim.org_id, team["id"], carol, "User")}
    assert before <= after


def _indexed(session: Session, org_id: str, group_id: str) -> list[tuple[str, str]]:
    from scim_server.models import AttributeValue

    session.expire_all()
    return sorted(
        (row.attr, row.value)
        for row in session.scalars(
            select(AttributeValue).where(
                AttributeValue.org_id == org_id, AttributeValue.resource_id == group_id
            )
        )
    )


def test_renames_reindex_and_member_changes_leave_the_index(
    scim: Scim, session: Session, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """The attribute index follows the group's attributes; members never enter it."""
    gid = team["id"]
    assert ("displayname", team["displayName"]) in _indexed(session, scim.org_id, gid)
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{gid}", {"op": "replace", "path": "displayName", "value": "Renamed"}
    )
    assert resp.status_code in (200, 204)
    after_rename = _indexed(session, scim.org_id, gid)
    assert ("displayname", "Renamed") in after_rename
    assert ("displayname", team["displayName"]) not in after_rename
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{gid}",
        {"op": "add", "path": "members", "value": [{"value": people["carol"]["id"]}]},
    )
    assert resp.status_code in (200, 204)
    assert _indexed(session, scim.org_id, gid) == after_rename


def test_membership_changes_are_new_versions_of_the_user(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """A user's `groups` is part of it: joining or leaving a group moves its ETag, so a
    client holding the old one gets the new representation, not 304."""
    carol = people["carol"]
    url = f"/scim/v2/Users/{carol['id']}"
    before = scim.get(url)
    etag = before.headers["ETag"]
    assert scim.get(url, headers={"If-None-Match": etag}).status_code == 304
    group_url = f"/scim/v2/Groups/{team['id']}"
    add = {"op": "add", "path": "members", "value": [{"value": carol["id"]}]}
    assert scim.patch_ops(group_url, add).status_code in (200, 204)
    joined = scim.get(url, headers={"If-None-Match": etag})
    assert joined.status_code == 200
    assert [g["value"] for g in joined.get_json()["groups"]] == [team["id"]]
    assert joined.headers["ETag"] != etag
    assert joined.get_json()["meta"]["lastModified"] > before.get_json()["meta"]["lastModified"]
    # An If-Match with the old version is refused: the client has not seen the membership.
    put = {"schemas": [USER_SCHEMA], "userName": carol["userName"], "title": "x"}
    assert scim.put(url, put, headers={"If-Match": etag}).status_code == 412
    remove = {"op": "remove", "path": f'members[value eq "{carol["id"]}"]'}
    assert scim.patch_ops(group_url, remove).status_code in (200, 204)
    left = scim.get(url, headers={"If-None-Match": joined.headers["ETag"]})
    assert left.status_code == 200 and "groups" not in left.get_json()
    # Members who did not move keep their version.
    alice = scim.get(f"/scim/v2/Users/{people['alice']['id']}")
    assert alice.headers["ETag"] == 'W/"2"'  # created, then added to Team


# -- large groups: members are bounded by the server's limits, not by 100 (issue 15, item 0) --

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def stored_members(session: Session, group_id: str) -> int:
    count = session.scalar(
        select(func.count()).select_from(GroupMember).where(GroupMember.group_id == group_id)
    )
    session.commit()
    return int(count or 0)


def test_post_group_with_5000_members(scim: Scim, session: Session) -> None:
    """POST /Groups with 5,000 members (Okta, imports) is 201 and stores every one."""
    ids = insert_users(session, scim.org_id, 5000)
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Everyone",
        "members": [{"value": i, "display": "x", "type": "User"} for i in ids],
    }
    resp = scim.post("/scim/v2/Groups", body)
    assert resp.status_code == 201, resp.get_json()
    assert member_ids(resp.get_json()) == set(ids)
    assert stored_members(session, resp.get_json()["id"]) == 5000
    assert member_ids(read(scim, gurl(resp.get_json()))) == set(ids)


def test_put_group_with_5000_members(scim: Scim, session: Session, team: dict[str, Any]) -> None:
    """PUT /Groups/{id} with 5,000 members (Okta Group Push) is 200 and replaces the members."""
    ids = insert_users(session, scim.org_id, 5000)
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Team",
        "members": [{"value": i} for i in ids],
    }
    resp = scim.put(gurl(team), body)
    assert resp.status_code == 200, resp.get_json()
    assert member_ids(resp.get_json()) == set(ids)
    assert stored_members(session, team["id"]) == 5000


def _too_many_post(scim: Scim, team: dict[str, Any], ids: list[str]) -> Any:
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Big", "members": [{"value": i} for i in ids]}
    return scim.post("/scim/v2/Groups", body)


def _too_many_put(scim: Scim, team: dict[str, Any], ids: list[str]) -> Any:
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Team",
        "members": [{"value": i} for i in ids],
    }
    return scim.put(gurl(team), body)


def _too_many_patch(scim: Scim, team: dict[str, Any], ids: list[str]) -> Any:
    # Spread over two operations: the limit is per request, not per operation.
    half = len(ids) // 2
    return scim.patch_ops(
        gurl(team),
        {"op": "add", "path": "members", "value": [{"value": i} for i in ids[:half]]},
        {"op": "replace", "path": "members", "value": [{"value": i} for i in ids[half:]]},
    )


def _too_many_bulk(scim: Scim, team: dict[str, Any], ids: list[str]) -> Any:
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Team",
        "members": [{"value": i} for i in ids],
    }
    resp = scim.post(
        "/scim/v2/Bulk",
        {
            "schemas": [BULK_REQUEST],
            "Operations": [{"method": "PUT", "path": f"/Groups/{team['id']}", "data": body}],
        },
    )
    assert resp.status_code == 200, resp.get_json()
    result = resp.get_json()["Operations"][0]
    assert result["status"] == "400"
    return result["response"]


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(_too_many_post, id="post"),
        pytest.param(_too_many_put, id="put"),
        pytest.param(_too_many_patch, id="patch"),
        pytest.param(_too_many_bulk, id="bulk"),
    ],
)
def test_more_members_than_the_limit_is_400_naming_it(
    app: Flask, scim: Scim, session: Session, team: dict[str, Any], send: Any
) -> None:
    """More members in one request than SCIM_MAX_INLINE_MEMBERS is 400 invalidValue naming the
    setting, the same for POST, PUT, PATCH and Bulk, and changes nothing."""
    app.config["MAX_INLINE_MEMBERS"] = 10
    ids = insert_users(session, scim.org_id, 11)
    before = read(scim, gurl(team))
    resp = send(scim, team, ids)
    body = resp if isinstance(resp, dict) else resp.get_json()
    if not isinstance(resp, dict):
        assert resp.status_code == 400, body
    assert body["scimType"] == "invalidValue", body
    assert "SCIM_MAX_INLINE_MEMBERS" in body["detail"] and "10" in body["detail"]
    assert read(scim, gurl(team)) == before
    assert "Big" not in [
        g["displayName"] for g in scim.get("/scim/v2/Groups").get_json()["Resources"]
    ]


def test_members_up_to_the_limit_are_accepted(
    app: Flask, scim: Scim, session: Session, team: dict[str, Any]
) -> None:
    """Exactly SCIM_MAX_INLINE_MEMBERS members in a PUT is accepted."""
    app.config["MAX_INLINE_MEMBERS"] = 10
    ids = insert_users(session, scim.org_id, 10)
    assert _too_many_put(scim, team, ids).status_code == 200
    assert stored_members(session, team["id"]) == 10


def test_body_larger_than_the_limit_is_413_naming_it(
    app: Flask, scim: Scim, team: dict[str, Any]
) -> None:
    """A body over SCIM_MAX_BODY_BYTES is a SCIM 413 that names the setting and its value."""
    app.config["MAX_CONTENT_LENGTH"] = 2000
    members = [{"value": str(uuid.uuid4())} for _ in range(100)]
    resp = scim.put(
        gurl(team), {"schemas": [GROUP_SCHEMA], "displayName": "Team", "members": members}
    )
    assert_error(resp, 413, None)
    assert "SCIM_MAX_BODY_BYTES" in resp.get_json()["detail"]
    assert "2000" in resp.get_json()["detail"]


# -- members[].display (RFC 7643 §4.2: sub-attributes set when the member is added) ----------------


def displays(group: dict[str, Any]) -> dict[str, str]:
    return {m["value"]: m["display"] for m in group.get("members", [])}


def stored_displays(session: Session, group_id: str) -> dict[str, str | None]:
    rows = session.execute(
        select(GroupMember.member_id, GroupMember.display).where(GroupMember.group_id == group_id)
    ).all()
    session.commit()
    return dict(rows)  # type: ignore[arg-type]


def test_post_keeps_the_display_a_client_sets(
    scim: Scim, session: Session, people: dict[str, Any]
) -> None:
    """POST with a member display returns and stores it; a member without one shows its own name."""
    alice, bob = people["alice"]["id"], people["bob"]["id"]
    resp = scim.post(
        "/scim/v2/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Sales",
            "members": [{"value": alice, "display": "Alice (Sales)"}, {"value": bob}],
        },
    )
    assert resp.status_code == 201, resp.get_json()
    assert displays(resp.get_json()) == {alice: "Alice (Sales)", bob: "bob"}
    assert displays(read(scim, gurl(resp.get_json()))) == {alice: "Alice (Sales)", bob: "bob"}
    assert stored_displays(session, resp.get_json()["id"]) == {alice: "Alice (Sales)", bob: None}


def test_patch_add_keeps_the_display_a_client_sets(
    scim: Scim, session: Session, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """PATCH add of a member with a display returns that display, not the member's own name."""
    carol = people["carol"]["id"]
    value = [{"value": carol, "display": "C. Clark", "type": "User"}]
    resp = scim.patch_ops(
        gurl(team) + "?attributes=members",
        {"op": "add", "path": "members", "value": value},
    )
    assert resp.status_code == 200, resp.get_json()
    assert displays(resp.get_json())[carol] == "C. Clark"
    group = read(scim, gurl(team))
    assert displays(group) == {
        people["alice"]["id"]: "Alice Adams",
        people["bob"]["id"]: "bob",
        carol: "C. Clark",
    }
    assert stored_displays(session, team["id"])[carol] == "C. Clark"


def test_member_without_display_follows_rename_with_display_does_not(
    scim: Scim, people: dict[str, Any]
) -> None:
    """Without a client display, the member's current name shows; a client display stays as set."""
    alice, carol = people["alice"], people["carol"]
    group = scim.create_group("Pair", [])
    scim.patch_ops(
        gurl(group),
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
        {"op": "add", "path": "members", "value": [{"value": carol["id"], "display": "CC"}]},
    )
    for person in (alice, carol):
        resp = scim.patch_ops(
            uurl(person), {"op": "replace", "path": "displayName", "value": "Renamed"}
        )
        assert resp.status_code in (200, 204), resp.get_json()
    assert displays(read(scim, gurl(group))) == {alice["id"]: "Renamed", carol["id"]: "CC"}


def test_readding_a_member_with_another_display_keeps_the_first(
    scim: Scim, session: Session, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """A member's display is immutable: adding it again with another display changes nothing."""
    carol = people["carol"]["id"]
    add = {"op": "add", "path": "members", "value": [{"value": carol, "display": "First"}]}
    tag = assert_no_content(scim.patch_ops(gurl(team), add))
    again = {"op": "add", "path": "members", "value": [{"value": carol, "display": "Second"}]}
    assert assert_no_content(scim.patch_ops(gurl(team), again)) == tag
    assert displays(read(scim, gurl(team)))[carol] == "First"
    # An existing member (added without a display) does not gain one either.
    alice = people["alice"]["id"]
    late = {"op": "add", "path": "members", "value": [{"value": alice, "display": "Late"}]}
    assert assert_no_content(scim.patch_ops(gurl(team), late)) == tag
    assert displays(read(scim, gurl(team)))[alice] == "Alice Adams"
    assert stored_displays(session, team["id"])[alice] is None


def test_same_member_twice_in_one_add_keeps_the_first_display(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """A member listed twice in one add, with two displays, is added once with the first."""
    carol = people["carol"]["id"]
    value = [{"value": carol, "display": "One"}, {"value": carol, "display": "Two"}]
    assert_no_content(scim.patch_ops(gurl(team), {"op": "add", "path": "members", "value": value}))
    assert displays(read(scim, gurl(team)))[carol] == "One"


def test_put_keeps_existing_member_display_and_sets_new_ones(
    scim: Scim, session: Session, people: dict[str, Any]
) -> None:
    """PUT re-listing a member with another display keeps the stored one; new members get theirs."""
    alice, bob, dave = (people[n]["id"] for n in ("alice", "bob", "dave"))
    group = scim.post(
        "/scim/v2/Groups",
        {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Ops",
            "members": [{"value": alice, "display": "Alice (Ops)"}, {"value": bob}],
        },
    ).get_json()
    body = read(scim, gurl(group))
    body["members"] = [
        {"value": alice, "display": "Alice changed"},
        {"value": bob, "display": "Bob late"},
    ]
    resp = scim.put(gurl(group), body)
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == group["meta"]["version"]
    assert displays(resp.get_json()) == {alice: "Alice (Ops)", bob: "bob"}
    body["members"] = [{"value": alice}, {"value": dave, "display": "Dave (Ops)"}]
    resp = scim.put(gurl(group), body)
    assert resp.status_code == 200, resp.get_json()
    assert displays(read(scim, gurl(group))) == {alice: "Alice (Ops)", dave: "Dave (Ops)"}
    assert stored_displays(session, group["id"]) == {alice: "Alice (Ops)", dave: "Dave (Ops)"}


def test_group_member_keeps_the_display_a_client_sets(scim: Scim, team: dict[str, Any]) -> None:
    """A member that is a group shows the display the client set, else the group's name."""
    sub, other = scim.create_group("Sub"), scim.create_group("Other")
    value = [{"value": sub["id"], "display": "Subteam", "type": "Group"}, {"value": other["id"]}]
    assert_no_content(scim.patch_ops(gurl(team), {"op": "add", "path": "members", "value": value}))
    shown = displays(read(scim, gurl(team)))
    assert (shown[sub["id"]], shown[other["id"]]) == ("Subteam", "Other")


def test_list_filter_and_bulk_show_the_client_display(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """List pages, members[display ...] filters and Bulk-created groups use the client display."""
    carol = people["carol"]["id"]
    value = [{"value": carol, "display": "Kiki"}]
    assert_no_content(scim.patch_ops(gurl(team), {"op": "add", "path": "members", "value": value}))
    page = scim.get('/scim/v2/Groups?filter=members[display eq "kiki"]').get_json()
    assert [g["id"] for g in page["Resources"]] == [team["id"]]
    assert displays(page["Resources"][0])[carol] == "Kiki"
    assert (
        scim.get('/scim/v2/Groups?filter=members.display eq "carol clark"').get_json()[
            "totalResults"
        ]
        == 0
    )
    assert_no_content(
        scim.patch_ops(gurl(team), {"op": "remove", "path": 'members[display eq "KIKI"]'})
    )
    assert carol not in member_ids(read(scim, gurl(team)))
    resp = scim.post(
        "/scim/v2/Bulk",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Groups",
                    "bulkId": "g1",
                    "data": {
                        "schemas": [GROUP_SCHEMA],
                        "displayName": "Bulk",
                        "members": [{"value": carol, "display": "Kiki"}],
                    },
                }
            ],
        },
    )
    assert resp.status_code == 200, resp.get_json()
    result = resp.get_json()["Operations"][0]
    assert result["status"] == "201", result
    assert displays(read(scim, result["location"].removeprefix("http://localhost"))) == {
        carol: "Kiki"
    }


@pytest.mark.parametrize(
    "display",
    [
        pytest.param(42, id="number"),
        pytest.param({"x": 1}, id="object"),
        pytest.param("x" * 513, id="too-long"),
        pytest.param("a\x00b", id="nul"),
    ],
)
@pytest.mark.parametrize("how", ["post", "patch"])
def test_bad_member_display_is_400_and_changes_nothing(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], display: Any, how: str
) -> None:
    """A member display that is not a string of at most 512 characters is 400 invalidValue."""
    member = {"value": people["carol"]["id"], "display": display}
    before = read(scim, gurl(team))
    if how == "post":
        body = {"schemas": [GROUP_SCHEMA], "displayName": "Bad", "members": [member]}
        resp = scim.post("/scim/v2/Groups", body)
    else:
        resp = scim.patch_ops(gurl(team), {"op": "add", "path": "members", "value": [member]})
    assert_error(resp, 400, "invalidValue")
    assert read(scim, gurl(team)) == before
    assert scim.get('/scim/v2/Groups?filter=displayName eq "Bad"').get_json()["totalResults"] == 0


def test_remove_by_compound_member_filter(scim: Scim) -> None:
    """remove with members[type eq "Group" or not (value ne "x")] removes just those members."""
    alice = scim.create_user("alice@example.com")["id"]
    bob = scim.create_user("bob@example.com")["id"]
    inner = scim.create_group("Inner")["id"]
    team = scim.create_group("Team", [alice, bob, inner])
    path = f'members[type eq "group" or not (value ne "{alice}")]'
    assert_no_content(scim.patch_ops(gurl(team), {"op": "remove", "path": path}))
    assert member_ids(read(scim, gurl(team))) == {bob}


def test_remove_by_member_filter_with_operators(scim: Scim) -> None:
    """remove with sw and pr on members narrows by the members' own values."""
    alice = scim.create_user("alice@example.com")["id"]
    bob = scim.create_user("bob@example.com")["id"]
    team = scim.create_group("Team", [alice, bob])
    path = f'members[value sw "{bob[:8]}" and type pr]'
    assert_no_content(scim.patch_ops(gurl(team), {"op": "remove", "path": path}))
    assert member_ids(read(scim, gurl(team))) == {alice}


@pytest.mark.parametrize(
    ("path", "scim_type"),
    [
        ('members[$ref eq "x"]', "invalidFilter"),
        ("members[value eq null]", "invalidFilter"),
        ('members[nickname eq "x"]', "invalidFilter"),
        ('members[value eq "a"].display', "mutability"),
    ],
)
def test_bad_member_filter_is_refused_and_changes_nothing(
    scim: Scim, path: str, scim_type: str
) -> None:
    """A member filter the server cannot apply is a 400 with its scimType; the group keeps its version."""
    alice = scim.create_user("alice@example.com")["id"]
    team = scim.create_group("Team", [alice])
    resp = scim.patch_ops(gurl(team), {"op": "remove", "path": path})
    assert_error(resp, 400, scim_type)
    after = read(scim, gurl(team))
    assert member_ids(after) == {alice}
    assert after["meta"]["version"] == team["meta"]["version"]


def test_member_display_filter_compares_the_display_shown(
    scim: Scim, people: dict[str, Any]
) -> None:
    """members[display ...] compares the display the group shows (RFC 7643 §4.2): a user with a
    displayName shows it, so its userName is not its display and matches no display filter."""
    alice, bob = people["alice"]["id"], people["bob"]["id"]  # "Alice Adams" (userName alice), bob
    group = scim.create_group("Pair", [alice, bob])
    assert displays(read(scim, gurl(group))) == {alice: "Alice Adams", bob: "bob"}
    found = scim.get(
        "/scim/v2/Groups",
        query_string={"filter": 'members[display eq "alice"]', "attributes": "displayName"},
    )
    assert found.status_code == 200, found.get_json()
    assert found.get_json()["totalResults"] == 0


def test_remove_by_member_display_ne_keeps_the_member_with_that_display(
    scim: Scim, people: dict[str, Any]
) -> None:
    """remove members[display ne "Alice Adams"] removes the members whose display is not
    "Alice Adams": bob, and not alice, whose display it is."""
    alice, bob = people["alice"]["id"], people["bob"]["id"]
    group = scim.create_group("Pair", [alice, bob])
    path = 'members[display ne "Alice Adams"]'
    assert_no_content(scim.patch_ops(gurl(group), {"op": "remove", "path": path}))
    assert member_ids(read(scim, gurl(group))) == {alice}
    assert group_ids(read(scim, uurl(people["alice"]))) == {group["id"]}


def test_patch_refused_as_too_many_to_return_changes_nothing(
    app: Flask, scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """A PATCH that asks for the members back (attributes=members) of a group that would then be
    too large to return inline: if the answer is an error, nothing was written (a client that
    gets a 400 does not expect the member added, and its retry or report would be wrong)."""
    app.config["MAX_INLINE_MEMBERS"] = 2  # the team has alice and bob
    carol = people["carol"]
    resp = scim.patch_ops(
        gurl(team) + "?attributes=members",
        {"op": "add", "path": "members", "value": [{"value": carol["id"]}]},
    )
    if resp.status_code >= 400:
        after = read(scim, gurl(team) + "?excludedAttributes=members")
        assert after["meta"]["version"] == team["meta"]["version"], resp.get_json()
        assert "groups" not in read(scim, uurl(carol))


# -- a member object without "value"; sub-attribute names in any case ---------------------

MEMBER_VALUE_NEEDED = "Each member needs a string 'value' (the member's id)."


@pytest.mark.parametrize(
    "member",
    [
        pytest.param(lambda uid: {"$ref": f"http://localhost/scim/v2/Users/{uid}"}, id="ref-only"),
        pytest.param(lambda uid: {"$ref": f"/scim/v2/Users/{uid}", "type": "User"}, id="ref-type"),
        pytest.param(lambda uid: {"display": "Alice Adams"}, id="display-only"),
    ],
)
def test_create_group_with_a_member_without_value_is_400(
    scim: Scim, people: dict[str, Any], member: Any
) -> None:
    """RFC 7643 §4.2 names a member by its "value"; a member given by "$ref" or "display"
    only is a 400 invalidValue (as a PATCH says it), never a 500, and creates nothing."""
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Ref Only",
        "members": [member(people["alice"]["id"])],
    }
    resp = scim.post("/scim/v2/Groups", body)
    assert_error(resp, 400, "invalidValue")
    assert resp.get_json()["detail"] == MEMBER_VALUE_NEEDED
    assert scim.get("/scim/v2/Groups").get_json()["totalResults"] == 0
    assert "groups" not in read(scim, uurl(people["alice"]))


def test_replace_group_with_a_member_without_value_is_400_and_keeps_members(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """PUT /Groups/{id} with a member object lacking "value" is a 400 that changes nothing."""
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Team",
        "members": [{"value": people["carol"]["id"]}, {"display": "Alice Adams"}],
    }
    resp = scim.put(gurl(team), body)
    assert_error(resp, 400, "invalidValue")
    assert resp.get_json()["detail"] == MEMBER_VALUE_NEEDED
    after = read(scim, gurl(team))
    assert member_ids(after) == {people["alice"]["id"], people["bob"]["id"]}
    assert after["meta"]["version"] == team["meta"]["version"]


def test_patch_add_member_with_capitalised_sub_attribute_names(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """RFC 7643 §2.1: sub-attribute names are case-insensitive. A PATCH add of
    {"Value": id, "Type": "User", "Display": ...} adds the member, as POST and PUT take it."""
    carol = people["carol"]
    member = {"Value": carol["id"], "Type": "User", "Display": "Carol C."}
    assert_no_content(
        scim.patch_ops(gurl(team), {"op": "Add", "path": "members", "value": [member]})
    )
    group = read(scim, gurl(team))
    assert member_ids(group) == {people[n]["id"] for n in ("alice", "bob", "carol")}
    assert {m["value"]: m.get("display") for m in group["members"]}[carol["id"]] == "Carol C."


def test_patch_add_member_with_a_capitalised_type_of_the_wrong_kind_is_refused(
    scim: Scim, team: dict[str, Any]
) -> None:
    """The "Type" read case-insensitively is checked too: a group named as a User is a 400."""
    other = scim.create_group("Other")
    resp = scim.patch_ops(
        gurl(team),
        {"op": "Add", "path": "members", "value": [{"VALUE": other["id"], "TYPE": "User"}]},
    )
    assert_error(resp, 400, "invalidValue")
    assert read(scim, gurl(team))["meta"]["version"] == team["meta"]["version"]


def test_patch_remove_member_with_capitalised_sub_attribute_name(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """The Entra form of remove ("value": [{"value": id}]) with "Value" capitalised removes
    that member, and only it."""
    resp = scim.patch_ops(
        gurl(team),
        {"op": "Remove", "path": "members", "value": [{"Value": people["alice"]["id"]}]},
    )
    assert_no_content(resp)
    assert member_ids(read(scim, gurl(team))) == {people["bob"]["id"]}


# -- excludedAttributes of a member sub-attribute (RFC 7644 §3.4.2.5) -----------------------

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def _group_get(scim: Scim, team: dict[str, Any]) -> list[dict[str, Any]]:
    resp = scim.get(gurl(team), query_string={"excludedAttributes": "members.display"})
    assert resp.status_code == 200, resp.get_json()
    return [resp.get_json()]


def _group_list(scim: Scim, team: dict[str, Any]) -> list[dict[str, Any]]:
    resp = scim.get("/scim/v2/Groups", query_string={"excludedAttributes": "members.display"})
    assert resp.status_code == 200, resp.get_json()
    return list(resp.get_json()["Resources"])


def _group_search(scim: Scim, team: dict[str, Any]) -> list[dict[str, Any]]:
    body = {"schemas": [SEARCH], "excludedAttributes": ["members.display"]}
    resp = scim.post("/scim/v2/Groups/.search", body)
    assert resp.status_code == 200, resp.get_json()
    return list(resp.get_json()["Resources"])


def _group_patch(scim: Scim, team: dict[str, Any]) -> list[dict[str, Any]]:
    op = {"op": "replace", "path": "displayName", "value": "Team 2"}
    resp = scim.patch_ops(gurl(team), op, query_string={"excludedAttributes": "members.display"})
    assert resp.status_code == 200, resp.get_json(silent=True)
    return [resp.get_json()]


@pytest.mark.parametrize(
    "fetch",
    [
        pytest.param(_group_get, id="GET-by-id"),
        pytest.param(_group_list, id="GET-list"),
        pytest.param(_group_search, id="POST-search"),
        pytest.param(_group_patch, id="PATCH-answer"),
    ],
)
def test_excluding_a_member_sub_attribute_keeps_the_members(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], fetch: Any
) -> None:
    """RFC 7644 §3.4.2.5: excludedAttributes=members.display removes only `display` from each
    member; the group still lists its members (value, $ref, type)."""
    groups = fetch(scim, team)
    (group,) = [g for g in groups if g["id"] == team["id"]]
    assert member_ids(group) == {people["alice"]["id"], people["bob"]["id"]}, group
    assert all(
        set(m) == {"value", "$ref", "type"} and m["type"] == "User" for m in group["members"]
    )


@pytest.mark.parametrize(
    "excluded", ["members.value", "urn:ietf:params:scim:schemas:core:2.0:Group:members.display"]
)
def test_excluding_other_member_sub_attributes_keeps_the_members(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], excluded: str
) -> None:
    """Another sub-attribute, or one named under the core URN, leaves the members listed too;
    only `members` itself drops them."""
    resp = scim.get(gurl(team), query_string={"excludedAttributes": excluded})
    assert resp.status_code == 200, resp.get_json()
    assert len(resp.get_json()["members"]) == 2
    whole = scim.get(gurl(team), query_string={"excludedAttributes": "members"})
    assert whole.status_code == 200 and "members" not in whole.get_json()


def test_attributes_naming_a_member_sub_attribute_loads_the_members(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """attributes=members.value lists each member's value (and nothing of the group's own)."""
    resp = scim.get(gurl(team), query_string={"attributes": "members.value"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert member_ids(body) == {people["alice"]["id"], people["bob"]["id"]}
    assert "displayName" not in body


@pytest.mark.parametrize("listed", [False, True], ids=["GET-by-id", "GET-list"])
def test_excluding_groups_display_keeps_the_users_groups(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], listed: bool
) -> None:
    """RFC 7644 §3.4.2.5: excludedAttributes=groups.display on a user keeps its `groups`
    (value, $ref, type), without their display."""
    if listed:
        params = {"filter": 'userName eq "alice"', "excludedAttributes": "groups.display"}
        resp = scim.get("/scim/v2/Users", query_string=params)
        assert resp.status_code == 200, resp.get_json()
        (user,) = resp.get_json()["Resources"]
    else:
        resp = scim.get(
            uurl(people["alice"]), query_string={"excludedAttributes": "groups.display"}
        )
        assert resp.status_code == 200, resp.get_json()
        user = resp.get_json()
    assert [g["value"] for g in user.get("groups", [])] == [team["id"]], user
    assert "display" not in user["groups"][0]


def test_a_page_of_users_excluding_groups_display_keeps_their_groups(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """The same on a page of several users (rendered from the page's reads)."""
    resp = scim.get("/scim/v2/Users", query_string={"excludedAttributes": "groups.display"})
    assert resp.status_code == 200, resp.get_json()
    by_name = {u["userName"]: u for u in resp.get_json()["Resources"]}
    assert [g["value"] for g in by_name["bob"]["groups"]] == [team["id"]]
    assert "groups" not in by_name["carol"]


# -- members.value / groups.value are caseExact false (RFC 7643 §4.2, §8.7.1) ----------------


def _case_exact(scim: Scim, schema: str, attr: str) -> bool:
    doc = read(scim, f"/scim/v2/Schemas/{schema}")
    (found,) = [a for a in doc["attributes"] if a["name"] == attr]
    (value,) = [s for s in found["subAttributes"] if s["name"] == "value"]
    return bool(value["caseExact"])


@pytest.mark.parametrize(
    "filter_",
    [
        'members.value eq "{}"',
        'members[value eq "{}"]',
        'members[type eq "User" and value sw "{}"]',
    ],
)
def test_member_value_filter_follows_the_advertised_case_exactness(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], filter_: str
) -> None:
    """RFC 7644 §3.4.2.2: `eq` respects the attribute's caseExact; /Schemas says members.value
    is caseExact false, so an id given in upper case finds the group."""
    assert _case_exact(scim, GROUP_SCHEMA, "members") is False
    upper = people["alice"]["id"].upper()
    resp = scim.get("/scim/v2/Groups", query_string={"filter": filter_.format(upper)})
    assert resp.status_code == 200, resp.get_json()
    assert [g["id"] for g in resp.get_json()["Resources"]] == [team["id"]]


def test_user_groups_value_filter_follows_the_advertised_case_exactness(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """The same for a user's groups.value (advertised caseExact false)."""
    assert _case_exact(scim, USER_SCHEMA, "groups") is False
    upper = team["id"].upper()
    resp = scim.get("/scim/v2/Users", query_string={"filter": f'groups.value eq "{upper}"'})
    assert resp.status_code == 200, resp.get_json()
    found = {u["id"] for u in resp.get_json()["Resources"]}
    assert found == {people["alice"]["id"], people["bob"]["id"]}


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(lambda uid: {"op": "remove", "path": f'members[value eq "{uid}"]'}, id="okta"),
        pytest.param(
            lambda uid: {"op": "remove", "path": "members", "value": [{"value": uid}]},
            id="entra",
        ),
    ],
)
def test_remove_member_named_in_upper_case(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], op: Any
) -> None:
    """A remove naming the member's id in upper case removes it (not a 204 that leaves it in)."""
    alice = people["alice"]
    assert_no_content(scim.patch_ops(gurl(team), op(alice["id"].upper())))
    assert member_ids(read(scim, gurl(team))) == {people["bob"]["id"]}
    assert "groups" not in read(scim, uurl(alice))


def test_add_and_replace_members_named_in_upper_case(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """add (and a replace of the whole list) naming ids in upper case adds the members under
    their own ids, once; a PUT keeping the same members in upper case changes nothing."""
    carol, alice, bob = (people[n]["id"] for n in ("carol", "alice", "bob"))
    add = {"op": "add", "path": "members", "value": [{"value": carol.upper(), "display": "C"}]}
    assert_no_content(scim.patch_ops(gurl(team), add))
    group = read(scim, gurl(team))
    assert member_ids(group) == {alice, bob, carol}
    assert displays(group)[carol] == "C"
    again = {"op": "add", "path": "members", "value": [{"value": carol}]}
    version = group["meta"]["version"]
    assert assert_no_content(scim.patch_ops(gurl(team), again)) == version
    replace = {
        "op": "replace",
        "path": "members",
        "value": [{"value": i.upper()} for i in (alice, carol)],
    }
    assert_no_content(scim.patch_ops(gurl(team), replace))
    assert member_ids(read(scim, gurl(team))) == {alice, carol}
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Team",
        "members": [{"value": alice.upper()}, {"value": carol}],
    }
    resp = scim.put(gurl(team), body)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["meta"]["version"] == read(scim, gurl(team))["meta"]["version"]
    assert member_ids(resp.get_json()) == {alice, carol}


def test_group_cannot_contain_itself_named_in_upper_case(scim: Scim, team: dict[str, Any]) -> None:
    """The self-membership check compares ids as the filter does."""
    op = {"op": "add", "path": "members", "value": [{"value": team["id"].upper()}]}
    assert_error(scim.patch_ops(gurl(team), op), 400, "invalidValue")


# -- a member filter that matches nothing (RFC 7644 §3.5.2.3) --------------------------------


@pytest.mark.parametrize("op", ["replace", "add"])
@pytest.mark.parametrize(
    "path",
    [
        'members[display co "nobody"]',
        'members[type eq "Group" or value eq "x"]',
        'members[display pr and type eq "Group"]',
    ],
)
def test_change_through_member_filter_matching_nothing_is_no_target(
    scim: Scim, people: dict[str, Any], team: dict[str, Any], op: str, path: str
) -> None:
    """A replace (or add) through a value filter that matches nothing is 400 noTarget and the
    whole PATCH is rolled back: it does not add the value as a new member."""
    before = read(scim, gurl(team))
    ops = [
        {"op": "replace", "path": "displayName", "value": "Renamed"},
        {"op": op, "path": path, "value": [{"value": people["carol"]["id"]}]},
    ]
    assert_error(scim.patch_ops(gurl(team), *ops), 400, "noTarget")
    assert read(scim, gurl(team)) == before
    assert "groups" not in read(scim, uurl(people["carol"]))


def test_replace_through_member_filter_matching_some_swaps_them(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """A replace through a non-`eq` filter that matches swaps the matched members."""
    op = {
        "op": "replace",
        "path": 'members[display co "Adams"]',
        "value": [{"value": people["carol"]["id"]}],
    }
    assert_no_content(scim.patch_ops(gurl(team), op))
    assert member_ids(read(scim, gurl(team))) == {people["bob"]["id"], people["carol"]["id"]}


def test_replace_through_all_eq_member_filter_matching_nothing_adds(
    scim: Scim, people: dict[str, Any], team: dict[str, Any]
) -> None:
    """README's documented exception: an all-`eq` filter that matches nothing (Entra ID)
    adds the value; a remove through a filter matching nothing stays a no-op (Okta retries)."""
    carol, dave = people["carol"]["id"], people["dave"]["id"]
    op = {"op": "replace", "path": f'members[value eq "{dave}"]', "value": [{"value": carol}]}
    assert_no_content(scim.patch_ops(gurl(team), op))
    assert carol in member_ids(read(scim, gurl(team)))
    gone = {"op": "remove", "path": 'members[display co "nobody"]'}
    assert_no_content(scim.patch_ops(gurl(team), gone))
    assert len(member_ids(read(scim, gurl(team)))) == 3


# -- nested groups: no cycle ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["patch-add", "patch-replace", "put"])
def test_nested_group_cycle_is_refused(scim: Scim, team: dict[str, Any], how: str) -> None:
    """A group cannot contain itself, directly or through other groups: with Team in Middle
    and Middle in Top, adding Top (or Middle) to Team is 400 invalidValue and changes nothing."""
    middle = scim.create_group("Middle", [team["id"]])
    top = scim.create_group("Top", [middle["id"]])
    before = read(scim, gurl(team))
    for parent in (middle, top):
        members = [*before["members"], {"value": parent["id"], "type": "Group"}]
        if how == "put":
            body = {"schemas": [GROUP_SCHEMA], "displayName": "Team", "members": members}
            resp = scim.put(gurl(team), body)
        else:
            op = {"op": how.removeprefix("patch-"), "path": "members", "value": members}
            resp = scim.patch_ops(gurl(team), op)
        assert_error(resp, 400, "invalidValue")
        assert read(scim, gurl(team)) == before


def test_nested_groups_without_a_cycle_are_accepted(scim: Scim, team: dict[str, Any]) -> None:
    """A group reached by two paths (a diamond) is no cycle: Team in Left and Right, both in Top."""
    left = scim.create_group("Left", [team["id"]])
    right = scim.create_group("Right", [team["id"]])
    top = scim.create_group("Top", [left["id"]])
    op = {"op": "add", "path": "members", "value": [{"value": right["id"]}]}
    assert_no_content(scim.patch_ops(gurl(top), op))
    assert member_ids(read(scim, gurl(top))) == {left["id"], right["id"]}


# -- PATCH member objects are checked as POST and PUT check them -------------------------------


@pytest.mark.parametrize(
    ("extra", "scim_type"),
    [
        pytest.param({"type": ["Group"]}, "invalidValue", id="type-not-a-string"),
        pytest.param({"$ref": 5}, "invalidValue", id="ref-not-a-string"),
        pytest.param({"bogus": 1}, "invalidSyntax", id="unknown-sub-attribute"),
        pytest.param({"value": ["x"]}, "invalidValue", id="value-not-a-string"),
    ],
)
@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_patch_member_with_malformed_sub_attribute_is_refused(
    scim: Scim,
    people: dict[str, Any],
    team: dict[str, Any],
    extra: dict[str, Any],
    scim_type: str,
    op: str,
) -> None:
    """A member object POST /Groups refuses is refused by PATCH too, with the same error, and
    the group is left as it was."""
    carol = people["carol"]["id"] if op != "remove" else people["alice"]["id"]
    member = {"value": carol, **extra}
    post = scim.post(
        "/scim/v2/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "X", "members": [member]}
    )
    assert_error(post, 400, scim_type)
    before = read(scim, gurl(team))
    resp = scim.patch_ops(gurl(team), {"op": op, "path": "members", "value": [member]})
    assert_error(resp, 400, scim_type)
    assert resp.get_json()["detail"] == post.get_json()["detail"]
    assert read(scim, gurl(team)) == before
