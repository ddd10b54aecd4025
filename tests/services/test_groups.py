"""Groups (``services.groups``): a rename the mapping rules see re-evaluates the members at once.

Rules name groups by display name or externalId (``member_of: Engineering``). When the IdP
renames the group (Okta's no-path replace repeating the id, Entra's ``Replace
displayName``) or changes its externalId, its members stop (or start) meeting the rule in
the same transaction, as a membership change does (``remap_moved_users``): not at some
unrelated later write of each user. A rename no rule names evaluates no one.

Membership changes: ids compared without case (members.value is caseExact false), a
filtered change that must match refused when it matches nothing, no cycle of groups.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from scim_server.db import db
from scim_server.errors import InvalidValueError, NoTargetError
from scim_server.models import GroupMember, User
from scim_server.services import groups
from scim_server.services.groups import GroupEdit
from scim_server.services.members import MemberChange, MemberTest
from scim_server.services.tokens import create_token
from tests.admin.rules import activate, catalogue
from tests.support import GROUP_SCHEMA, Scim, assert_error
from tests.support.admin_api import account, events, person
from tests.support.holds import Hold, client_like, main_thread_only, postgresql_only
from tests.support.pg_locks import LIMIT_SECONDS, backend_pid, ended_or_waiting

BY_EXTERNAL_ID = {
    "mode": "first-match",
    "rules": [
        {
            "name": "engineering",
            "when": {"any": [{"not": {"always": True}}, {"member_of": "grp-engineering"}]},
            "then": {"license": "Engineer", "roles": ["Engineer"]},
        }
    ],
}


def _engineer_access(admin: Scim, user_id: str) -> tuple[str | None, list[str]]:
    held = account(admin, user_id)
    lic = held.get("license")
    return (lic["value"] if lic else None), [r["value"] for r in held.get("roles") or []]


def _group_url(group: dict[str, Any]) -> str:
    return f"/scim/v2/Groups/{group['id']}"


def _hashes(app: Flask, ids: list[str]) -> dict[str, str | None]:
    with db.reader(app)() as s:
        rows = s.execute(select(User.id, User.rules_input_hash).where(User.id.in_(ids)))
        return {i: h for i, h in rows}


@contextmanager
def _statements(app: Flask) -> Iterator[list[str]]:
    """Every statement the app sends meanwhile."""
    seen: list[str] = []
    bind = db.reader(app).kw["bind"]

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(bind, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", note)


def test_renaming_the_group_a_rule_names_takes_its_access_away_at_once(
    scim: Scim, admin: Scim
) -> None:
    catalogue(admin)
    activate(admin)  # member_of: Engineering -> the Engineer license and role
    ann = scim.create_user("ann@example.com")
    group = scim.create_group("Engineering", [ann["id"]])
    assert _engineer_access(admin, ann["id"]) == ("Engineer", ["Engineer"])
    # Okta's group rename: a no-path replace repeating the id.
    resp = scim.patch_ops(
        _group_url(group),
        {"op": "replace", "value": {"id": group["id"], "displayName": "Engineering (retired)"}},
    )
    assert resp.status_code == 204
    assert _engineer_access(admin, ann["id"]) == (None, [])
    mapping = events(admin, action="user.mapping", resource_id=ann["id"])[-1]
    assert mapping["detail"] == "group 'Engineering' renamed to 'Engineering (retired)'"
    assert mapping["changes"]["roles.rule"]["removed"]


def test_changing_the_external_id_a_rule_names_takes_its_access_away_at_once(
    scim: Scim, admin: Scim
) -> None:
    """The rule names the group by its externalId, inside ``any`` and beside a ``not``."""
    catalogue(admin)
    activate(admin, BY_EXTERNAL_ID)
    ann = scim.create_user("ann@example.com")
    group = scim.create_group("Engineering", [ann["id"]], externalId="grp-engineering")
    assert _engineer_access(admin, ann["id"]) == ("Engineer", ["Engineer"])
    resp = scim.patch_ops(
        _group_url(group), {"op": "Replace", "path": "externalId", "value": "grp-archived"}
    )
    assert resp.status_code == 204
    assert _engineer_access(admin, ann["id"]) == (None, [])
    mapping = events(admin, action="user.mapping", resource_id=ann["id"])[-1]
    assert "changed from 'grp-engineering' to 'grp-archived'" in mapping["detail"]


def test_renaming_a_group_to_the_name_a_rule_names_gives_its_access_at_once(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """Entra's ``Replace displayName`` (here under the core URN, RFC 7644 §3.5.2), and a PUT
    back: every user member is evaluated, a group member is not a user's group."""
    catalogue(admin)
    activate(admin)
    people = [person(scim, f"p{i}@example.com") for i in range(3)]
    outsider = person(scim, "out@example.com")
    team = scim.create_group("Team")
    group = scim.create_group("Platform", [p["id"] for p in people] + [team["id"]])
    resp = scim.patch_ops(
        _group_url(group),
        {"op": "Replace", "path": GROUP_SCHEMA, "value": {"displayName": "engineering"}},
    )
    assert resp.status_code == 204, resp.get_json()
    for p in people:
        assert _engineer_access(admin, p["id"]) == ("Engineer", ["Engineer"])
    assert _engineer_access(admin, outsider["id"]) == (None, [])
    assert not events(admin, action="user.mapping", resource_id=team["id"])
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Platform"}
    assert scim.put(_group_url(group), body).status_code == 200
    for p in people:
        assert _engineer_access(admin, p["id"]) == (None, [])


