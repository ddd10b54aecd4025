"""The provisioning log: what is recorded, redaction, tamper evidence, reading it."""

from __future__ import annotations

import json
from functools import partial

from sqlalchemy import select, text, update

from scim_server.models import AuditEvent, AuditHead
from tests.support import USER_SCHEMA, Scim
from tests.support.threads import run_together


def events(admin: Scim, **params) -> list[dict]:
    resp = admin.get("/api/v1/audit", query_string={"limit": 1000, **params})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["events"]


def actions(admin: Scim, **params) -> list[str]:
    return [e["action"] for e in reversed(events(admin, **params))]


def test_user_lifecycle_writes_one_event_per_operation(scim, admin):
    """Create, patch, deactivate and delete each write their event, with actor and request ids."""
    user = scim.create_user("joiner@example.com", externalId="ext-1")
    url = f"/scim/v2/Users/{user['id']}"
    resp = scim.patch_ops(
        url,
        {"op": "replace", "path": "active", "value": False},
        headers={"client-request-id": "entra-123"},
    )
    scim.delete(url)
    timeline = admin.get(f"/api/v1/audit/timeline/{user['id']}").get_json()["events"]
    assert [e["action"] for e in timeline] == [
        "user.create",
        "user.patch",
        "user.deactivate",
        "user.delete",
    ]
    create, patch, deactivate, delete = timeline
    assert create["outcome"] == "success"
    assert create["user_name"] == "joiner@example.com" and create["external_id"] == "ext-1"
    assert create["actor_type"] == "token" and create["actor_name"] == "test"
    assert create["request_id"] and create["source_ip"] == "127.0.0.1"
    assert patch["changes"] == {"active": {"before": True, "after": False}}
    assert patch["correlation_id"] == "entra-123"
    assert patch["request_id"] == resp.headers["X-Request-Id"]
    assert deactivate["request_id"] == patch["request_id"]
    assert delete["resource_id"] == user["id"]


def test_failed_operations_are_recorded_and_change_nothing(scim, admin, session):
    """A refused create (409) writes a failure event and no user; a bad PATCH writes one too."""
    scim.create_user("dup@example.com")
    resp = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "DUP@example.com"})
    assert resp.status_code == 409
    failed = events(admin, outcome="failure")
    assert len(failed) == 1
    assert failed[0]["action"] == "user.create"
    assert failed[0]["status"] == 409 and failed[0]["scim_type"] == "uniqueness"
    assert failed[0]["user_name"] == "DUP@example.com"
    user = scim.create_user("other@example.com")
    bad = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "nope", "value": 1}
    )
    assert bad.status_code == 400
    failed = events(admin, outcome="failure", action="user.patch")
    assert failed[0]["resource_id"] == user["id"] and failed[0]["scim_type"] == "invalidPath"
    # The rolled-back change left no success event behind it.
    assert actions(admin, resource_id=user["id"], outcome="success") == ["user.create"]


def test_reads_are_not_recorded(scim, admin):
    """GETs are not provisioning operations."""
    scim.create_user("reader@example.com")
    before = len(events(admin))
    scim.get("/scim/v2/Users")
    scim.get("/scim/v2/Users/nope")
    assert len(events(admin)) == before


def test_secrets_never_reach_the_log(scim, admin, session):
    """Passwords never reach the changes (their own event says one was set); no token secret."""
    scim.post(
        "/scim/v2/Users",
        {
            "schemas": [USER_SCHEMA],
            "userName": "pw@example.com",
            "password": "Hunter2!-pelican-dawn",
        },
    )
    user_id = events(admin, action="user.create")[0]["resource_id"]
    scim.patch_ops(
        f"/scim/v2/Users/{user_id}",
        {"op": "replace", "path": "password", "value": "S3cret!-walnut-harbor"},
    )
    dump = json.dumps(events(admin))
    assert "Hunter2!" not in dump and "S3cret!" not in dump
    assert scim.token not in dump and admin.token not in dump
    create = events(admin, action="user.create")[0]
    assert "password" not in create["changes"]
    sets = events(admin, action="user.password.set")
    assert [e["changes"]["password"] for e in sets] == [{"after": "set"}] * 2
    rows = session.execute(text("SELECT * FROM audit_events")).all()
    assert "Hunter2!" not in repr(rows) and "S3cret!" not in repr(rows)


