"""``rules apply`` overlapped (``services.job_overlap``): the next batch is evaluated while the
last one commits, on real, committed transactions, and nothing is lost or numbered out of order.

On SQLite the apply runs plain steps (its writers take one database lock at BEGIN): these
tests check there that the same outcome holds, and the overlap itself on PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from scim_server import bulk_rows
from scim_server.audit.queries import verify
from scim_server.db import db
from scim_server.models import AuditEvent, Contact, Event, Job, User
from scim_server.services import rule_apply, rule_sets
from scim_server.services.tokens import create_token
from tests.admin.rules import RULES, activate, catalogue
from tests.support import ENTERPRISE, Scim
from tests.support.admin_api import apply_rules, events, ok, person, run_jobs
from tests.support.faults import fail_product_events


def _people_by_id(scim: Scim, department: str, count: int) -> list[dict[str, Any]]:
    """``count`` users of ``department`` in id order: the order the apply's batches take."""
    made = [person(scim, f"p{i}@example.com", department=department) for i in range(count)]
    return sorted(made, key=lambda p: p["id"])


def _admin(app: Any, scim: Scim) -> Scim:
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    return Scim(app.test_client(), secret, scim.org_id)


def _on_postgresql(app: Any) -> bool:
    return db.engine(app).dialect.name == "postgresql"


