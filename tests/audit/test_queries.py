"""``audit.queries``: what the service refuses whatever the caller (command line, code)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from scim_server.audit.queries import purge
from scim_server.db import utcnow
from scim_server.errors import InvalidValueError
from scim_server.models import AuditEvent, AuditHead


def _logged(session, org_id: str) -> int:
    stmt = select(func.count()).select_from(AuditEvent).where(AuditEvent.org_id == org_id)
    return int(session.scalar(stmt) or 0)


@pytest.mark.parametrize(
    "ago",
    [
        pytest.param(timedelta(days=-365 * 900), id="a date in the future"),
        pytest.param(timedelta(seconds=-1), id="just ahead"),
        pytest.param(timedelta(hours=23), id="under a day ago"),
    ],
)
def test_purge_refuses_a_cutoff_less_than_a_day_ago(scim, session, ago):
    """A cutoff ahead of now (or within the last day) purges every event, what was just
    logged included: refused, nothing deleted, nothing logged."""
    scim.create_user("kept@example.com")
    session.rollback()
    logged = _logged(session, scim.org_id)
    with pytest.raises(InvalidValueError, match="at least a day ago"):
        purge(session, scim.org_id, utcnow() - ago)
    session.rollback()
    assert _logged(session, scim.org_id) == logged


def test_purge_takes_a_cutoff_a_day_before_its_clock(scim, session):
    """``now`` is the purge's clock (as the events feed's): a cutoff a day before it purges."""
    scim.create_user("gone@example.com")
    session.rollback()
    cutoff = utcnow() + timedelta(seconds=1)
    assert purge(session, scim.org_id, cutoff, now=cutoff + timedelta(days=1)) >= 2
    session.rollback()
    assert _logged(session, scim.org_id) == 1  # the purge's own event


# -- verify: the rows the signed head does not vouch for ---------------------------------


def _make_events(scim, n: int = 4) -> None:
    for i in range(n):
        scim.create_user(f"probe{i}@example.com")


def _verify(admin) -> tuple[int, dict]:
    resp = admin.get("/api/v1/audit/verify")
    return resp.status_code, resp.get_json()


def _admin_of(app, client, org_id: str):
    """An admin-API client of another organization."""
    from scim_server.db import db
    from scim_server.services.tokens import create_token
    from tests.support import Scim

    with db.reader(app)() as s:
        _t, secret = create_token(s, org_id, "queries-admin", kind="admin")
    return Scim(client, secret, org_id)


def test_verify_finds_a_deleted_head_row(scim, admin, session):
    """The organization's audit_heads row deleted, its events left: every organization has
    an ``organization.create`` event, so events without a head are a head removed (409,
    ``chain head missing``), not an empty log (it said OK, checked 0)."""
    _make_events(scim)
    session.execute(text("DELETE FROM audit_heads WHERE org_id = :o"), {"o": scim.org_id})
    session.commit()
    status, body = _verify(admin)
    assert status == 409 and body["ok"] is False, body
    assert body["broken_seq"] == 1 and "chain head missing" in body["reason"]


def test_verify_finds_a_deleted_head_row_with_only_a_checkpoint_left(scim, admin, session):
    """Events and head deleted, a signed checkpoint left behind: still a log without its
    head (the checkpoint's seq is named), not an organization that never logged."""
    _make_events(scim, 2)
    cp = admin.post("/api/v1/audit/checkpoints", {})
    assert cp.status_code == 201, cp.get_json()
    session.execute(text("DELETE FROM audit_events WHERE org_id = :o"), {"o": scim.org_id})
    session.execute(text("DELETE FROM audit_heads WHERE org_id = :o"), {"o": scim.org_id})
    session.commit()
    status, body = _verify(admin)
    assert status == 409 and body["broken_seq"] == cp.get_json()["seq"], body
    assert "chain head missing" in body["reason"]


def _forge_beyond_head(session, org_id: str) -> int:
    """An event inserted after the newest one (the head row left alone): its seq."""
    head = session.get(AuditHead, org_id)
    last = session.get(AuditEvent, (org_id, head.seq))
    values = {c.name: getattr(last, c.name) for c in AuditEvent.__table__.columns}
    values.update(
        seq=head.seq + 1,
        prev_hash=last.hash,
        action="user.delete",
        user_name="forged@example.com",
        hash="0" * 64,
    )
    session.execute(AuditEvent.__table__.insert().values(**values))
    session.commit()
    return head.seq + 1


def test_verify_finds_an_event_forged_beyond_the_head(scim, admin, session):
    """An event appended past the signed head: writers insert events and move the head in
    one transaction, so a committed row beyond it was written outside the log (verify
    walked only up to the head and said OK)."""
    _make_events(scim)
    seq = _forge_beyond_head(session, scim.org_id)
    status, body = _verify(admin)
    assert status == 409 and body["ok"] is False, body
    assert body["broken_seq"] == seq and "beyond the signed head" in body["reason"]


def test_search_and_timeline_do_not_show_an_event_beyond_the_head(scim, admin, session):
    """What verify calls forged is not listed as part of the log (it was the newest event of
    the search), nor in the person's timeline."""
    user = scim.create_user("real@example.com")
    head = session.get(AuditHead, scim.org_id).seq
    seq = _forge_beyond_head(session, scim.org_id)
    session.execute(
        text("UPDATE audit_events SET resource_id = :r WHERE org_id = :o AND seq = :s"),
        {"r": user["id"], "o": scim.org_id, "s": seq},
    )
    session.commit()
    listed = admin.get("/api/v1/audit?limit=5").get_json()["events"]
    assert listed[0]["seq"] == head
    assert "forged@example.com" not in [e["user_name"] for e in listed]
    by_name = admin.get("/api/v1/audit", query_string={"user_name": "forged@example.com"})
    assert by_name.get_json()["events"] == []
    timeline = admin.get(f"/api/v1/audit/timeline/{user['id']}").get_json()["events"]
    assert [e["action"] for e in timeline] == ["user.create"]


def test_an_event_moved_in_from_another_organization_is_found(
    app, client, scim, other_scim, admin, session
):
    """An event's org_id edited moves it into another tenant's log past that one's head:
    the receiving organization's verify refuses it (it listed the event as its own and said
    intact), and neither organization lists it."""
    for i in range(3):
        scim.create_user(f"moved{i}@example.com")
    other_scim.create_user("g@example.com")
    g_admin = _admin_of(app, client, other_scim.org_id)
    g_head = session.get(AuditHead, other_scim.org_id).seq
    assert session.get(AuditHead, scim.org_id).seq > g_head + 1
    seq = g_head + 1
    session.execute(
        text("UPDATE audit_events SET org_id = :g WHERE org_id = :a AND seq = :s"),
        {"g": other_scim.org_id, "a": scim.org_id, "s": seq},
    )
    session.commit()
    resp = g_admin.get("/api/v1/audit/verify")
    assert resp.status_code == 409 and resp.get_json()["broken_seq"] == seq, resp.get_json()
    assert seq not in [e["seq"] for e in g_admin.get("/api/v1/audit").get_json()["events"]]
    status, body = _verify(admin)
    assert status == 409 and body["broken_seq"] == seq  # a gap in its own organization


def test_verify_while_a_write_commits_after_the_walk_is_not_a_forged_event(live, monkeypatch):
    """A write that commits after the walk (head and events together) puts events past the
    head verify read first: they are checked against the head as it is now, in the same
    statement, and are no forgery."""
    from scim_server.audit import queries
    from scim_server.db import db

    app, scim = live
    _make_events(scim, 2)
    stream = queries.stream
    wrote = []

    def stream_then_a_write(*args, **kwargs):
        yield from stream(*args, **kwargs)
        wrote.append(scim.create_user("meanwhile@example.com"))

    monkeypatch.setattr(queries, "stream", stream_then_a_write)
    with db.reader(app)() as session:
        result = queries.verify(session, scim.org_id)
    assert wrote
    assert result.ok, result


# -- moved from the audit probe: behaviour found correct, kept covered ----------------------


def test_swapping_two_organizations_events_is_found_in_both(
    app, client, scim, other_scim, admin, session
):
    """Two tenants' events with the same seq swapped: each one's verify breaks at that seq."""
    for i in range(2):
        scim.create_user(f"a{i}@example.com")
        other_scim.create_user(f"b{i}@example.com")
    g_admin = _admin_of(app, client, other_scim.org_id)
    p = {"a": scim.org_id, "b": other_scim.org_id, "s": 3}
    session.execute(text("UPDATE audit_events SET seq = -1 WHERE org_id = :a AND seq = :s"), p)
    session.execute(text("UPDATE audit_events SET org_id = :a WHERE org_id = :b AND seq = :s"), p)
    session.execute(
        text("UPDATE audit_events SET org_id = :b, seq = :s WHERE org_id = :a AND seq = -1"), p
    )
    session.commit()
    for who in (admin, g_admin):
        resp = who.get("/api/v1/audit/verify")
        assert resp.status_code == 409 and resp.get_json()["broken_seq"] == 3


def test_purge_of_one_organization_leaves_the_other_alone(
    app, client, scim, other_scim, admin, session
):
    """A purge deletes and re-bases one organization's log; the other's events and signed
    head are untouched, and both verify."""
    for i in range(3):
        scim.create_user(f"p{i}@example.com")
        other_scim.create_user(f"q{i}@example.com")
    session.rollback()
    before_b = _logged(session, other_scim.org_id)
    head_b = session.get(AuditHead, other_scim.org_id).signature
    session.rollback()
    cutoff = utcnow() + timedelta(seconds=1)
    assert purge(session, scim.org_id, cutoff, now=cutoff + timedelta(days=1)) >= 3
    assert _logged(session, other_scim.org_id) == before_b
    assert session.get(AuditHead, other_scim.org_id, populate_existing=True).signature == head_b
    assert admin.get("/api/v1/audit/verify").status_code == 200
    assert _admin_of(app, client, other_scim.org_id).get("/api/v1/audit/verify").status_code == 200


def test_search_time_range_honours_zones_and_its_bounds(scim, admin):
    """``since`` is inclusive and ``until`` exclusive, each read in the zone it gives; a
    time without a zone is refused."""
    from datetime import datetime, timezone

    scim.create_user("tz@example.com")
    query = {"user_name": "tz@example.com"}
    ev = admin.get("/api/v1/audit", query_string=query).get_json()["events"][0]
    at = ev["occurred_at"]  # naive UTC, with microseconds
    plus2 = datetime.fromisoformat(at).astimezone(timezone(timedelta(hours=2))).isoformat()

    def hit(**q: str) -> list[int]:
        found = admin.get("/api/v1/audit", query_string={**query, **q}).get_json()["events"]
        return [e["seq"] for e in found]

    assert hit(since=plus2) == [ev["seq"]]
    assert hit(until=plus2) == []
    assert admin.get("/api/v1/audit", query_string={"since": at[:26]}).status_code == 400


def test_a_cursor_from_another_organization_reads_only_ones_own(
    app, client, scim, other_scim, admin
):
    """A cursor is a position, not a key to another tenant's log."""
    for i in range(3):
        other_scim.create_user(f"o{i}@example.com")
    g = _admin_of(app, client, other_scim.org_id).get("/api/v1/audit?limit=1").get_json()
    page = admin.get("/api/v1/audit", query_string={"cursor": g["next_cursor"] + 50}).get_json()
    assert {e["org_id"] for e in page["events"]} <= {scim.org_id}


def test_timeline_after_a_rename_has_the_old_events(scim, admin):
    """A timeline is by id: the events from before a rename are in it."""
    u = scim.create_user("old@example.com")
    scim.patch_ops(
        f"/scim/v2/Users/{u['id']}",
        {"op": "replace", "path": "userName", "value": "new@example.com"},
    )
    tl = admin.get(f"/api/v1/audit/timeline/{u['id']}").get_json()["events"]
    assert [e["action"] for e in tl][:2] == ["user.create", "user.patch"]
