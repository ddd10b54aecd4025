"""Each organization's User and Group counts: changed at the commit, exactly once per
transaction, dropped with a rolled-back savepoint, and never a deadlock between writers."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scim_server.db import db
from scim_server.models import Group, User
from scim_server.services import counts
from tests.support import USER_SCHEMA, Scim


def _doc(name: str) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": name, "active": True}


def _stored(app: Flask, org_id: str, resource_type: str = "User") -> tuple[int, int]:
    with db.reader(app)() as s:
        counted = counts.read(s, org_id, resource_type)
        assert counted is not None
        return counted


def test_a_savepoint_rolled_back_takes_its_count_change_with_it(app: Flask, scim: Scim) -> None:
    """A change noted in a released savepoint is written at its release; one in a
    rolled-back savepoint is forgotten; the transaction's own read sees its changes
    before they are written."""
    total, generation = _stored(app, scim.org_id)
    with db.writer(app)() as s, s.begin():
        with s.begin_nested():
            counts.changed(s, scim.org_id, "User", +1)
            assert counts.read(s, scim.org_id, "User") == (total + 1, generation)
        assert not counts.any_pending(s)  # written at the release
        nested = s.begin_nested()
        counts.changed(s, scim.org_id, "User", +1)
        nested.rollback()
        assert not counts.any_pending(s)
        counts.changed(s, scim.org_id, "User", +1)
        counts.changed(s, scim.org_id, "User", -1)
    assert _stored(app, scim.org_id) == (total + 1, generation + 2)


def test_a_change_of_no_net_total_still_moves_the_generation(app: Flask, scim: Scim) -> None:
    """Created and deleted in one transaction: the total is as before, the generation
    moves (the set changed: a page cached on the old generation must not match)."""
    total, generation = _stored(app, scim.org_id)
    with db.writer(app)() as s, s.begin():
        counts.changed(s, scim.org_id, "User", +1)
        counts.changed(s, scim.org_id, "User", -1)
    assert _stored(app, scim.org_id) == (total, generation + 1)


def test_a_rolled_back_transaction_changes_no_count(app: Flask, scim: Scim) -> None:
    before = _stored(app, scim.org_id)
    with db.writer(app)() as s:
        s.begin()
        counts.changed(s, scim.org_id, "User", +1)
        s.rollback()
        assert not counts.any_pending(s)
    assert _stored(app, scim.org_id) == before


def test_group_counts_follow_creates_and_deletes(app: Flask, scim: Scim) -> None:
    total, _generation = _stored(app, scim.org_id, "Group")
    made = scim.post(
        "/scim/v2/Groups",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops"},
    )
    assert made.status_code == 201
    assert _stored(app, scim.org_id, "Group")[0] == total + 1
    assert scim.delete(f"/scim/v2/Groups/{made.get_json()['id']}").status_code == 204
    assert _stored(app, scim.org_id, "Group")[0] == total


def test_a_failed_create_changes_no_count(app: Flask, scim: Scim) -> None:
    scim.create_user("taken@example.com")
    before = _stored(app, scim.org_id)
    resp = scim.post("/scim/v2/Users", _doc("TAKEN@example.com"))
    assert resp.status_code == 409
    assert _stored(app, scim.org_id) == before


def test_concurrent_writers_of_one_organization_keep_the_count(live: tuple[Flask, Scim]) -> None:
    """Creates, PATCHes, deletes and group creates of one organization from several
    threads at once: no request fails (two writers that took the count row and the audit
    head in opposite orders would deadlock: PostgreSQL would abort one), and the counts
    are the rows there are."""
    app, scim = live
    made = [scim.create_user(f"seed{i}@example.com")["id"] for i in range(8)]
    failures: list[str] = []

    def work(worker: int) -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        for i in range(6):
            steps = [
                client.post("/scim/v2/Users", _doc(f"w{worker}-{i}@example.com")),
                client.patch_ops(
                    f"/scim/v2/Users/{made[worker]}",
                    {"op": "replace", "path": "title", "value": f"T{i}"},
                ),
            ]
            if i % 2 and steps[0].status_code == 201:
                created = steps[0].get_json()
                steps.append(client.delete(f"/scim/v2/Users/{created['id']}"))
            if i == 3:
                steps.append(
                    client.post(
                        "/scim/v2/Groups",
                        {
                            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                            "displayName": f"g{worker}",
                            "members": [{"value": made[worker]}],
                        },
                    )
                )
            failures.extend(
                f"{r.status_code} {r.get_data(as_text=True)[:200]}"
                for r in steps
                if r.status_code >= 300
            )

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    with db.reader(app)() as s:
        assert _rows(s, User, scim.org_id) == _stored(app, scim.org_id)[0] == 8 + 4 * 3
        assert _rows(s, Group, scim.org_id) == _stored(app, scim.org_id, "Group")[0] == 4


def _rows(session: Session, model: Any, org_id: str) -> int:
    return int(session.scalar(select(func.count()).where(model.org_id == org_id)) or 0)
