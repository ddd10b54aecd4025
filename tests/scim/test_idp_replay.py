"""Replays of the request sequences Microsoft Entra ID and Okta document, end to end.

Bodies follow Entra ID's "Develop and plan provisioning for a SCIM endpoint"
(request/response examples, with and without the aadOptscim062020 flag) and
Okta's "SCIM 2.0 protocol" guide. Every shape of deactivation is followed by a
re-read: a leaver must never stay active.
"""

from __future__ import annotations

import pytest

from tests.support import ENTERPRISE, GROUP_SCHEMA, PATCH_OP, USER_SCHEMA
from tests.support.admin_api import events

MS_GROUP_SCHEMA = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def ops(*operations):
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def test_entra_test_connection_finds_nobody(scim):
    """Entra's "Test connection" queries a random userName and expects an empty list."""
    resp = scim.get('/scim/v2/Users?filter=userName eq "ab6490ee-1e48-479e-a20b-2d77186b5dd1"')
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["totalResults"] == 0
    assert body["Resources"] == []


def test_entra_user_lifecycle(scim):
    """Entra ID: create, lookups, multi-valued and single-valued updates, disable, delete."""
    create = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee@testuser.com",
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
        "meta": {"resourceType": "User"},
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName",
        },
        "roles": [],
    }
    resp = scim.post("/scim/v2/Users", create)
    assert resp.status_code == 201
    user = resp.get_json()
    url = f"/scim/v2/Users/{user['id']}"
    # Lookups by userName, externalId and the work e-mail value path.
    for flt in (
        'userName eq "Test_User_ab6490ee@testuser.com"',
        'externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"',
        'emails[type eq "work"].value eq "test_user_fd0ea19b@testuser.com"',
    ):
        found = scim.get("/scim/v2/Users", query_string={"filter": flt}).get_json()
        assert [r["id"] for r in found["Resources"]] == [user["id"]], flt
    # A retried create (Entra timed out) is a 409, never a second user.
    assert scim.post("/scim/v2/Users", create).status_code == 409
    resp = scim.patch(
        url,
        ops(
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "updatedEmail@microsoft.com",
            },
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ),
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["emails"] == [
        {"primary": True, "type": "work", "value": "updatedEmail@microsoft.com"}
    ]
    assert body["name"]["familyName"] == "updatedFamilyName"
    resp = scim.patch(
        url, ops({"op": "Replace", "path": "userName", "value": "renamed@testuser.com"})
    )
    assert resp.get_json()["userName"] == "renamed@testuser.com"
    resp = scim.patch(url, ops({"op": "Replace", "path": "active", "value": False}))
    assert resp.status_code == 200
    assert scim.get(url).get_json()["active"] is False
    assert scim.delete(url).status_code == 204
    assert scim.get(url).status_code == 404


