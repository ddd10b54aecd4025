"""POST /.search at the root (RFC 7644 §3.4.3): one query across Users and Groups.

An attribute of one resource type reads as unassigned on the other (RFC 7644 §3.4.2.1), in
a filter and in ``sortBy``; the sort orders the whole result, both types together
(§3.4.2.3), and ``startIndex``/``count`` page that order.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from scim_server.scim.search import SORTED_REACH
from tests.support import ENTERPRISE, USER_SCHEMA, Scim

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
GROUP_CORE = "urn:ietf:params:scim:schemas:core:2.0:Group"


def root_search(scim: Scim, **body: Any) -> Any:
    return scim.post("/scim/v2/.search", {"schemas": [SEARCH], **body})


def found(resp: Any) -> list[str]:
    """The ids of a 200 ListResponse, in order; its totalResults counts them all."""
    body = resp.get_json()
    assert resp.status_code == 200, body
    return [r["id"] for r in body["Resources"]]


@pytest.fixture
def both(scim: Scim) -> dict[str, dict[str, Any]]:
    """alice (with a givenName and an employeeNumber), bob, the group Eng (alice in it) and
    the group Empty."""
    alice = scim.create_user(
        "alice@example.com",
        name={"givenName": "Alice"},
        **{ENTERPRISE: {"employeeNumber": "701"}},
    )
    bob = scim.create_user("bob@example.com")
    eng = scim.create_group("Eng", [alice["id"]])
    empty = scim.create_group("Empty")
    return {"alice": alice, "bob": bob, "eng": eng, "empty": empty}


# -- a filter naming an attribute of one type only (RFC 7644 §3.4.2.1) ----------------------


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        # "SHALL treat the attribute as if there is no attribute value": false on the other.
        ('userName eq "alice@example.com" or displayName eq "Eng"', {"alice", "eng"}),
        ("members pr or userName pr", {"alice", "bob", "eng"}),
        ("members pr", {"eng"}),
        ("not (members pr)", {"alice", "bob", "empty"}),
        ("not (userName pr)", {"eng", "empty"}),
        ('userName eq "x" and members pr', set()),
        ('userName ne "alice@example.com"', {"bob", "eng", "empty"}),
        ("userName eq null", {"eng", "empty"}),
        ('name.givenName eq "Alice" or displayName sw "Em"', {"alice", "empty"}),
        ('members[value eq "{alice}"] or groups[display eq "Eng"]', {"alice", "eng"}),
        ('members.value eq "{alice}" or groups.value eq "{eng}"', {"alice", "eng"}),
        (f'{ENTERPRISE}:employeeNumber eq "701"', {"alice"}),
        (f'{USER_SCHEMA}:userName sw "b" or {GROUP_CORE}:displayName eq "eng"', {"bob", "eng"}),
    ],
)
def test_rfc_7644_3_4_2_1_an_attribute_of_one_type_is_absent_on_the_other(
    scim: Scim, both: dict[str, dict[str, Any]], flt: str, expected: set[str]
) -> None:
    """Each side of the filter is read on each type; an attribute the type does not have is
    unassigned there (``eq`` false, ``pr`` false, ``ne`` true, ``not`` accordingly), never a
    400 for the whole search nor a type silently left out."""
    ids = {name: r["id"] for name, r in both.items()}
    resp = root_search(scim, filter=flt.format(**ids), attributes=["id"])
    got = found(resp)
    assert sorted(got) == sorted(ids[n] for n in expected)
    assert resp.get_json()["totalResults"] == len(expected)


@pytest.mark.parametrize(
    "flt",
    [
        'nosuch eq "x"',
        'userName eq "x" or nosuch pr',
        "not (nosuch pr)",
        "name.nosuch pr",  # an unknown sub-attribute of a User attribute
        'members[nosuch eq "x"]',
        'userName eq 5 or displayName eq "Eng"',  # a type error on the type that has it
        "urn:example:nosuch:userName pr",
    ],
)
def test_a_filter_wrong_for_every_type_is_400_invalid_filter(
    scim: Scim, both: dict[str, Any], flt: str
) -> None:
    """A name that is no attribute of any resource type, or a comparison its own type
    refuses, is still a 400 invalidFilter."""
    resp = root_search(scim, filter=flt)
    body = resp.get_json()
    assert resp.status_code == 400, body
    assert body["scimType"] == "invalidFilter"


# -- sortBy across resource types (RFC 7644 §3.4.2.3) -------------------------------------------


def test_sort_by_an_attribute_of_one_type_orders_and_keeps_the_other(scim: Scim) -> None:
    """A sort orders, it does not filter: resources without the sortBy value are "ordered
    last if ascending", first if descending. Sorted by userName, the groups are still found."""
    zed = scim.create_user("zed@example.com")
    amy = scim.create_user("amy@example.com")
    group = scim.create_group("Eng")
    up = root_search(scim, sortBy="userName", attributes=["id"])
    assert found(up) == [amy["id"], zed["id"], group["id"]]
    assert up.get_json()["totalResults"] == 3
    down = root_search(scim, sortBy="userName", sortOrder="descending", attributes=["id"])
    assert found(down) == [group["id"], zed["id"], amy["id"]]


