"""PATCH on Users (RFC 7644 §3.5.2), and the PUT cases IdPs rely on, through HTTP only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import ENTERPRISE, USER_SCHEMA, Scim
from tests.support.admin_api import events

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MISSING = object()

WORK = {"value": "bjensen@work.example", "type": "work", "primary": True}
HOME = {"value": "babs@home.example", "type": "home"}


def new_user(scim: Scim) -> dict[str, Any]:
    """Barbara Jensen with two emails (work is primary) and enterprise attributes."""
    return scim.create_user(
        "bjensen",
        displayName="Babs Jensen",
        name={"givenName": "Barbara", "familyName": "Jensen"},
        emails=[WORK, HOME],
        **{ENTERPRISE: {"department": "Sales", "manager": {"value": "mgr-1"}}},
    )


def url(user: dict[str, Any]) -> str:
    return f"/scim/v2/Users/{user['id']}"


def read(scim: Scim, user: dict[str, Any]) -> dict[str, Any]:
    resp = scim.get(url(user))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def pick(doc: dict[str, Any], key: tuple[str, ...]) -> Any:
    """The value at ``key`` (a tuple of names, so that URNs need no escaping)."""
    value: Any = doc
    for part in key:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def by_type(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in doc.get("emails", []) if e.get("type") == kind]


def assert_error(resp: Any, status: int, scim_type: str | None) -> None:
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body


# -- the operation table ----------------------------------------------------------

NEW_WORK = {"value": "barbara@new.example", "type": "work"}

# (operations, expected values on the re-read user; MISSING means unassigned)
PATCH_CASES = [
    pytest.param(
        [{"op": "add", "path": "name.givenName", "value": "Babs"}],
        {("name", "givenName"): "Babs", ("name", "familyName"): "Jensen"},
        id="add-sub-attribute",
    ),
    pytest.param(
        [{"op": "replace", "path": "name.givenName", "value": "Babs"}],
        {("name", "givenName"): "Babs", ("name", "familyName"): "Jensen"},
        id="replace-sub-attribute",
    ),
    pytest.param(
        [{"op": "remove", "path": "name.givenName"}],
        {("name", "givenName"): MISSING, ("name", "familyName"): "Jensen"},
        id="remove-sub-attribute",
    ),
    pytest.param(
        [{"op": "replace", "path": "name", "value": {"givenName": "Babs"}}],
        {("name",): {"givenName": "Babs", "familyName": "Jensen"}},
        id="replace-complex-keeps-unnamed-sub-attributes",
    ),
    pytest.param(
        [{"op": "replace", "path": "NAME.GIVENNAME", "value": "Babs"}],
        {("name", "givenName"): "Babs"},
        id="path-is-case-insensitive",
    ),
    pytest.param(
        [{"op": "replace", "path": f"{USER_SCHEMA}:name.givenName", "value": "Babs"}],
        {("name", "givenName"): "Babs", ("name", "familyName"): "Jensen"},
        id="core-urn-qualified-path",
    ),
    pytest.param(
        [{"op": "replace", "path": "password", "value": "Velvet-compass-tundra-58"}],
        {("password",): MISSING, ("displayName",): "Babs Jensen"},
        id="replace-password-never-returned",
    ),
    pytest.param(
        [{"op": "replace", "path": "displayName", "value": "Barbara J."}],
        {("displayName",): "Barbara J."},
        id="replace-simple",
    ),
    pytest.param(
        [{"op": "remove", "path": "displayName"}],
        {("displayName",): MISSING, ("userName",): "bjensen"},
        id="remove-simple",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": [{"value": "b@other.example", "type": "other"}]}],
        {("emails",): [WORK, HOME, {"value": "b@other.example", "type": "other"}]},
        id="add-to-multi-valued-appends",
    ),
    pytest.param(
        [{"op": "replace", "path": "emails", "value": [NEW_WORK]}],
        {("emails",): [NEW_WORK]},
        id="replace-multi-valued-replaces-all",
    ),
    pytest.param(
        [{"op": "remove", "path": "emails"}],
        {("emails",): MISSING},
        id="remove-multi-valued",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "b@new.example"}],
        {("emails",): [{**WORK, "value": "b@new.example"}, HOME]},
        id="replace-filtered-sub-attribute",
    ),
    pytest.param(
        [{"op": "add", "path": 'emails[type eq "other"].value', "value": "b@other.example"}],
        {("emails",): [WORK, HOME, {"type": "other", "value": "b@other.example"}]},
        id="add-filtered-sub-attribute-creates-element-entra",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "work"]', "value": NEW_WORK}],
        {("emails",): [NEW_WORK, HOME]},
        id="replace-filtered-element",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "work"]'}],
        {("emails",): [HOME]},
        id="remove-filtered-element",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[type eq "work"].value'}],
        {("emails",): [{"type": "work", "primary": True}, HOME]},
        id="remove-filtered-sub-attribute",
    ),
    pytest.param(
        [{"op": "remove", "path": 'emails[value eq "BABS@HOME.EXAMPLE"]'}],
        {("emails",): [WORK]},
        id="filter-on-case-insensitive-sub-attribute",
    ),
    pytest.param(
        [{"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Engineering"}],
        {(ENTERPRISE, "department"): "Engineering", (ENTERPRISE, "manager", "value"): "mgr-1"},
        id="replace-extension-attribute",
    ),
    pytest.param(
        [{"op": "add", "path": f"{ENTERPRISE}:costCenter", "value": "4130"}],
        {(ENTERPRISE, "costCenter"): "4130", (ENTERPRISE, "department"): "Sales"},
        id="add-extension-attribute",
    ),
    pytest.param(
        [{"op": "remove", "path": f"{ENTERPRISE}:department"}],
        {(ENTERPRISE, "department"): MISSING, (ENTERPRISE, "manager", "value"): "mgr-1"},
        id="remove-extension-attribute",
    ),
    pytest.param(
        [{"op": "replace", "path": f"{ENTERPRISE}:manager", "value": {"value": "mgr-2"}}],
        {(ENTERPRISE, "manager", "value"): "mgr-2"},
        id="replace-manager-complex",
    ),
    pytest.param(
        [{"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": "mgr-3"}],
        {(ENTERPRISE, "manager", "value"): "mgr-3"},
        id="replace-manager-bare-id-entra",
    ),
    pytest.param(
        [{"op": "replace", "path": f"{ENTERPRISE}:manager.value", "value": "mgr-4"}],
        {(ENTERPRISE, "manager", "value"): "mgr-4"},
        id="replace-manager-value-sub-attribute",
    ),
    pytest.param(
        [{"op": "remove", "path": f"{ENTERPRISE}:manager"}],
        {(ENTERPRISE, "manager"): MISSING, (ENTERPRISE, "department"): "Sales"},
        id="remove-manager",
    ),
    pytest.param(
        [{"op": "remove", "path": ENTERPRISE}],
        {(ENTERPRISE,): MISSING, ("userName",): "bjensen"},
        id="remove-whole-extension",
    ),
    pytest.param(
        [{"op": "replace", "value": {"displayName": "B.", "nickName": "Babs"}}],
        {("displayName",): "B.", ("nickName",): "Babs", ("name", "givenName"): "Barbara"},
        id="no-path-replace",
    ),
    pytest.param(
        [{"op": "add", "value": {"title": "Tour Guide", "name": {"middleName": "Jane"}}}],
        {
            ("title",): "Tour Guide",
            ("name",): {"givenName": "Barbara", "familyName": "Jensen", "middleName": "Jane"},
        },
        id="no-path-add-merges-complex",
    ),
    pytest.param(
        [{"op": "Add", "value": {"name.givenName": "Babs", "name.familyName": "J"}}],
        {("name",): {"givenName": "Babs", "familyName": "J"}},
        id="no-path-dotted-keys-entra",
    ),
    pytest.param(
        [
            {
                "op": "Replace",
                "value": {
                    f"{ENTERPRISE}:department": "Engineering",
                    f"{ENTERPRISE}:manager": "mgr-5",
                    f"{USER_SCHEMA}:displayName": "B. Jensen",
                },
            }
        ],
        {
            (ENTERPRISE, "department"): "Engineering",
            (ENTERPRISE, "manager", "value"): "mgr-5",
            ("displayName",): "B. Jensen",
        },
        id="no-path-urn-qualified-keys-entra",
    ),
    pytest.param(
        [{"op": "replace", "value": {ENTERPRISE: {"department": "Engineering"}}}],
        {(ENTERPRISE, "department"): "Engineering", (ENTERPRISE, "manager", "value"): "mgr-1"},
        id="no-path-extension-object",
    ),
    pytest.param(
        [{"op": "REPLACE", "path": "displayName", "value": "Up"}],
        {("displayName",): "Up"},
        id="op-name-upper-case",
    ),
    pytest.param(
        [
            {"op": "replace", "path": "displayName", "value": "First"},
            {"op": "replace", "path": "displayName", "value": "Second"},
            {"op": "remove", "path": "nickName"},
        ],
        {("displayName",): "Second"},
        id="operations-apply-in-order",
    ),
    pytest.param(
        [{"op": "add", "path": "emails", "value": [{"value": "new@x.example", "primary": True}]}],
        {
            ("emails",): [
                {**WORK, "primary": False},
                HOME,
                {"value": "new@x.example", "primary": True},
            ]
        },
        id="add-primary-clears-other-primary",
    ),
    pytest.param(
        [{"op": "replace", "path": 'emails[type eq "home"].primary', "value": True}],
        {("emails",): [{**WORK, "primary": False}, {**HOME, "primary": True}]},
        id="set-primary-through-filter-clears-other-primary",
    ),
]


@pytest.mark.parametrize(("ops", "expected"), PATCH_CASES)
def test_patch_user(scim: Scim, ops: list[dict[str, Any]], expected: dict[Any, Any]) -> None:
    """Each operation gives 200 with the full resource, and the re-read user shows its effect."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), *ops)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    after = read(scim, user)
    assert body == after
    assert resp.headers["ETag"] == after["meta"]["version"]
    for key, value in expected.items():
        assert pick(after, key) == value, key
    assert after["id"] == user["id"]
    assert after["meta"]["version"] != user["meta"]["version"]


