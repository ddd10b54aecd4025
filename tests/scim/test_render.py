"""``render.user_to_scim`` against its definition, key by key, for any stored document;
``render.wants``: which attributes a response loads."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim_server import jsonfast
from scim_server.scim.render import user_to_scim, wants
from scim_server.scim.schema import ENTERPRISE_SCHEMA, PRODUCT_SCHEMA, USER_SCHEMA

BASE = "https://scim.example.org/scim/v2"
KEYS = [
    "userName",
    "externalId",
    "active",
    "schemas",
    "id",
    "meta",
    "groups",
    "title",
    "name",
    "emails",
    ENTERPRISE_SCHEMA,
    "urn:example:ext:1.0:User",
    "displayName",
]


def reference(user: Any, groups: Any, product: Any) -> dict[str, Any]:
    """The representation as first defined: the stored keys copied one by one."""
    data = user.data
    doc: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": user.id}
    if user.external_id is not None:
        doc["externalId"] = user.external_id
    doc["userName"] = user.user_name
    for key, value in data.items():
        if key in ("userName", "externalId", "active") or ":" in key:
            continue
        doc[key] = value
    doc["active"] = user.active
    if groups:
        doc["groups"] = [
            {"value": gid, "$ref": f"{BASE}/Groups/{gid}", "display": name, "type": "direct"}
            for gid, name in groups
        ]
    enterprise = data.get(ENTERPRISE_SCHEMA)
    if enterprise:
        manager = enterprise.get("manager")
        if isinstance(manager, dict) and manager.get("value"):
            ref = {**manager, "$ref": f"{BASE}/Users/{manager['value']}"}
            enterprise = {**enterprise, "manager": ref}
        doc["schemas"].append(ENTERPRISE_SCHEMA)
        doc[ENTERPRISE_SCHEMA] = enterprise
    if product:
        doc["schemas"].append(PRODUCT_SCHEMA)
        doc[PRODUCT_SCHEMA] = product
    doc["meta"] = {
        "resourceType": "User",
        "created": "2024-01-01T00:00:00Z",
        "lastModified": "2024-01-02T00:00:00.5Z",
        "location": f"{BASE}/Users/{user.id}",
        "version": f'W/"{user.version}"',
    }
    return doc


def value_for(key: str, n: int) -> Any:
    if key == ENTERPRISE_SCHEMA:
        return {"department": "x", "manager": {"value": f"m{n}"}} if n % 2 else {"n": n}
    if key == "schemas":
        return [USER_SCHEMA, "stored"]
    return {"v": n} if n % 3 == 0 else f"s{n}"


@given(
    st.lists(st.sampled_from(KEYS), unique=True),
    st.one_of(st.none(), st.just("ext-1")),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_each_shape_renders_as_the_definition(
    keys: list[str], external_id: Any, active: bool, grouped: bool, with_product: bool
) -> None:
    def user() -> Any:
        data = {k: value_for(k, i) for i, k in enumerate(keys)}
        return SimpleNamespace(
            id="u1",
            user_name="col@example.org",
            external_id=external_id,
            active=active,
            data=data,
            version=3,
            created_at="2024-01-01T00:00:00Z",
            updated_at="2024-01-02T00:00:00.5Z",
        )

    groups = [("g1", "One"), ("g2", "Two")] if grouped else None
    product = {"status": "active"} if with_product else None
    for _ in range(2):  # the second time from the cached shape
        got = jsonfast.dumps_bytes(user_to_scim(user(), groups, BASE, product))
        assert got == jsonfast.dumps_bytes(reference(user(), groups, product))


GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.mark.parametrize(
    ("attributes", "excluded", "wanted"),
    [
        (None, None, True),
        (["members"], None, True),
        (["members.value"], None, True),
        (["Members.Display"], None, True),
        ([f"{GROUP_URN}:members.value"], None, True),
        (["displayName"], None, False),
        (None, ["members"], False),
        (None, ["MEMBERS"], False),
        (None, [f"{GROUP_URN}:members"], False),
        (None, ["members.display"], True),
        (None, ["members.value", "members.display"], True),
        (None, [f"{GROUP_URN}:members.display"], True),
        (None, ["displayName"], True),
    ],
)
def test_wants_members(attributes: Any, excluded: Any, wanted: bool) -> None:
    """RFC 7644 §3.4.2.5: a sub-attribute in `attributes` wants the attribute; only the bare
    attribute in `excludedAttributes` does not (a sub-attribute excluded leaves the rest)."""
    assert wants("members", attributes, excluded) is wanted