def test_token_and_organization_events(scim, admin):
    """Creating the organization and its tokens is in the log (name and id, no secret)."""
    got = actions(admin)
    assert got[:3] == ["organization.create", "token.create", "token.create"]
    token_events = events(admin, action="token.create")
    assert {e["detail"] for e in token_events} == {"scim token 'test'", "admin token 'compliance'"}


def test_bulk_items_are_recorded_one_by_one(scim, admin):
    """Each bulk operation writes its own event, failures included."""
    bulk = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "a",
                "data": {"schemas": [USER_SCHEMA], "userName": "b1@x"},
            },
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": [USER_SCHEMA]}},
        ],
    }
    scim.post("/scim/v2/Bulk", bulk)
    created = events(admin, action="user.create")
    assert sorted(e["outcome"] for e in created) == ["failure", "success"]


def _verify(admin: Scim) -> dict:
    return admin.get("/api/v1/audit/verify").get_json()


def _make_events(scim: Scim, n: int = 4) -> None:
    for i in range(n):
        scim.create_user(f"chain{i}@example.com")


def test_verify_accepts_an_intact_chain(scim, admin):
    """An untouched log verifies, with its head hash."""
    _make_events(scim)
    result = _verify(admin)
    assert result["ok"] is True
    assert result["checked"] == result["last_seq"] >= 7
    assert len(result["head_hash"]) == 64


