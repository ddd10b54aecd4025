"""Bulk's bulkIds (RFC 7644 §3.7, §3.7.2): unique in a request, defined by POSTs only, and
substituted only where a value references a resource."""

from __future__ import annotations

from typing import Any

from scim_server.scim.schema import ENTERPRISE_SCHEMA
from tests.support import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, Scim, assert_error

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def bulk(scim: Scim, *ops: dict[str, Any]) -> Any:
    return scim.post("/scim/v2/Bulk", {"schemas": [BULK], "Operations": list(ops)})


def _post_user(bulk_id: str, user_name: str, **attrs: object) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": {"schemas": [USER_SCHEMA], "userName": user_name, **attrs},
    }


def _patch(path: str, *ops: dict[str, Any], bulk_id: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "method": "PATCH",
        "path": path,
        "data": {"schemas": [PATCH_OP], "Operations": list(ops)},
    }
    if bulk_id is not None:
        op["bulkId"] = bulk_id
    return op


def _created(scim: Scim, result: dict[str, Any]) -> dict[str, Any]:
    return scim.get(result["location"].split("localhost", 1)[1]).get_json()


def test_rfc_7644_3_7_a_bulk_id_repeated_on_a_patch_is_400(scim: Scim) -> None:
    """A bulkId on a PATCH that a POST also carries is refused whole (400 invalidSyntax), as
    two POSTs with one bulkId are: nothing runs, so the PATCH cannot take the POST's place
    in the references."""
    user = scim.create_user("kept@example.com", title="before")
    resp = bulk(
        scim,
        _patch(
            f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "t"}, bulk_id="k"
        ),
        _patch("/Users/bulkId:k", {"op": "replace", "path": "title", "value": "t2"}),
        _post_user("k", "k@example.com"),
    )
    body = assert_error(resp, 400, "invalidSyntax")
    assert "'k'" in body["detail"]
    assert scim.get(f"/scim/v2/Users/{user['id']}").get_json()["title"] == "before"
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 1


def test_a_bulk_id_on_a_delete_repeated_later_is_400(scim: Scim) -> None:
    """bulkIds are unique across all operations, whatever their methods."""
    resp = bulk(
        scim,
        {"method": "DELETE", "path": "/Users/a", "bulkId": "d"},
        {"method": "DELETE", "path": "/Users/b", "bulkId": "d"},
    )
    assert_error(resp, 400, "invalidSyntax")


def test_a_bulk_id_on_a_patch_defines_no_reference(scim: Scim) -> None:
    """A PATCH's (unique) bulkId is echoed in its result but names no resource: a reference to
    it is unresolved (409), never the PATCH's target."""
    user = scim.create_user("target@example.com")
    resp = bulk(
        scim,
        _patch(
            f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "t"}, bulk_id="p"
        ),
        _patch("/Users/bulkId:p", {"op": "replace", "path": "title", "value": "t2"}),
    )
    assert resp.status_code == 200
    first, second = resp.get_json()["Operations"]
    assert (first["status"], first["bulkId"]) == ("200", "p")
    assert second["status"] == "409"
    assert scim.get(f"/scim/v2/Users/{user['id']}").get_json()["title"] == "t"


def test_bulk_id_text_in_a_plain_string_attribute_is_kept(scim: Scim) -> None:
    """A free-text attribute reading "bulkId:u1" (or naming an unknown bulkId) is stored as
    sent: neither replaced by the new user's id nor waiting on (or refused for) a reference."""
    resp = bulk(
        scim,
        _post_user("u1", "first@example.com"),
        _post_user("u2", "second@example.com", title="bulkId:u1", displayName="bulkId:nobody"),
        _post_user("u3", "third@example.com", nickName="see bulkId:u1"),
    )
    ops = resp.get_json()["Operations"]
    assert [op["status"] for op in ops] == ["201", "201", "201"]
    second, third = _created(scim, ops[1]), _created(scim, ops[2])
    assert (second["title"], second["displayName"]) == ("bulkId:u1", "bulkId:nobody")
    assert third["nickName"] == "see bulkId:u1"


def test_rfc_7644_3_7_2_references_are_substituted_in_reference_positions(scim: Scim) -> None:
    """A member's value, a manager's value (an object or Entra's bare id), a PATCH's member
    values and the path are references: each whole-value "bulkId:..." becomes the id."""
    resp = bulk(
        scim,
        _post_user(
            "u2",
            "report@example.com",
            schemas=[USER_SCHEMA, ENTERPRISE_SCHEMA],
            **{ENTERPRISE_SCHEMA: {"manager": {"value": "bulkId:u1"}}},
        ),
        _post_user(
            "u3",
            "bare@example.com",
            schemas=[USER_SCHEMA, ENTERPRISE_SCHEMA],
            **{ENTERPRISE_SCHEMA: {"manager": "bulkId:u1"}},
        ),
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g1",
            "data": {
                "schemas": [GROUP_SCHEMA],
                "displayName": "Team",
                "members": [{"value": "bulkId:u1"}],
            },
        },
        _patch("/Groups/bulkId:g1", {"op": "add", "path": "members", "value": ["bulkId:u2"]}),
        _patch("/Users/bulkId:u1", {"op": "replace", "path": "title", "value": "Lead"}),
        _post_user("u1", "manager@example.com"),
    )
    ops = resp.get_json()["Operations"]
    assert [op["status"] for op in ops] == ["201", "201", "201", "204", "200", "201"], ops
    manager_id = _created(scim, ops[5])["id"]
    report_id = _created(scim, ops[0])["id"]
    assert _created(scim, ops[0])[ENTERPRISE_SCHEMA]["manager"]["value"] == manager_id
    assert _created(scim, ops[1])[ENTERPRISE_SCHEMA]["manager"]["value"] == manager_id
    members = {m["value"] for m in _created(scim, ops[2])["members"]}
    assert members == {manager_id, report_id}
    assert _created(scim, ops[5])["title"] == "Lead"
