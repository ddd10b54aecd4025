"""``scim.audit_hooks``: a refused SCIM write is logged as a failure, found by whom it was about."""

from __future__ import annotations

from typing import Any

from tests.support import USER_SCHEMA, Scim


def _failures(admin: Scim, **query: str) -> list[dict[str, Any]]:
    resp = admin.get("/api/v1/audit", query_string={"outcome": "failure", **query})
    assert resp.status_code == 200
    return resp.get_json()["events"]


def test_a_refused_patch_is_found_by_the_accounts_user_name(scim: Scim, admin: Scim) -> None:
    """README: ``?user_name=...&outcome=failure``. A refused PATCH (Entra's deprovisioning one,
    say) names no userName in its body: the event carries the account's current userName
    and externalId (it carried neither, and the documented search missed it)."""
    user = scim.create_user("bjensen@example.com", externalId="ext-bj")
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "userName", "value": ""}
    )
    assert resp.status_code == 400
    found = _failures(admin, user_name="bjensen@example.com")
    assert [(e["action"], e["resource_id"]) for e in found] == [("user.patch", user["id"])]
    assert found[0]["external_id"] == "ext-bj" and found[0]["status"] == 400
    assert [e["action"] for e in _failures(admin, external_id="ext-bj")] == ["user.patch"]


def test_a_refused_delete_and_put_carry_the_accounts_identity(scim: Scim, admin: Scim) -> None:
    """A DELETE (no body) refused by its precondition, and a PUT whose body lacks the
    userName: both logged under the account's current userName and externalId."""
    user = scim.create_user("carol@example.com", externalId="ext-carol")
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.delete(url, headers=scim.headers({"If-Match": 'W/"not-the-version"'}))
    assert resp.status_code == 412
    resp = scim.put(url, {"schemas": [USER_SCHEMA], "displayName": "No userName"})
    assert resp.status_code == 400
    found = _failures(admin, user_name="carol@example.com")
    assert [e["action"] for e in found] == ["user.replace", "user.delete"]
    assert {e["external_id"] for e in found} == {"ext-carol"}
    assert scim.get(url).status_code == 200  # refused: nothing changed


def test_a_refused_write_keeps_the_identity_its_body_gives(scim: Scim, admin: Scim) -> None:
    """A PUT that tries a userName another account has: logged under the name it asked for
    (as before), the externalId it did not give read from the account."""
    scim.create_user("taken@example.com")
    user = scim.create_user("dora@example.com", externalId="ext-dora")
    resp = scim.put(
        f"/scim/v2/Users/{user['id']}", {"schemas": [USER_SCHEMA], "userName": "taken@example.com"}
    )
    assert resp.status_code == 409
    (event,) = _failures(admin, action="user.replace")
    assert event["user_name"] == "taken@example.com" and event["external_id"] == "ext-dora"


def test_a_refused_group_patch_carries_the_groups_external_id(scim: Scim, admin: Scim) -> None:
    """A group's refusal: its externalId from the group (the log has no column for its
    displayName)."""
    group = scim.create_group("Sales", externalId="ext-sales")
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{group['id']}", {"op": "replace", "path": "nope", "value": 1}
    )
    assert resp.status_code == 400
    (event,) = _failures(admin, action="group.patch")
    assert event["resource_id"] == group["id"] and event["external_id"] == "ext-sales"
    assert event["user_name"] is None


def test_a_refused_write_of_another_organizations_user_names_nobody(
    scim: Scim, other_scim: Scim, admin: Scim
) -> None:
    """A PATCH of another organization's user id (404): the failure is logged in the
    caller's organization, and says nothing of the other one's account."""
    theirs = other_scim.create_user("secret@other.example", externalId="ext-secret")
    resp = scim.patch_ops(
        f"/scim/v2/Users/{theirs['id']}", {"op": "replace", "path": "title", "value": "x"}
    )
    assert resp.status_code == 404
    (event,) = _failures(admin, action="user.patch")
    assert event["resource_id"] == theirs["id"]
    assert event["user_name"] is None and event["external_id"] is None