@pytest.fixture
def named(scim: Scim) -> dict[str, str]:
    """Users and groups by displayName, created out of order; "nobody" has none."""
    ids = {}
    ids["Zed"] = scim.create_user("zed@example.com", displayName="Zed")["id"]
    ids["Nora"] = scim.create_group("Nora")["id"]
    ids["nobody"] = scim.create_user("nobody@example.com")["id"]
    ids["Mia"] = scim.create_user("mia@example.com", displayName="Mia")["id"]
    ids["beta"] = scim.create_group("beta")["id"]
    ids["Alpha"] = scim.create_group("Alpha")["id"]
    return ids


ASCENDING = ["Alpha", "beta", "Mia", "Nora", "Zed", "nobody"]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("ascending", ASCENDING),
        # Descending: without a value first, then the values from the largest.
        ("descending", ["nobody", "Zed", "Nora", "Mia", "beta", "Alpha"]),
    ],
)
def test_sort_by_display_name_orders_users_and_groups_together(
    scim: Scim, named: dict[str, str], order: str, expected: list[str]
) -> None:
    """sortBy=displayName on the root orders the whole result, users and groups in one order
    (case-insensitively, as displayName is), not the users sorted and then the groups."""
    resp = root_search(scim, sortBy="displayName", sortOrder=order, attributes=["displayName"])
    assert found(resp) == [named[n] for n in expected]
    body = resp.get_json()
    assert body["totalResults"] == 6
    shown = [r.get("displayName") for r in body["Resources"]]
    assert shown == [None if n == "nobody" else n for n in expected]


@pytest.mark.parametrize("count", [1, 2, 4])
def test_pages_of_a_sorted_search_follow_the_merged_order(
    scim: Scim, named: dict[str, str], count: int
) -> None:
    """startIndex and count page the merged order: the pages, one after another, are the
    whole sorted result, each resource once; totalResults counts both types."""
    seen: list[str] = []
    for start in range(1, 7, count):
        resp = root_search(
            scim, sortBy="displayName", startIndex=start, count=count, attributes=["id"]
        )
        body = resp.get_json()
        assert (body["startIndex"], body["totalResults"]) == (start, 6)
        assert body["itemsPerPage"] == len(body["Resources"]) == min(count, 7 - start)
        seen += found(resp)
    assert seen == [named[n] for n in ASCENDING]


def test_a_sorted_search_past_the_end_and_with_count_0(scim: Scim, named: dict[str, str]) -> None:
    """A page after the last resource is empty; count=0 gives only totalResults (§3.4.2.4)."""
    past = root_search(scim, sortBy="displayName", startIndex=7, count=5)
    assert found(past) == []
    assert past.get_json()["totalResults"] == 6
    none = root_search(scim, sortBy="displayName", count=0)
    assert found(none) == []
    assert none.get_json()["totalResults"] == 6


def test_a_filtered_sorted_search(scim: Scim, named: dict[str, str]) -> None:
    """Filter and sort together: each type filtered, then the two merged in order."""
    resp = root_search(
        scim,
        filter='displayName sw "n" or userName sw "m" or userName sw "n"',
        sortBy="displayName",
        count=10,
    )
    assert found(resp) == [named["Mia"], named["Nora"], named["nobody"]]


def test_a_sorted_search_is_one_order_whatever_the_databases_collation(
    scim: Scim, connection: Connection
) -> None:
    """Users and groups merge in code-point order, so each type's run must come in it too:
    under a linguistic collation (an ICU one here, for externalId on PostgreSQL, inside the
    test's transaction) "_u" sorts before "a" and "b" before "B", and the merged page was
    out of order."""
    if connection.dialect.name == "postgresql":
        for table in ("users", "groups"):
            connection.execute(
                text(f'ALTER TABLE {table} ALTER COLUMN external_id TYPE text COLLATE "und-x-icu"')
            )
    for external_id in ("b", "_u"):
        scim.create_user(f"{external_id}@example.com", externalId=external_id)
    for external_id in ("B", "a"):
        scim.create_group(f"group {external_id}", externalId=external_id)
    for order in ("ascending", "descending"):
        resp = root_search(scim, sortBy="externalId", sortOrder=order, attributes=["externalId"])
        values = [r["externalId"] for r in resp.get_json()["Resources"]]
        assert values == sorted(values, reverse=order == "descending"), values


@pytest.mark.parametrize("sort_by", ["nosuch", "members", "name"])
def test_sort_by_what_no_type_can_sort_by_is_400(scim: Scim, sort_by: str) -> None:
    """A sortBy that is no attribute of any type, or one its type cannot sort by (members,
    a complex attribute without a value), is a 400 invalidFilter, not an unsorted answer."""
    scim.create_group("Eng")
    resp = root_search(scim, sortBy=sort_by)
    body = resp.get_json()
    assert resp.status_code == 400, body
    assert body["scimType"] == "invalidFilter"


def test_a_sorted_search_deeper_than_it_merges_is_400_too_many(scim: Scim) -> None:
    """A sorted root search merges each type's first startIndex+count-1 keys in Python:
    past ``SORTED_REACH`` it is refused (400 tooMany) rather than reading a whole directory
    of keys for one page; without sortBy, or at a type's own endpoint, it pages as deep as
    asked."""
    scim.create_user("alice@example.com")
    deep = root_search(scim, sortBy="userName", startIndex=SORTED_REACH, count=2)
    body = deep.get_json()
    assert deep.status_code == 400, body
    assert body["scimType"] == "tooMany"
    assert "/Users" in body["detail"]
    edge = root_search(scim, sortBy="userName", startIndex=SORTED_REACH, count=1)
    assert found(edge) == [] and edge.get_json()["totalResults"] == 1
    assert found(root_search(scim, startIndex=1_000_000)) == []
