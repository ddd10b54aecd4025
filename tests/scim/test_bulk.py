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


def test_group_post_with_a_member_without_value_is_a_400_operation(scim):
    """A member object without "value" in a Bulk POST /Groups is that operation's 400
    invalidValue (not a 500), and creates nothing."""
    resp = bulk(
        scim,
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g1",
            "data": {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"type": "User"}]},
        },
    )
    assert resp.status_code == 200
    (result,) = resp.get_json()["Operations"]
    assert result["status"] == "400", result
    assert result["response"]["scimType"] == "invalidValue"
    assert "location" not in result  # RFC 7644 §3.7: none for a failed POST
    assert scim.get("/scim/v2/Groups").get_json()["totalResults"] == 0


def test_rfc_7644_3_7_3_delete_result_has_a_location(scim):
    """RFC 7644 §3.7: "location ... REQUIRED in a response, except in the event of a POST
    failure"; §3.7.3's example answers a DELETE with its location and status 204."""
    user = scim.create_user("alice@example.com")
    resp = bulk(scim, {"method": "DELETE", "path": f"/Users/{user['id']}"})
    (result,) = resp.get_json()["Operations"]
    assert result["status"] == "204"
    assert result["location"] == f"http://localhost/scim/v2/Users/{user['id']}"


def test_failed_put_patch_and_delete_results_have_a_location(scim):
    """A failed PUT, PATCH or DELETE (here a stale version: 412) still names its resource."""
    user = scim.create_user("alice@example.com")
    group = scim.create_group("Eng")
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "title", "value": "x"}],
    }
    put = {"schemas": [GROUP_SCHEMA], "displayName": "Eng 2"}
    resp = bulk(
        scim,
        {"method": "PATCH", "path": f"/Users/{user['id']}", "version": 'W/"99"', "data": patch},
        {"method": "PUT", "path": f"/Groups/{group['id']}", "version": 'W/"99"', "data": put},
        {"method": "DELETE", "path": f"/Users/{user['id']}", "version": 'W/"99"'},
        {"method": "DELETE", "path": "/Users/no-such-id"},
    )
    results = resp.get_json()["Operations"]
    assert [r["status"] for r in results] == ["412", "412", "412", "404"]
    assert [r["location"] for r in results] == [
        f"http://localhost/scim/v2/Users/{user['id']}",
        f"http://localhost/scim/v2/Groups/{group['id']}",
        f"http://localhost/scim/v2/Users/{user['id']}",
        "http://localhost/scim/v2/Users/no-such-id",
    ]


def test_an_operation_refused_before_it_runs_has_a_location_unless_a_post(scim):
    """An unresolved bulkId (409) or a version that is no ETag (400): a PATCH or DELETE still
    names its resource; a POST has none to name."""
    user = scim.create_user("alice@example.com")
    patch = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:nope"}]}],
    }
    group = scim.create_group("Eng")
    resp = bulk(
        scim,
        {"method": "PATCH", "path": f"/Groups/{group['id']}", "data": patch},
        {"method": "DELETE", "path": f"/Users/{user['id']}", "version": 'W/"1"\n'},
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g2",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "G",
                "members": [{"value": "bulkId:x"}],
            },
        },
    )
    results = resp.get_json()["Operations"]
    assert [r["status"] for r in results] == ["409", "400", "409"]
    assert results[0]["location"] == f"http://localhost/scim/v2/Groups/{group['id']}"
    assert results[1]["location"] == f"http://localhost/scim/v2/Users/{user['id']}"
    assert "location" not in results[2]
