"""Product events are written in the transaction of each change, with state and changes."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, func, select

from scim_server.audit import queries as audit_queries
from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.models import AuditEvent, Event
from scim_server.services import lifecycle
from tests.support import Scim
from tests.support.admin_api import make_license, make_role, ok, person


def feed(admin: Scim, **params: object) -> list[dict]:
    return ok(admin.get("/api/v1/events", query_string={"limit": 1000, **params}))["events"]


def types(admin: Scim) -> list[str]:
    return [e["type"] for e in feed(admin)]


def test_scim_user_lifecycle_events(scim, admin):
    """Create, update, deactivate, reactivate, delete over SCIM: one event each, in order."""
    user = person(scim, "ann@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    ok(scim.patch_ops(url, {"op": "replace", "path": "displayName", "value": "Ann"}))
    ok(scim.patch_ops(url, {"op": "replace", "path": "active", "value": False}))
    ok(scim.patch_ops(url, {"op": "replace", "path": "active", "value": True}))
    assert scim.delete(url).status_code == 204
    events = feed(admin)
    assert [e["type"] for e in events] == [
        "user.created",
        "user.updated",
        "user.deactivated",
        "user.reactivated",
        "user.deleted",
    ]
    assert [e["position"] for e in events] == [1, 2, 3, 4, 5]
    created, updated, deactivated, _reactivated, deleted = events
    assert created["organization"] == scim.org_id
    assert created["data"]["resource"] == {"type": "User", "id": user["id"]}
    assert created["data"]["actor"]["type"] == "token"
    assert created["data"]["state"]["userName"] == "ann@example.com"
    assert updated["data"]["changes"] == {"displayName": {"after": "Ann"}}
    assert updated["data"]["state"]["displayName"] == "Ann"
    assert deactivated["data"]["changes"] == {
        "status": {"before": "PROVISIONED", "after": "DEACTIVATED"}
    }
    assert deactivated["data"]["state"]["status"] == "DEACTIVATED"
    assert deactivated["data"]["state"]["active"] is False
    assert deleted["data"]["state"] is None


def test_state_is_what_the_admin_api_shows(scim, admin):
    """The event's state is GET /api/v1/users/<id> at that moment: status, license, roles, contact."""
    make_license(admin, "Engineer")
    make_role(admin, "Portal", "portal")
    user = person(scim, "ann@example.com")
    ok(admin.put(f"/api/v1/users/{user['id']}/license", {"license": "Engineer"}))
    ok(admin.post(f"/api/v1/users/{user['id']}/roles", {"role": "Portal"}))
    events = feed(admin)
    assert [e["type"] for e in events] == [
        "user.created",
        "user.license_changed",
        "user.roles_changed",
    ]
    # The API adds how the person signs in here (not the identity the product mirrors).
    shown = ok(admin.get(f"/api/v1/users/{user['id']}"))
    credential_facts = {"credentialsSchedule", "signInMethods", "mfa"}
    assert events[-1]["data"]["state"] == {
        k: v for k, v in shown.items() if k not in credential_facts
    }
    assert credential_facts <= set(shown)
    assert events[1]["data"]["changes"]["license"] == {"before": None, "after": "Engineer"}
    assert events[1]["data"]["actor"]["type"] == "admin"
    assert events[1]["data"]["state"]["license"]["value"] == "Engineer"
    assert events[-1]["data"]["state"]["contactId"]


def test_admin_status_actions_are_status_changes(scim, admin):
    """lock/unlock are user.status_changed; deactivate/activate have their own types."""
    user = person(scim, "ann@example.com")
    url = f"/api/v1/users/{user['id']}/actions"
    for op in ("lock", "unlock", "deactivate", "activate"):
        ok(admin.post(f"{url}/{op}", None))
    assert types(admin)[1:] == [
        "user.status_changed",
        "user.status_changed",
        "user.deactivated",
        "user.reactivated",
    ]