def test_writes_hash_their_events_before_the_head_is_locked(scim, admin, monkeypatch):
    """A SCIM write's audit events are serialised before the commit takes the head
    (``recorder.prepare``): none is hashed whole under it, and the chain verifies."""
    from scim_server.audit import chain

    whole = []
    hash_of = chain.event_hash
    monkeypatch.setattr(chain, "event_hash", lambda event: whole.append(event) or hash_of(event))
    user = scim.create_user("ready@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    assert scim.patch_ops(url, {"op": "replace", "path": "title", "value": "Ç"}).status_code == 200
    assert (
        scim.patch_ops(url, {"op": "replace", "path": "active", "value": False}).status_code == 200
    )
    assert scim.delete(url).status_code == 204
    recorded = [e for e in whole if e.resource_id == user["id"]]
    assert recorded == []
    monkeypatch.setattr(chain, "event_hash", hash_of)
    result = _verify(admin)
    assert result["ok"] is True and result["checked"] == result["last_seq"]


def test_verify_detects_an_edited_event(scim, admin, session):
    """Changing one field of one event is found at that event."""
    _make_events(scim)
    session.execute(
        update(AuditEvent)
        .where(AuditEvent.org_id == scim.org_id, AuditEvent.seq == 5)
        .values(user_name="mallory")
    )
    session.commit()
    result = admin.get("/api/v1/audit/verify")
    assert result.status_code == 409
    assert result.get_json()["broken_seq"] == 5
    assert "edited" in result.get_json()["reason"]


def test_verify_detects_a_deleted_event(scim, admin, session):
    """Deleting an event in the middle leaves a visible gap."""
    _make_events(scim)
    session.execute(
        text("DELETE FROM audit_events WHERE org_id = :o AND seq = 4"), {"o": scim.org_id}
    )
    session.commit()
    result = _verify(admin)
    assert result["ok"] is False and result["broken_seq"] == 4
    assert "missing" in result["reason"]


def test_verify_detects_reordered_events(scim, admin, session):
    """Swapping two events' content (keeping seq) breaks the links."""
    _make_events(scim)
    a, b = (session.get(AuditEvent, (scim.org_id, s)) for s in (5, 6))
    fields = ["user_name", "resource_id", "hash", "prev_hash", "occurred_at", "request_id"]
    va, vb = ({f: getattr(x, f) for f in fields} for x in (a, b))
    for f in fields:
        setattr(a, f, vb[f])
        setattr(b, f, va[f])
    session.commit()
    result = _verify(admin)
    assert result["ok"] is False and result["broken_seq"] == 5


def test_verify_detects_a_truncated_tail(scim, admin, session):
    """Dropping the newest events is caught by the signed head."""
    _make_events(scim)
    last = session.scalar(select(AuditHead.seq).where(AuditHead.org_id == scim.org_id))
    session.execute(
        text("DELETE FROM audit_events WHERE org_id = :o AND seq >= :s"),
        {"o": scim.org_id, "s": last - 1},
    )
    session.commit()
    result = _verify(admin)
    assert result["ok"] is False
    assert "truncated" in result["reason"]


def test_verify_detects_a_forged_head(scim, admin, session):
    """Truncating and rewriting the head without the key is caught by its signature."""
    _make_events(scim)
    head = session.get(AuditHead, scim.org_id)
    session.execute(
        text("DELETE FROM audit_events WHERE org_id = :o AND seq = :s"),
        {"o": scim.org_id, "s": head.seq},
    )
    prev = session.get(AuditEvent, (scim.org_id, head.seq - 1))
    head.seq, head.hash = prev.seq, prev.hash
    session.commit()
    result = _verify(admin)
    assert result["ok"] is False and "signature" in result["reason"]


def test_search_filters_and_cursor(scim, admin):
    """Filters narrow the events; the cursor pages newest first without repeats."""
    _make_events(scim, 5)
    by_name = events(admin, user_name="chain3@example.com")
    assert [e["action"] for e in by_name] == ["user.create"]
    by_request = events(admin, request_id=by_name[0]["request_id"])
    assert by_name[0]["seq"] in [e["seq"] for e in by_request]
    assert {e["request_id"] for e in by_request} == {by_name[0]["request_id"]}
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/api/v1/audit", query_string=params).get_json()
        seen += [e["seq"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == seen[0]
    assert admin.get("/api/v1/audit?outcome=maybe").status_code == 400


def test_export_ndjson_and_csv_end_with_a_manifest(scim, admin):
    """Exports stream every matching event and end with a manifest that matches them."""
    _make_events(scim, 3)
    resp = admin.get("/api/v1/audit/export?format=ndjson&action=user.create")
    assert resp.status_code == 200 and resp.is_streamed
    lines = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    manifest = lines[-1]["manifest"]
    assert manifest["count"] == len(lines) - 1 == 3
    assert manifest["parameters"] == {"action": "user.create"}
    assert manifest["first_seq"] == lines[0]["seq"] and manifest["last_seq"] == lines[-2]["seq"]
    assert len(manifest["chain_head"]["hash"]) == 64
    csv_text = admin.get("/api/v1/audit/export?format=csv").get_data(as_text=True)
    rows = csv_text.splitlines()
    assert rows[0].startswith("org_id,seq,")
    assert rows[-1].startswith("# manifest ")


def test_reports(scim, admin):
    """Deprovisioning report gives latency from request to effect; failures are grouped."""
    user = scim.create_user("leaver@example.com")
    scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
    )
    scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA]})
    scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA]})
    rows = admin.get("/api/v1/audit/reports/deprovisioning").get_json()["users"]
    assert [(r["action"], r["user_name"]) for r in rows] == [
        ("user.deactivate", "leaver@example.com")
    ]
    assert rows[0]["latency_ms"] >= 0
    failures = admin.get("/api/v1/audit/reports/failures").get_json()["failures"]
    assert failures == [
        {"action": "user.create", "status": 400, "scim_type": "invalidValue", "count": 2}
    ]


def test_purge_keeps_the_chain_verifiable(scim, admin, session):
    """Purging old events leaves a verifiable chain that starts at a checkpoint, and is logged."""
    from datetime import timedelta

    from scim_server.audit.queries import purge
    from scim_server.db import utcnow

    _make_events(scim, 3)
    session.rollback()
    cutoff = utcnow() + timedelta(seconds=1)
    removed = purge(session, scim.org_id, cutoff, now=cutoff + timedelta(days=1))
    assert removed >= 6
    result = _verify(admin)
    assert result["ok"] is True, result
    assert actions(admin) == ["audit.purge"]
    scim.create_user("after@example.com")
    assert _verify(admin)["ok"] is True


def test_admin_api_needs_an_admin_token(scim, admin, client):
    """SCIM tokens cannot read the log and admin tokens cannot provision."""
    assert client.get("/api/v1/audit").status_code == 401
    assert scim.get("/api/v1/audit").status_code == 401
    assert admin.get("/scim/v2/Users").status_code == 401