class Spy:
    """Counts overlapped commits and plain steps; can hold a commit until the next batch's
    evaluation has started (the witness that the two ran at once)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold_first_commit: bool = False) -> None:
        self.overlapped = 0
        self.plain = 0
        self.prepared = 0
        self.second_prepare = threading.Event()
        self.held = hold_first_commit
        self.overlap_seen = False
        real_prepare, real_commit = rule_sets._prepare_batch, rule_sets._commit_overlapped
        real_step_commit = rule_sets._commit_batch

        def prepare(run, session, after):  # type: ignore[no-untyped-def]
            self.prepared += 1
            try:
                return real_prepare(run, session, after)
            finally:
                if self.prepared == 2:
                    self.second_prepare.set()

        def commit(run, session, job, batch):  # type: ignore[no-untyped-def]
            if self.held and self.overlapped == 0:
                # Committing batch 1 waits until batch 2 is evaluated and written (its users
                # hold their new license's row FOR KEY SHARE): only an overlapped run gets
                # there (a plain one would wait out the timeout), and the commit must not
                # wait for batch 2 (which would give way: a plain step).
                self.overlap_seen = self.second_prepare.wait(10)
            self.overlapped += 1
            return real_commit(run, session, job, batch)

        def commit_batch(run, session, job, batch):  # type: ignore[no-untyped-def]
            if threading.current_thread() is threading.main_thread():
                self.plain += 1
            return real_step_commit(run, session, job, batch)

        monkeypatch.setattr(rule_sets, "_prepare_batch", prepare)
        monkeypatch.setattr(rule_sets, "_commit_overlapped", commit)
        monkeypatch.setattr(rule_sets, "_commit_batch", commit_batch)


def _chain_ok(app: Any, org_id: str) -> None:
    """The audit chain verifies; audit seqs and product event positions run without gaps."""
    with db.reader(app)() as session:
        check = verify(session, org_id)
        assert check.ok, check.problems
        seqs = session.scalars(
            select(AuditEvent.seq).where(AuditEvent.org_id == org_id).order_by(AuditEvent.seq)
        ).all()
        assert seqs == list(range(1, len(seqs) + 1))
        positions = session.scalars(
            select(Event.position).where(Event.org_id == org_id).order_by(Event.position)
        ).all()
        assert positions == list(range(1, len(positions) + 1))


SALES_ROLES = {
    **RULES,
    "rules": [
        {
            "name": "sales",
            "when": {"attribute": "department", "equals": "Sales"},
            "then": {"license": "Planner", "roles": ["Portal"]},
        }
    ],
}


def test_batches_evaluate_while_the_last_commits(live, monkeypatch):
    """Batches of two: batch 2 is evaluated while batch 1 commits; every user is changed once,
    each with its event and its rule role (the product event's state shows it); the chain and
    the product events' positions run in commit order."""
    app, scim = live
    admin = _admin(app, scim)
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    monkeypatch.setattr(bulk_rows, "COPY_FROM", 2)
    catalogue(admin, engineer_seats=None, planner_seats=None)
    people = [person(scim, f"p{i}@example.com", department="Sales") for i in range(9)]
    activate(admin, SALES_ROLES)
    spy = Spy(monkeypatch, hold_first_commit=_on_postgresql(app))
    job = apply_rules(admin)
    assert job["result"] == {"users": 9, "evaluated": 9, "changed": 9}
    assert job["progress"] == {"done": 9, "total": 9}
    if _on_postgresql(app):
        assert spy.overlap_seen
        assert (spy.overlapped, spy.plain) == (6, 0)  # five batches and the last, empty, read
    else:
        assert (spy.overlapped, spy.plain) == (0, 6)
    for p in people:
        (mapping,) = events(admin, action="user.mapping", resource_id=p["id"])
        assert mapping["changes"]["license"]["name"] == "Planner"
        assert mapping["changes"]["roles.rule"]["removed"] == []
        with db.reader(app)() as session:
            (changed,) = session.scalars(
                select(Event).where(
                    Event.resource_id == p["id"], Event.type == "user.roles_changed"
                )
            ).all()
            assert [r["value"] for r in changed.data["state"]["roles"]] == ["Portal"]
        # Who asked for the job, though the writer thread recorded it.
        assert (mapping["actor_type"], mapping["actor_name"]) == ("admin", "admin")
    _chain_ok(app, scim.org_id)
    assert apply_rules(admin)["result"] == {"users": 9, "evaluated": 0, "changed": 0}


def test_a_scim_patch_committed_between_the_read_and_the_lock_is_not_overwritten(live, monkeypatch):
    """A PATCH moving a user out of Sales commits after the apply read the user and before it
    locked it: the apply evaluates what the user holds now (no license for Ops), never the
    Sales it read; the PATCH's title and version stay; the next apply has nothing to do."""
    app, scim = live
    if not _on_postgresql(app):
        pytest.skip("SQLite's writers take the database lock at BEGIN: no write between")
    admin = _admin(app, scim)
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin, engineer_seats=None, planner_seats=None)
    people = _people_by_id(scim, "Ops", 6)
    activate(admin)  # nobody in Sales yet: nothing to give
    target = people[3]  # in the second batch
    url = f"/scim/v2/Users/{target['id']}"
    # Everyone moves to Sales behind the rules' back: the apply has all of them to evaluate.
    with db.writer(app)() as session, session.begin():
        for user in session.scalars(select(User).where(User.org_id == scim.org_id)):
            user.data = {**user.data, ENTERPRISE: {"department": "Sales"}}
    real_stale, patched = rule_apply._stale, []

    def stale(digest, rows, ids, session, org_id):  # type: ignore[no-untyped-def]
        if target["id"] in ids and not patched:
            patched.append(True)

            def patch() -> None:
                client = Scim(app.test_client(), scim.token, scim.org_id)
                ops = [
                    {"op": "replace", "path": "title", "value": "VP"},
                    {"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Ops"},
                ]
                patched.append(client.patch_ops(url, *ops).status_code)

            racer = threading.Thread(target=patch)
            racer.start()
            racer.join(30)
        return real_stale(digest, rows, ids, session, org_id)

    monkeypatch.setattr(rule_apply, "_stale", stale)
    job = apply_rules(admin)
    assert patched == [True, 200]
    assert job["result"] == {"users": 6, "evaluated": 5, "changed": 5}
    body = scim.get(url).get_json()
    assert body["title"] == "VP" and body[ENTERPRISE]["department"] == "Ops"
    assert ok(admin.get(f"/api/v1/users/{target['id']}"))["license"] is None
    assert events(admin, action="user.mapping", resource_id=target["id"]) == []
    for p in people:
        if p is not target:
            assert ok(admin.get(f"/api/v1/users/{p['id']}"))["license"]["value"] == "Planner"
    _chain_ok(app, scim.org_id)
    monkeypatch.setattr(rule_apply, "_stale", real_stale)
    assert apply_rules(admin)["result"] == {"users": 6, "evaluated": 0, "changed": 0}


def test_patches_racing_an_overlapped_apply_all_land(live, monkeypatch):
    """A client PATCHes titles while the apply runs: every PATCH lands (200, its title kept,
    one version each), every user gets its license, the chain verifies."""
    app, scim = live
    admin = _admin(app, scim)
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin, engineer_seats=None, planner_seats=None)
    people = [person(scim, f"p{i}@example.com", department="Sales") for i in range(10)]
    activate(admin)
    run_jobs(admin)  # the welcome mails (a version each) before the versions are read
    before = {p["id"]: scim.get(f"/scim/v2/Users/{p['id']}").get_json() for p in people}
    statuses: list[int] = []

    def patcher() -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        for round_ in range(2):
            for p in people:
                op = {"op": "replace", "path": "title", "value": f"T{round_}"}
                statuses.append(client.patch_ops(f"/scim/v2/Users/{p['id']}", op).status_code)

    racer = threading.Thread(target=patcher)
    racer.start()
    job = apply_rules(admin)
    racer.join(60)
    assert statuses == [200] * 20
    assert job["state"] == "succeeded" and job["result"]["users"] == 10
    for p in people:
        body = scim.get(f"/scim/v2/Users/{p['id']}").get_json()
        assert body["title"] == "T1"
        account = ok(admin.get(f"/api/v1/users/{p['id']}"))
        assert account["license"]["value"] == "Planner"
        # Two PATCHes, and the apply's change if it came after the PATCH's evaluation.
        old = int(before[p["id"]]["meta"]["version"].strip('W/"'))
        new = int(body["meta"]["version"].strip('W/"'))
        applied = [
            e
            for e in events(admin, action="user.mapping", resource_id=p["id"])
            if e["detail"] == "rules re-applied"
        ]
        assert new - old == 2 + len(applied)
    _chain_ok(app, scim.org_id)