def test_a_rename_no_rule_names_evaluates_no_one(app: Flask, scim: Scim, admin: Scim) -> None:
    """Most renames: the rules are read (cached), the members are not; their hashes stay
    as they were (a later ``rules apply`` sees their groups changed)."""
    catalogue(admin)
    activate(admin)
    people = [person(scim, f"p{i}@example.com") for i in range(3)]
    group = scim.create_group("Sales", [p["id"] for p in people])
    before = _hashes(app, [p["id"] for p in people])
    with _statements(app) as seen:
        resp = scim.patch_ops(
            _group_url(group), {"op": "replace", "path": "displayName", "value": "Sales EMEA"}
        )
    assert resp.status_code == 204
    assert _hashes(app, [p["id"] for p in people]) == before
    assert not events(admin, action="user.mapping")
    assert not [s for s in seen if "user_roles" in s or "FROM users" in s], seen


def test_a_rename_reads_its_members_by_the_batch_not_one_by_one(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """Five members or ten: the same statements (one batch), not one more per member.
    (Both above the audit recorder's ``COMBINED_UP_TO`` events, so on PostgreSQL both write
    their events the same way.)"""
    catalogue(admin)
    activate(admin)
    counts = []
    for size in (5, 10):
        people = [person(scim, f"s{size}-{i}@example.com") for i in range(size)]
        group = scim.create_group(f"Platform {size}", [p["id"] for p in people])
        with _statements(app) as seen:
            resp = scim.patch_ops(
                _group_url(group), {"op": "replace", "path": "displayName", "value": "Engineering"}
            )
        assert resp.status_code == 204
        counts.append(len(seen))
        for p in people:
            assert _engineer_access(admin, p["id"]) == ("Engineer", ["Engineer"])
        resp = scim.patch_ops(
            _group_url(group), {"op": "replace", "path": "displayName", "value": f"Old {size}"}
        )
        assert resp.status_code == 204
    assert counts[0] == counts[1], counts


# -- membership changes: case, noTarget, cycles ----------------------------------------------


@dataclass(frozen=True)
class _Members:
    """A change of members only (the group's attributes as stored)."""

    changes: tuple[MemberChange, ...]

    def apply(self, current: dict[str, Any]) -> GroupEdit:
        return GroupEdit(current, self.changes)


def _change(session: Session, org_id: str, group_id: str, *changes: MemberChange) -> Any:
    session.commit()  # end the reader's own transaction: the service begins its own
    return groups.update_group(session, org_id, group_id, _Members(changes), action="group.patch")


def _stored(session: Session, org_id: str, group_id: str) -> set[str]:
    session.commit()
    return {mid for mid, _, _ in groups.members_of(session, org_id, group_id)}


def _version(session: Session, org_id: str, group_id: str) -> int:
    session.commit()
    return groups.get_group(session, org_id, group_id).version


def test_member_ids_are_compared_without_case(scim: Scim, session: Session) -> None:
    """members.value is caseExact false: an add, remove or filtered remove naming an id in
    upper case finds the member stored under its own (lower-case) id."""
    ann, bob = (scim.create_user(n)["id"] for n in ("ann", "bob"))
    team = scim.create_group("Team")["id"]
    _change(session, scim.org_id, team, MemberChange("add", ({"value": ann.upper()},)))
    assert _stored(session, scim.org_id, team) == {ann}
    _change(session, scim.org_id, team, MemberChange("add", ({"value": bob},)))
    _change(session, scim.org_id, team, MemberChange("remove", ({"value": ann.upper()},)))
    assert _stored(session, scim.org_id, team) == {bob}
    where = MemberTest("value", "eq", bob.upper())
    _change(session, scim.org_id, team, MemberChange("remove_where", where=where))
    assert _stored(session, scim.org_id, team) == set()


def test_a_filtered_change_that_must_match_and_matches_nothing_is_no_target(
    scim: Scim, session: Session
) -> None:
    """A ``remove_where`` with ``must_match`` that removes nothing raises NoTargetError, and
    the changes before it in the same edit are rolled back; without the flag it is a no-op."""
    ann, bob = (scim.create_user(n)["id"] for n in ("ann", "bob"))
    team = scim.create_group("Team", [ann])["id"]
    version = _version(session, scim.org_id, team)
    nobody = MemberTest("display", "co", "nobody")
    with pytest.raises(NoTargetError):
        _change(
            session,
            scim.org_id,
            team,
            MemberChange("add", ({"value": bob},)),
            MemberChange("remove_where", where=nobody, must_match=True),
            MemberChange("add", ({"value": bob},)),
        )
    session.rollback()
    assert _stored(session, scim.org_id, team) == {ann}
    assert _version(session, scim.org_id, team) == version
    _change(session, scim.org_id, team, MemberChange("remove_where", where=nobody))
    assert _version(session, scim.org_id, team) == version


def test_a_group_reaching_the_target_through_others_is_refused(
    scim: Scim, session: Session
) -> None:
    """Team in Middle in Top: adding Top or Middle to Team would make a cycle (400
    invalidValue, nothing written); a group that does not reach Team is accepted."""
    team = scim.create_group("Team")["id"]
    middle = scim.create_group("Middle", [team])["id"]
    top = scim.create_group("Top", [middle])["id"]
    other = scim.create_group("Other", [middle])["id"]
    for parent in (middle, top):
        with pytest.raises(InvalidValueError, match="cycle"):
            _change(session, scim.org_id, team, MemberChange("add", ({"value": parent},)))
        session.rollback()
        assert _stored(session, scim.org_id, team) == set()
    with pytest.raises(InvalidValueError, match="cycle"):
        _change(session, scim.org_id, team, MemberChange("replace", ({"value": top.upper()},)))
    session.rollback()
    _change(session, scim.org_id, other, MemberChange("add", ({"value": top},)))
    assert _stored(session, scim.org_id, other) == {middle, top}


def test_the_cycle_check_ends_on_a_cycle_already_stored(scim: Scim, session: Session) -> None:
    """A cycle written before the check existed (A in B, B in A) does not make the walk loop:
    adding A to a third group C is accepted, adding C to A after is refused."""
    a = scim.create_group("A")["id"]
    b = scim.create_group("B", [a])["id"]
    c = scim.create_group("C")["id"]
    session.commit()
    with session.begin():
        session.add(GroupMember(org_id=scim.org_id, group_id=a, member_id=b, member_type="Group"))
    _change(session, scim.org_id, c, MemberChange("add", ({"value": a},)))
    assert _stored(session, scim.org_id, c) == {a}
    with pytest.raises(InvalidValueError, match="cycle"):
        _change(session, scim.org_id, a, MemberChange("add", ({"value": c},)))
    session.rollback()


def _nested_add(app: Flask, scim: Scim, parent: str, child: str) -> Any:
    """PATCH ``parent`` adding the group ``child``, on a client of its own (a thread's)."""
    client = Scim(app.test_client(), scim.token, scim.org_id)
    op = {"op": "add", "path": "members", "value": [{"value": child, "type": "Group"}]}
    return client.patch_ops(f"/scim/v2/Groups/{parent}", op)


def test_concurrent_nested_adds_cannot_store_a_cycle(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCH A adding B holds its transaction after its cycle check while PATCH B adding A
    runs (on PostgreSQL each locks only its own group): B's PATCH waits for A's to commit,
    then gets the 400 invalidValue it gets alone; B is in A, A is not in B."""
    app, scim = live
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("SQLite's writers take the database lock at BEGIN: no write between")
    a = scim.create_group("A")["id"]
    b = scim.create_group("B")["id"]
    real = groups._check_no_cycle
    raced: list[Any] = []
    waited: list[bool] = []
    racers: list[threading.Thread] = []

    def checked_then_raced(session: Session, org_id: str, group_id: str, added: Any) -> None:
        real(session, org_id, group_id, added)
        if group_id != a or waited:
            return
        racer = threading.Thread(target=lambda: raced.append(_nested_add(app, scim, b, a)))
        racer.start()
        racers.append(racer)
        waited.append(ended_or_waiting(racer, db.engine(app), backend_pid(session.connection())))

    monkeypatch.setattr(groups, "_check_no_cycle", checked_then_raced)
    first = _nested_add(app, scim, a, b)
    racers[0].join(LIMIT_SECONDS)
    monkeypatch.setattr(groups, "_check_no_cycle", real)

    assert first.status_code == 204, first.get_data(as_text=True)
    (second,) = raced
    refused = assert_error(second, 400, "invalidValue")
    alone = _nested_add(app, scim, b, a)
    assert assert_error(alone, 400, "invalidValue") == refused
    with db.reader(app)() as session:
        edges = session.execute(
            select(GroupMember.group_id, GroupMember.member_id).where(
                GroupMember.org_id == scim.org_id, GroupMember.member_type == "Group"
            )
        ).all()
    assert [tuple(edge) for edge in edges] == [(a, b)]
    assert waited == [True]  # the second waited for the first's check to commit


def test_a_user_joining_a_group_does_not_wait_for_a_nested_change(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a PATCH adding a group holds its transaction after its cycle check, a PATCH
    adding a user to another group of the organization runs to its end (204): only changes
    that add groups take turns."""
    app, scim = live
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("SQLite's writers take the database lock at BEGIN: every write waits")
    a = scim.create_group("A")["id"]
    b = scim.create_group("B")["id"]
    c = scim.create_group("C")["id"]
    user = scim.create_user("joiner@example.com")["id"]
    real = groups._check_no_cycle
    joined: list[Any] = []
    waited: list[bool] = []

    def join() -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        op = {"op": "add", "path": "members", "value": [{"value": user}]}
        joined.append(client.patch_ops(f"/scim/v2/Groups/{c}", op))

    def checked_then_raced(session: Session, org_id: str, group_id: str, added: Any) -> None:
        real(session, org_id, group_id, added)
        if group_id != a or waited:
            return
        racer = threading.Thread(target=join)
        racer.start()
        waited.append(ended_or_waiting(racer, db.engine(app), backend_pid(session.connection())))

    monkeypatch.setattr(groups, "_check_no_cycle", checked_then_raced)
    assert _nested_add(app, scim, a, b).status_code == 204
    assert waited == [False]
    assert [resp.status_code for resp in joined] == [204]


# -- a member added while it is deleted (PostgreSQL) ------------------------------------------


def _members_of_user(app: Flask, org_id: str, user_id: str) -> int:
    with db.reader(app)() as s:
        return len(
            s.scalars(
                select(GroupMember.group_id).where(
                    GroupMember.org_id == org_id, GroupMember.member_id == user_id
                )
            ).all()
        )


@pytest.mark.parametrize("held", ["delete", "add"])
def test_a_user_deleted_while_added_to_a_group_leaves_no_member_row(
    live: Any, monkeypatch: pytest.MonkeyPatch, held: str
) -> None:
    """DELETE /Users/U held before its commit while PATCH /Groups/G adds U (or the other way
    round): the add finds U gone after waiting (400 invalidValue, as after the delete) or
    the delete, after waiting, removes the new member row. Never a member row for a user
    that is gone."""
    from scim_server.services import users

    app, scim = live
    postgresql_only(app)
    uid = scim.create_user("gone@example.com")["id"]
    gid = scim.create_group("G")["id"]

    def add() -> Any:
        op = {"op": "add", "path": "members", "value": [{"value": uid}]}
        return client_like(app, scim).patch_ops(f"/scim/v2/Groups/{gid}", op)

    def delete() -> Any:
        return client_like(app, scim).delete(f"/scim/v2/Users/{uid}")

    module = users if held == "delete" else groups
    hold = Hold(
        monkeypatch,
        app,
        module,
        "record",
        add if held == "delete" else delete,
        when=main_thread_only(),
    )
    first = delete() if held == "delete" else add()
    hold.join()
    assert hold.waited == [True]
    (second,) = hold.results
    if held == "delete":
        assert first.status_code == 204
        assert_error(second, 400, "invalidValue")
    else:
        assert (first.status_code, second.status_code) == (204, 204)
    assert _members_of_user(app, scim.org_id, uid) == 0
    assert scim.get(f"/scim/v2/Users/{uid}").status_code == 404
    assert scim.get(f"/scim/v2/Groups/{gid}").get_json().get("members", []) == []


def test_a_group_deleted_while_added_to_a_group_leaves_no_member_row(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE /Groups/B held before its commit while PATCH /Groups/A adds B: the add waits,
    then finds B gone (400 invalidValue); A has no member row for B."""
    app, scim = live
    postgresql_only(app)
    a = scim.create_group("A")["id"]
    b = scim.create_group("B")["id"]
    hold = Hold(
        monkeypatch,
        app,
        groups,
        "record",
        lambda: _nested_add(app, scim, a, b),
        when=main_thread_only(),
    )
    deleted = scim.delete(f"/scim/v2/Groups/{b}")
    hold.join()
    assert deleted.status_code == 204
    assert hold.waited == [True]
    assert_error(hold.results[0], 400, "invalidValue")
    assert _members_of_user(app, scim.org_id, b) == 0
    assert scim.get(f"/scim/v2/Groups/{a}").get_json().get("members", []) == []


def test_adding_again_a_member_being_deleted_does_not_deadlock(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCH /Groups/G (already holding G) adds U again while DELETE /Users/U, a member of G,
    waits for G (to move its version): a member already there is not locked again, so the
    PATCH ends (204, nothing added) and then the delete (204); no deadlock (503)."""
    app, scim = live
    postgresql_only(app)
    uid = scim.create_user("member@example.com")["id"]
    gid = scim.create_group("G", [uid])["id"]
    hold = Hold(
        monkeypatch,
        app,
        groups,
        "get_group",
        lambda: client_like(app, scim).delete(f"/scim/v2/Users/{uid}"),
        when=main_thread_only(),
    )
    op = {"op": "add", "path": "members", "value": [{"value": uid}]}
    again = scim.patch_ops(f"/scim/v2/Groups/{gid}", op)
    hold.join()
    assert hold.waited == [True]
    assert (again.status_code, hold.results[0].status_code) == (204, 204)
    assert _members_of_user(app, scim.org_id, uid) == 0


def test_two_groups_added_to_each_other_at_once_do_not_deadlock(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATCH A adding B holds A when PATCH B adding A starts: each locks the group it adds
    (``FOR KEY SHARE``) while holding its own (``FOR NO KEY UPDATE``), which do not
    conflict; the cycle check then lets one through (204) and refuses the other (400), as
    alone. Never a deadlock (503)."""
    app, scim = live
    postgresql_only(app)
    a = scim.create_group("A")["id"]
    b = scim.create_group("B")["id"]
    hold = Hold(
        monkeypatch,
        app,
        groups,
        "get_group",
        lambda: _nested_add(app, scim, b, a),
        when=main_thread_only(),
    )
    first = _nested_add(app, scim, a, b)
    hold.join()
    statuses = sorted([first.status_code, hold.results[0].status_code])
    assert statuses == [204, 400], (first.get_json(), hold.results[0].get_json(), hold.waited)
    with db.reader(app)() as session:
        edges = session.execute(
            select(GroupMember.group_id, GroupMember.member_id).where(
                GroupMember.org_id == scim.org_id, GroupMember.member_type == "Group"
            )
        ).all()
    assert len(edges) == 1


def test_deleting_a_default_group_racing_an_audited_write_does_not_deadlock(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE /Groups/G, a default group, holds the organization row (to drop G from the
    settings) when a PATCH of a user takes the audit head and inserts its audit event
    (whose foreign key locks the organization row ``FOR KEY SHARE``): the PATCH does not
    wait for the delete, and both succeed (no deadlock, no 503); G leaves the settings."""
    app, scim = live
    postgresql_only(app)
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    admin = Scim(app.test_client(), secret, scim.org_id)
    gid = scim.create_group("Staff")["id"]
    assert admin.put("/api/v1/settings", {"default_groups": [gid]}).status_code == 200
    uid = scim.create_user("writer@example.com", title="a")["id"]
    op = {"op": "replace", "path": "title", "value": "b"}
    hold = Hold(
        monkeypatch,
        app,
        groups,
        "record",
        lambda: client_like(app, scim).patch_ops(f"/scim/v2/Users/{uid}", op),
        when=lambda org_id, action, *a, **k: action == "settings.update",
    )
    deleted = scim.delete(f"/scim/v2/Groups/{gid}")
    hold.join()
    assert (deleted.status_code, [r.status_code for r in hold.results]) == (204, [200])
    assert admin.get("/api/v1/settings").get_json()["default_groups"] == []
    assert admin.get("/api/v1/audit/verify").status_code == 200


@pytest.mark.parametrize("held", ["add", "delete"])
def test_a_member_added_while_its_group_is_deleted_leaves_no_member_row(
    live: Any, monkeypatch: pytest.MonkeyPatch, held: str
) -> None:
    """PATCH /Groups/G adding U and DELETE /Groups/G, either held before its commit while
    the other runs: the group is gone with every member row, and U is in no group."""
    app, scim = live
    postgresql_only(app)
    uid = scim.create_user("m@example.com")["id"]
    gid = scim.create_group("G")["id"]
    url = f"/scim/v2/Groups/{gid}"

    def add() -> int:
        op = {"op": "add", "path": "members", "value": [{"value": uid}]}
        return int(client_like(app, scim).patch_ops(url, op).status_code)

    def delete() -> int:
        return int(client_like(app, scim).delete(url).status_code)

    hold = Hold(
        monkeypatch,
        app,
        groups,
        "record",
        delete if held == "add" else add,
        when=main_thread_only(),
    )
    first = add() if held == "add" else delete()
    hold.join()
    assert hold.waited == [True]
    assert (first, hold.results) == ((204, [204]) if held == "add" else (204, [404]))
    assert scim.get(url).status_code == 404
    assert _members_of_user(app, scim.org_id, uid) == 0
    assert scim.get(f"/scim/v2/Users/{uid}").get_json().get("groups", []) == []
    assert scim.get("/scim/v2/Groups").get_json()["totalResults"] == 0