def test_patch_manager_renders_reference(scim: Scim) -> None:
    """A manager set by bare id (Entra) is returned with value and a $ref to the user."""
    user = new_user(scim)
    resp = scim.patch_ops(
        url(user), {"op": "replace", "path": f"{ENTERPRISE}:manager", "value": "mgr-9"}
    )
    assert resp.status_code == 200, resp.get_json()
    manager = read(scim, user)[ENTERPRISE]["manager"]
    assert manager["value"] == "mgr-9"
    assert manager["$ref"].endswith("/scim/v2/Users/mgr-9")


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "replace", "path": "active", "value": False}, id="path"),
        pytest.param({"op": "replace", "value": {"active": False}}, id="no-path"),
        pytest.param({"op": "Replace", "path": "active", "value": "False"}, id="path-string-entra"),
        pytest.param({"op": "Replace", "value": {"active": "False"}}, id="no-path-string-entra"),
        pytest.param({"op": "add", "path": "active", "value": False}, id="add"),
        # RFC 7644 §3.5.2: attributes may be named with their schema's URN, as POST and PUT
        # take core attributes nested under the core URN.
        pytest.param(
            {"op": "replace", "value": {USER_SCHEMA: {"active": False}}}, id="no-path-core-urn"
        ),
        pytest.param(
            {"op": "Replace", "path": USER_SCHEMA, "value": {"active": "False"}},
            id="path-core-urn",
        ),
    ],
)
def test_deactivate_user(scim: Scim, op: dict[str, Any]) -> None:
    """Every spelling of "active is false" deactivates the user, as the re-read shows."""
    user = new_user(scim)
    assert user["active"] is True
    resp = scim.patch_ops(url(user), op)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["active"] is False
    assert read(scim, user)["active"] is False


