"""GET /api/v1/events: in order, from a cursor, filtered by type; 410 past retention."""

from __future__ import annotations

from datetime import timedelta

from scim_server.db import db, utcnow
from scim_server.events import feed
from tests.support.admin_api import ok, person


def test_pages_follow_the_cursor(scim, admin):
    """limit pages through the events; next_cursor resumes exactly after the last one seen."""
    for i in range(5):
        person(scim, f"u{i}@example.com")
    first = ok(admin.get("/api/v1/events", query_string={"limit": 2}))
    assert [e["position"] for e in first["events"]] == [1, 2]
    assert set(first["events"][0]) >= {"id", "type", "occurred_at", "data"}
    second = ok(admin.get("/api/v1/events", query_string={"after": first["next_cursor"]}))
    assert [e["position"] for e in second["events"]] == [3, 4, 5]
    empty = ok(admin.get("/api/v1/events", query_string={"after": second["next_cursor"]}))
    assert empty == {"events": [], "next_cursor": second["next_cursor"]}
    person(scim, "late@example.com")
    late = ok(admin.get("/api/v1/events", query_string={"after": second["next_cursor"]}))
    assert [e["data"]["state"]["userName"] for e in late["events"]] == ["late@example.com"]


def test_start_from_now(scim, admin):
    """after=now: nothing from the past, and the cursor to see only what happens next."""
    person(scim, "old@example.com")
    now = ok(admin.get("/api/v1/events", query_string={"after": "now"}))
    assert now["events"] == []
    person(scim, "new@example.com")
    body = ok(admin.get("/api/v1/events", query_string={"after": now["next_cursor"]}))
    assert [e["data"]["state"]["userName"] for e in body["events"]] == ["new@example.com"]


def test_types_filter(scim, admin):
    """types=a,b keeps only those types, still in order."""
    user = person(scim, "ann@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    scim.patch_ops(url, {"op": "replace", "path": "active", "value": False})
    scim.patch_ops(url, {"op": "replace", "path": "active", "value": True})
    body = ok(
        admin.get("/api/v1/events", query_string={"types": "user.deactivated,user.reactivated"})
    )
    assert [e["type"] for e in body["events"]] == ["user.deactivated", "user.reactivated"]
    assert body["next_cursor"] == "3"


def test_bad_arguments_are_clear_400s(scim, admin):
    """A cursor that was never handed out, an unknown type, a bad limit: 400, with a reason."""
    person(scim, "ann@example.com")
    for query in (
        {"after": "abc"},
        {"after": "-1"},
        {"after": "99"},
        {"types": "user.exploded"},
        {"limit": "0"},
        {"limit": "many"},
    ):
        resp = admin.get("/api/v1/events", query_string=query)
        assert resp.status_code == 400, query
        assert resp.get_json()["detail"], query


def test_a_cursor_past_retention_is_410(app, scim, admin):
    """Once the events after a cursor are purged, that cursor is 410 Gone; the oldest still works."""
    for i in range(3):
        person(scim, f"u{i}@example.com")
    with db.writer(app)() as session, session.begin():
        deleted = feed.purge(session, utcnow() + timedelta(days=31), timedelta(days=30))
    assert deleted == 2  # the newest event stays: positions never restart
    resp = admin.get("/api/v1/events", query_string={"after": "0"})
    assert resp.status_code == 410
    assert "retention" in resp.get_json()["detail"]
    oldest = ok(admin.get("/api/v1/events"))
    assert [e["position"] for e in oldest["events"]] == [3]
    assert ok(admin.get("/api/v1/events", query_string={"after": "2"}))["events"] != []
    person(scim, "next@example.com")
    assert [e["position"] for e in ok(admin.get("/api/v1/events"))["events"]] == [3, 4]


def test_retention_keeps_recent_events(app, scim, admin):
    """Events younger than retention are kept."""
    person(scim, "ann@example.com")
    person(scim, "bob@example.com")
    with db.writer(app)() as session, session.begin():
        assert feed.purge(session, utcnow(), timedelta(days=30)) == 0


def test_events_need_an_admin_token(scim):
    """The SCIM token is not an admin token."""
    assert scim.get("/api/v1/events").status_code == 401
