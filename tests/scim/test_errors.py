"""Bad input gets a SCIM Error with the right status and scimType, and changes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import ENTERPRISE, USER_SCHEMA
from tests.scim.test_users import assert_error


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

    monkeypatch.setattr(users, "read_user", boom)
    resp = scim.get("/scim/v2/Users/x")
    body = assert_error(resp, 500)
    assert "secret internals" not in body["detail"]
    assert "Traceback" not in resp.get_data(as_text=True)