def test_group_events(scim, admin):
    """Group create/rename/delete, and one event per member added or removed, about the group."""
    ann = person(scim, "ann@example.com")
    bob = person(scim, "bob@example.com")
    group = scim.create_group("Engineering", members=[ann["id"]])
    url = f"/scim/v2/Groups/{group['id']}"
    ok_status = scim.patch_ops(
        url,
        {"op": "add", "path": "members", "value": [{"value": bob["id"]}]},
        {"op": "replace", "path": "displayName", "value": "Eng"},
    )
    assert ok_status.status_code in (200, 204)
    scim.patch_ops(url, {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'})
    assert scim.delete(url).status_code == 204
    events = feed(admin)[2:]
    assert [e["type"] for e in events] == [
        "group.created",
        "group.member_added",
        "group.updated",
        "group.member_added",
        "group.member_removed",
        "group.member_removed",
        "group.deleted",
    ]
    assert {e["data"]["resource"]["id"] for e in events} == {group["id"]}
    assert events[1]["data"]["member"] == {"type": "User", "id": ann["id"]}
    assert events[2]["data"]["changes"] == {
        "displayName": {"before": "Engineering", "after": "Eng"}
    }
    assert events[2]["data"]["state"]["displayName"] == "Eng"
    assert events[4]["data"]["member"] == {"type": "User", "id": ann["id"]}
    assert events[5]["data"]["member"] == {"type": "User", "id": bob["id"]}
    assert events[-1]["data"]["state"] is None


def test_a_no_op_change_writes_no_event(scim, admin):
    """A PATCH that changes nothing is audited but is not a product event."""
    user = person(scim, "ann@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    ok(scim.patch_ops(url, {"op": "replace", "path": "userName", "value": "ann@example.com"}))
    assert types(admin) == ["user.created"]


def test_a_rolled_back_scim_request_writes_no_event(scim, admin, session, monkeypatch):
    """The PATCH's user.patch audit event was recorded, then the request failed: no event at all."""
    user = person(scim, "ann@example.com")

    def refuse(*args, **kwargs):
        raise InvalidValueError("refused after the change was recorded")

    monkeypatch.setattr(lifecycle, "record_transition", refuse)
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}",
        {"op": "replace", "path": "displayName", "value": "Ann"},
        {"op": "replace", "path": "active", "value": False},
    )
    assert resp.status_code == 400
    assert types(admin) == ["user.created"]
    patches = session.scalar(
        select(func.count()).where(
            AuditEvent.action == "user.patch", AuditEvent.outcome == "success"
        )
    )
    assert patches == 0
    # The next change takes the next position: no gap was left.
    monkeypatch.undo()
    ok(
        scim.patch_ops(
            f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "x"}
        )
    )
    assert [e["position"] for e in feed(admin)] == [1, 2]


def test_positions_are_per_organization(scim, other_scim, admin):
    """Each organization counts its own positions from 1; nothing crosses tenants."""
    person(scim, "ann@example.com")
    person(other_scim, "bob@example.com")
    person(scim, "carl@example.com")
    events = feed(admin)
    assert [(e["position"], e["data"]["state"]["userName"]) for e in events] == [
        (1, "ann@example.com"),
        (2, "carl@example.com"),
    ]


def test_sso_connection_activation_events(scim, admin):
    """Creating a connection activates it; disabling and enabling it are events too."""
    conn = ok(
        admin.post(
            "/api/v1/sso/connections",
            {
                "name": "Okta",
                "protocol": "oidc",
                "issuer": "https://idp.example.com",
                "client_id": "abc",
                "client_secret": "s3cret",
            },
        ),
        201,
    )
    url = f"/api/v1/sso/connections/{conn['id']}"
    ok(admin.client.patch(url, json={"enabled": False}, headers=admin.headers()))
    ok(admin.client.patch(url, json={"enabled": True}, headers=admin.headers()))
    events = feed(admin)
    assert [e["type"] for e in events] == [
        "connection.activated",
        "connection.deactivated",
        "connection.activated",
    ]
    assert events[1]["data"]["state"] == {"id": conn["id"], "name": "Okta", "enabled": False}
    assert "s3cret" not in str(events)


def test_concurrent_writers_get_gap_free_positions(live):
    """Eight threads creating users in one organization on real connections: 1..N, no gap."""
    app, scim = live
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        client = app.test_client()
        own = Scim(client, scim.token, scim.org_id)
        start.wait()
        try:
            for i in range(5):
                own.create_user(f"u{n}-{i}@example.com")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with db.reader(app)() as session:
        positions = session.scalars(
            select(Event.position).where(Event.org_id == scim.org_id).order_by(Event.position)
        ).all()
        assert positions == list(range(1, 41))
        # The audit chain too: each writer locked the head with its state read.
        check = audit_queries.verify(session, scim.org_id)
        assert check.ok, check.problems
        session.execute(delete(Event).where(Event.org_id == scim.org_id))
        session.commit()


