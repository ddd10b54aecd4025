"""PATCH ``remove`` with a value removes what the value names, never more (RFC 7644 §3.5.2.2).

Entra ID removes members with ``"value": [{"value": id}, ...]``; a client may also name one
member as an object or a bare id (as ``add`` takes it), or send an empty list. Only a
remove without a value removes every value; anything else removing more than it names
would be data loss (a whole group's members, a person's work address).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import Scim
from tests.support.admin_api import ok, person


def feed(admin: Scim) -> list[dict[str, Any]]:
    return ok(admin.get("/api/v1/events", query_string={"limit": 1000}))["events"]


def gurl(group: dict[str, Any]) -> str:
    return f"/scim/v2/Groups/{group['id']}"


def member_ids(scim: Scim, group: dict[str, Any]) -> set[str]:
    resp = scim.get(gurl(group))
    assert resp.status_code == 200, resp.get_json()
    return {m["value"] for m in resp.get_json().get("members", [])}


@pytest.mark.parametrize(
    ("value_of", "ann_stays"),
    [
        pytest.param(lambda ann_id: ann_id, False, id="bare-id-string"),
        pytest.param(lambda ann_id: {"value": ann_id}, False, id="one-member-object"),
        pytest.param(lambda ann_id: [{"value": ann_id}], False, id="entra-list"),
        pytest.param(lambda ann_id: [], True, id="empty-list"),
    ],
)
def test_remove_with_a_value_removes_only_the_members_it_names(
    scim: Scim, admin: Scim, value_of: Any, ann_stays: bool
) -> None:
    """A bare id or one member object names that member (as ``add`` takes them); an
    empty list names none. The member not named stays, and no event says it left."""
    ann = person(scim, "ann@example.com")
    bob = person(scim, "bob@example.com")
    group = scim.create_group("Engineering", members=[ann["id"], bob["id"]])
    before = len(feed(admin))
    resp = scim.patch_ops(
        gurl(group), {"op": "remove", "path": "members", "value": value_of(ann["id"])}
    )
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert member_ids(scim, group) == ({ann["id"], bob["id"]} if ann_stays else {bob["id"]})
    removed = [
        e["data"]["member"]["id"]
        for e in feed(admin)[before:]
        if e["type"] == "group.member_removed"
    ]
    assert removed == ([] if ann_stays else [ann["id"]])


def test_remove_without_a_value_removes_every_member(scim: Scim) -> None:
    """RFC 7644 §3.5.2.2: no filter and no value: the attribute and all its values go."""
    ann = person(scim, "ann@example.com")
    group = scim.create_group("Engineering", members=[ann["id"]])
    resp = scim.patch_ops(gurl(group), {"op": "remove", "path": "members"})
    assert resp.status_code == 204
    assert member_ids(scim, group) == set()


def _ann_with_two_addresses(scim: Scim) -> dict[str, Any]:
    return scim.create_user(
        "ann@example.com",
        emails=[
            {"type": "work", "value": "ann@example.com", "primary": True},
            {"type": "home", "value": "h@example.com"},
        ],
    )


def _addresses(scim: Scim, user: dict[str, Any]) -> list[str]:
    emails = scim.get(f"/scim/v2/Users/{user['id']}").get_json().get("emails") or []
    return sorted(e["value"] for e in emails)


@pytest.mark.parametrize(
    ("value", "left"),
    [
        pytest.param(
            {"type": "home", "value": "h@example.com"}, ["ann@example.com"], id="one-value-object"
        ),
        pytest.param("h@example.com", ["ann@example.com"], id="bare-string"),
        pytest.param([{"value": "h@example.com"}], ["ann@example.com"], id="list"),
        # RFC 7643 §2.1: sub-attribute names are case-insensitive.
        pytest.param([{"Value": "h@example.com"}], ["ann@example.com"], id="list-capitalised"),
        pytest.param({"VALUE": "h@example.com"}, ["ann@example.com"], id="object-upper-case"),
        pytest.param([], ["ann@example.com", "h@example.com"], id="empty-list"),
    ],
)
def test_a_users_remove_with_a_value_removes_only_the_values_it_names(
    scim: Scim, value: Any, left: list[str]
) -> None:
    """The same on a user's multi-valued attribute: removing the home address keeps the
    work one (which mail and sign-in lookups use); an empty list removes nothing."""
    user = _ann_with_two_addresses(scim)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "remove", "path": "emails", "value": value}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert _addresses(scim, user) == left


def test_a_remove_naming_a_value_without_its_value_is_refused(scim: Scim) -> None:
    """``{"type": "home"}`` names no value: 400 ``invalidValue``, nothing removed."""
    user = _ann_with_two_addresses(scim)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}",
        {"op": "remove", "path": "emails", "value": {"type": "home"}},
    )
    assert resp.status_code == 400
    assert resp.get_json()["scimType"] == "invalidValue"
    assert _addresses(scim, user) == ["ann@example.com", "h@example.com"]
