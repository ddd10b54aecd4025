"""Filtering over HTTP (RFC 7644 §3.4.2.2, §3.4.3): operators, paths, errors, tenancy."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.scim import dataset
from tests.scim.dataset import ALL_GROUPS, ALL_USERS, Data
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
CORE_PREFIX = f"{USER_SCHEMA}:"
ENT_PREFIX = f"{ENTERPRISE}:"


def list_ids(scim: Scim, endpoint: str, flt: str, data: Data) -> set[str]:
    resp = scim.get(f"/scim/v2/{endpoint}", query_string={"filter": flt, "count": 100})
    assert resp.status_code == 200, resp.get_json()
    assert resp.mimetype == "application/scim+json"
    body = resp.get_json()
    assert body["schemas"] == [LIST_RESPONSE]
    assert body["totalResults"] == len(body["Resources"])
    return set(data.names(body["Resources"]))


def assert_invalid_filter(resp: Any) -> None:
    body = resp.get_json()
    assert resp.status_code == 400, body
    assert resp.mimetype == "application/scim+json"
    assert ERROR in body["schemas"]
    assert body["status"] == "400"
    assert body["scimType"] == "invalidFilter"
    assert body["detail"]


USER_FILTERS: list[tuple[str, set[str]]] = [
    # eq / ne; userName is caseExact false (RFC 7643 §4.1.1), names and operators too.
    ('userName eq "alice@example.com"', {"alice"}),
    ('userName eq "ALICE@EXAMPLE.COM"', {"alice"}),
    ('USERNAME eq "bob"', {"bob"}),
    ('username EQ "Bob"', {"bob"}),
    ('userName eq "nobody"', set()),
    ('userName ne "bob"', ALL_USERS - {"bob"}),
    (f'{CORE_PREFIX}userName eq "carol.K"', {"carol"}),
    (f'{CORE_PREFIX.upper()}USERNAME eq "carol.k"', {"carol"}),
    # emails.value is caseExact false; a complex attribute without sub-attribute means value.
    ('emails.value eq "dave@example.com"', {"dave"}),
    ('emails eq "dave@example.com"', {"dave"}),
    # ne is the negation of eq: no value equals it (so alice, with a second email, is out).
    ('emails.value ne "dave@example.com"', ALL_USERS - {"dave"}),
    ('emails.value ne "alice@home.org"', ALL_USERS - {"alice"}),
    # externalId and id are caseExact.
    ('externalId eq "EXT-Alice"', {"alice"}),
    ('externalId eq "ext-alice"', set()),
    ('externalId eq "ext-bob"', {"bob"}),
    ('externalId sw "EXT-"', {"alice", "eve"}),
    ('externalId co "-"', {"alice", "bob", "eve"}),
    ('id eq "{alice}"', {"alice"}),
    ('id ne "{alice}"', ALL_USERS - {"alice"}),
    # co / sw / ew
    ('userName co "AROL"', {"carol"}),
    ('userName sw "a"', {"alice"}),
    ('userName ew ".COM"', {"alice"}),
    ('emails.value ew "@home.org"', {"alice", "eve"}),
    ('emails co "example.com"', {"alice", "bob", "carol", "dave"}),
    ('title co "engineer"', {"alice", "carol"}),
    ('title sw "engineer"', {"alice"}),
    ('title ew "ER"', {"alice", "bob", "carol"}),
    # LIKE wildcards inside co/sw/ew values are literal characters.
    ('userName co "_100"', {"dave"}),
    ('userName co "100%"', {"dave"}),
    ('userName co "%"', {"dave"}),
    ('userName co "_"', {"dave"}),
    ('userName sw "dave_"', {"dave"}),
    ('userName ew "0%"', {"dave"}),
    ('userName sw "%"', set()),
    ('name.givenName co "_"', set()),
    ('nickName co "/"', {"dave"}),
    (r'nickName co "/_\\"', {"dave"}),
    (r'nickName eq "D/_\\%"', {"dave"}),
    (r'nickName ew "\\%"', {"dave"}),
    ('nickName co "/%"', set()),
    ('userName co "/"', set()),
    ('title co ""', ALL_USERS - {"dave"}),
    # pr
    ("title pr", ALL_USERS - {"dave"}),
    ("externalId pr", {"alice", "bob", "eve"}),
    ("name.givenName pr", ALL_USERS),
    ("emails pr", ALL_USERS),
    ("name pr", ALL_USERS),
    ("userName pr", ALL_USERS),
    (f"{ENT_PREFIX}manager pr", {"bob", "carol"}),
    (f"{ENT_PREFIX}employeeNumber pr", {"alice", "bob", "carol"}),
    # gt / ge / lt / le on strings compare case-insensitively.
    ('userName gt "carol.k"', {"dave", "eve"}),
    ('userName ge "CAROL.K"', {"carol", "dave", "eve"}),
    ('userName lt "bob"', {"alice"}),
    ('userName le "BOB"', {"alice", "bob"}),
    ('name.familyName lt "C"', {"dave", "eve"}),
    ('name.familyName ge "x"', {"alice", "bob", "carol"}),
    # Sub-attributes
    ('name.givenName eq "carol"', {"carol"}),
    ('NAME.GIVENNAME sw "D"', {"dave"}),
    ('name.familyName eq "Xu" or name.givenName eq "eve"', {"carol", "eve"}),
    # The enterprise extension, by full URN (RFC 7644 §3.10) and by bare name.
    (f'{ENT_PREFIX}employeeNumber eq "1002"', {"bob"}),
    (f'{ENT_PREFIX}employeeNumber sw "100"', {"alice", "bob"}),
    (f'{ENT_PREFIX}employeeNumber gt "1002"', {"carol"}),
    (f'{ENT_PREFIX.upper()}EMPLOYEENUMBER eq "2001"', {"carol"}),
    ('employeeNumber eq "1001"', {"alice"}),
    (f'{ENT_PREFIX}department eq "r&d"', {"alice", "carol"}),
    (f'{ENT_PREFIX}department ne "r&d"', {"bob", "dave", "eve"}),
    (f'{ENT_PREFIX}manager.value eq "{{alice}}"', {"bob", "carol"}),
    (f'{ENT_PREFIX}manager eq "{{alice}}"', {"bob", "carol"}),
    # Booleans
    ("active eq false", {"bob", "dave"}),
    ("active eq true", {"alice", "carol", "eve"}),
    ("active ne true", {"bob", "dave"}),
    ("ACTIVE EQ FALSE", {"bob", "dave"}),
    ("emails[primary eq true]", {"alice", "bob"}),
    # RFC 7643 §2.4: an absent primary is false (every user here has a value without it).
    ("emails.primary eq false", ALL_USERS),
    ('emails.primary eq "false"', ALL_USERS),
    ("emails.primary eq true", {"alice", "bob"}),
    ("emails.primary ne true", {"carol", "dave", "eve"}),  # no value is primary
    ("emails.primary ne false", set()),  # no value reads false
    ("not (emails.primary eq false)", set()),
    ("emails[primary eq false]", ALL_USERS),
    ("emails[primary ne true]", ALL_USERS),
    ("emails[primary ne false]", {"alice", "bob"}),
    ("emails[not (primary eq true)]", ALL_USERS),
    ('emails[primary eq false and type eq "work"]', {"carol", "dave"}),
    ('emails[type eq "home" and primary eq false]', {"alice", "bob", "eve"}),
    ('emails[primary eq false and value co "example.com"]', {"bob", "carol", "dave"}),
    ('emails[primary eq true and type eq "home"]', set()),
    ("emails.primary pr", {"alice", "bob"}),
    # Logical operators: not > and > or (RFC 7644 §3.4.2.2).
    ('title eq "engineer" and active eq true', {"alice"}),
    ('title co "engineer" and active eq false', set()),
    ('userName eq "bob" or userName eq "eve-x100-z"', {"bob", "eve"}),
    ('userName eq "dave_100%" or userName eq "alice@example.com" and title pr', {"alice", "dave"}),
    ('userName eq "alice@example.com" and title pr or userName eq "dave_100%"', {"alice", "dave"}),
    ('(userName eq "dave_100%" or userName eq "alice@example.com") and title pr', {"alice"}),
    ('title pr and (active eq false or userName sw "e")', {"bob", "eve"}),
    ('not (userName eq "bob")', ALL_USERS - {"bob"}),
    ("not (title pr)", {"dave"}),
    ('not (title co "engineer") and active eq true', {"eve"}),
    ('not (title co "engineer" or active eq false)', {"eve"}),
    ('not (not (userName eq "bob"))', {"bob"}),
    ("not (externalId pr)", {"carol", "dave"}),
    ('externalId ne "ext-bob"', {"alice", "carol", "dave", "eve"}),
    ('not (externalId eq "ext-bob")', {"alice", "carol", "dave", "eve"}),
    ('not (externalId sw "EXT")', {"bob", "carol", "dave"}),
    ('((((userName eq "bob"))))', {"bob"}),
    # Value paths match within one element of a multi-valued attribute.
    ('emails[type eq "work" and value co "@example.com"]', {"alice", "carol", "dave"}),
    ('emails.type eq "work" and emails.value co "@example.com"', {"alice", "bob", "carol", "dave"}),
    ('emails[type eq "work"].value eq "bob@work.net"', {"bob"}),
    ('emails[type eq "home"].value eq "bob@work.net"', set()),
    ('emails[type eq "work"].value ew "@EXAMPLE.com"', {"alice", "carol", "dave"}),
    ('emails[value ew "example.com" and not (type eq "work")]', {"bob"}),
    ('emails[type eq "home" or primary eq true]', {"alice", "bob", "eve"}),
    ('emails[not (type eq "work")]', {"alice", "bob", "eve"}),
    ('emails[TYPE EQ "HOME"]', {"alice", "bob", "eve"}),
    ("emails[type pr]", ALL_USERS),
    ('emails[type eq "work"] and active eq true', {"alice", "carol"}),
    ('not (emails[type eq "home"])', {"carol", "dave"}),
    (
        'emails[type eq "work" and value co "@example.com"] or userName eq "eve-x100-z"',
        {"alice", "carol", "dave", "eve"},
    ),
    # Group memberships from the user side.
    ('groups.value eq "{eng}"', {"alice", "carol"}),
    ('groups eq "{sales}"', {"bob"}),
    ('groups[value eq "{sales}"]', {"bob"}),
    ('groups.display eq "engineering"', {"alice", "carol"}),
    ("groups pr", {"alice", "bob", "carol", "dave"}),
    ("not (groups pr)", {"eve"}),
    ('groups.value eq "{alice}"', set()),
    ('groups.value ne "{eng}"', {"bob", "dave", "eve"}),
    ('displayName eq "alice zephyr"', {"alice"}),
    # meta (RFC 7643 §3.1): dateTime comparisons honour the offset.
    ('meta.created gt "2000-01-01T00:00:00Z"', ALL_USERS),
    ('meta.created lt "2000-01-01T00:00:00Z"', set()),
    ('meta.lastModified ge "2000-01-01T00:00:00+02:00"', ALL_USERS),
    ('meta.lastModified gt "2999-12-31T23:59:59Z"', set()),
    ('meta.created gt "{carol_created}"', {"dave", "eve"}),
    ('meta.created ge "{carol_created}"', {"carol", "dave", "eve"}),
    ('meta.created le "{carol_created}"', {"alice", "bob", "carol"}),
    ('meta.created eq "{carol_created}"', {"carol"}),
    ('meta.created eq "{carol_created_cet}"', {"carol"}),  # the same instant at +01:00
    ('meta.created lt "{carol_created_cet}"', {"alice", "bob"}),
    ('meta.resourceType eq "user"', ALL_USERS),
    ('meta.resourceType eq "Group"', set()),
    ("meta.created pr", ALL_USERS),
    # null and unassigned are the same state (RFC 7643 §2.5): eq null means "not present".
    ("title eq null", {"dave"}),
]


@pytest.mark.parametrize(("flt", "expected"), USER_FILTERS, ids=[f for f, _ in USER_FILTERS])
def test_user_filter(ds: Scim, data: Data, flt: str, expected: set[str]) -> None:
    """GET /Users?filter=... returns exactly the expected users."""
    assert list_ids(ds, "Users", data.fill(flt), data) == expected


GROUP_FILTERS: list[tuple[str, set[str]]] = [
    ('displayName eq "engineering"', {"eng"}),
    ('DISPLAYNAME eq "SALES"', {"sales"}),
    (f'{GROUP_SCHEMA}:displayName eq "Ops"', {"ops"}),
    ('displayName co "a"', {"sales"}),
    ('displayName sw "e" or displayName ew "S"', {"eng", "sales", "ops"}),
    ('externalId eq "G-ENG"', {"eng"}),
    ('externalId eq "g-eng"', set()),
    ("externalId pr", {"eng"}),
    ('members[value eq "{alice}"]', {"eng"}),
    ('members[value eq "{carol}" or value eq "{bob}"]', {"eng", "sales"}),
    ('members.value eq "{bob}"', {"sales"}),
    ('members eq "{dave}"', {"ops"}),
    ('members.value eq "{sales}"', {"ops"}),
    ('members[type eq "Group"]', {"ops"}),
    ('members[type eq "user" and value eq "{dave}"]', {"ops"}),
    ('members.value ne "{alice}"', {"sales", "ops"}),
    ("members pr", {"eng", "sales", "ops"}),
    ('members.display eq "BOB"', {"sales"}),  # a user without displayName: its userName
    ('members.display eq "alice zephyr"', {"eng"}),
    ('members.display eq "sales"', {"ops"}),  # a group member: its displayName
    ('members.type ne "Group"', {"eng", "sales"}),
    ('members.value eq "{eve}"', set()),
    ('displayName eq "Engineering" and members[value eq "{bob}"]', set()),
    ('meta.resourceType eq "Group"', {"eng", "sales", "ops"}),
]


@pytest.mark.parametrize(("flt", "expected"), GROUP_FILTERS, ids=[f for f, _ in GROUP_FILTERS])
def test_group_filter(ds: Scim, data: Data, flt: str, expected: set[str]) -> None:
    """GET /Groups?filter=... returns exactly the expected groups."""
    assert list_ids(ds, "Groups", data.fill(flt), data) == expected


INVALID_USER_FILTERS = [
    'foo eq "x"',
    'name.foo eq "x"',
    'emails.foo eq "x"',
    'emails[foo eq "x"]',
    f'{ENT_PREFIX}foo eq "x"',
    f'{ENT_PREFIX}manager.foo eq "x"',
    'urn:example:params:scim:schemas:nope:1.0:User:userName eq "x"',
    'members.value eq "x"',
    '(userName eq "bob"',
    'userName eq "bob")',
    '(userName eq "bob"))',
    'emails[type eq "work"',
    'emails[type eq "work"]]',
    "userName eq",
    'eq "bob"',
    'userName eq "bob" and',
    'and userName eq "bob"',
    'userName eq "bob" or or title pr',
    'userName xx "bob"',
    'userName equals "bob"',
    'userName eq "unterminated',
    "userName eq 'bob'",
    "userName eq bob",
    "active gt true",
    "active le false",
    'active co "t"',
    'active eq "maybe"',
    "userName eq 5",
    'meta.created gt "yesterday"',
    'meta.created gt "2020-01-01T00:00:00"',
    "meta.created gt 5",
    'meta.created co "2020"',
    'name eq "x"',
    'emails[type eq "work"] eq "x"',
    'emails[type eq "work" and emails[type eq "home"]]',
    "title lt null",
    'not userName eq "bob"',
]


@pytest.mark.parametrize("flt", INVALID_USER_FILTERS)
def test_invalid_user_filter(ds: Scim, flt: str) -> None:
    """A malformed or unresolvable filter on /Users is 400 invalidFilter with a SCIM Error."""
    assert_invalid_filter(ds.get("/scim/v2/Users", query_string={"filter": flt}))


@pytest.mark.parametrize(
    "flt", ['userName eq "x"', "displayName gt 1", 'members.foo eq "x"', "emails pr"]
)
def test_invalid_group_filter(ds: Scim, flt: str) -> None:
    """A filter naming a non-Group attribute (or a bad comparison) on /Groups is 400 invalidFilter."""
    assert_invalid_filter(ds.get("/scim/v2/Groups", query_string={"filter": flt}))


@pytest.mark.parametrize("flt", ["", "   "])
def test_blank_filter_means_no_filter(ds: Scim, data: Data, flt: str) -> None:
    """An empty or blank filter parameter lists everything."""
    assert list_ids(ds, "Users", flt, data) == ALL_USERS


def test_filter_errors_on_search_endpoint(scim: Scim) -> None:
    """POST /Users/.search with an unknown attribute in the filter is 400 invalidFilter."""
    body = {"schemas": [SEARCH_REQUEST], "filter": 'nosuch eq "x"'}
    assert_invalid_filter(scim.post("/scim/v2/Users/.search", body))


# -- uniqueness and `eq` agree -----------------------------------------------------


@pytest.mark.parametrize(
    ("created", "looked_up", "clash"),
    [
        ("Alice@X.com", "alice@x.com", "ALICE@x.com"),
        ("Jos\u00e9@example.com", "JOSE\u0301@EXAMPLE.COM", "jose\u0301@example.com"),
        ("Jose\u0301", "jos\u00e9", "JOS\u00c9"),
        ("stra\u00dfe", "STRASSE", "Strasse"),
    ],
    ids=["ascii-case", "composed-then-decomposed", "decomposed-then-composed", "sharp-s"],
)
def test_eq_and_uniqueness_agree(scim: Scim, created: str, looked_up: str, clash: str) -> None:
    """`userName eq` finds exactly the user a create would clash with (409 uniqueness)."""
    user = scim.create_user(created)
    resp = scim.get("/scim/v2/Users", query_string={"filter": f'userName eq "{looked_up}"'})
    body = resp.get_json()
    assert resp.status_code == 200
    assert body["totalResults"] == 1
    assert [r["id"] for r in body["Resources"]] == [user["id"]]
    assert body["Resources"][0]["userName"] == created  # stored as sent

    resp = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": clash})
    err = resp.get_json()
    assert resp.status_code == 409, err
    assert ERROR in err["schemas"]
    assert err["scimType"] == "uniqueness"

    resp = scim.get("/scim/v2/Users", query_string={"filter": f'userName eq "{clash}"'})
    assert [r["id"] for r in resp.get_json()["Resources"]] == [user["id"]]


def test_eq_does_not_match_other_userNames(scim: Scim) -> None:
    """Distinct userNames (accent vs none) neither clash nor match each other by `eq`."""
    a = scim.create_user("jose")
    b = scim.create_user("jos\u00e9")
    for name, want in [("JOSE", a["id"]), (unicodedata.normalize("NFD", "JOS\u00c9"), b["id"])]:
        resp = scim.get("/scim/v2/Users", query_string={"filter": f'userName eq "{name}"'})
        assert [r["id"] for r in resp.get_json()["Resources"]] == [want]


def test_filter_with_json_escapes(scim: Scim) -> None:
    """A JSON escape in a filter string (\\u00e9, \\") compares as the character it denotes."""
    user = scim.create_user('ren\u00e9 "the" user')
    flt = r'userName eq "REN\u00c9 \"THE\" USER"'
    resp = scim.get("/scim/v2/Users", query_string={"filter": flt})
    assert resp.status_code == 200
    assert [r["id"] for r in resp.get_json()["Resources"]] == [user["id"]]


# -- filters follow writes ----------------------------------------------------------


def test_filters_see_updates(ds: Scim, data: Data) -> None:
    """After PATCH, filters match the new values (index and lastModified), not the old ones."""
    bob = data.docs["bob"]
    # The last write before the PATCH (group memberships touch their users too).
    listed = ds.get("/scim/v2/Users?count=100").get_json()["Resources"]
    latest = max(u["meta"]["lastModified"] for u in listed)
    resp = ds.patch_ops(
        f"/scim/v2/Users/{bob['id']}",
        {"op": "replace", "path": "title", "value": "Director"},
        {"op": "replace", "path": 'emails[type eq "home"].value', "value": "bob@new.org"},
    )
    assert resp.status_code == 200, resp.get_json()
    for flt, expected in [
        ('title eq "director"', {"bob"}),
        ('title eq "manager"', set()),
        ('emails[type eq "home"].value eq "bob@new.org"', {"bob"}),
        ('emails.value eq "bob@example.com"', set()),
        (f'meta.lastModified gt "{latest}"', {"bob"}),
        (f'meta.created gt "{bob["meta"]["created"]}"', {"carol", "dave", "eve"}),
    ]:
        assert list_ids(ds, "Users", flt, data) == expected, flt


def test_filters_forget_deleted_users(ds: Scim, data: Data) -> None:
    """A deleted user matches no filter, neither on Users nor through group members."""
    assert ds.delete(f"/scim/v2/Users/{data.ids['carol']}").status_code == 204
    assert list_ids(ds, "Users", 'title co "engineer"', data) == {"alice"}
    assert list_ids(ds, "Users", 'id eq "{}"'.format(data.ids["carol"]), data) == set()
    flt = 'members.value eq "{}"'.format(data.ids["carol"])
    assert list_ids(ds, "Groups", flt, data) == set()


# -- POST .search --------------------------------------------------------------------


def test_users_search(ds: Scim, data: Data) -> None:
    """POST /Users/.search applies filter, sort, paging and attributes from the body."""
    body = {
        "schemas": [SEARCH_REQUEST],
        "filter": 'emails[type eq "work" and value co "@example.com"]',
        "sortBy": "userName",
        "sortOrder": "descending",
        "startIndex": 1,
        "count": 2,
        "attributes": ["userName"],
    }
    resp = ds.post("/scim/v2/Users/.search", body)
    out = resp.get_json()
    assert resp.status_code == 200, out
    assert resp.mimetype == "application/scim+json"
    assert out["schemas"] == [LIST_RESPONSE]
    assert out["totalResults"] == 3
    assert out["itemsPerPage"] == 2
    assert out["startIndex"] == 1
    assert [r["userName"] for r in out["Resources"]] == ["dave_100%", "CAROL.k"]
    for r in out["Resources"]:
        assert set(r) == {"schemas", "id", "userName"}


def test_groups_search(ds: Scim, data: Data) -> None:
    """POST /Groups/.search with excludedAttributes drops members."""
    body = {
        "schemas": [SEARCH_REQUEST],
        "filter": 'members[value eq "{}"]'.format(data.ids["alice"]),
        "excludedAttributes": ["members"],
    }
    resp = ds.post("/scim/v2/Groups/.search", body)
    out = resp.get_json()
    assert resp.status_code == 200, out
    assert out["totalResults"] == 1
    (group,) = out["Resources"]
    assert group["id"] == data.ids["eng"]
    assert group["displayName"] == "Engineering"
    assert "members" not in group


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (None, ALL_USERS | ALL_GROUPS),
        ('meta.resourceType eq "Group"', {"eng", "sales", "ops"}),
        ('externalId sw "EXT"', {"alice", "eve"}),
        ("externalId pr", {"alice", "bob", "eve", "eng"}),
        # userName exists only on Users, members only on Groups: each type answers alone.
        ('userName eq "bob"', {"bob"}),
        ('members[value eq "{alice}"]', {"eng"}),
        ('meta.created gt "2000-01-01T00:00:00Z"', ALL_USERS | ALL_GROUPS),
    ],
)
def test_root_search(ds: Scim, data: Data, flt: str | None, expected: set[str]) -> None:
    """POST /.search searches Users and Groups together (RFC 7644 §3.4.3)."""
    body: dict[str, Any] = {"schemas": [SEARCH_REQUEST]}
    if flt is not None:
        body["filter"] = data.fill(flt)
    resp = ds.post("/scim/v2/.search", body)
    out = resp.get_json()
    assert resp.status_code == 200, out
    assert out["schemas"] == [LIST_RESPONSE]
    assert out["totalResults"] == len(expected)
    assert out["itemsPerPage"] == len(expected)
    assert set(data.names(out["Resources"])) == expected
    kinds = {r["meta"]["resourceType"] for r in out["Resources"]}
    assert kinds <= {"User", "Group"}