def test_reactivate_user_with_string_true(scim: Scim) -> None:
    """Entra's "True" string reactivates a deactivated user."""
    user = new_user(scim)
    scim.patch_ops(url(user), {"op": "replace", "path": "active", "value": False})
    resp = scim.patch_ops(url(user), {"op": "Replace", "path": "active", "value": "True"})
    assert resp.status_code == 200, resp.get_json()
    assert read(scim, user)["active"] is True


def test_core_attributes_named_under_the_core_urn(scim: Scim) -> None:
    """A value keyed by the core URN, or the core URN as the path, changes the core
    attributes it holds as their plain names would (schemas, id and meta as in a no-path
    value); anything but an object there is refused, as POST refuses it."""
    user = new_user(scim)
    no_path = {
        "op": "replace",
        "value": {
            USER_SCHEMA: {"displayName": "B. Jensen", "name.familyName": "Jensen-Smith"},
            "title": "Tour Guide",
        },
    }
    assert scim.patch_ops(url(user), no_path).status_code == 200
    with_path = {
        "op": "add",
        "path": USER_SCHEMA.lower(),
        "value": {"schemas": [USER_SCHEMA], "id": user["id"], "nickName": "Babs"},
    }
    assert scim.patch_ops(url(user), with_path).status_code == 200
    got = read(scim, user)
    assert got["displayName"] == "B. Jensen" and got["title"] == "Tour Guide"
    assert got["name"] == {"givenName": "Barbara", "familyName": "Jensen-Smith"}
    assert got["nickName"] == "Babs"
    for bad in (
        {"op": "replace", "path": USER_SCHEMA, "value": "x"},
        {"op": "replace", "value": {USER_SCHEMA: ["x"]}},
    ):
        assert_error(scim.patch_ops(url(user), bad), 400, "invalidValue")
    assert read(scim, user) == got


def test_primary_stays_unique_across_patches(scim: Scim) -> None:
    """After a primary email is added, exactly one email is primary and it is the new one."""
    user = new_user(scim)
    new = {"value": "b@primary.example", "type": "other", "primary": True}
    resp = scim.patch_ops(url(user), {"op": "add", "path": "emails", "value": [new]})
    assert resp.status_code == 200, resp.get_json()
    primaries = [e for e in read(scim, user)["emails"] if e.get("primary") is True]
    assert primaries == [new]


# -- atomicity: a failing operation changes nothing ---------------------------------

FIRST = {"op": "replace", "path": "displayName", "value": "Changed by op 1"}

FAILING = [
    pytest.param(
        {"op": "replace", "path": "noSuchAttribute", "value": "x"},
        400,
        "invalidPath",
        id="unknown-attribute",
    ),
    pytest.param(
        {"op": "replace", "path": "name.noSuchSub", "value": "x"},
        400,
        "invalidPath",
        id="unknown-sub-attribute",
    ),
    pytest.param(
        {"op": "replace", "path": "urn:example:nope:attr", "value": "x"},
        400,
        "invalidPath",
        id="unknown-schema",
    ),
    pytest.param({"op": "remove"}, 400, "noTarget", id="remove-without-path"),
    pytest.param(
        {"op": "replace", "path": "id", "value": "other-id"}, 400, "mutability", id="replace-id"
    ),
    pytest.param(
        {"op": "replace", "path": "meta", "value": {"version": 'W/"99"'}},
        400,
        "mutability",
        id="replace-meta",
    ),
    pytest.param(
        {"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"},
        400,
        "mutability",
        id="replace-meta-sub",
    ),
    pytest.param(
        {"op": "replace", "value": {"id": "other-id"}}, 400, "mutability", id="no-path-other-id"
    ),
    pytest.param(
        {"op": "add", "path": "groups", "value": [{"value": "g1"}]},
        400,
        "mutability",
        id="add-groups",
    ),
    pytest.param(
        {"op": "replace", "value": {"groups": [{"value": "g1"}]}},
        400,
        "mutability",
        id="no-path-groups",
    ),
    pytest.param(
        {"op": "replace", "path": "active", "value": "maybe"}, 400, "invalidValue", id="bad-boolean"
    ),
    pytest.param(
        {"op": "replace", "path": "name.givenName", "value": 5},
        400,
        "invalidValue",
        id="number-for-string",
    ),
    pytest.param(
        {"op": "replace", "path": "name", "value": "Babs"},
        400,
        "invalidValue",
        id="string-for-complex",
    ),
    pytest.param(
        {
            "op": "add",
            "path": "emails",
            "value": [
                {"value": "a@x.example", "primary": True},
                {"value": "b@x.example", "primary": True},
            ],
        },
        400,
        "invalidValue",
        id="two-primaries",
    ),
    pytest.param(
        {"op": "replace", "path": "displayName"}, 400, "invalidValue", id="replace-without-value"
    ),
    pytest.param(
        {"op": "replace", "value": "not an object"}, 400, "invalidValue", id="no-path-scalar-value"
    ),
    pytest.param(
        {"op": "replace", "path": 'emails[type eq "work"', "value": "x"},
        400,
        "invalidPath",
        id="unclosed-filter",
    ),
    pytest.param(
        {"op": "replace", "path": "emails[type]", "value": "x"},
        400,
        "invalidPath",
        id="filter-without-operator",
    ),
    pytest.param(
        {"op": "replace", "path": "name..givenName", "value": "x"},
        400,
        "invalidPath",
        id="double-dot",
    ),
    pytest.param({"op": "replace", "path": "", "value": "x"}, 400, "invalidPath", id="empty-path"),
    pytest.param(
        {"op": "replace", "path": 'displayName[value eq "x"]', "value": "x"},
        400,
        "invalidPath",
        id="filter-on-single-valued",
    ),
    pytest.param(
        {"op": "replace", "path": 'emails[value sw "zzz"]', "value": {"value": "z@x.example"}},
        400,
        "noTarget",
        id="filter-matches-nothing",
    ),
    pytest.param(
        {"op": "remove", "path": "userName"}, 400, "mutability", id="remove-required-userName"
    ),
    pytest.param(
        {"op": "replace", "path": "userName", "value": ""}, 400, "invalidValue", id="empty-userName"
    ),
    pytest.param({"op": "move", "path": "displayName"}, 400, "invalidSyntax", id="unknown-op"),
]


