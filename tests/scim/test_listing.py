"""Sorting, pagination and attribute projection (RFC 7644 §3.4.2.3-§3.4.2.5, §3.9)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scim import dataset
from tests.scim.dataset import ALL_USERS, Data
from tests.support import ENTERPRISE, GROUP_SCHEMA, USER_SCHEMA, Scim

# The shared data set (tests/scim/dataset.py): built once per module and database.
data_connection = dataset.data_connection
data_app = dataset.data_app
data = dataset.data
connection = dataset.connection
app = dataset.app
ds = dataset.ds

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
CREATED_ORDER = ["alice", "bob", "carol", "dave", "eve"]


def listing(scim: Scim, endpoint: str = "Users", **params: Any) -> dict[str, Any]:
    resp = scim.get(f"/scim/v2/{endpoint}", query_string=params)
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert resp.mimetype == "application/scim+json"
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["itemsPerPage"] == len(body["Resources"])
    return body


def assert_error(resp: Any, status: int, scim_type: str | None) -> None:
    body = resp.get_json()
    assert resp.status_code == status, body
    assert resp.mimetype == "application/scim+json"
    assert ERROR in body["schemas"]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type


# -- sorting ---------------------------------------------------------------------------


SORTS: list[tuple[dict[str, str], list[str]]] = [
    # No sortBy: creation order, so that pages are stable.
    ({}, CREATED_ORDER),
    # Case-insensitive attributes sort case-insensitively (RFC 7644 §3.4.2.3):
    # "Alice@", "bob", "CAROL.k", "dave_", "eve-".
    ({"sortBy": "userName"}, ["alice", "bob", "carol", "dave", "eve"]),
    ({"sortBy": "userName", "sortOrder": "descending"}, ["eve", "dave", "carol", "bob", "alice"]),
    ({"sortBy": "USERNAME", "sortOrder": "Descending"}, ["eve", "dave", "carol", "bob", "alice"]),
    ({"sortBy": f"{USER_SCHEMA}:userName"}, ["alice", "bob", "carol", "dave", "eve"]),
    # "adams" (lower case) must not sort after "Zephyr".
    ({"sortBy": "name.familyName"}, ["dave", "eve", "carol", "bob", "alice"]),
    (
        {"sortBy": "name.familyName", "sortOrder": "descending"},
        ["alice", "bob", "carol", "eve", "dave"],
    ),
    ({"sortBy": "meta.created"}, CREATED_ORDER),
    ({"sortBy": "meta.created", "sortOrder": "descending"}, CREATED_ORDER[::-1]),
    ({"sortBy": "id"}, None),  # by id: checked against the ids below
    ({"sortOrder": "descending"}, CREATED_ORDER),  # sortOrder alone changes nothing
    # Ties keep creation order: active false (bob, dave) before true.
    ({"sortBy": "active"}, ["bob", "dave", "alice", "carol", "eve"]),
    # Extension attributes; eve and dave have no employeeNumber (unassigned sorts last).
    ({"sortBy": f"{ENTERPRISE}:employeeNumber"}, ["alice", "bob", "carol", "dave", "eve"]),
    (
        {"sortBy": "employeeNumber", "sortOrder": "descending", "filter": "employeeNumber pr"},
        ["carol", "bob", "alice"],
    ),
    # Unassigned values sort last ascending: dave has no title.
    ({"sortBy": "title"}, ["alice", "eve", "bob", "carol", "dave"]),
    # Multi-valued: by the primary value, else the first (RFC 7644 §3.4.2.3).
    # Primary emails.type: alice work, bob work; carol/dave/eve have only one email.
    ({"sortBy": "emails.type"}, ["eve", "alice", "bob", "carol", "dave"]),
    # A complex multi-valued attribute sorts by its primary value.
    ({"sortBy": "emails"}, ["alice", "bob", "carol", "dave", "eve"]),
]


@pytest.mark.parametrize(("params", "expected"), SORTS, ids=[str(p) for p, _ in SORTS])
def test_sort_users(
    ds: Scim, data: Data, params: dict[str, str], expected: list[str] | None
) -> None:
    """sortBy/sortOrder order the whole result as RFC 7644 §3.4.2.3 describes."""
    body = listing(ds, **params)
    if expected is None:  # sortBy=id: ids are random, compare with their sorted order
        assert [r["id"] for r in body["Resources"]] == sorted(data.ids[k] for k in ALL_USERS)
    else:
        assert data.names(body["Resources"]) == expected
        assert body["totalResults"] == len(expected)


def test_sort_by_last_modified(ds: Scim, data: Data) -> None:
    """Newest change first; group memberships count as changes of their users."""
    body = listing(ds, sortBy="meta.lastModified", sortOrder="descending")
    stamps = [r["meta"]["lastModified"] for r in body["Resources"]]
    assert len(stamps) == body["totalResults"] == len(ALL_USERS)
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("sort_by", "missing"), [("title", ["dave"]), ("employeeNumber", ["dave", "eve"])]
)
def test_sort_descending_puts_unassigned_first(
    ds: Scim, data: Data, sort_by: str, missing: list[str]
) -> None:
    """Descending, resources with no value for sortBy come first ("first if descending")."""
    body = listing(ds, sortBy=sort_by, sortOrder="descending")
    assert data.names(body["Resources"])[: len(missing)] == missing


def test_sort_with_filter_and_paging(ds: Scim, data: Data) -> None:
    """Filter, sort and page combine: the page is cut from the sorted, filtered result."""
    body = listing(ds, filter="active eq true", sortBy="name.familyName", startIndex=2, count=1)
    # active users by family name: eve (Brown), carol (Xu), alice (Zephyr)
    assert body["totalResults"] == 3
    assert body["startIndex"] == 2
    assert data.names(body["Resources"]) == ["carol"]


def test_sort_groups(ds: Scim, data: Data) -> None:
    """Groups sort by displayName case-insensitively, both ways."""
    body = listing(ds, "Groups", sortBy="displayName", excludedAttributes="members")
    assert data.names(body["Resources"]) == ["eng", "ops", "sales"]
    body = listing(ds, "Groups", sortBy="displayName", sortOrder="descending")
    assert data.names(body["Resources"]) == ["sales", "ops", "eng"]


@pytest.mark.parametrize(
    ("params", "status", "scim_type"),
    [
        # An unknown or unsortable sortBy is refused rather than ignored: 400 invalidFilter,
        # the scimType the server uses for every unresolvable attribute in a query.
        ({"sortBy": "nosuch"}, 400, "invalidFilter"),
        ({"sortBy": "name.nosuch"}, 400, "invalidFilter"),
        ({"sortBy": f"{ENTERPRISE}:nosuch"}, 400, "invalidFilter"),
        ({"sortBy": "groups.value"}, 400, "invalidFilter"),
        ({"sortBy": "name"}, 400, "invalidFilter"),
        ({"sortOrder": "sideways"}, 400, "invalidValue"),
        ({"sortBy": ""}, 400, "invalidValue"),
    ],
)
def test_sort_errors(ds: Scim, params: dict[str, str], status: int, scim_type: str) -> None:
    """An unusable sortBy or sortOrder is a 400 SCIM Error."""
    assert_error(ds.get("/scim/v2/Users", query_string=params), status, scim_type)


@pytest.mark.parametrize("sort_by", ["name..givenName", 'emails[type eq "work"].value'])
def test_malformed_sort_by(ds: Scim, sort_by: str) -> None:
    """A sortBy that is not an attribute path is 400 invalidFilter, like an unknown one."""
    resp = ds.get("/scim/v2/Users", query_string={"sortBy": sort_by})
    assert_error(resp, 400, "invalidFilter")


# -- pagination ------------------------------------------------------------------------


PAGES: list[tuple[dict[str, Any], int, list[str]]] = [
    # (query, startIndex in the response, users on the page), in creation order
    ({"startIndex": 1, "count": 2}, 1, ["alice", "bob"]),
    ({"startIndex": 2, "count": 2}, 2, ["bob", "carol"]),
    ({"startIndex": 4, "count": 10}, 4, ["dave", "eve"]),
    ({"startIndex": 5}, 5, ["eve"]),
    ({"startIndex": 6}, 6, []),
    ({"startIndex": 1000, "count": 3}, 1000, []),
    # RFC 7644 §3.4.2.4: a startIndex below 1 is read as 1.
    ({"startIndex": 0, "count": 2}, 1, ["alice", "bob"]),
    ({"startIndex": -7, "count": 1}, 1, ["alice"]),
    # count=0: totalResults only; a negative count is read as 0.
    ({"count": 0}, 1, []),
    ({"count": -1}, 1, []),
    ({"startIndex": 3, "count": 0}, 3, []),
    ({"count": 1}, 1, ["alice"]),
    ({"count": 5}, 1, CREATED_ORDER),
    ({"count": 500}, 1, CREATED_ORDER),
    ({"count": "3"}, 1, ["alice", "bob", "carol"]),
    ({"count": " 3"}, 1, ["alice", "bob", "carol"]),
]


@pytest.mark.parametrize(("params", "start", "expected"), PAGES, ids=[str(p) for p, _, _ in PAGES])
def test_pagination(
    ds: Scim, data: Data, params: dict[str, Any], start: int, expected: list[str]
) -> None:
    """startIndex/count select a 1-based page; totalResults always counts every match."""
    body = listing(ds, **params)
    assert body["totalResults"] == 5
    assert body["startIndex"] == start
    assert body["itemsPerPage"] == len(expected)
    assert data.names(body["Resources"]) == expected


def test_pages_cover_result_once(ds: Scim, data: Data) -> None:
    """Walking the pages of a sorted listing returns every user exactly once, in order."""
    seen: list[str] = []
    for start in range(1, 6, 2):
        body = listing(ds, sortBy="userName", sortOrder="descending", startIndex=start, count=2)
        seen += data.names(body["Resources"])
    assert seen == ["eve", "dave", "carol", "bob", "alice"]


def test_count_capped_at_max_page_size(
    ds: Scim, data: Data, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A count above MAX_PAGE_SIZE returns MAX_PAGE_SIZE results (RFC 7644 §3.4.2.4)."""
    monkeypatch.setitem(app.config, "MAX_PAGE_SIZE", 2)
    for params in ({"count": 1000}, {"count": 3}, {}):
        body = listing(ds, **params)
        assert body["totalResults"] == 5
        assert body["itemsPerPage"] == 2, params
        assert data.names(body["Resources"]) == ["alice", "bob"]
    out = ds.post("/scim/v2/Users/.search", {"schemas": [SEARCH_REQUEST], "count": 50}).json
    assert (out["totalResults"], out["itemsPerPage"]) == (5, 2)
    spc = ds.get("/scim/v2/ServiceProviderConfig").json
    assert spc["filter"]["maxResults"] == 2