def test_root_search_pages_across_types(ds: Scim, data: Data) -> None:
    """POST /.search pages over Users then Groups, totalResults counting both."""
    seen: list[str] = []
    for start in (1, 4, 7):
        body = {"schemas": [SEARCH_REQUEST], "startIndex": start, "count": 3}
        out = ds.post("/scim/v2/.search", body).get_json()
        assert out["totalResults"] == 8
        assert out["startIndex"] == start
        seen += [r["id"] for r in out["Resources"]]
    assert len(seen) == 8
    names = data.names([{"id": i} for i in seen])
    assert set(names[:5]) == ALL_USERS  # Users first, then Groups
    assert set(names[5:]) == ALL_GROUPS


@pytest.mark.parametrize(
    ("flt", "status"),
    [('nosuch eq "x"', 400), ('userName eq "x" or nosuch pr', 400), ("(", 400)],
)
def test_root_search_invalid_filter(scim: Scim, flt: str, status: int) -> None:
    """POST /.search with a filter naming what no resource type has is 400 invalidFilter
    (an attribute of one type only is absent on the other: tests/scim/test_search.py)."""
    resp = scim.post("/scim/v2/.search", {"schemas": [SEARCH_REQUEST], "filter": flt})
    assert resp.status_code == status
    assert_invalid_filter(resp)