def test_concurrent_writers_keep_one_chain(live, engine):
    """Several threads provisioning into one organization leave one gap-free, valid chain."""
    from scim_server.audit.queries import verify
    from scim_server.db import db

    app, scim = live

    def work(n: int) -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        for i in range(6):
            client.create_user(f"t{n}-{i}@example.com")

    run_together(*(partial(work, n) for n in range(4)))
    with db.reader(app)() as session:
        result = verify(session, scim.org_id)
        seqs = session.scalars(
            select(AuditEvent.seq).where(AuditEvent.org_id == scim.org_id).order_by(AuditEvent.seq)
        ).all()
    assert result.ok, result
    # organization + token, then one event per user (its new person contact is in
    # the user's event, not an event of its own)
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 2 + 24


def test_group_membership_changes_reach_each_persons_timeline(scim, admin):
    """Adding and removing a member writes the group event and a member event per person."""
    alice = scim.create_user("alice@example.com", externalId="a-1")
    bob = scim.create_user("bob@example.com")
    group = scim.create_group("Engineering", members=[alice["id"]])
    url = f"/scim/v2/Groups/{group['id']}"
    scim.patch_ops(url, {"op": "add", "path": "members", "value": [{"value": bob["id"]}]})
    scim.patch_ops(url, {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'})
    scim.delete(url)
    group_events = actions(admin, resource_id=group["id"])
    assert group_events == ["group.create", "group.patch", "group.patch", "group.delete"]
    patch = next(e for e in events(admin, resource_id=group["id"]) if e["action"] == "group.patch")
    assert patch["changes"]["members"]["removed"] == [alice["id"]]
    timeline = admin.get(f"/api/v1/audit/timeline/{alice['id']}").get_json()["events"]
    assert [e["action"] for e in timeline] == [
        "user.create",
        "group.member.add",
        "group.member.remove",
    ]
    assert timeline[1]["detail"] == "Engineering"
    assert timeline[1]["user_name"] == "alice@example.com" and timeline[1]["external_id"] == "a-1"
    bob_timeline = admin.get(f"/api/v1/audit/timeline/{bob['id']}").get_json()["events"]
    assert [e["action"] for e in bob_timeline] == [
        "user.create",
        "group.member.add",
        "group.member.remove",
    ]


def test_duplicate_member_add_is_logged_without_member_events(scim, admin):
    """A repeated add is recorded as a request, but no membership changed."""
    alice = scim.create_user("dupadd@example.com")
    group = scim.create_group("Ops", members=[alice["id"]])
    scim.patch_ops(
        f"/scim/v2/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": alice["id"]}]},
    )
    assert actions(admin, resource_id=alice["id"]) == ["user.create", "group.member.add"]
    assert "members" not in events(admin, action="group.patch")[0]["changes"]


def test_two_apps_in_one_process_sign_with_their_own_keys(tmp_path):
    """Each app signs its chain with its own key: a second app never re-keys the first."""
    from scim_server import create_app
    from scim_server.audit.queries import verify
    from scim_server.db import db
    from scim_server.migrate import upgrade
    from scim_server.services.organizations import create_organization

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    first = create_app({"TESTING": True, "DATABASE_URL": url, "AUDIT_KEY": "first-key"})
    second = create_app({"TESTING": True, "DATABASE_URL": url, "AUDIT_KEY": "second-key"})
    try:
        upgrade(db.engine(first))
        with db.writer(first)() as session:
            org_id = create_organization(session, "keyed").id
        with db.reader(first)() as session:
            assert verify(session, org_id).ok
        with db.reader(second)() as session:
            result = verify(session, org_id)
        assert not result.ok and "signature" in (result.reason or "")
    finally:
        db.engine(first).dispose()
        db.engine(second).dispose()