def test_a_license_with_a_seat_limit_is_given_in_plain_steps(live, monkeypatch):
    """Three seats, five users in batches of two: seats are counted under the license's lock,
    so the apply goes on in plain steps; three get it, two wait, as one step at a time."""
    app, scim = live
    admin = _admin(app, scim)
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin, planner_seats=3)
    for i in range(5):
        person(scim, f"p{i}@example.com", department="Sales")
    activate(admin)
    spy = Spy(monkeypatch)
    assert apply_rules(admin)["result"] == {"users": 5, "evaluated": 5, "changed": 5}
    assert spy.overlapped == 0 and spy.plain == 4  # three batches and the last read
    with db.reader(app)() as session:
        users = session.scalars(select(User).where(User.org_id == scim.org_id)).all()
        assert sum(u.license_id is not None for u in users) == 3
        assert sum(u.license_wanted_id is not None for u in users) == 2
    _chain_ok(app, scim.org_id)


def test_a_company_to_create_is_created_once(live, monkeypatch):
    """The rules name a company no contact has yet: the batch that meets it runs as a plain
    step (the one before might have created it, uncommitted); one company, every user in it,
    and the batches after it overlapped again."""
    app, scim = live
    admin = _admin(app, scim)
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin, engineer_seats=None, planner_seats=None)
    for i in range(7):
        person(scim, f"p{i}@example.com", department="Sales")
    rules = {
        **RULES,
        "rules": [
            {
                "name": "sales",
                "when": {"attribute": "department", "equals": "Sales"},
                "then": {"license": "Planner", "contact": {"organization": "Initech"}},
            }
        ],
    }
    activate(admin, rules)
    spy = Spy(monkeypatch)
    assert apply_rules(admin)["result"] == {"users": 7, "evaluated": 7, "changed": 7}
    if _on_postgresql(app):
        assert spy.plain == 1 and spy.overlapped == 4  # the first batch plain, then overlapped
    with db.reader(app)() as session:
        companies = session.scalars(
            select(Contact).where(Contact.org_id == scim.org_id, Contact.kind == "organization")
        ).all()
        assert [c.name for c in companies] == ["Initech"]
        people = session.scalars(
            select(Contact).where(Contact.org_id == scim.org_id, Contact.kind == "person")
        ).all()
        assert {c.organization_contact_id for c in people} == {companies[0].id}
    _chain_ok(app, scim.org_id)


def test_a_batch_failing_at_its_commit_leaves_nothing_of_it_or_the_next(live, monkeypatch):
    """The second batch fails writing its product events while the third is evaluated: neither
    stays (licenses, events); the first does; the chain verifies; the retry does the rest,
    each user once."""
    app, scim = live
    admin = _admin(app, scim)
    monkeypatch.setattr(rule_sets, "APPLY_BATCH", 2)
    catalogue(admin, engineer_seats=None, planner_seats=None)
    people = _people_by_id(scim, "Sales", 7)
    activate(admin)
    real = fail_product_events(monkeypatch)
    job = apply_rules(admin)
    assert job["state"] == "queued" and "disk full" in job["error"]
    assert job["progress"]["done"] == 2
    with db.reader(app)() as session:
        licensed = session.scalars(
            select(User.id).where(User.org_id == scim.org_id, User.license_id.is_not(None))
        ).all()
        assert sorted(licensed) == [p["id"] for p in people[:2]]
    _chain_ok(app, scim.org_id)
    monkeypatch.setattr(bulk_rows, "insert_rows", real)
    with db.writer(app)() as session, session.begin():
        session.execute(
            update(Job)
            .where(Job.id == job["id"])
            .values(run_after=datetime(2000, 1, 1, tzinfo=UTC))
        )
    assert run_jobs(admin) >= 1
    assert ok(admin.get(f"/api/v1/jobs/{job['id']}"))["state"] == "succeeded"
    for p in people:
        assert len(events(admin, action="user.mapping", resource_id=p["id"])) == 1
    _chain_ok(app, scim.org_id)