@pytest.mark.parametrize(
    ("url", "body", "scim_type"),
    [
        ("/scim/v2/Users/.search", {"filter": "userName pr"}, "invalidValue"),
        ("/scim/v2/.search", {"schemas": ["urn:bogus"], "filter": "userName pr"}, "invalidSyntax"),
        ("/scim/v2/Users/.search", {"schemas": [SEARCH_REQUEST], "bogus": 1}, "invalidValue"),
        ("/scim/v2/Users/.search", {"schemas": [SEARCH_REQUEST], "count": "10"}, "invalidValue"),
        ("/scim/v2/Groups/.search", ["not", "an", "object"], "invalidSyntax"),
    ],
)
def test_search_request_body_validated(scim: Scim, url: str, body: Any, scim_type: str) -> None:
    """A malformed SearchRequest body is a 400 SCIM Error with the matching scimType."""
    resp = scim.post(url, body)
    err = resp.get_json()
    assert resp.status_code == 400, err
    assert ERROR in err["schemas"]
    assert err["scimType"] == scim_type


# -- tenancy -------------------------------------------------------------------------


def test_other_organization_never_visible(ds: Scim, other_scim: Scim, data: Data) -> None:
    """Another organization's users and groups never appear in its neighbour's results."""
    # The same userName and group name are free in another organization.
    theirs = other_scim.create_user("alice@example.com", title="Engineer")
    their_group = other_scim.create_group("Engineering", [theirs["id"]])
    for flt, mine in [
        (None, ALL_USERS),
        ('userName eq "alice@example.com"', {"alice"}),
        ('title co "engineer"', {"alice", "carol"}),
        ('id eq "{}"'.format(theirs["id"]), set()),
        ('groups.value eq "{}"'.format(their_group["id"]), set()),
        ('groups.value eq "{}"'.format(data.ids["eng"]), {"alice", "carol"}),
    ]:
        query = {"filter": flt} if flt else {}
        assert (
            set(data.names(ds.get("/scim/v2/Users", query_string=query).json["Resources"])) == mine
        )
        other = other_scim.get("/scim/v2/Users", query_string=query).json
        assert {r["id"] for r in other["Resources"]} <= {theirs["id"]}
        assert other["totalResults"] == len(other["Resources"])
    resp = ds.get("/scim/v2/Groups", query_string={"filter": 'displayName eq "engineering"'})
    assert [g["id"] for g in resp.json["Resources"]] == [data.ids["eng"]]
    flt = 'members[value eq "{}"]'.format(data.ids["alice"])
    assert other_scim.get("/scim/v2/Groups", query_string={"filter": flt}).json["totalResults"] == 0
    out = other_scim.post("/scim/v2/.search", {"schemas": [SEARCH_REQUEST]}).json
    assert out["totalResults"] == 2
    assert {r["id"] for r in out["Resources"]} == {theirs["id"], their_group["id"]}
    assert ds.get("/scim/v2/Users/{}".format(theirs["id"])).status_code == 404


