"""Entra and Okta PATCH forms whose value decides what changes: a manager removed by name, the contact's phone from the primary number."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import ENTERPRISE, Scim
from tests.support.admin_api import events

PRODUCT = "urn:scim-server:schemas:extension:product:1.0:User"
MANAGER = f"{ENTERPRISE}:manager"


def last_patch(admin: Scim, user: dict[str, Any]) -> dict[str, Any]:
    """The newest ``user.patch`` audit event of ``user``."""
    return events(admin, action="user.patch", resource_id=user["id"])[-1]


def test_entra_remove_of_a_former_manager_keeps_the_current_one(scim: Scim) -> None:
    """Entra's remove names the manager it removes; a stale one must not clear the new manager."""
    old = scim.create_user("old-boss@contoso.com")
    new = scim.create_user("new-boss@contoso.com")
    user = scim.create_user("emp@contoso.com", **{ENTERPRISE: {"manager": {"value": new["id"]}}})
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.patch_ops(
        url,
        {"op": "Remove", "path": f"{ENTERPRISE}:manager", "value": [{"value": old["id"]}]},
    )
    assert resp.status_code in (200, 204, 400), resp.get_json()
    assert scim.get(url).get_json().get(ENTERPRISE, {}).get("manager", {}).get("value") == new["id"]


def test_contact_phone_follows_the_primary_phone_number(scim: Scim, admin: Scim) -> None:
    """As for e-mail, the contact's phone is the primary phone number, not the first listed."""
    user = scim.create_user(
        "emp@contoso.com", phoneNumbers=[{"value": "+1 555 0100", "type": "work"}]
    )
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.patch_ops(
        url,
        {
            "op": "add",
            "path": "phoneNumbers",
            "value": [{"value": "+1 555 0199", "type": "mobile", "primary": True}],
        },
    )
    assert resp.status_code == 200, resp.get_json()
    contact_id = scim.get(url).get_json()[PRODUCT]["contactId"]
    contact = admin.get(f"/api/v1/contacts/{contact_id}").get_json()
    assert contact["phone"] == "+1 555 0199"


def test_remove_of_a_manager_named_with_a_capitalised_value(scim: Scim) -> None:
    """RFC 7643 §2.1: {"Value": id} names the manager as {"value": id} does: the former one
    removes nothing, the current one removes it."""
    old = scim.create_user("old-boss@contoso.com")
    new = scim.create_user("new-boss@contoso.com")
    user = scim.create_user("emp@contoso.com", **{ENTERPRISE: {"manager": {"value": new["id"]}}})
    url = f"/scim/v2/Users/{user['id']}"
    path = f"{ENTERPRISE}:manager"
    stale = scim.patch_ops(url, {"op": "Remove", "path": path, "value": [{"Value": old["id"]}]})
    assert stale.status_code == 200, stale.get_json()
    assert scim.get(url).get_json()[ENTERPRISE]["manager"]["value"] == new["id"]
    resp = scim.patch_ops(url, {"op": "Remove", "path": path, "value": [{"Value": new["id"]}]})
    assert resp.status_code == 200, resp.get_json()
    assert "manager" not in scim.get(url).get_json().get(ENTERPRISE, {})


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(
            {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": ""}, id="path-empty"
        ),
        pytest.param(
            {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": ""}},
            id="path-empty-value",
        ),
        pytest.param({"op": "Replace", "value": {f"{ENTERPRISE}:manager": ""}}, id="no-path"),
        pytest.param(
            {"op": "replace", "path": f"{ENTERPRISE}:manager.value", "value": ""},
            id="sub-attribute",
        ),
    ],
)
def test_manager_replaced_with_an_empty_value_is_removed(scim: Scim, op: dict[str, Any]) -> None:
    """Entra clears a manager by replacing it with "" ({"value": ""} from other clients): the
    manager is removed, so RFC 7644 §3.4.2.2 `manager pr` no longer matches the user."""
    boss = scim.create_user("boss@contoso.com")
    user = scim.create_user("emp@contoso.com", **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.patch_ops(url, op)
    assert resp.status_code == 200, resp.get_json()
    assert "manager" not in scim.get(url).get_json().get(ENTERPRISE, {})
    flt = f"{ENTERPRISE}:manager pr"
    assert scim.get("/scim/v2/Users", query_string={"filter": flt}).get_json()["totalResults"] == 0


def test_entra_remove_of_a_former_manager_named_by_a_bare_id_keeps_the_current_one(
    scim: Scim, admin: Scim
) -> None:
    """The manager is taken as a bare id (Entra), so a remove naming a former manager by a
    bare id removes nothing, as the object form does (same version, an event without
    changes); the current manager's bare id removes it."""
    old = scim.create_user("old-boss@contoso.com")
    new = scim.create_user("new-boss@contoso.com")
    user = scim.create_user("emp@contoso.com", **{ENTERPRISE: {"manager": {"value": new["id"]}}})
    url = f"/scim/v2/Users/{user['id']}"
    stale = scim.patch_ops(url, {"op": "Remove", "path": MANAGER, "value": old["id"]})
    assert stale.status_code == 200, stale.get_json()
    assert stale.get_json()[ENTERPRISE]["manager"]["value"] == new["id"]
    assert stale.headers["ETag"] == user["meta"]["version"]
    assert scim.get(url).get_json()[ENTERPRISE]["manager"]["value"] == new["id"]
    assert last_patch(admin, user)["changes"] == {}
    resp = scim.patch_ops(url, {"op": "Remove", "path": MANAGER, "value": new["id"]})
    assert resp.status_code == 200, resp.get_json()
    assert "manager" not in resp.get_json().get(ENTERPRISE, {})
    assert resp.headers["ETag"] != user["meta"]["version"]
    assert "manager" not in scim.get(url).get_json().get(ENTERPRISE, {})
    assert last_patch(admin, user)["changes"] == {
        MANAGER: {"before": {"value": new["id"]}},
    }


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "Replace", "path": MANAGER, "value": {"value": None}}, id="path"),
        pytest.param({"op": "Add", "path": MANAGER, "value": {"value": None}}, id="path-add"),
        pytest.param({"op": "Replace", "value": {MANAGER: {"value": None}}}, id="no-path"),
        pytest.param(
            {"op": "replace", "path": ENTERPRISE, "value": {"manager": {"value": None}}},
            id="whole-extension",
        ),
        pytest.param(
            {"op": "replace", "path": ENTERPRISE, "value": {"manager": ""}},
            id="whole-extension-empty",
        ),
    ],
)
def test_manager_replaced_with_a_null_value_is_removed(
    scim: Scim, admin: Scim, op: dict[str, Any]
) -> None:
    """RFC 7643 §2.5: `{"value": null}` is an unassigned manager, as `{"value": ""}` is: the
    manager is removed, the version moves and the event names the manager (it answered 200
    and kept the manager)."""
    boss = scim.create_user("boss@contoso.com")
    user = scim.create_user(
        "emp@contoso.com",
        **{ENTERPRISE: {"manager": {"value": boss["id"]}, "department": "Sales"}},
    )
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.patch_ops(url, op)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()[ENTERPRISE] == {"department": "Sales"}
    assert resp.headers["ETag"] != user["meta"]["version"]
    assert scim.get(url).get_json()[ENTERPRISE] == {"department": "Sales"}
    assert last_patch(admin, user)["changes"] == {MANAGER: {"before": {"value": boss["id"]}}}
