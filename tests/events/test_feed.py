"""events.feed: the cursor a filtered reader is handed covers what it read, matched or not."""

from __future__ import annotations

from datetime import timedelta

from tests.support import Clock
from tests.support.admin_api import ok, person
from tests.support.webhooks import webhook_worker

HOUR = 3600


def page(admin, **params: object) -> dict:
    return ok(admin.get("/api/v1/events", query_string=params))


def test_a_filtered_read_with_no_match_moves_the_cursor_to_the_newest(scim, admin):
    """types=user.deleted after three creates: no event, and next_cursor is the newest
    position read (3), not the cursor sent: the reader does not read them again."""
    for name in ("ann", "bob", "cat"):
        person(scim, f"{name}@example.com")
    body = page(admin, types="user.deleted")
    assert body == {"events": [], "next_cursor": "3"}
    again = page(admin, after=body["next_cursor"], types="user.deleted")
    assert again == {"events": [], "next_cursor": "3"}


def test_a_filtered_read_ends_at_the_newest_after_its_last_match(scim, admin):
    """A match at 2, then creates at 3 and 4: the match, and next_cursor 4."""
    ann = person(scim, "ann@example.com")
    scim.patch_ops(
        f"/scim/v2/Users/{ann['id']}", {"op": "replace", "path": "active", "value": False}
    )
    person(scim, "bob@example.com")
    person(scim, "cat@example.com")
    body = page(admin, types="user.deactivated")
    assert [(e["type"], e["position"]) for e in body["events"]] == [("user.deactivated", 2)]
    assert body["next_cursor"] == "4"


def test_a_full_filtered_page_ends_at_its_last_event(scim, admin):
    """limit reached: next_cursor is the last event's position (more may match after it)."""
    for name in ("ann", "bob", "cat"):
        person(scim, f"{name}@example.com")
    body = page(admin, types="user.created", limit=2)
    assert [e["position"] for e in body["events"]] == [1, 2]
    assert body["next_cursor"] == "2"
    rest = page(admin, after=body["next_cursor"], types="user.created", limit=2)
    assert [e["position"] for e in rest["events"]] == [3]
    assert rest["next_cursor"] == "3"


def test_a_type_filtered_feed_cursor_does_not_expire_without_a_missed_event(app, scim, admin):
    """A reader of ``types=user.deleted`` that polls regularly is handed the position it has
    read up to; once retention purges the other events, its next poll is no 410: it missed
    nothing of its types."""
    ok(admin.put("/api/v1/settings", {"sign_in_methods": "sso_only"}))  # no welcome events
    person(scim, "ann@example.com")
    cursor = page(admin, after="now")["next_cursor"]
    clock = Clock()
    worker = webhook_worker(app, clock, event_retention=timedelta(days=30))
    for name in ("bob", "cat", "dan"):
        person(scim, f"{name}@example.com")
    polled = page(admin, after=cursor, types="user.deleted")
    assert polled["events"] == []
    cursor = polled["next_cursor"]
    # A month later the older events are purged (the newest is kept) ...
    clock.advance(31 * 24 * HOUR)
    worker.run_once()
    # ... and the reader, which missed no user.deleted event, reads on.
    resp = admin.get("/api/v1/events", query_string={"after": cursor, "types": "user.deleted"})
    assert resp.status_code == 200, (resp.status_code, resp.get_json())
    assert resp.get_json()["events"] == []