@pytest.mark.parametrize(("bad", "status", "scim_type"), FAILING)
def test_failing_operation_changes_nothing(
    scim: Scim, bad: dict[str, Any], status: int, scim_type: str
) -> None:
    """A PATCH whose 2nd operation fails gets a SCIM error and leaves the user as it was."""
    user = new_user(scim)
    before = read(scim, user)
    resp = scim.patch_ops(url(user), FIRST, bad)
    assert_error(resp, status, scim_type)
    after = read(scim, user)
    assert after == before
    assert after["meta"]["version"] == user["meta"]["version"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"Operations": [FIRST]}, id="no-schemas"),
        pytest.param({"schemas": [USER_SCHEMA], "Operations": [FIRST]}, id="wrong-schema"),
        pytest.param(
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}, id="no-operations"
        ),
        pytest.param(
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []},
            id="empty-operations",
        ),
        pytest.param(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [FIRST, "x"],
            },
            id="operation-not-object",
        ),
        pytest.param([FIRST], id="not-an-object"),
    ],
)
def test_malformed_patch_request(scim: Scim, body: Any) -> None:
    """A malformed PatchOp envelope is 400 invalidSyntax and changes nothing."""
    user = new_user(scim)
    before = read(scim, user)
    assert_error(scim.patch(url(user), body), 400, "invalidSyntax")
    assert read(scim, user) == before


def test_patch_username_to_taken_name_conflicts(scim: Scim) -> None:
    """Renaming to another user's userName, in any case, is 409 uniqueness and changes nothing."""
    scim.create_user("taken")
    user = new_user(scim)
    before = read(scim, user)
    resp = scim.patch_ops(url(user), {"op": "replace", "path": "userName", "value": "TAKEN"})
    assert_error(resp, 409, "uniqueness")
    assert read(scim, user) == before


def test_patch_username_case_of_own_name(scim: Scim) -> None:
    """Changing only the case of one's own userName is allowed."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), {"op": "replace", "path": "userName", "value": "BJensen"})
    assert resp.status_code == 200, resp.get_json()
    assert read(scim, user)["userName"] == "BJensen"


def test_patch_unknown_user(scim: Scim) -> None:
    """PATCH of an id that does not exist is 404."""
    assert_error(scim.patch_ops("/scim/v2/Users/no-such-id", FIRST), 404, None)


def test_patch_without_change_keeps_version(scim: Scim) -> None:
    """A PATCH that sets values the user already has keeps meta.version and the ETag."""
    user = new_user(scim)
    resp = scim.patch_ops(
        url(user),
        {"op": "replace", "path": "displayName", "value": "Babs Jensen"},
        {"op": "add", "path": "emails", "value": [HOME]},
        {"op": "remove", "path": "nickName"},
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == user["meta"]["version"]
    assert read(scim, user) == user


def test_patch_response_is_full_resource(scim: Scim) -> None:
    """PATCH answers 200 with the whole user, as a GET would return it, and its new ETag."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), FIRST)
    assert resp.status_code == 200
    assert resp.mimetype == "application/scim+json"
    body = resp.get_json()
    assert body == read(scim, user)
    assert body["displayName"] == FIRST["value"]
    assert body["emails"] == [WORK, HOME]
    assert body[ENTERPRISE]["department"] == "Sales"
    assert body["meta"]["version"] == resp.headers["ETag"] != user["meta"]["version"]
    assert body["meta"]["created"] == user["meta"]["created"]


def test_patch_attributes_shapes_response(scim: Scim) -> None:
    """PATCH with ?attributes= returns only those attributes (and the always-returned ones)."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user) + "?attributes=displayName", FIRST)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"schemas", "id", "displayName"}
    assert body["displayName"] == FIRST["value"]
    assert read(scim, user)["emails"] == [WORK, HOME]


def test_patch_excluded_attributes_shapes_response(scim: Scim) -> None:
    """PATCH with ?excludedAttributes= leaves those attributes out of the response only."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user) + "?excludedAttributes=emails," + ENTERPRISE, FIRST)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "emails" not in body
    assert ENTERPRISE not in body
    assert body["displayName"] == FIRST["value"]
    after = read(scim, user)
    assert after["emails"] == [WORK, HOME]
    assert after[ENTERPRISE]["department"] == "Sales"


# -- preconditions ------------------------------------------------------------------------


def test_patch_with_stale_etag_fails(scim: Scim) -> None:
    """If-Match with an old ETag is 412 and the user is unchanged."""
    user = new_user(scim)
    stale = user["meta"]["version"]
    assert scim.patch_ops(url(user), FIRST).status_code == 200
    before = read(scim, user)
    second = {"op": "replace", "path": "displayName", "value": "Second"}
    resp = scim.patch_ops(url(user), second, headers={"If-Match": stale})
    assert_error(resp, 412, None)
    assert read(scim, user) == before


def test_patch_with_current_etag_succeeds(scim: Scim) -> None:
    """If-Match with the current ETag is 200 and returns a new ETag."""
    user = new_user(scim)
    current = scim.get(url(user)).headers["ETag"]
    assert current == user["meta"]["version"]
    resp = scim.patch_ops(url(user), FIRST, headers={"If-Match": current})
    assert resp.status_code == 200, resp.get_json()
    new_tag = resp.headers["ETag"]
    assert new_tag != current
    after = read(scim, user)
    assert after["meta"]["version"] == new_tag
    assert after["displayName"] == FIRST["value"]


