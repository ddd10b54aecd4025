"""Memberships a deletion ends are changes of the groups that lost the member.

Deleting a group that was itself a member, or a user in groups, removes membership rows:
each group that lost a member is in the log and the feed as if a PATCH had removed it.
"""

from __future__ import annotations

from tests.scim.test_remove_values import feed, gurl, member_ids
from tests.support import Scim
from tests.support.admin_api import events as audit_events
from tests.support.admin_api import person


def test_deleting_a_nested_group_is_recorded_for_the_group_that_contained_it(
    scim: Scim, admin: Scim
) -> None:
    """A group deleted while a member of another group: the parent loses a member, and
    says so in the log (its ``group.patch``, the member's ``group.member.remove``) and in
    the feed (``group.member_removed``), or a webhook consumer mirroring the parent's
    members would keep the deleted group."""
    parent = scim.create_group("All staff")
    child = scim.create_group("Engineering")
    added = scim.patch_ops(
        gurl(parent), {"op": "add", "path": "members", "value": [{"value": child["id"]}]}
    )
    assert added.status_code == 204
    version = scim.get(gurl(parent)).headers["ETag"]
    before = len(feed(admin))

    assert scim.delete(gurl(child)).status_code == 204

    assert scim.get(gurl(parent)).headers["ETag"] != version  # the parent did change
    assert member_ids(scim, parent) == set()
    about_parent = [e for e in feed(admin)[before:] if e["data"]["resource"]["id"] == parent["id"]]
    assert [(e["type"], e["data"].get("member")) for e in about_parent] == [
        ("group.member_removed", {"type": "Group", "id": child["id"]})
    ]
    removals = [
        a
        for a in audit_events(admin)
        if a["action"] == "group.member.remove"
        and (a.get("changes") or {}).get("group", {}).get("id") == parent["id"]
    ]
    assert len(removals) == 1


def test_deleting_a_user_is_a_member_removed_event_of_each_group_it_was_in(
    scim: Scim, admin: Scim
) -> None:
    """A user deleted while in groups leaves them: each group gets its
    ``group.member_removed`` (the README's event for "a member left"), as a PATCH removing
    the member or the group's deletion gives, before the ``user.deleted``."""
    ann = person(scim, "ann@example.com")
    eng = scim.create_group("Engineering", members=[ann["id"]])
    ops = scim.create_group("Operations", members=[ann["id"]])
    before = len(feed(admin))

    assert scim.delete(f"/scim/v2/Users/{ann['id']}").status_code == 204

    assert member_ids(scim, eng) == set() and member_ids(scim, ops) == set()
    removed = sorted(
        (e["data"]["resource"]["id"], e["data"]["member"]["id"])
        for e in feed(admin)[before:]
        if e["type"] == "group.member_removed"
    )
    assert removed == sorted([(eng["id"], ann["id"]), (ops["id"], ann["id"])])