def test_entra_legacy_patch_shapes(scim):
    """Entra ID without aadOptscim062020: string booleans, dotted and URN keys, add as replace."""
    user = scim.create_user(
        "legacy@contoso.com",
        schemas=[USER_SCHEMA, ENTERPRISE],
        emails=[{"type": "work", "value": "old@contoso.com", "primary": True}],
    )
    manager = scim.create_user("boss@contoso.com")
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.patch(
        url,
        ops(
            {
                "op": "Add",
                "value": {
                    "displayName": "Legacy User",
                    "name.givenName": "Leg",
                    "name.familyName": "Acy",
                    f"{ENTERPRISE}:employeeNumber": "1001",
                    f"{ENTERPRISE}:department": "Sales",
                },
            },
            # Add on a value path that already has a value acts as replace.
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": "new@contoso.com"},
            # The manager as a bare id string.
            {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": manager["id"]},
            # App roles into the core roles attribute, primary as a string.
            {
                "op": "Add",
                "path": "roles",
                "value": [
                    {"primary": "True", "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}
                ],
            },
        ),
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["displayName"] == "Legacy User"
    assert body["name"] == {"givenName": "Leg", "familyName": "Acy"}
    assert body["emails"] == [{"type": "work", "value": "new@contoso.com", "primary": True}]
    assert body[ENTERPRISE]["employeeNumber"] == "1001"
    assert body[ENTERPRISE]["manager"]["value"] == manager["id"]
    assert body["roles"] == [
        {"primary": True, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}
    ]
    resp = scim.patch(url, ops({"op": "Remove", "path": f"{ENTERPRISE}:manager"}))
    assert "manager" not in resp.get_json()[ENTERPRISE]
    resp = scim.patch(url, ops({"op": "Replace", "path": "active", "value": "False"}))
    assert resp.status_code == 200
    assert scim.get(url).get_json()["active"] is False


def test_entra_group_lifecycle(scim):
    """Entra ID: group with the Microsoft schema URN, lookups without members, member add/remove."""
    alice = scim.create_user("alice@contoso.com")
    bob = scim.create_user("bob@contoso.com")
    resp = scim.post(
        "/scim/v2/Groups",
        {
            "schemas": [GROUP_SCHEMA, MS_GROUP_SCHEMA],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"},
        },
    )
    assert resp.status_code == 201
    group = resp.get_json()
    url = f"/scim/v2/Groups/{group['id']}"
    got = scim.get(f"{url}?excludedAttributes=members")
    assert got.status_code == 200 and "members" not in got.get_json()
    found = scim.get(
        '/scim/v2/Groups?excludedAttributes=members&filter=displayName eq "displayName"'
    ).get_json()
    assert [g["id"] for g in found["Resources"]] == [group["id"]]
    assert (
        scim.patch(
            url, ops({"op": "Replace", "path": "displayName", "value": "renamed"})
        ).status_code
        == 204
    )
    add = ops(
        {
            "op": "Add",
            "path": "members",
            "value": [{"$ref": None, "value": alice["id"]}, {"$ref": None, "value": bob["id"]}],
        }
    )
    assert scim.patch(url, add).status_code == 204
    assert scim.patch(url, add).status_code == 204  # a repeated add is a no-op
    remove = ops(
        {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": alice["id"]}]}
    )
    assert scim.patch(url, remove).status_code == 204
    body = scim.get(url).get_json()
    assert body["displayName"] == "renamed"
    assert [m["value"] for m in body["members"]] == [bob["id"]]
    assert scim.delete(url).status_code == 204


OKTA_USER = {
    "schemas": [USER_SCHEMA],
    "userName": "test.user@okta.local",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    # Okta's capture had "1mz050nq"; the default policy (12+ characters) refuses that.
    "password": "Okta-sync-harbour-lemon-7",
    "active": True,
}


def okta_post(scim, url, body):
    """Okta sends application/json."""
    return scim.client.post(url, json=body, headers=scim.headers())


def test_okta_user_lifecycle(scim):
    """Okta: lookup with paging, create with read-only groups and password, PUT, deactivate, reactivate."""
    lookup = '/scim/v2/Users?filter=userName eq "test.user@okta.local"&startIndex=1&count=100'
    assert scim.get(lookup).get_json()["totalResults"] == 0
    resp = okta_post(scim, "/scim/v2/Users", OKTA_USER)
    assert resp.status_code == 201
    user = resp.get_json()
    assert "password" not in user and "groups" not in user
    url = f"/scim/v2/Users/{user['id']}"
    found = scim.get(lookup).get_json()
    assert found["totalResults"] == 1 and found["startIndex"] == 1
    # Profile update: the whole resource back, including id and meta.
    full = scim.get(url).get_json()
    full["name"]["familyName"] = "Updated"
    resp = scim.client.put(url, json=full, headers=scim.headers())
    assert resp.status_code == 200
    assert resp.get_json()["name"]["familyName"] == "Updated"
    # Deactivation: a no-path replace.
    resp = scim.patch(url, ops({"op": "replace", "value": {"active": False}}))
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    assert scim.get(url).get_json()["active"] is False
    listed = scim.get(lookup).get_json()["Resources"][0]
    assert listed["active"] is False
    resp = scim.patch(url, ops({"op": "replace", "value": {"active": True}}))
    assert scim.get(url).get_json()["active"] is True


def test_okta_group_lifecycle(scim):
    """Okta: create, lookup, rename repeating the id, add, remove by filter, replace members, delete."""
    users = [scim.create_user(f"okta{i}@okta.local")["id"] for i in range(3)]
    resp = okta_post(
        scim,
        "/scim/v2/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Test SCIMv2", "members": []},
    )
    assert resp.status_code == 201
    group = resp.get_json()
    url = f"/scim/v2/Groups/{group['id']}"
    found = scim.get(
        '/scim/v2/Groups?filter=displayName eq "Test SCIMv2"&startIndex=1&count=100'
    ).get_json()
    assert found["totalResults"] == 1
    rename = ops(
        {"op": "replace", "value": {"id": group["id"], "displayName": "Test SCIMv2 renamed"}}
    )
    assert scim.patch(url, rename).status_code == 204
    add = ops(
        {"op": "add", "path": "members", "value": [{"value": u, "display": "x"} for u in users[:2]]}
    )
    assert scim.patch(url, add).status_code == 204
    remove = ops({"op": "remove", "path": f'members[value eq "{users[0]}"]'})
    assert scim.patch(url, remove).status_code == 204
    assert [m["value"] for m in scim.get(url).get_json()["members"]] == [users[1]]
    replace = ops(
        {"op": "replace", "path": "members", "value": [{"value": users[2]}, {"value": users[0]}]}
    )
    assert scim.patch(url, replace).status_code == 204
    body = scim.get(url).get_json()
    assert body["displayName"] == "Test SCIMv2 renamed"
    assert sorted(m["value"] for m in body["members"]) == sorted([users[0], users[2]])
    assert scim.delete(url).status_code == 204


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "active", "value": False},
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "replace", "value": {"active": False}},
        {"op": "Replace", "value": {"active": "false"}},
        {"op": "add", "path": "active", "value": False},
        {"op": "replace", "path": f"{USER_SCHEMA}:active", "value": False},
        {"op": "replace", "value": {f"{USER_SCHEMA}:active": False}},
    ],
    ids=["path", "path-string", "no-path", "no-path-string", "add", "urn-path", "urn-key"],
)
def test_every_deactivation_shape_deactivates(scim, operation):
    """Each shape IdPs use for active=false leaves the user inactive for every reader."""
    user = scim.create_user(f"leaver-{operation['op']}@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.patch(url, ops(operation))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["active"] is False
    assert scim.get(url).get_json()["active"] is False
    inactive = scim.get("/scim/v2/Users?filter=active eq false").get_json()
    assert user["id"] in [r["id"] for r in inactive["Resources"]]


def test_deactivation_by_put_and_bulk(scim):
    """active=false by PUT and by a Bulk PATCH also deactivates at once."""
    user = scim.create_user("put-leaver@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    body = {"schemas": [USER_SCHEMA], "userName": "put-leaver@example.com", "active": False}
    assert scim.put(url, body).get_json()["active"] is False
    scim.patch(url, ops({"op": "replace", "path": "active", "value": True}))
    bulk = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "data": ops({"op": "replace", "value": {"active": False}}),
            }
        ],
    }
    assert scim.post("/scim/v2/Bulk", bulk).get_json()["Operations"][0]["status"] == "200"
    assert scim.get(url).get_json()["active"] is False