def test_default_page_size(ds: Scim, app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without count, a page holds DEFAULT_PAGE_SIZE results."""
    monkeypatch.setitem(app.config, "DEFAULT_PAGE_SIZE", 3)
    body = listing(ds)
    assert (body["totalResults"], body["itemsPerPage"]) == (5, 3)


@pytest.mark.parametrize(
    "params",
    [
        {"count": "ten"},
        {"count": "1.5"},
        {"count": ""},
        {"startIndex": "first"},
        {"startIndex": "2.0"},
    ],
)
def test_non_integer_paging_parameters(ds: Scim, params: dict[str, str]) -> None:
    """A non-integer count or startIndex is 400 invalidValue."""
    assert_error(ds.get("/scim/v2/Users", query_string=params), 400, "invalidValue")


def test_search_paging(ds: Scim, data: Data) -> None:
    """POST /Users/.search pages like GET: startIndex below 1 is 1, count 0 counts only."""
    body = {"schemas": [SEARCH_REQUEST], "startIndex": 0, "count": 2, "sortBy": "name.familyName"}
    out = ds.post("/scim/v2/Users/.search", body).json
    assert (out["totalResults"], out["startIndex"], out["itemsPerPage"]) == (5, 1, 2)
    assert data.names(out["Resources"]) == ["dave", "eve"]
    out = ds.post("/scim/v2/Users/.search", {"schemas": [SEARCH_REQUEST], "count": 0}).json
    assert (out["totalResults"], out["itemsPerPage"], out["Resources"]) == (5, 0, [])


# -- attributes / excludedAttributes --------------------------------------------------


PROJECTIONS: list[tuple[dict[str, str], dict[str, Any]]] = [
    # query -> the exact alice document expected (values from the data set)
    ({"attributes": "userName"}, {"userName": "Alice@Example.com"}),
    ({"attributes": "USERNAME"}, {"userName": "Alice@Example.com"}),
    ({"attributes": "name.givenName"}, {"name": {"givenName": "Alice"}}),
    (
        {"attributes": "userName,name.familyName"},
        {"userName": "Alice@Example.com", "name": {"familyName": "Zephyr"}},
    ),
    (
        {"attributes": "emails.value"},
        {"emails": [{"value": "alice@example.com"}, {"value": "alice@home.org"}]},
    ),
    ({"attributes": f"{ENTERPRISE}:employeeNumber"}, {ENTERPRISE: {"employeeNumber": "1001"}}),
    ({"attributes": "employeeNumber"}, {ENTERPRISE: {"employeeNumber": "1001"}}),
    (
        {"attributes": ENTERPRISE},
        {ENTERPRISE: {"employeeNumber": "1001", "department": "R&D"}},
    ),
    ({"attributes": f"{USER_SCHEMA}:title"}, {"title": "Engineer"}),
    ({"attributes": "id"}, {}),
    ({"attributes": "nosuch"}, {}),  # unknown names select nothing (RFC 7644 §3.4.2.5)
    ({"attributes": "password"}, {}),
    ({"attributes": "meta.created"}, {"meta": {"created": "<alice.meta.created>"}}),
]


@pytest.mark.parametrize(("params", "expected"), PROJECTIONS, ids=[str(p) for p, _ in PROJECTIONS])
def test_attributes_on_get(
    ds: Scim, data: Data, params: dict[str, str], expected: dict[str, Any]
) -> None:
    """GET /Users/{id}?attributes=... returns id, schemas and only the named attributes."""
    resp = ds.get(f"/scim/v2/Users/{data.ids['alice']}", query_string=params)
    body = resp.get_json()
    assert resp.status_code == 200, body
    full = ds.get(f"/scim/v2/Users/{data.ids['alice']}").get_json()
    assert resp.headers["ETag"] == full["meta"]["version"]  # the resource's, projected or not
    assert body.pop("id") == data.ids["alice"]
    assert USER_SCHEMA in body.pop("schemas")
    if "meta" in expected:
        expected = {"meta": {"created": data.docs["alice"]["meta"]["created"]}}
    assert body == expected


EXCLUSIONS: list[tuple[str, set[str], set[str]]] = [
    # excludedAttributes -> top-level keys that must be absent / still present
    ("emails", {"emails"}, {"userName", "name", "title", "groups", "meta", ENTERPRISE}),
    ("EMAILS,title", {"emails", "title"}, {"userName", "name"}),
    ("groups", {"groups"}, {"emails", "userName"}),
    (ENTERPRISE, {ENTERPRISE}, {"userName", "emails"}),
    (f"{ENTERPRISE}:employeeNumber", set(), {ENTERPRISE, "userName"}),
    ("meta", {"meta"}, {"userName"}),
    # id and schemas are returned "always": excluding them has no effect.
    ("id,schemas", set(), {"id", "schemas", "userName"}),
    ("nosuch", set(), {"userName", "emails"}),
]


@pytest.mark.parametrize(("excluded", "absent", "present"), EXCLUSIONS)
def test_excluded_attributes_on_get(
    ds: Scim, data: Data, excluded: str, absent: set[str], present: set[str]
) -> None:
    """GET /Users/{id}?excludedAttributes=... drops what is named, never id or schemas."""
    resp = ds.get(
        f"/scim/v2/Users/{data.ids['alice']}", query_string={"excludedAttributes": excluded}
    )
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert {"id", "schemas"} <= set(body)
    assert not absent & set(body)
    assert present <= set(body)
    assert "password" not in body


@pytest.mark.parametrize(
    "params",
    [
        {"attributes": "name..givenName"},
        {"attributes": 'emails[type eq "work"]'},
        {"excludedAttributes": 'emails[type eq "work"].value'},
    ],
)
def test_invalid_attribute_lists(ds: Scim, data: Data, params: dict[str, str]) -> None:
    """A name in attributes/excludedAttributes that is not plain attribute notation is 400."""
    resp = ds.get(f"/scim/v2/Users/{data.ids['alice']}", query_string=params)
    assert_error(resp, 400, "invalidValue")


@pytest.mark.parametrize(
    "params",
    [
        {"attributes": "name..givenName", "count": "0"},
        {"excludedAttributes": 'emails[type eq "work"]', "filter": 'userName eq "nobody"'},
    ],
)
def test_invalid_attribute_lists_on_empty_list(ds: Scim, params: dict[str, str]) -> None:
    """A bad attributes/excludedAttributes is 400 even when the page holds no resources."""
    assert_error(ds.get("/scim/v2/Users", query_string=params), 400, "invalidValue")


def test_excluded_sub_attributes(ds: Scim, data: Data) -> None:
    """Excluding a sub-attribute removes it from every value and keeps the rest."""
    resp = ds.get(
        f"/scim/v2/Users/{data.ids['alice']}",
        query_string={"excludedAttributes": f"emails.type,name.givenName,{ENTERPRISE}:department"},
    )
    body = resp.get_json()
    assert body["emails"] == [
        {"value": "alice@example.com", "primary": True},
        {"value": "alice@home.org"},
    ]
    assert body["name"] == {"familyName": "Zephyr"}
    assert body[ENTERPRISE] == {"employeeNumber": "1001"}


def test_default_representation(ds: Scim, data: Data) -> None:
    """Without attributes, GET returns every default attribute, groups and meta included."""
    body = ds.get(f"/scim/v2/Users/{data.ids['alice']}").json
    assert body["schemas"] == [
        USER_SCHEMA,
        ENTERPRISE,
        "urn:scim-server:schemas:extension:product:1.0:User",
    ]
    assert body["userName"] == "Alice@Example.com"
    assert body["externalId"] == "EXT-Alice"
    assert body["active"] is True
    assert body[ENTERPRISE] == {"employeeNumber": "1001", "department": "R&D"}
    (group,) = body["groups"]
    assert group["value"] == data.ids["eng"]
    assert group["display"] == "Engineering"
    assert group["$ref"].endswith(f"/Groups/{data.ids['eng']}")
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["location"].endswith(f"/Users/{data.ids['alice']}")
    manager = ds.get(f"/scim/v2/Users/{data.ids['bob']}").json[ENTERPRISE]["manager"]
    assert manager["value"] == data.ids["alice"]


def test_attributes_on_list(ds: Scim, data: Data) -> None:
    """attributes on a list applies to every resource; id and schemas stay."""
    body = listing(ds, attributes="userName,emails.type", sortBy="userName")
    assert body["totalResults"] == 5
    for doc in body["Resources"]:
        assert set(doc) == {"id", "schemas", "userName", "emails"}
        assert all(set(e) == {"type"} for e in doc["emails"])
    assert body["Resources"][0]["userName"] == "Alice@Example.com"


def test_excluded_attributes_on_list(ds: Scim, data: Data) -> None:
    """excludedAttributes on a list drops the attribute from every resource."""
    body = listing(ds, excludedAttributes="emails,groups,meta")
    assert len(body["Resources"]) == 5
    for doc in body["Resources"]:
        assert not {"emails", "groups", "meta"} & set(doc)
        assert {"id", "schemas", "userName", "active"} <= set(doc)


def test_extension_attribute_on_list(ds: Scim, data: Data) -> None:
    """attributes=<enterprise URN>:employeeNumber lists only that from the extension."""
    body = listing(ds, attributes=f"{ENTERPRISE}:employeeNumber")
    by_name = dict(zip(data.names(body["Resources"]), body["Resources"], strict=True))
    assert by_name["bob"][ENTERPRISE] == {"employeeNumber": "1002"}
    assert ENTERPRISE not in by_name["eve"]  # she has a department, not an employee number
    assert set(by_name["dave"]) == {"id", "schemas"}


def test_groups_listed_without_members(ds: Scim, data: Data) -> None:
    """GET /Groups?excludedAttributes=members lists groups without their members."""
    body = listing(ds, "Groups", excludedAttributes="members", sortBy="displayName")
    assert body["totalResults"] == 3
    for doc in body["Resources"]:
        assert "members" not in doc
        assert {"id", "schemas", "displayName", "meta"} <= set(doc)
        assert doc["schemas"] == [GROUP_SCHEMA]
    assert [d["displayName"] for d in body["Resources"]] == ["Engineering", "Ops", "Sales"]


def test_groups_listed_with_members(ds: Scim, data: Data) -> None:
    """By default groups list their members, with value, type and $ref."""
    body = listing(ds, "Groups", filter='displayName eq "Ops"')
    (ops,) = body["Resources"]
    members = {m["value"]: m for m in ops["members"]}
    assert set(members) == {data.ids["sales"], data.ids["dave"]}
    assert members[data.ids["sales"]]["type"] == "Group"
    assert members[data.ids["dave"]]["type"] == "User"
    assert members[data.ids["dave"]]["$ref"].endswith(f"/Users/{data.ids['dave']}")


def test_group_attributes_members_value(ds: Scim, data: Data) -> None:
    """GET /Groups/{id}?attributes=members.value returns member ids only."""
    resp = ds.get(
        f"/scim/v2/Groups/{data.ids['eng']}", query_string={"attributes": "members.value"}
    )
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert set(body) == {"id", "schemas", "members"}
    assert sorted(body["members"], key=lambda m: m["value"]) == sorted(
        ({"value": data.ids[k]} for k in ("alice", "carol")), key=lambda m: m["value"]
    )


# -- POST and PUT responses -------------------------------------------------------------


def test_post_response_projection(scim: Scim) -> None:
    """POST ?attributes=name.givenName returns id, schemas and the given name; never password."""
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "newbie",
        "password": "Quiet-meadow-ledger-42",
        "name": {"givenName": "New", "familyName": "Bie"},
        "emails": [{"value": "newbie@example.com", "type": "work"}],
    }
    resp = scim.post("/scim/v2/Users", body, query_string={"attributes": "name.givenName"})
    out = resp.get_json()
    assert resp.status_code == 201, out
    assert resp.headers["Location"].endswith(f"/scim/v2/Users/{out['id']}")
    assert resp.headers["ETag"] == 'W/"1"'
    assert out == {"schemas": [USER_SCHEMA], "id": out["id"], "name": {"givenName": "New"}}

    full = scim.get(f"/scim/v2/Users/{out['id']}").get_json()
    assert "password" not in full
    assert full["emails"] == [{"value": "newbie@example.com", "type": "work"}]
    listed = scim.get("/scim/v2/Users", query_string={"attributes": "password,userName"}).json
    assert listed["Resources"] == [
        {"schemas": [USER_SCHEMA], "id": out["id"], "userName": "newbie"}
    ]


def test_post_response_default(scim: Scim) -> None:
    """POST without attributes returns the full representation but no password."""
    body = {"schemas": [USER_SCHEMA], "userName": "plain", "password": "Quiet-meadow-ledger-42"}
    resp = scim.post("/scim/v2/Users", body)
    out = resp.get_json()
    assert resp.status_code == 201, out
    assert "password" not in out
    assert out["userName"] == "plain"
    assert out["meta"]["resourceType"] == "User"


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({"excludedAttributes": "emails"}, lambda b: "emails" not in b and "name" in b),
        ({"attributes": "name.givenName"}, lambda b: set(b) == {"id", "schemas", "name"}),
        (
            {"attributes": f"{ENTERPRISE}:employeeNumber"},
            lambda b: (
                set(b) == {"id", "schemas", ENTERPRISE}
                and b[ENTERPRISE] == {"employeeNumber": "77"}
            ),
        ),
        ({}, lambda b: "emails" in b and b[ENTERPRISE]["department"] == "Ops"),
    ],
    ids=["excluded-emails", "given-name", "employee-number", "default"],
)
def test_put_response_projection(scim: Scim, params: dict[str, str], check: Any) -> None:
    """PUT ?attributes/excludedAttributes shape the response; id and schemas always, no password."""
    user = scim.create_user("putme")
    body = {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": "putme",
        "password": "Copper-kettle-sunrise-19",
        "name": {"givenName": "Put", "familyName": "Me"},
        "emails": [{"value": "putme@example.com", "type": "work"}],
        ENTERPRISE: {"employeeNumber": "77", "department": "Ops"},
    }
    resp = scim.put(f"/scim/v2/Users/{user['id']}", body, query_string=params)
    out = resp.get_json()
    assert resp.status_code == 200, out
    assert resp.headers["ETag"] == 'W/"2"'
    assert out["id"] == user["id"]
    assert USER_SCHEMA in out["schemas"]
    assert "password" not in out
    assert check(out), out


def test_get_user_not_found(ds: Scim) -> None:
    """GET of an unknown id is 404 with a SCIM Error body."""
    assert_error(ds.get("/scim/v2/Users/does-not-exist"), 404, None)


@pytest.mark.parametrize("attr", ["username", "status", "contactId"])
def test_sort_by_a_product_extension_attribute_is_refused(scim: Scim, attr: str) -> None:
    """RFC 7644 §3.4.2.3: sorted by sortBy or refused; the product extension (the server's
    view of the account) was accepted and left in creation order."""
    scim.create_user("bob")
    resp = scim.get(
        "/scim/v2/Users",
        query_string={"sortBy": f"urn:scim-server:schemas:extension:product:1.0:User:{attr}"},
    )
    assert resp.status_code == 400 and resp.get_json()["scimType"] == "invalidFilter"
