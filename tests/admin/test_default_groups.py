"""Default groups: the setting (ids, checked), who joins them (accounts made outside SCIM),
and a group the IdP deletes leaving the setting."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select

from scim_server.db import db
from scim_server.models import Event, GroupMember, Organization
from scim_server.services.tokens import create_token
from tests.support import Scim
from tests.support.admin_api import events, make_license, ok
from tests.support.threads import run_together


def _contact(admin: Scim, name: str = "Ada Lovelace", email: str = "ada@example.com") -> dict:
    body = {"kind": "person", "name": name, "email": email}
    return ok(admin.post("/api/v1/contacts", body), 201)


def _members(scim: Scim, group_id: str) -> list[str]:
    group = ok(scim.get(f"/scim/v2/Groups/{group_id}"))
    return [m["value"] for m in group.get("members", [])]


def _set_defaults(admin: Scim, *ids: str) -> dict:
    return ok(admin.put("/api/v1/settings", {"default_groups": list(ids)}))


def test_settings_take_group_ids_and_show_their_names(scim: Scim, admin: Scim, session) -> None:
    """PUT keeps the ids (duplicates once); GET shows them and, read-only, their displayNames;
    a rename by the IdP changes the name shown, not the setting."""
    staff = scim.create_group("Staff")
    ops = scim.create_group("Ops")
    body = _set_defaults(admin, ops["id"], staff["id"], ops["id"])
    assert body["default_groups"] == [ops["id"], staff["id"]]
    assert body["default_groups_display"] == [
        {"id": ops["id"], "displayName": "Ops"},
        {"id": staff["id"], "displayName": "Staff"},
    ]
    got = ok(admin.get("/api/v1/settings"))
    assert got["default_groups"] == [ops["id"], staff["id"]]
    (event,) = events(admin, action="settings.update")
    assert event["changes"] == {"default_groups": {"before": [], "after": [ops["id"], staff["id"]]}}
    scim.patch_ops(
        f"/scim/v2/Groups/{ops['id']}",
        {"op": "replace", "path": "displayName", "value": "Field Ops"},
    )
    got = ok(admin.get("/api/v1/settings"))
    assert got["default_groups"] == [ops["id"], staff["id"]]
    assert got["default_groups_display"][0] == {"id": ops["id"], "displayName": "Field Ops"}
    # A PUT of what GET returned (the read-only names included) is accepted as it is.
    assert ok(admin.put("/api/v1/settings", got))["default_groups"] == got["default_groups"]


def test_an_unknown_group_id_is_a_400_that_changes_nothing(
    scim: Scim, admin: Scim, other_scim: Scim, session
) -> None:
    """Unknown ids, another organization's group and bad types: 400 naming the problem."""
    staff = scim.create_group("Staff")
    theirs = other_scim.create_group("Theirs")
    cases = [
        ([staff["id"], "no-such-group"], "default_groups: no group with id 'no-such-group'"),
        ([theirs["id"]], f"no group with id {theirs['id']!r}"),
        ("Staff", "default_groups must be a list of group ids"),
        ([7], "default_groups must be a list of group ids"),
        ([""], "default_groups must be a list of group ids"),
    ]
    for value, message in cases:
        resp = admin.put("/api/v1/settings", {"default_groups": value})
        assert resp.status_code == 400, value
        assert message in resp.get_json()["detail"], resp.get_json()
    assert session.get(Organization, admin.org_id).settings in ({}, None)
    assert ok(admin.get("/api/v1/settings"))["default_groups"] == []


def test_enable_access_joins_the_default_groups(scim: Scim, admin: Scim, session) -> None:
    """The account is a member (SCIM GET /Groups), the 201 lists its groups, the create's
    event names them, and each group has its member event and product event."""
    make_license(admin, "Engineer")
    staff = scim.create_group("Staff")
    ops = scim.create_group("Ops")
    scim.create_group("Other")
    ok(
        admin.put(
            "/api/v1/settings",
            {"default_license": "Engineer", "default_groups": [staff["id"], ops["id"]]},
        )
    )
    version = ok(scim.get(f"/scim/v2/Groups/{staff['id']}"))["meta"]["version"]
    contact = _contact(admin)

    user = ok(admin.post(f"/api/v1/contacts/{contact['id']}/access", {}), 201)

    assert sorted(g["displayName"] for g in user["groups"]) == ["Ops", "Staff"]
    assert _members(scim, staff["id"]) == [user["id"]]
    assert _members(scim, ops["id"]) == [user["id"]]
    assert ok(scim.get(f"/scim/v2/Groups/{staff['id']}"))["meta"]["version"] != version
    scim_user = ok(scim.get(f"/scim/v2/Users/{user['id']}"))
    assert sorted(g["display"] for g in scim_user["groups"]) == ["Ops", "Staff"]
    assert user["license"]["value"] == "Engineer"
    (create,) = events(admin, action="user.create")
    assert sorted(g["displayName"] for g in create["explanation"]["default_groups"]) == [
        "Ops",
        "Staff",
    ]
    added = events(admin, action="group.member.add")
    assert sorted(e["detail"] for e in added) == ["Ops", "Staff"]
    assert {e["resource_id"] for e in added} == {user["id"]}
    assert len(events(admin, action="group.patch")) == 2
    product = session.scalars(select(Event).where(Event.type == "group.member_added")).all()
    assert sorted(e.resource_id for e in product) == sorted([staff["id"], ops["id"]])