def test_deactivation_then_reactivation_keeps_an_admin_lock(scim, admin):
    """README: LOCKED_BY_ADMIN "is lifted only by an admin". An IdP that deactivates and
    later reactivates the account (Entra's soft delete and restore, Okta's deactivate and
    reactivate) must not lift the lock on the way: the account stays unable to sign in."""
    user = scim.create_user("locked-leaver@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    assert admin.post(f"/api/v1/users/{user['id']}/actions/lock", None).status_code == 200
    resp = scim.patch(url, ops({"op": "Replace", "path": "active", "value": "False"}))
    assert resp.status_code == 200
    assert admin.get(f"/api/v1/users/{user['id']}").get_json()["status"] == "DEACTIVATED"
    resp = scim.patch(url, ops({"op": "Replace", "path": "active", "value": "True"}))
    assert resp.status_code == 200
    assert admin.get(f"/api/v1/users/{user['id']}").get_json()["status"] == "LOCKED_BY_ADMIN"


def test_an_admin_s_demand_for_a_new_password_outlasts_a_deactivation(scim, admin):
    """An admin asked for a new password (a leaked one, say); the IdP deactivates and
    reactivates: the account still has to choose a new password. An account deactivated
    from a state an admin need not lift comes back at rest; the log tells each step."""
    held = scim.create_user("must-change@example.com")
    plain = scim.create_user("plain@example.com")
    action = f"/api/v1/users/{held['id']}/actions/require_new_password"
    assert admin.post(action, None).status_code == 200
    for user in (held, plain):
        url = f"/scim/v2/Users/{user['id']}"
        off = scim.patch(url, ops({"op": "replace", "value": {"active": False}}))
        assert off.status_code == 200 and off.get_json()["active"] is False
        on = scim.patch(url, ops({"op": "replace", "value": {"active": True}}))
        assert on.status_code == 200 and on.get_json()["active"] is True

    def status(user):
        return admin.get(f"/api/v1/users/{user['id']}").get_json()["status"]

    assert status(held) == "AWAITING_NEW_PASSWORD"
    assert status(plain) == "PROVISIONED"
    steps = [
        e["changes"]["status"]
        for e in events(admin, resource_id=held["id"])
        if "status" in (e.get("changes") or {})
    ]
    assert steps[-2:] == [
        {"before": "AWAITING_NEW_PASSWORD", "after": "DEACTIVATED"},
        {"before": "DEACTIVATED", "after": "AWAITING_NEW_PASSWORD"},
    ]


def test_an_admin_activation_gives_the_lock_back_and_only_unlock_lifts_it(scim, admin):
    """Deactivated while locked: the admin's own activation gives the lock back too (the
    lock is lifted by unlocking, which says so in the log), and a second deactivation
    cycle after the unlock comes back at rest."""
    user = scim.create_user("locked@example.com")
    act = f"/api/v1/users/{user['id']}/actions/"
    assert admin.post(act + "lock", None).status_code == 200
    assert admin.post(act + "deactivate", None).status_code == 200
    assert admin.post(act + "unlock", None).status_code == 409  # deactivated: activate first
    assert admin.post(act + "activate", None).get_json()["status"] == "LOCKED_BY_ADMIN"
    assert admin.post(act + "unlock", None).get_json()["status"] == "PROVISIONED"
    assert admin.post(act + "deactivate", None).status_code == 200
    assert admin.post(act + "activate", None).get_json()["status"] == "PROVISIONED"