def test_one_change_with_many_events_keeps_the_chain(scim, admin, session):
    """A group created with 1,200 members writes all 1,201 events gap-free, with the periodic
    checkpoint, in a chain that verifies (the head is locked once per transaction)."""
    from sqlalchemy import func

    from tests.support.data import insert_users

    ids = insert_users(session, scim.org_id, 1200)
    before = session.scalar(select(AuditHead.seq).where(AuditHead.org_id == scim.org_id))
    session.commit()
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Many",
        "members": [{"value": i} for i in ids],
    }
    assert scim.post("/scim/v2/Groups", body).status_code == 201
    seqs = session.scalars(
        select(AuditEvent.seq).where(AuditEvent.org_id == scim.org_id, AuditEvent.seq > before)
    ).all()
    added = session.scalar(
        select(func.count()).where(
            AuditEvent.org_id == scim.org_id, AuditEvent.action == "group.member.add"
        )
    )
    session.commit()
    assert sorted(seqs) == list(range(before + 1, before + 1202))
    assert added == 1200
    result = _verify(admin)
    assert result["ok"] is True, result
    assert result["last_seq"] == before + 1201
    assert result["checkpoints"] >= 1


def _seqs(admin: Scim, action: str) -> list[int]:
    return sorted(e["seq"] for e in events(admin, action=action))


def test_a_rolled_back_savepoint_leaves_no_event_and_no_gap(app, scim, admin):
    """Events are numbered as the transaction commits: a savepoint rolled back (even one
    whose events were already written under the head lock) leaves no event and no gap."""
    from scim_server.audit import record
    from scim_server.audit.recorder import lock_head
    from scim_server.db import db

    before = _verify(admin)["last_seq"]
    with db.writer(app)() as s, s.begin():
        record(s, scim.org_id, "test.kept")
        nested = s.begin_nested()
        record(s, scim.org_id, "test.dropped")
        nested.rollback()
        nested = s.begin_nested()
        record(s, scim.org_id, "test.dropped")
        assert lock_head(s, scim.org_id).seq == before + 2  # written inside the savepoint
        nested.rollback()
        record(s, scim.org_id, "test.kept")
    assert _seqs(admin, "test.kept") == [before + 1, before + 2]
    assert events(admin, action="test.dropped") == []
    result = _verify(admin)
    assert result["ok"] is True, result
    assert result["last_seq"] == before + 2


def test_lock_head_writes_the_pending_events_first(app, scim, admin):
    """An explicit head lock (a checkpoint, a purge) sees the transaction's own events."""
    from scim_server.audit import record
    from scim_server.audit.recorder import lock_head
    from scim_server.db import db

    before = _verify(admin)["last_seq"]
    with db.writer(app)() as s, s.begin():
        first = record(s, scim.org_id, "test.first")
        assert first.seq == 0  # numbered when written
        head = lock_head(s, scim.org_id)
        assert (head.seq, head.hash) == (before + 1, first.hash)
        record(s, scim.org_id, "test.second")
    assert _seqs(admin, "test.second") == [before + 2]
    assert _verify(admin)["ok"] is True


def test_a_writes_few_events_each_keep_their_own_columns(app, scim, admin, session):
    """A transaction's few events go in one statement on PostgreSQL, the columns they repeat
    bound once: each stored row still holds its own values, the shared ones and the rest."""
    from scim_server.audit import record
    from scim_server.db import db

    before = _verify(admin)["last_seq"]
    about = {"resource_type": "User", "resource_id": "u-1", "user_name": "a@example.com"}
    with db.writer(app)() as s, s.begin():
        record(s, scim.org_id, "test.change", **about, changes={"active": {"after": False}})
        record(s, scim.org_id, "test.transition", **about)
        record(s, scim.org_id, "test.other", resource_type="Group", resource_id="g-1")
    rows = session.execute(
        select(
            AuditEvent.seq,
            AuditEvent.action,
            AuditEvent.resource_type,
            AuditEvent.resource_id,
            AuditEvent.user_name,
            AuditEvent.changes,
        )
        .where(AuditEvent.org_id == scim.org_id, AuditEvent.seq > before)
        .order_by(AuditEvent.seq)
    ).all()
    session.commit()
    assert [tuple(r) for r in rows] == [
        (before + 1, "test.change", "User", "u-1", "a@example.com", {"active": {"after": False}}),
        (before + 2, "test.transition", "User", "u-1", "a@example.com", None),
        (before + 3, "test.other", "Group", "g-1", None, None),
    ]
    assert _verify(admin)["ok"] is True
