"""Groups (``services.groups``): a rename the mapping rules see re-evaluates the members at once.

Rules name groups by display name or externalId (``member_of: Engineering``). When the IdP
renames the group (Okta's no-path replace repeating the id, Entra's ``Replace
displayName``) or changes its externalId, its members stop (or start) meeting the rule in
the same transaction, as a membership change does (``remap_moved_users``): not at some
unrelated later write of each user. A rename no rule names evaluates no one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event, select

from scim_server.db import db
from scim_server.models import User
from tests.admin.rules import activate, catalogue
from tests.support import GROUP_SCHEMA, Scim
from tests.support.admin_api import account, events, person

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
