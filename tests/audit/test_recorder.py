"""The recorder: which columns a write's events share; what a write does with a chain head
it finds not signed by the server (moved back, altered): never sign it as if it were."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from scim_server.audit import recorder
from scim_server.models import AuditEvent, AuditHead
from tests.audit.test_canonical import EVENT
from tests.support import Scim


def test_shared_columns_are_those_every_event_holds_alike():
    """Same value and type in every event: bound once (``e0_<column>``); a later time, a
    True where another has 1, or a None against a value: each event its own."""
    second = replace(
        EVENT,
        occurred_at=EVENT.occurred_at + timedelta(microseconds=1),
        action="user.deactivate",
        changes={"status": {"before": "ACTIVE", "after": "DEACTIVATED"}},
    )
    shared = recorder._shared([EVENT, second])
    assert shared == frozenset(recorder._SHAREABLE) - {"occurred_at"}
    assert "received_at" in shared  # None in both
    third = replace(second, external_id=None, actor_id="tok_2")
    assert recorder._shared([EVENT, second, third]) == shared - {"external_id", "actor_id"}
    assert "org_id" not in recorder._shared([EVENT, replace(EVENT, org_id="org-2")])


def test_shared_compares_types_too():
    one, true = replace(EVENT, resource_id=1), replace(EVENT, resource_id=True)  # type: ignore[arg-type]
    assert "resource_id" not in recorder._shared([one, true])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    same_time = [replace(EVENT, occurred_at=now), replace(EVENT, occurred_at=now)]
    assert "occurred_at" in recorder._shared(same_time)


# -- a chain head the server did not sign ------------------------------------------------


def _verify(admin: Scim) -> dict:
    resp = admin.get("/api/v1/audit/verify")
    assert resp.status_code in (200, 409), resp.get_json()
    body = resp.get_json()
    assert (resp.status_code == 200) is body["ok"]
    return body


def _head_seq(session, org_id: str) -> int:
    seq = session.scalar(select(AuditHead.seq).where(AuditHead.org_id == org_id))
    session.rollback()
    return int(seq)


def _actions(admin: Scim) -> list[tuple[int, str]]:
    resp = admin.get("/api/v1/audit", query_string={"limit": 1000})
    assert resp.status_code == 200, resp.get_json()
    return [(e["seq"], e["action"]) for e in reversed(resp.get_json()["events"])]


def _tamper(session, org_id: str, kind: str, keep: int) -> None:
    """What someone who can write the database but holds no server key does to the head row
    (its HMAC cannot be redone: the signature is left as it was).

    ``cut``: the events after ``keep`` deleted, the head set to event ``keep``'s seq and hash;
    ``seq``: the head's seq set back to ``keep``, the events left; ``hash``: the head's hash
    replaced."""
    params = {"o": org_id, "k": keep}
    if kind == "cut":
        session.execute(text("DELETE FROM audit_events WHERE org_id = :o AND seq > :k"), params)
        kept = session.get(AuditEvent, (org_id, keep))
        session.execute(
            text("UPDATE audit_heads SET seq = :k, hash = :h WHERE org_id = :o"),
            {**params, "h": kept.hash},
        )
    elif kind == "seq":
        session.execute(text("UPDATE audit_heads SET seq = :k WHERE org_id = :o"), params)
    else:
        session.execute(
            text("UPDATE audit_heads SET hash = :h WHERE org_id = :o"), {"o": org_id, "h": "e" * 64}
        )
    session.commit()


@pytest.mark.parametrize("kind", ["cut", "seq", "hash"])
def test_a_head_the_server_did_not_sign_stays_broken_after_the_next_write(
    scim, admin, session, caplog, kind
):
    """The newest events deleted and the head moved back (``cut``), or the head's seq or hash
    altered: verify says the head is altered. The next SCIM write (a leaver's deactivation)
    succeeds, and verify still says BROKEN, at the first event written onto the altered
    head, naming the head it found; a checkpoint filed before the cut catches none of it.
    The recorder signed the new head as if it extended a signed one: verify then said OK
    (``cut``), or the write failed on the events it numbered again (``seq``)."""
    leaver = scim.create_user("leaver@example.com")
    for i in range(2):
        scim.create_user(f"before{i}@example.com")
    assert admin.post("/api/v1/audit/checkpoints", None).status_code == 201
    keep = _head_seq(session, scim.org_id)
    for i in range(2):
        scim.create_user(f"removed{i}@example.com")
    last = _head_seq(session, scim.org_id)
    _tamper(session, scim.org_id, kind, keep)
    before = _verify(admin)
    assert before["ok"] is False and "signature" in before["reason"], before

    caplog.set_level(logging.ERROR, logger="scim_server.audit.recorder")
    resp = scim.patch_ops(
        f"/scim/v2/Users/{leaver['id']}", {"op": "replace", "path": "active", "value": False}
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["active"] is False
    assert scim.get(f"/scim/v2/Users/{leaver['id']}").get_json()["active"] is False

    result = _verify(admin)
    assert result["ok"] is False, result
    # The first event written onto the head the write found follows the log's last event
    # (a head moved back over events still there would have them numbered again).
    marker = (keep if kind == "cut" else last) + 1
    found_at = last if kind == "hash" else keep  # the head's seq as the write found it
    assert result["broken_seq"] == marker, result
    assert f"signature, found at {found_at} " in result["reason"], result
    assert "not carry the server's signature" in result["reason"], result
    logged = _actions(admin)
    assert (marker, "audit.head_unsigned") in logged, logged
    assert [a for s, a in logged if s > marker][:2] == ["user.patch", "user.deactivate"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and scim.org_id in errors[0].getMessage(), errors


def test_writes_onto_a_head_already_marked_add_no_marker_and_a_second_cut_is_named_first(
    scim, admin, session, caplog
):
    """One marker per head found unsigned: later writes onto the head the server marked add
    none and log nothing more. A second cut adds a second marker; verify names the first."""
    for i in range(3):
        scim.create_user(f"a{i}@example.com")
    keep = _head_seq(session, scim.org_id) - 1
    _tamper(session, scim.org_id, "cut", keep)
    caplog.set_level(logging.ERROR, logger="scim_server.audit.recorder")
    for i in range(3):
        scim.create_user(f"b{i}@example.com")
    markers = [s for s, a in _actions(admin) if a == "audit.head_unsigned"]
    assert markers == [keep + 1]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    second = _head_seq(session, scim.org_id) - 1
    _tamper(session, scim.org_id, "cut", second)
    scim.create_user("c@example.com")
    markers = [s for s, a in _actions(admin) if a == "audit.head_unsigned"]
    assert markers == [keep + 1, second + 1]
    result = _verify(admin)
    assert result["ok"] is False and result["broken_seq"] == keep + 1, result


def test_an_untouched_log_keeps_verifying_after_many_writes(scim, admin):
    """Creates, changes, deactivations, deletions, groups, a bulk and checkpoints: every
    head is the one the server signed, verify says OK after each round, no marker."""
    for round_ in range(4):
        users = [scim.create_user(f"r{round_}u{i}@example.com") for i in range(4)]
        ids = [u["id"] for u in users]
        scim.create_group(f"group {round_}", members=ids[:2])
        for user in users[:2]:
            url = f"/scim/v2/Users/{user['id']}"
            ok = scim.patch_ops(url, {"op": "replace", "path": "title", "value": "Engineer"})
            assert ok.status_code == 200
            ok = scim.patch_ops(url, {"op": "replace", "path": "active", "value": False})
            assert ok.status_code == 200
        assert scim.delete(f"/scim/v2/Users/{ids[3]}").status_code == 204
        bulk = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "POST",
                    "bulkId": f"b{i}",
                    "path": "/Users",
                    "data": {
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": f"r{round_}bulk{i}@example.com",
                    },
                }
                for i in range(3)
            ],
        }
        assert scim.post("/scim/v2/Bulk", bulk).status_code == 200
        assert admin.post("/api/v1/audit/checkpoints", None).status_code == 201
        result = _verify(admin)
        assert result["ok"] is True, result
        assert result["checked"] == result["last_seq"]
    assert "audit.head_unsigned" not in {a for _s, a in _actions(admin)}


def test_a_cut_log_stays_broken_after_writes_that_commit(live, engine):
    """On the real database (each request commits: on PostgreSQL the recorder's statement
    goes out with the COMMIT; on SQLite a deletion's first read holds the head): a deletion
    and a deactivation after the cut succeed, and verify names the marker."""
    from scim_server.audit import queries
    from scim_server.db import db

    app, scim = live
    users = [scim.create_user(f"live{i}@example.com") for i in range(3)]
    with engine.begin() as conn:
        params = {"o": scim.org_id}
        [(keep,)] = conn.execute(
            text("SELECT seq - 2 FROM audit_heads WHERE org_id = :o"), params
        ).all()
        conn.execute(
            text("DELETE FROM audit_events WHERE org_id = :o AND seq > :k"), {**params, "k": keep}
        )
        conn.execute(
            text(
                "UPDATE audit_heads SET seq = :k, hash = (SELECT hash FROM audit_events "
                "WHERE org_id = :o AND seq = :k) WHERE org_id = :o"
            ),
            {**params, "k": keep},
        )
    assert scim.delete(f"/scim/v2/Users/{users[0]['id']}").status_code == 204
    url = f"/scim/v2/Users/{users[1]['id']}"
    resp = scim.patch_ops(url, {"op": "replace", "path": "active", "value": False})
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    with db.reader(app)() as session:
        result = queries.verify(session, scim.org_id)
        assert not result.ok and result.broken_seq == keep + 1, result
        marker = session.get(AuditEvent, (scim.org_id, keep + 1))
        assert marker is not None and marker.action == "audit.head_unsigned"
        assert marker.actor_type == "system" and marker.changes["head"]["seq"] == keep
        after = session.get(AuditEvent, (scim.org_id, keep + 2))
        assert after is not None and after.action == "user.delete"


def test_a_deleted_head_row_is_marked_by_the_next_write_not_a_failure_of_every_write(
    live, engine, caplog
):
    """Someone who can write the database deletes an organization's chain head row. The next
    SCIM writes succeed (they failed, every one, on events numbered again from a new signed
    genesis head); the first is preceded by a marker saying the head was missing, verify
    says BROKEN there until an operator accepts the log, and then OK."""
    from scim_server.audit import queries
    from scim_server.db import db

    app, scim = live
    users = [scim.create_user(f"kept{i}@example.com") for i in range(3)]
    with engine.begin() as conn:
        params = {"o": scim.org_id}
        [(last,)] = conn.execute(
            text("SELECT seq FROM audit_heads WHERE org_id = :o"), params
        ).all()
        conn.execute(text("DELETE FROM audit_heads WHERE org_id = :o"), params)
    with db.reader(app)() as session:
        before = queries.verify(session, scim.org_id)
        assert not before.ok and "chain head missing" in before.reason, before

    caplog.set_level(logging.ERROR, logger="scim_server.audit.recorder")
    url = f"/scim/v2/Users/{users[0]['id']}"
    resp = scim.patch_ops(url, {"op": "replace", "path": "active", "value": False})
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    assert scim.get(url).get_json()["active"] is False
    created = scim.post(
        "/scim/v2/Users",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "new@example.com"},
    )
    assert created.status_code == 201, created.get_json()

    with db.reader(app)() as session:
        result = queries.verify(session, scim.org_id)
        assert not result.ok and result.broken_seq == last + 1, result
        assert "chain head row was missing" in result.reason, result
        marker = session.get(AuditEvent, (scim.org_id, last + 1))
        assert marker is not None and marker.action == "audit.head_unsigned"
        assert marker.actor_type == "system" and marker.changes["head"] is None
        actions = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.org_id == scim.org_id, AuditEvent.seq > last + 1)
            .order_by(AuditEvent.seq)
        ).all()
        assert actions[:2] == ["user.patch", "user.deactivate"] and "user.create" in actions
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "no chain head was found" in errors[0].getMessage(), errors

    with db.reader(app)() as session:
        accepted = queries.accept_head(session, scim.org_id, "INC-7: head row deleted")
        assert accepted.accepted
    with db.reader(app)() as session:
        after = queries.verify(session, scim.org_id)
        assert after.ok, after
