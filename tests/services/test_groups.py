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
from tests.admin.rules import activate, catalogue
from tests.support import GROUP_SCHEMA, Scim, assert_error
from tests.support.admin_api import account, events, person
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