def _seven_digits(at: datetime, digit: int) -> str:
    """``at`` written with seven fraction digits (as .NET writes them), the seventh ``digit``."""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{at.microsecond:06d}{digit}Z"


@pytest.mark.parametrize(
    ("bound", "op", "hit"),
    [
        # A tenth-of-µs digit after the stored instant: later than it.
        ("after", "lt", True),
        ("after", "le", True),
        ("after", "gt", False),
        ("after", "ge", False),
        ("after", "eq", False),
        ("after", "ne", True),
        # 0.9 µs after the microsecond before it: still earlier than the stored instant.
        ("before", "lt", False),
        ("before", "le", False),
        ("before", "gt", True),
        ("before", "ge", True),
        ("before", "eq", False),
        ("before", "ne", True),
        # A seventh digit 0 is the stored instant itself.
        ("same", "eq", True),
        ("same", "ne", False),
        ("same", "ge", True),
        ("same", "lt", False),
    ],
)
def test_last_modified_filter_with_seven_fraction_digits(
    scim: Scim, bound: str, op: str, hit: bool
) -> None:
    """xsd:dateTime allows any number of fraction digits (.NET writes seven): a bound between
    two stored microseconds compares as the instant it is, not truncated to the µs."""
    user = scim.create_user("alice@example.com")
    stored = datetime.fromisoformat(user["meta"]["lastModified"])
    at = {
        "after": (stored, 9),
        "before": (stored - timedelta(microseconds=1), 9),
        "same": (stored, 0),
    }[bound]
    flt = f'meta.lastModified {op} "{_seven_digits(*at)}"'
    resp = scim.get("/scim/v2/Users", query_string={"filter": flt})
    assert resp.status_code == 200, resp.get_json()
    names = [r["userName"] for r in resp.get_json()["Resources"]]
    assert names == (["alice@example.com"] if hit else [])
