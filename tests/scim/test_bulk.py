"""Bulk (RFC 7644 §3.7)."""

from __future__ import annotations

from tests.support import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, assert_error

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk(scim, *ops, **extra):
    return scim.post("/scim/v2/Bulk", {"schemas": [BULK], "Operations": list(ops), **extra})


def test_rfc_7644_3_7_user_and_group_referencing_it(scim):
    """A user and a group containing it (by bulkId) are created in one request."""
    resp = bulk(
        scim,
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g1",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Tour Guides",
                "members": [{"type": "User", "value": "bulkId:u1"}],
            },
        },
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "u1",
            "data": {"schemas": [USER_SCHEMA], "userName": "alice@example.com"},
        },
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]
    group_result, user_result = body["Operations"]
    assert user_result["status"] == "201" and user_result["bulkId"] == "u1"
    assert group_result["status"] == "201" and group_result["bulkId"] == "g1"
    group_id = group_result["location"].rsplit("/", 1)[1]
    group = scim.get(f"/scim/v2/Groups/{group_id}").get_json()
    user_id = user_result["location"].rsplit("/", 1)[1]
    assert [m["value"] for m in group["members"]] == [user_id]
    assert user_result["version"] == 'W/"1"'


def test_each_operation_is_its_own_transaction(scim):
    """A failing operation does not undo the others; its error is reported in place."""
    resp = bulk(
        scim,
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "a",
            "data": {"schemas": [USER_SCHEMA], "userName": "a@x"},
        },
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "b",
            "data": {"schemas": [USER_SCHEMA], "userName": "A@x"},
        },
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "c",
            "data": {"schemas": [USER_SCHEMA], "userName": "c@x"},
        },
    )
    statuses = [op["status"] for op in resp.get_json()["Operations"]]
    assert statuses == ["201", "409", "201"]
    assert resp.get_json()["Operations"][1]["response"]["scimType"] == "uniqueness"
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 2


def test_fail_on_errors_stops_processing(scim):
    """failOnErrors=1 stops after the first error; later operations are not run."""
    resp = bulk(
        scim,
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"schemas": [USER_SCHEMA]}},
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "b",
            "data": {"schemas": [USER_SCHEMA], "userName": "b@x"},
        },
        failOnErrors=1,
    )
    ops = resp.get_json()["Operations"]
    assert [op["status"] for op in ops] == ["400"]
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 0


def test_circular_references_fail_instead_of_hanging(scim):
    """Two operations that reference each other both fail with 409."""
    resp = bulk(
        scim,
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g1",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "A",
                "members": [{"value": "bulkId:g2"}],
            },
        },
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g2",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "B",
                "members": [{"value": "bulkId:g1"}],
            },
        },
    )
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["409", "409"]


def test_patch_put_delete_in_bulk(scim):
    """PATCH, PUT and DELETE run against existing resources and honour version."""
    user = scim.create_user("p@x")
    url = f"/Users/{user['id']}"
    resp = bulk(
        scim,
        {
            "method": "PATCH",
            "path": url,
            "version": 'W/"1"',
            "data": {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": False}],
            },
        },
        {
            "method": "PATCH",
            "path": url,
            "version": 'W/"1"',
            "data": {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "title", "value": "x"}],
            },
        },
        {"method": "DELETE", "path": url},
    )
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["200", "412", "204"]


def test_too_many_operations_is_413(app, scim):
    """More operations than maxOperations is refused whole with 413."""
    app.config["BULK_MAX_OPERATIONS"] = 2
    ops = [{"method": "DELETE", "path": f"/Users/{i}"} for i in range(3)]
    assert_error(bulk(scim, *ops), 413)


def test_malformed_bulk_request_is_400(scim):
    """A bulk request with a bad method or path is 400 invalidSyntax."""
    assert_error(bulk(scim, {"method": "GET", "path": "/Users"}), 400, "invalidSyntax")
    assert_error(bulk(scim, {"method": "POST", "path": "/Users", "data": {}}), 400, "invalidSyntax")
    assert_error(bulk(scim, {"method": "DELETE", "path": "/Widgets/1"}), 400, "invalidSyntax")


def test_patches_of_one_user_in_one_bulk_each_see_the_last(scim, admin):
    """Three PATCHes of one user in one Bulk request (one session): each starts from the
    one before (versions 2, 3, 4); the events' states and the user say the same."""
    from tests.support.admin_api import ok

    user = scim.create_user("bulk-patch@example.com")
    path = f"/Users/{user['id']}"

    def op(attribute, value):
        return {
            "method": "PATCH",
            "path": path,
            "data": {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": attribute, "value": value}],
            },
        }

    resp = bulk(scim, op("title", "A"), op("active", False), op("title", "B"))
    assert resp.status_code == 200
    results = resp.get_json()["Operations"]
    assert [r["status"] for r in results] == ["200"] * 3
    assert [r["version"] for r in results] == ['W/"2"', 'W/"3"', 'W/"4"']
    body = scim.get(f"/scim/v2{path}").get_json()
    assert (body["title"], body["active"], body["meta"]["version"]) == ("B", False, 'W/"4"')
    events = ok(admin.get("/api/v1/events", query_string={"limit": 100}))["events"]
    states = [e["data"]["state"] for e in events if e["type"].startswith("user.")][1:]
    assert [(s["version"], s["active"]) for s in states] == [(2, True), (3, False), (4, False)]