def test_the_state_read_locks_the_audit_head(live):
    """The statement that reads a write's user state takes the organization's audit head
    lock (PostgreSQL: FOR UPDATE in its CTE): another writer cannot take it meanwhile."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from scim_server.events import writer
    from scim_server.services import users

    app, scim = live
    user_id = scim.create_user("ann@example.com")["id"]
    engine = db.engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite: a writer holds the database's write lock from its BEGIN IMMEDIATE")
    with engine.connect() as first, engine.connect() as second:
        with db.reader(app)() as s:
            user, _extras = users.read_user_and_extras(s.connection(), scim.org_id, user_id)
        rows = first.execute(writer._EXTRAS_AND_HEAD, users.extras_params(scim.org_id, user)).all()
        assert [row[0] for row in rows] == ["h"]
        with pytest.raises(OperationalError, match="could not obtain lock"):
            second.execute(
                text("SELECT seq FROM audit_heads WHERE org_id = :o FOR UPDATE NOWAIT"),
                {"o": scim.org_id},
            )
        second.rollback()
        first.rollback()


@pytest.mark.parametrize("count", [3])
def test_bulk_writes_one_event_per_operation(scim, admin, count):
    """A SCIM Bulk request: each operation's change has its event, in the operations' order."""
    ops = [
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": f"u{i}",
            "data": {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": f"b{i}@example.com",
            },
        }
        for i in range(count)
    ]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}
    assert scim.post("/scim/v2/Bulk", body).status_code == 200
    events = feed(admin)
    assert [e["data"]["state"]["userName"] for e in events] == [
        f"b{i}@example.com" for i in range(count)
    ]


def test_an_event_whose_audit_event_was_written_early_is_still_written(app, scim, admin):
    """Audit events written before the commit (``lock_head``: a checkpoint, a purge) leave
    the product events to write at the commit: they are written, at the next position."""
    from scim_server.audit import recorder

    user = person(scim, "ann@example.com")
    with db.writer(app)() as s, s.begin():
        recorder.record(
            s,
            scim.org_id,
            "user.patch",
            resource_type="User",
            resource_id=user["id"],
            changes={"title": {"before": None, "after": "x"}},
        )
        head = recorder.lock_head(s, scim.org_id)  # writes the audit event now
        seq = head.seq
    events = feed(admin)
    assert [(e["type"], e["position"]) for e in events] == [
        ("user.created", 1),
        ("user.updated", 2),
    ]
    assert events[1]["data"]["state"]["userName"] == "ann@example.com"
    with db.reader(app)() as s:
        assert s.scalar(select(Event.audit_seq).where(Event.position == 2)) == seq


def test_postgresql_writes_the_product_event_with_the_audit_events(scim, admin, connection):
    """PostgreSQL: a PATCH's audit events, the head's move and its product event are one
    statement (a data-modifying CTE), numbered as before."""
    from sqlalchemy import event as sa_event

    user = person(scim, "ann@example.com")
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)

    sa_event.listen(connection, "before_cursor_execute", count)
    try:
        ok(
            scim.patch_ops(
                f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
            )
        )
    finally:
        sa_event.remove(connection, "before_cursor_execute", count)
    inserts = [s for s in seen if "INSERT INTO events" in s]
    assert len(inserts) == 1
    if connection.dialect.name == "postgresql":
        assert "INSERT INTO audit_events" in inserts[0] and "UPDATE audit_heads" in inserts[0]
    events = feed(admin)
    assert [(e["type"], e["position"]) for e in events] == [
        ("user.created", 1),
        ("user.deactivated", 2),
    ]
    assert events[1]["data"]["state"]["active"] is False


@pytest.mark.parametrize("rules", [False, True])
def test_a_created_users_state_is_what_a_read_gives(app, scim, admin, rules):
    """A SCIM create alone in its transaction, with no rules, does not read its user's
    groups, roles and license names (it knows them: none), and on SQLite takes the audit
    head with its first read: the product event's state and the response are what a read
    gives afterwards, and the chain verifies. With rules (a license and a role for Sales)
    the state is read, and is the same."""
    import json

    from scim_server.events import writer
    from scim_server.services import users
    from tests.admin.rules import activate, catalogue

    if rules:
        catalogue(admin)
        sales = {"attribute": "department", "equals": "Sales"}
        then = {"license": "Planner", "roles": ["Engineer"]}
        activate(
            admin, {"mode": "first-match", "rules": [{"name": "s", "when": sales, "then": then}]}
        )

    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    made = [
        person(scim, "ann@example.com"),
        person(scim, "bob@example.com", "Sales", externalId="b-1", displayName="Bob"),
        scim.create_user("cy@example.com", active=False, title="Intern"),
    ]
    made.append(
        scim.create_user("dee@example.com", **{enterprise: {"manager": {"value": made[0]["id"]}}})
    )
    for user in made:
        url = f"/scim/v2/Users/{user['id']}"
        assert scim.get(url).get_json() == user
    events = [e for e in feed(admin) if e["type"] == "user.created"]
    assert [e["data"]["resource"]["id"] for e in events] == [u["id"] for u in made]
    if rules:
        assert events[1]["data"]["state"]["license"]["value"] == "Planner"
        assert events[1]["data"]["state"]["roles"]
    with db.reader(app)() as s:
        for event in events:
            user_id = event["data"]["resource"]["id"]
            fresh = writer.user_states(s, scim.org_id, {user_id})[user_id]
            assert event["data"]["state"] == json.loads(json.dumps(fresh))
            assert users.CREATED_INFO not in s.info
        check = audit_queries.verify(s, scim.org_id)
        assert check.ok, check.problems
