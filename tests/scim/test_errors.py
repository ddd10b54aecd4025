"""Bad input gets a SCIM Error with the right status and scimType, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from scim_server.scim.errors import CONFLICT_URN
from tests.support import ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA, assert_error

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@pytest.mark.parametrize(
    ("body", "status", "scim_type"),
    [
        ([], 400, "invalidSyntax"),
        ({"userName": "no-schemas"}, 400, "invalidSyntax"),
        ({"schemas": [USER_SCHEMA]}, 400, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": ""}, 400, "invalidValue"),
        ({"schemas": ["urn:example:Other"], "userName": "x"}, 400, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": 42}, 400, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": "x", "active": "maybe"}, 400, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": "x", "emails": "a@b.c"}, 400, "invalidValue"),
        (
            {"schemas": [USER_SCHEMA], "userName": "x", "emails": [{"value": 1}]},
            400,
            "invalidValue",
        ),
        ({"schemas": [USER_SCHEMA], "userName": "x", "name": "Barbara"}, 400, "invalidValue"),
        (
            {"schemas": [USER_SCHEMA], "userName": "x", "favouriteColour": "red"},
            400,
            "invalidSyntax",
        ),
        ({"schemas": [USER_SCHEMA], "userName": "x", "name": {"nick": "y"}}, 400, "invalidSyntax"),
        (
            {"schemas": [USER_SCHEMA], "userName": "x", "urn:example:ext:1.0:User": {"a": 1}},
            400,
            "invalidSyntax",
        ),
        (
            {"schemas": [USER_SCHEMA, ENTERPRISE], "userName": "x", ENTERPRISE: {"shoeSize": 9}},
            400,
            "invalidSyntax",
        ),
        (
            {
                "schemas": [USER_SCHEMA],
                "userName": "x",
                "emails": [{"value": "a@x", "primary": True}, {"value": "b@x", "primary": True}],
            },
            400,
            "invalidValue",
        ),
        ({"schemas": [USER_SCHEMA], "userName": "nul\u0000byte"}, 400, "invalidValue"),
        ({"schemas": [USER_SCHEMA], "userName": "x" * 600}, 400, "invalidValue"),
    ],
    ids=[
        "not-an-object",
        "missing-schemas",
        "missing-userName",
        "empty-userName",
        "wrong-schema",
        "userName-not-string",
        "active-not-boolean",
        "multi-valued-not-array",
        "email-value-not-string",
        "complex-not-object",
        "unknown-attribute",
        "unknown-sub-attribute",
        "unknown-extension",
        "unknown-extension-attribute",
        "two-primaries",
        "nul-byte",
        "too-long",
    ],
)
def test_invalid_user_bodies_are_rejected(scim, body, status, scim_type):
    """Each malformed user body gets its SCIM error and creates nothing."""
    assert_error(scim.post("/scim/v2/Users", body), status, scim_type)
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 0


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"{not json", "Malformed JSON"),
        (b'{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": NaN}', "NaN"),
        (b'{"userName": "a", "userName": "b"}', "Duplicate key"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        (b'{"userName": "\xff\xfe"}', "UTF-8"),
        (b"", "empty"),
    ],
    ids=["malformed", "nan", "duplicate-keys", "deep-nesting", "invalid-utf8", "empty"],
)
def test_malformed_json_is_400_invalid_syntax(scim, raw, detail):
    """Bodies that plain get_json() would mishandle are clear 400 invalidSyntax errors."""
    resp = scim.client.post(
        "/scim/v2/Users", data=raw, headers=scim.headers({"Content-Type": "application/scim+json"})
    )
    body = assert_error(resp, 400, "invalidSyntax")
    assert detail in body["detail"]


def test_wrong_content_type_is_415(scim):
    """A form or text body is refused with 415 and a SCIM error."""
    resp = scim.client.post(
        "/scim/v2/Users", data="userName=x", headers=scim.headers({"Content-Type": "text/plain"})
    )
    assert_error(resp, 415)


def test_plain_application_json_is_accepted(scim):
    """application/json is accepted as well as application/scim+json (Okta sends it)."""
    resp = scim.client.post(
        "/scim/v2/Users",
        json={"schemas": [USER_SCHEMA], "userName": "json@example.com"},
        headers=scim.headers(),
    )
    assert resp.status_code == 201


def test_too_large_body_is_413(app, scim):
    """A body over the configured limit is refused with a SCIM 413."""
    app.config["MAX_CONTENT_LENGTH"] = 1000
    body = {"schemas": [USER_SCHEMA], "userName": "big", "nickName": "x" * 2000}
    assert_error(scim.post("/scim/v2/Users", body), 413)


def test_unknown_endpoint_and_method_are_scim_errors(scim):
    """Unknown URLs are a SCIM 404 and wrong methods a SCIM 405 with Allow, never HTML."""
    assert_error(scim.get("/scim/v2/Widgets"), 404)
    resp = scim.client.delete("/scim/v2/Users", headers=scim.headers())
    assert_error(resp, 405)
    assert "GET" in resp.headers["Allow"]


def test_immutable_attribute_cannot_change(scim):
    """Changing an immutable attribute (a group member's value is immutable) is 400 mutability."""
    user = scim.create_user("imm@example.com")
    group = scim.create_group("Imm", members=[user["id"]])
    resp = scim.patch_ops(
        f"/scim/v2/Groups/{group['id']}",
        {"op": "replace", "path": f'members[value eq "{user["id"]}"].value', "value": "other"},
    )
    assert_error(resp, 400, "mutability")


def test_unexpected_failure_is_generic_500_without_traceback(app, scim, monkeypatch):
    """An internal failure is logged and answered with a generic SCIM 500: no stack trace."""
    from scim_server.services import users

    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(users, "read_user_and_extras", boom)
    resp = scim.get("/scim/v2/Users/x")
    body = assert_error(resp, 500)
    assert "secret internals" not in body["detail"]
    assert "Traceback" not in resp.get_data(as_text=True)


# -- 409 uniqueness names the resource that holds the value ----------------------------------


def _assert_conflict_names(resp, resource_type: str, existing_id: str) -> None:
    body = resp.get_json()
    assert_error(resp, 409, "uniqueness")
    assert body["schemas"] == [ERROR_SCHEMA]  # still a plain RFC 7644 §3.12 Error
    assert existing_id in body["detail"]
    held = body[CONFLICT_URN]
    assert held["id"] == existing_id and held["resourceType"] == resource_type
    assert held["location"] == f"http://localhost/scim/v2/{resource_type}s/{existing_id}"


def test_conflicting_user_create_names_the_existing_user(scim):
    """A retried create (userName in another case) is 409 with the stored user's id and location."""
    first = scim.create_user("retry@example.com", externalId="00u-retry")
    body = {"schemas": [USER_SCHEMA], "userName": "RETRY@example.com", "externalId": "00u-retry"}
    resp = scim.post("/scim/v2/Users", body)
    _assert_conflict_names(resp, "User", first["id"])
    location = resp.get_json()[CONFLICT_URN]["location"]
    assert scim.get(location.removeprefix("http://localhost")).get_json()["id"] == first["id"]
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 1


def test_conflicting_user_rename_names_the_holder(scim):
    """Renaming a user to a taken userName is 409 naming the user that holds it."""
    holder = scim.create_user("taken@example.com")
    other = scim.create_user("other@example.com")
    resp = scim.put(
        f"/scim/v2/Users/{other['id']}", {"schemas": [USER_SCHEMA], "userName": "taken@example.com"}
    )
    _assert_conflict_names(resp, "User", holder["id"])


def test_conflicting_group_create_names_the_existing_group(scim):
    """A group create whose displayName is taken is 409 with the existing group's id."""
    first = scim.create_group("Engineering")
    resp = scim.post("/scim/v2/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "engineering"})
    _assert_conflict_names(resp, "Group", first["id"])


def test_conflict_in_bulk_names_the_existing_user(scim):
    """A Bulk POST whose userName is taken carries the same 409 body, holder included."""
    first = scim.create_user("bulk-retry@example.com")
    op = {
        "method": "POST",
        "path": "/Users",
        "bulkId": "u1",
        "data": {"schemas": [USER_SCHEMA], "userName": "bulk-retry@example.com"},
    }
    body = {"schemas": [BULK_REQUEST], "Operations": [op]}
    result = scim.post("/scim/v2/Bulk", body).get_json()["Operations"][0]
    assert result["status"] == "409"
    assert result["response"][CONFLICT_URN]["id"] == first["id"]


@pytest.mark.parametrize(
    "value",
    [{"active": False, "ACTIVE": True}, {"ACTIVE": True, "active": False}],
    ids=["lower-then-upper", "upper-then-lower"],
)
def test_an_attribute_named_twice_in_another_case_is_400_and_changes_nothing(
    scim: Any, value: dict[str, bool]
) -> None:
    """RFC 7643 §2.1: attribute names are case-insensitive, so a no-path PATCH value naming
    ``active`` twice is ambiguous: which one a server keeps is a guess (it kept one, 200),
    and a leaver's ``active`` is the last thing to guess. Refused, nothing changed."""
    user = scim.create_user("ann@example.com")
    resp = scim.patch_ops(f"/scim/v2/Users/{user['id']}", {"op": "replace", "value": value})
    body = assert_error(resp, 400, "invalidSyntax")
    assert "case-insensitive" in body["detail"]
    again = scim.get(f"/scim/v2/Users/{user['id']}").get_json()
    assert again["active"] is True and again["meta"]["version"] == user["meta"]["version"]