def test_put_with_stale_etag_fails(scim: Scim) -> None:
    """PUT with a stale If-Match is 412 and the user is unchanged."""
    user = new_user(scim)
    stale = user["meta"]["version"]
    scim.patch_ops(url(user), FIRST)
    before = read(scim, user)
    body = {"schemas": [USER_SCHEMA], "userName": "bjensen", "displayName": "PUT"}
    assert_error(scim.put(url(user), body, headers={"If-Match": stale}), 412, None)
    assert read(scim, user) == before


# -- PUT ------------------------------------------------------------------------------------


def test_put_with_id_and_meta_in_body(scim: Scim) -> None:
    """PUT of the resource as read, id and meta included (Okta), replaces it: 200."""
    user = new_user(scim)
    body = read(scim, user)
    body["displayName"] = "Replaced"
    body["emails"] = [HOME]
    resp = scim.put(url(user), body)
    assert resp.status_code == 200, resp.get_json()
    after = read(scim, user)
    assert resp.get_json() == after
    assert after["displayName"] == "Replaced"
    assert after["emails"] == [HOME]
    assert after["id"] == user["id"]
    assert after["meta"]["created"] == user["meta"]["created"]
    assert after["meta"]["version"] != user["meta"]["version"]


def test_put_omitting_attributes_clears_them(scim: Scim) -> None:
    """PUT replaces the whole user: attributes left out are unassigned afterwards."""
    user = new_user(scim)
    resp = scim.put(url(user), {"schemas": [USER_SCHEMA], "userName": "bjensen"})
    assert resp.status_code == 200, resp.get_json()
    after = read(scim, user)
    for key in ("displayName", "name", "emails", ENTERPRISE):
        assert key not in after


def test_put_unchanged_keeps_version(scim: Scim) -> None:
    """PUT of the resource exactly as read (id, meta, groups included) keeps meta.version."""
    user = scim.create_user(
        "unchanged",
        active=True,
        name={"givenName": "Una"},
        emails=[WORK, HOME],
        **{ENTERPRISE: {"department": "Sales"}},
    )
    before = read(scim, user)
    resp = scim.put(url(user), before)
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == before["meta"]["version"]
    assert read(scim, user) == before


def test_put_unchanged_user_created_without_active_keeps_version(scim: Scim) -> None:
    """PUT of a user created without 'active', sent back as read, keeps meta.version."""
    user = scim.create_user("minimal")
    resp = scim.put(url(user), read(scim, user))
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == user["meta"]["version"]


def test_put_unchanged_user_with_manager_keeps_version(scim: Scim) -> None:
    """PUT of a user with a manager, sent back as read, keeps meta.version."""
    user = scim.create_user("managed", active=True, **{ENTERPRISE: {"manager": {"value": "m1"}}})
    resp = scim.put(url(user), read(scim, user))
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == user["meta"]["version"]


# -- a whole extension as the path, its value carrying "schemas" (issue 15, item 1) ---------

PRODUCT = "urn:scim-server:schemas:extension:product:1.0:User"


@pytest.mark.parametrize("op", ["add", "replace"])
@pytest.mark.parametrize("urn_case", [ENTERPRISE, ENTERPRISE.upper()])
def test_whole_enterprise_extension_with_own_schemas_key(
    scim: Scim, op: str, urn_case: str
) -> None:
    """A value object naming its own extension in "schemas" (typed SCIM models) is applied."""
    user = new_user(scim)
    value = {"schemas": [urn_case], "department": "Engineering", "costCenter": "4130"}
    resp = scim.patch_ops(url(user), {"op": op, "path": ENTERPRISE, "value": value})
    assert resp.status_code == 200, resp.get_json()
    after = read(scim, user)
    assert after[ENTERPRISE]["department"] == "Engineering"
    assert after[ENTERPRISE]["costCenter"] == "4130"
    assert "schemas" not in after[ENTERPRISE]


@pytest.mark.parametrize(
    "schemas",
    [
        pytest.param([USER_SCHEMA], id="core"),
        pytest.param([PRODUCT], id="other-extension"),
        pytest.param([ENTERPRISE, PRODUCT], id="two"),
        pytest.param(ENTERPRISE, id="not-a-list"),
    ],
)
def test_whole_extension_value_naming_another_schema_is_refused(scim: Scim, schemas: Any) -> None:
    """A "schemas" in the value that is not exactly the path's extension is 400 invalidValue."""
    user = new_user(scim)
    before = read(scim, user)
    value = {"schemas": schemas, "department": "Engineering"}
    resp = scim.patch_ops(url(user), {"op": "replace", "path": ENTERPRISE, "value": value})
    assert_error(resp, 400, "invalidValue")
    assert read(scim, user) == before


@pytest.mark.parametrize("op", ["add", "replace"])
def test_whole_product_extension_with_only_its_schemas_key(scim: Scim, op: str) -> None:
    """The product extension named with its own "schemas" and nothing to change is 200, no change."""
    user = new_user(scim)
    value = {"schemas": [PRODUCT]}
    resp = scim.patch_ops(url(user), {"op": op, "path": PRODUCT, "value": value})
    assert resp.status_code == 200, resp.get_json()
    assert read(scim, user) == user


@pytest.mark.parametrize("op", ["add", "replace"])
def test_whole_product_extension_read_only_values_are_mutability(scim: Scim, op: str) -> None:
    """Read-only product values in a whole-extension PATCH are 400 mutability, never "unknown"."""
    user = new_user(scim)
    value = {"schemas": [PRODUCT], "status": "DEACTIVATED"}
    resp = scim.patch_ops(url(user), {"op": op, "path": PRODUCT, "value": value})
    assert_error(resp, 400, "mutability")
    assert "status" in resp.get_json()["detail"]
    assert read(scim, user) == user


# -- nothing the client asks to change is silently ignored (issue 15, item 2) ----------------