def test_the_plan_lists_the_groups_and_rules_see_them(scim: Scim, admin: Scim) -> None:
    """A rule on membership of a default group gives its license at Enable access."""
    make_license(admin, "Field")
    staff = scim.create_group("Field staff")
    document = {
        "mode": "first-match",
        "rules": [
            {"name": "field", "when": {"member_of": "Field staff"}, "then": {"license": "Field"}}
        ],
    }
    stored = ok(admin.post("/api/v1/rulesets", {"name": "main", "document": document}), 201)
    ok(admin.post(f"/api/v1/rulesets/{stored['id']}/activate", {}), 200)
    _set_defaults(admin, staff["id"])
    user = ok(admin.post(f"/api/v1/contacts/{_contact(admin)['id']}/access", {}), 201)
    assert user["license"]["value"] == "Field"
    assert _members(scim, staff["id"]) == [user["id"]]


def test_a_scim_create_joins_no_default_group(scim: Scim, admin: Scim, session) -> None:
    """The IdP owns a SCIM user's memberships: POST /Users joins nothing."""
    staff = scim.create_group("Staff")
    _set_defaults(admin, staff["id"])
    user = scim.create_user("bob@example.com")
    assert _members(scim, staff["id"]) == []
    assert not ok(scim.get(f"/scim/v2/Users/{user['id']}")).get("groups")
    assert events(admin, action="group.member.add") == []


def test_a_deleted_group_leaves_the_setting(scim: Scim, admin: Scim, session) -> None:
    """The IdP's DELETE of a default group drops it from the settings in the same
    transaction, with a settings.update event; the other default group stays."""
    staff = scim.create_group("Staff")
    ops = scim.create_group("Ops")
    _set_defaults(admin, staff["id"], ops["id"])
    assert scim.delete(f"/scim/v2/Groups/{staff['id']}").status_code == 204
    got = ok(admin.get("/api/v1/settings"))
    assert got["default_groups"] == [ops["id"]]
    assert got["default_groups_display"] == [{"id": ops["id"], "displayName": "Ops"}]
    last = events(admin, action="settings.update")[-1]
    assert last["actor_type"] == "token"
    assert last["changes"] == {
        "default_groups": {"before": [staff["id"], ops["id"]], "after": [ops["id"]]}
    }
    assert "Staff" in last["detail"]
    # Deleting a group that is no default leaves the settings alone.
    other = scim.create_group("Other")
    assert scim.delete(f"/scim/v2/Groups/{other['id']}").status_code == 204
    assert len(events(admin, action="settings.update")) == 2
    user = ok(admin.post(f"/api/v1/contacts/{_contact(admin)['id']}/access", {}), 201)
    assert [g["id"] for g in user["groups"]] == [ops["id"]]
    assert session.scalars(
        select(GroupMember.group_id).where(GroupMember.member_id == user["id"])
    ).all() == [ops["id"]]


def _race(app: Any, scim: Scim, secret: str, group_id: str) -> dict[str, int]:
    """A settings PUT naming the group and the IdP's DELETE of it, released together."""
    barrier = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def put() -> None:
        client = Scim(app.test_client(), secret, scim.org_id)
        barrier.wait()
        body = {"default_groups": [group_id]}
        statuses["put"] = client.put("/api/v1/settings", body).status_code

    def delete() -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        barrier.wait()
        statuses["delete"] = client.delete(f"/scim/v2/Groups/{group_id}").status_code

    run_together(put, delete)
    return statuses


def test_a_settings_change_racing_a_group_delete_leaves_no_dead_id(live: Any) -> None:
    """PUT naming a group and the IdP's DELETE of it at once: whichever wins, the settings
    never keep the id of a deleted group (PUT 200 then the delete drops it, or PUT 400)."""
    app, scim = live
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    for round_ in range(4):
        group = scim.create_group(f"Race {round_}")
        statuses = _race(app, scim, secret, group["id"])
        assert statuses["delete"] == 204 and statuses["put"] in (200, 400), statuses
        assert ok(admin.get("/api/v1/settings"))["default_groups"] == []
