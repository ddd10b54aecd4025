"""Discovery (RFC 7644 §4): what the server says it supports is what it does."""

from __future__ import annotations

import pytest

from tests.support import ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA, assert_error

PRODUCT = "urn:scim-server:schemas:extension:product:1.0:User"


def test_service_provider_config_is_truthful(app, client):
    """ServiceProviderConfig advertises patch, filter with maxResults, sort and etag."""
    resp = client.get("/scim/v2/ServiceProviderConfig")
    assert resp.status_code == 200
    assert resp.mimetype == "application/scim+json"
    body = resp.get_json()
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert body["patch"] == {"supported": True}
    assert body["filter"] == {"supported": True, "maxResults": app.config["MAX_PAGE_SIZE"]}
    assert body["sort"] == {"supported": True}
    assert body["etag"] == {"supported": True}
    assert body["changePassword"] == {"supported": True}
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_bulk_limits_are_advertised(app, client):
    """Bulk is supported with the configured maxOperations and maxPayloadSize."""
    bulk = client.get("/scim/v2/ServiceProviderConfig").get_json()["bulk"]
    assert bulk == {
        "supported": True,
        "maxOperations": app.config["BULK_MAX_OPERATIONS"],
        "maxPayloadSize": app.config["BULK_MAX_PAYLOAD_BYTES"],
    }


def test_resource_types_list_users_and_groups(client):
    """ResourceTypes names User (with the enterprise extension) and Group."""
    body = client.get("/scim/v2/ResourceTypes").get_json()
    assert body["totalResults"] == 2
    by_name = {r["name"]: r for r in body["Resources"]}
    assert by_name["User"]["endpoint"] == "/Users"
    assert by_name["User"]["schema"] == USER_SCHEMA
    assert by_name["User"]["schemaExtensions"] == [
        {"schema": ENTERPRISE, "required": False},
        {"schema": PRODUCT, "required": False},
    ]
    assert by_name["Group"]["schema"] == GROUP_SCHEMA
    one = client.get("/scim/v2/ResourceTypes/User")
    assert one.status_code == 200
    assert one.get_json()["id"] == "User"
    assert_error(client.get("/scim/v2/ResourceTypes/Widget"), 404)


def _attr(schema: dict, name: str) -> dict:
    return next(a for a in schema["attributes"] if a["name"] == name)


def test_user_schema_has_attribute_characteristics(client):
    """The User schema states mutability, returned, uniqueness and caseExact truthfully."""
    resp = client.get(f"/scim/v2/Schemas/{USER_SCHEMA}")
    assert resp.status_code == 200
    schema = resp.get_json()
    user_name = _attr(schema, "userName")
    assert user_name["uniqueness"] == "server"
    assert user_name["caseExact"] is False
    assert user_name["required"] is True
    password = _attr(schema, "password")
    assert password["returned"] == "never"
    assert password["mutability"] == "writeOnly"
    assert _attr(schema, "groups")["mutability"] == "readOnly"
    assert schema["meta"]["location"].endswith(f"/Schemas/{USER_SCHEMA}")


def test_group_schema_requires_unique_display_name(client):
    """The Group schema says displayName is required and unique, as the server enforces."""
    schema = client.get(f"/scim/v2/Schemas/{GROUP_SCHEMA}").get_json()
    display = _attr(schema, "displayName")
    assert display["required"] is True
    assert display["uniqueness"] == "server"


@pytest.mark.parametrize("urn", [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE])
def test_every_schema_is_listed_and_fetchable(client, urn):
    """/Schemas lists each schema and /Schemas/{id} returns it."""
    listed = {s["id"] for s in client.get("/scim/v2/Schemas").get_json()["Resources"]}
    assert urn in listed
    assert client.get(f"/scim/v2/Schemas/{urn}").get_json()["id"] == urn


def test_unknown_schema_is_404(client):
    """An unknown schema URN is a SCIM 404."""
    assert_error(client.get("/scim/v2/Schemas/urn:example:nothing"), 404)


@pytest.mark.parametrize("endpoint", ["Schemas", "ResourceTypes"])
def test_a_filter_on_a_discovery_listing_is_403(client, endpoint):
    """RFC 7644 §4: a filter on these endpoints SHOULD be 403, so that a client does not take
    the full listing (it was answered 200) for every item matching ``id eq "nothing"``."""
    resp = client.get(f"/scim/v2/{endpoint}", query_string={"filter": 'id eq "nothing"'})
    assert_error(resp, 403)
    assert client.get(f"/scim/v2/{endpoint}").status_code == 200


def test_the_product_status_is_declared_as_filters_compare_it(client, scim):
    """RFC 7644 §3.4.2.2: comparisons follow caseExact; ``status eq "provisioned"`` finds
    ``PROVISIONED`` (an IdP need not know the canonical case), so the schema says
    ``caseExact: false`` (it said true)."""
    schema = client.get(f"/scim/v2/Schemas/{PRODUCT}").get_json()
    status = next(a for a in schema["attributes"] if a["name"] == "status")
    assert status["caseExact"] is False
    scim.create_user("casey")
    found = scim.get(
        "/scim/v2/Users", query_string={"filter": f'{PRODUCT}:status eq "provisioned"'}
    )
    assert found.get_json()["totalResults"] == 1