UNCHANGEABLE = [
    pytest.param({"op": "remove", "path": "active"}, "mutability", id="remove-active"),
    pytest.param(
        {"op": "replace", "path": "active", "value": None}, "mutability", id="replace-active-null"
    ),
    pytest.param(
        {"op": "replace", "value": {"active": None}}, "mutability", id="no-path-active-null"
    ),
    pytest.param({"op": "remove", "path": PRODUCT}, "mutability", id="remove-product-extension"),
    pytest.param(
        {"op": "remove", "path": f"{PRODUCT}:status"}, "mutability", id="remove-product-status"
    ),
    pytest.param(
        {"op": "replace", "path": f"{PRODUCT}:status", "value": "ACTIVE"},
        "mutability",
        id="replace-product-status",
    ),
    pytest.param(
        {"op": "replace", "value": {PRODUCT: {"status": "DEACTIVATED"}}},
        "mutability",
        id="no-path-product-status",
    ),
    pytest.param({"op": "remove", "path": "id"}, "mutability", id="remove-id"),
    pytest.param({"op": "remove", "path": "meta"}, "mutability", id="remove-meta"),
    pytest.param({"op": "remove", "path": "meta.version"}, "mutability", id="remove-meta-sub"),
    pytest.param({"op": "remove", "path": "groups"}, "mutability", id="remove-groups"),
    pytest.param({"op": "remove", "path": "schemas"}, "mutability", id="remove-schemas"),
    pytest.param(
        {"op": "replace", "path": "schemas", "value": [USER_SCHEMA]},
        "mutability",
        id="replace-schemas",
    ),
    pytest.param({"op": "remove", "path": "password"}, "mutability", id="remove-password"),
    pytest.param({"op": "remove", "path": "userName"}, "mutability", id="remove-required"),
    pytest.param({"op": "remove", "path": USER_SCHEMA}, "mutability", id="remove-core-schema"),
    pytest.param(
        {"op": "replace", "path": "userName", "value": None}, "mutability", id="null-required"
    ),
    pytest.param(
        {"op": "remove", "path": f"{ENTERPRISE}:manager.displayName"},
        "mutability",
        id="remove-read-only-sub-attribute",
    ),
    pytest.param(
        {"op": "remove", "path": 'emails[type eq "other"]'}, "noTarget", id="remove-filter-no-match"
    ),
    pytest.param(
        {"op": "remove", "path": 'emails[type eq "other"].value'},
        "noTarget",
        id="remove-filtered-sub-no-match",
    ),
    pytest.param(
        {"op": "replace", "path": 'emails[value sw "zzz"].type', "value": "home"},
        "noTarget",
        id="replace-filtered-sub-no-match",
    ),
    pytest.param(
        {"op": "replace", "path": "emails.nope", "value": "x"},
        "invalidPath",
        id="unknown-sub-attribute",
    ),
    pytest.param(
        {"op": "remove", "path": f"{ENTERPRISE}:nope"}, "invalidPath", id="unknown-ext-attribute"
    ),
]


@pytest.mark.parametrize(("op", "scim_type"), UNCHANGEABLE)
def test_no_silent_no_op(scim: Scim, op: dict[str, Any], scim_type: str) -> None:
    """An operation the server cannot carry out is a 400 with its scimType, never a 200 no-op."""
    user = new_user(scim)
    before = read(scim, user)
    assert_error(scim.patch_ops(url(user), op), 400, scim_type)
    assert read(scim, user) == before


def test_remove_active_never_reactivates_a_leaver(scim: Scim) -> None:
    """remove "active" on a deactivated user is refused: the user stays inactive."""
    user = new_user(scim)
    scim.patch_ops(url(user), {"op": "replace", "path": "active", "value": False})
    before = read(scim, user)
    assert before["active"] is False
    assert_error(scim.patch_ops(url(user), {"op": "remove", "path": "active"}), 400, "mutability")
    assert read(scim, user) == before


def test_put_without_active_keeps_the_status(scim: Scim) -> None:
    """PUT that does not mention "active" leaves it as it is: a leaver is not reactivated."""
    user = new_user(scim)
    scim.patch_ops(url(user), {"op": "replace", "path": "active", "value": False})
    body = {"schemas": [USER_SCHEMA], "userName": "bjensen", "displayName": "Still gone"}
    resp = scim.put(url(user), body)
    assert resp.status_code == 200, resp.get_json()
    after = read(scim, user)
    assert after["active"] is False
    assert after["displayName"] == "Still gone"
    assert after["urn:scim-server:schemas:extension:product:1.0:User"]["status"] == "DEACTIVATED"


# -- duplicates compare values with defaults applied (issue 15, item 4) ----------------------

HOME_PRIMARY = {"value": "babs@home.example", "type": "home", "primary": True}


def test_retried_add_of_non_primary_value_changes_nothing(scim: Scim) -> None:
    """Re-adding the work e-mail without "primary" after it lost primary changes nothing."""
    user = scim.create_user("retry", emails=[WORK])
    add_home = {"op": "add", "path": "emails", "value": [HOME_PRIMARY]}
    assert scim.patch_ops(url(user), add_home).status_code == 200
    before = read(scim, user)
    assert before["emails"] == [{**WORK, "primary": False}, HOME_PRIMARY]
    retry = {"op": "add", "path": "emails", "value": [{"value": WORK["value"], "type": "work"}]}
    resp = scim.patch_ops(url(user), retry)
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == before["meta"]["version"]
    assert read(scim, user) == before


@pytest.mark.parametrize(
    "again",
    [
        pytest.param({"value": "BJENSEN@WORK.EXAMPLE", "type": "WORK"}, id="case-insensitive"),
        pytest.param({"value": "bjensen@work.example", "type": "work", "primary": False}, id="f"),
        pytest.param({"value": "babs@home.example", "type": "home", "primary": False}, id="home"),
    ],
)
def test_add_existing_value_is_a_no_op(scim: Scim, again: dict[str, Any]) -> None:
    """An add of a value the user has (compared as the schema compares) keeps the version."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), {"op": "add", "path": "emails", "value": [again]})
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == user["meta"]["version"]
    assert read(scim, user) == user


def test_add_existing_value_as_primary_moves_primary_only(scim: Scim) -> None:
    """Re-adding the home e-mail with primary true makes it primary, without a twin."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), {"op": "add", "path": "emails", "value": [HOME_PRIMARY]})
    assert resp.status_code == 200, resp.get_json()
    assert read(scim, user)["emails"] == [{**WORK, "primary": False}, HOME_PRIMARY]


@pytest.mark.parametrize("method", ["post", "put", "patch-replace"])
def test_duplicates_in_one_list_collapse(scim: Scim, method: str) -> None:
    """The same value twice in a POST, PUT or replace list (defaults applied) is stored once."""
    emails = [
        WORK,
        {"value": "BJensen@Work.Example", "type": "work"},
        HOME,
        {**HOME, "primary": False},
    ]
    if method == "post":
        user = scim.create_user("dupes", emails=emails)
    else:
        user = new_user(scim)
        if method == "put":
            body = {"schemas": [USER_SCHEMA], "userName": "bjensen", "emails": emails}
            assert scim.put(url(user), body).status_code == 200
        else:
            op = {"op": "replace", "path": "emails", "value": emails}
            assert scim.patch_ops(url(user), op).status_code == 200
    assert read(scim, user)["emails"] == [WORK, HOME]


# -- values named as the schema compares them; absent booleans read false -------------------


@pytest.mark.parametrize(
    "named",
    [
        pytest.param([{"value": "BABS@Home.Example"}], id="list-other-case"),
        pytest.param({"value": "Babs@HOME.example"}, id="object-other-case"),
        pytest.param("BABS@HOME.EXAMPLE", id="bare-other-case"),
        pytest.param([{"value": "babs@home.example"}], id="same-case"),
    ],
)
def test_rfc_7643_4_1_2_remove_of_an_email_by_value_ignores_case(scim: Scim, named: Any) -> None:
    """emails.value is caseExact false (RFC 7643 §4.1.2, §2.4): a remove naming the address
    in another case names the same value, and removes it."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), {"op": "remove", "path": "emails", "value": named})
    assert resp.status_code == 200, resp.get_json()
    assert read(scim, user)["emails"] == [WORK]


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        pytest.param("emails[primary eq false]", [WORK], id="eq-false"),
        pytest.param('emails[primary eq "false"]', [WORK], id="eq-false-string"),
        pytest.param("emails[primary ne true]", [WORK], id="ne-true"),
        pytest.param("emails[not (primary eq true)]", [WORK], id="not-eq-true"),
        pytest.param("emails[primary eq true]", [HOME], id="eq-true"),
        pytest.param("emails[primary ne false]", [HOME], id="ne-false"),
    ],
)
def test_rfc_7643_2_4_patch_filter_reads_absent_primary_as_false(
    scim: Scim, path: str, kept: list[dict[str, Any]]
) -> None:
    """RFC 7643 §2.4: "If not specified, the value of primary SHALL be assumed to be false":
    a value path on primary selects the e-mail without it as one with primary false."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), {"op": "remove", "path": path})
    assert resp.status_code == 200, resp.get_json()
    assert read(scim, user)["emails"] == kept


def test_patch_filter_on_primary_pr_still_needs_the_value(scim: Scim) -> None:
    """`primary pr` and `primary eq null` are about the value being there, not its default."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), {"op": "remove", "path": "emails[primary eq null]"})
    assert resp.status_code == 200, resp.get_json()
    assert read(scim, user)["emails"] == [WORK]
    resp = scim.patch_ops(url(user), {"op": "remove", "path": "emails[not (primary pr)]"})
    assert_error(resp, 400, "noTarget")


# -- null in a complex or whole-extension value: unassigned (RFC 7643 §2.5) ---------------------


def last_patch(admin: Scim, user: dict[str, Any]) -> dict[str, Any]:
    """The newest ``user.patch`` audit event of ``user``."""
    return events(admin, action="user.patch", resource_id=user["id"])[-1]


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "replace", "path": "name", "value": {"givenName": None}}, id="path"),
        pytest.param({"op": "add", "path": "name", "value": {"givenName": None}}, id="path-add"),
        pytest.param({"op": "Replace", "value": {"name": {"givenName": None}}}, id="no-path"),
        pytest.param({"op": "Add", "value": {"name": {"GivenName": None}}}, id="no-path-add"),
        pytest.param(
            {"op": "replace", "path": USER_SCHEMA, "value": {"name": {"givenName": None}}},
            id="core-urn",
        ),
    ],
)
def test_replace_of_a_complex_value_with_a_null_sub_attribute_unassigns_it(
    scim: Scim, admin: Scim, op: dict[str, Any]
) -> None:
    """RFC 7644 §3.5.2.3: the sub-attributes given replace the stored ones, the others stay;
    RFC 7643 §2.5: a null one is unassigned, as `replace name.givenName null` makes it (it
    answered 200 and kept the given name)."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), op)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["name"] == {"familyName": "Jensen"}
    assert resp.headers["ETag"] != user["meta"]["version"]
    assert read(scim, user)["name"] == {"familyName": "Jensen"}
    assert last_patch(admin, user)["changes"] == {
        "name": {
            "before": {"givenName": "Barbara", "familyName": "Jensen"},
            "after": {"familyName": "Jensen"},
        }
    }


def test_complex_value_whose_every_sub_attribute_is_null_is_unassigned(
    scim: Scim, admin: Scim
) -> None:
    """RFC 7643 §2.5: a complex value left with no sub-attribute is unassigned: `name` goes,
    no empty object stays behind; a null sub-attribute the user has not got changes nothing
    beside it."""
    user = new_user(scim)
    value = {"givenName": None, "familyName": None, "middleName": None}
    resp = scim.patch_ops(url(user), {"op": "replace", "path": "name", "value": value})
    assert resp.status_code == 200, resp.get_json()
    assert "name" not in resp.get_json()
    assert "name" not in read(scim, user)
    assert last_patch(admin, user)["changes"] == {
        "name": {"before": {"givenName": "Barbara", "familyName": "Jensen"}}
    }


def test_null_sub_attribute_the_user_has_not_got_keeps_the_version(scim: Scim, admin: Scim) -> None:
    """Unassigning what is unassigned changes nothing: same version, an event without changes."""
    user = new_user(scim)
    resp = scim.patch_ops(
        url(user), {"op": "replace", "path": "name", "value": {"middleName": None}}
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == user["meta"]["version"]
    assert read(scim, user) == user
    assert last_patch(admin, user)["changes"] == {}


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(
            {"op": "replace", "path": ENTERPRISE, "value": {"department": None}}, id="path"
        ),
        pytest.param({"op": "add", "path": ENTERPRISE, "value": {"department": None}}, id="add"),
        pytest.param({"op": "Replace", "value": {ENTERPRISE: {"department": None}}}, id="no-path"),
        pytest.param(
            {"op": "replace", "path": ENTERPRISE.upper(), "value": {"Department": None}},
            id="other-case",
        ),
        pytest.param(
            {
                "op": "replace",
                "path": ENTERPRISE,
                "value": {"schemas": [ENTERPRISE], "department": None},
            },
            id="own-schemas",
        ),
    ],
)
def test_replace_of_the_enterprise_extension_with_a_null_attribute_unassigns_it(
    scim: Scim, admin: Scim, op: dict[str, Any]
) -> None:
    """RFC 7643 §2.5: an attribute given as null in a whole-extension value (Entra's department
    cleared at the source) is unassigned, the others stay (it answered 200 and kept it)."""
    user = scim.create_user(
        "d@example.com", **{ENTERPRISE: {"department": "Sales", "costCenter": "7"}}
    )
    resp = scim.patch_ops(url(user), op)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()[ENTERPRISE] == {"costCenter": "7"}
    assert resp.headers["ETag"] != user["meta"]["version"]
    assert read(scim, user)[ENTERPRISE] == {"costCenter": "7"}
    assert last_patch(admin, user)["changes"] == {f"{ENTERPRISE}:department": {"before": "Sales"}}


def test_whole_extension_whose_every_attribute_is_null_leaves_no_extension(scim: Scim) -> None:
    """The last enterprise attribute unassigned takes the extension with it (and its schema
    from `schemas`)."""
    user = scim.create_user("d@example.com", **{ENTERPRISE: {"department": "Sales"}})
    value = {"department": None, "costCenter": None}
    resp = scim.patch_ops(url(user), {"op": "replace", "path": ENTERPRISE, "value": value})
    assert resp.status_code == 200, resp.get_json()
    assert ENTERPRISE not in resp.get_json()
    assert ENTERPRISE not in resp.get_json()["schemas"]
    assert ENTERPRISE not in read(scim, user)


@pytest.mark.parametrize("op", ["replace", "add"])
def test_the_enterprise_extension_replaced_with_null_is_removed(
    scim: Scim, admin: Scim, op: str
) -> None:
    """RFC 7643 §2.5: null is unassigned; the whole extension given as null goes, as a remove
    of it does (it answered 200 and kept every attribute)."""
    user = scim.create_user(
        "d@example.com", **{ENTERPRISE: {"department": "Sales", "costCenter": "7"}}
    )
    resp = scim.patch_ops(url(user), {"op": op, "path": ENTERPRISE, "value": None})
    assert resp.status_code == 200, resp.get_json()
    assert ENTERPRISE not in resp.get_json()
    assert resp.headers["ETag"] != user["meta"]["version"]
    assert ENTERPRISE not in read(scim, user)
    assert last_patch(admin, user)["changes"]


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_post_and_put_store_nothing_for_null_values(scim: Scim, method: str) -> None:
    """RFC 7643 §2.5: nulls in a POST or PUT body are unassigned: no given name, no manager,
    no department, and no empty `name` or `manager` object left behind."""
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "nulls@example.com",
        "name": {"givenName": None},
        ENTERPRISE: {"manager": {"value": None}, "department": None, "costCenter": "7"},
    }
    if method == "POST":
        resp = scim.post("/scim/v2/Users", body)
        assert resp.status_code == 201, resp.get_json()
        user = resp.get_json()
    else:
        user = new_user(scim)
        resp = scim.put(url(user), body)
        assert resp.status_code == 200, resp.get_json()
    got = read(scim, user)
    assert resp.get_json() == got
    assert "name" not in got
    assert got[ENTERPRISE] == {"costCenter": "7"}


@pytest.mark.parametrize(
    "op",
    [
        pytest.param({"op": "add", "path": "title", "value": None}, id="path"),
        pytest.param({"op": "Add", "value": {"title": None}}, id="no-path"),
    ],
)
def test_add_of_null_to_a_single_valued_attribute_unassigns_it(
    scim: Scim, admin: Scim, op: dict[str, Any]
) -> None:
    """RFC 7644 §3.5.2.1: an add to a single-valued attribute replaces it, so an add of null
    unassigns it as a replace does (it answered 200 and kept the title)."""
    user = scim.create_user("t@example.com", title="Engineer", displayName="T")
    resp = scim.patch_ops(url(user), op)
    assert resp.status_code == 200, resp.get_json()
    assert "title" not in resp.get_json()
    assert resp.headers["ETag"] != user["meta"]["version"]
    assert "title" not in read(scim, user)
    assert last_patch(admin, user)["changes"] == {"title": {"before": "Engineer"}}


def test_add_of_null_to_a_multi_valued_attribute_adds_nothing(scim: Scim, admin: Scim) -> None:
    """An add of no values to a list adds none and removes none: same version."""
    user = new_user(scim)
    resp = scim.patch_ops(url(user), {"op": "add", "path": "emails", "value": None})
    assert resp.status_code == 200, resp.get_json()
    assert resp.headers["ETag"] == user["meta"]["version"]
    assert read(scim, user) == user
    assert last_patch(admin, user)["changes"] == {}
