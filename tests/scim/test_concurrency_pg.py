"""SCIM writes racing each other on PostgreSQL, held at a chosen point (``tests.support.holds``):
one user PATCHed and DELETEd, two creates of case-equal userNames, a group add and the
member's own PATCH (the product event's state), many writers keeping the audit chain and
the event positions, a feed reader never skipping an event. (Checks of a probe that found
these correct; SQLite's writers take the database lock at BEGIN: nothing runs between.)"""

from __future__ import annotations

import threading
import uuid
from functools import partial
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from scim_server.audit.queries import verify
from scim_server.db import db
from scim_server.models import AttributeValue, AuditEvent, Event, GroupMember, User
from scim_server.services.tokens import create_token
from tests.support import USER_SCHEMA, Scim, make_org
from tests.support.holds import Hold, client_like, main_thread_only, postgresql_only
from tests.support.threads import run_together


def _admin(app: Flask, scim: Scim) -> Scim:
    with db.reader(app)() as s:
        _t, secret = create_token(s, scim.org_id, "admin", kind="admin")
    return Scim(app.test_client(), secret, scim.org_id)


def _feed(admin: Scim) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {"limit": 1000, **({"after": cursor} if cursor else {})}
        body = admin.get("/api/v1/events", query_string=q).get_json()
        out += body["events"]
        if len(body["events"]) < 1000:
            return out
        cursor = body["next_cursor"]


def _leftovers(app: Flask, org_id: str, user_id: str) -> dict[str, int]:
    with db.reader(app)() as s:
        return {
            "users": s.scalar(select(func.count()).select_from(User).where(User.id == user_id)),
            "index": s.scalar(
                select(func.count())
                .select_from(AttributeValue)
                .where(AttributeValue.org_id == org_id, AttributeValue.resource_id == user_id)
            ),
            "members": s.scalar(
                select(func.count())
                .select_from(GroupMember)
                .where(GroupMember.org_id == org_id, GroupMember.member_id == user_id)
            ),
        }


def test_a_user_event_after_a_group_add_shows_the_group(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group PATCH adding U holds the audit head (its commit) when U's own PATCH runs: that
    PATCH's state read waits for the head, so its user.updated event, after the group add
    in the feed, and its response list the group."""
    from scim_server.audit import recorder

    app, scim = live
    postgresql_only(app)
    admin = _admin(app, scim)
    user = scim.create_user("stale@example.com")
    group = scim.create_group("Joined")
    patched: list[Any] = []

    def patch_user() -> int:
        resp = client_like(app, scim).patch_ops(
            f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "T"}
        )
        patched.append(resp.get_json())
        return int(resp.status_code)

    hold = Hold(monkeypatch, app, recorder, "_head", patch_user, when=main_thread_only())
    add = scim.patch_ops(
        f"/scim/v2/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    hold.join()
    assert add.status_code == 204, add.get_json()
    assert (hold.results, hold.waited) == ([200], [True])
    events = [e for e in _feed(admin) if e["data"]["resource"]["id"] == user["id"]]
    assert events[-1]["type"] == "user.updated", [e["type"] for e in events]
    assert [g["id"] for g in events[-1]["data"]["state"]["groups"]] == [group["id"]]
    now = scim.get(f"/scim/v2/Users/{user['id']}").get_json()
    assert [g["value"] for g in now["groups"]] == [group["id"]]
    assert [g["value"] for g in patched[0].get("groups", [])] == [group["id"]]


@pytest.mark.parametrize(
    "names", [("Case@Example.com", "case@example.com"), ("Straße@x.io", "STRASSE@x.io")]
)
def test_two_posts_of_case_equal_user_names_make_one_user(
    live: Any, names: tuple[str, str]
) -> None:
    """Two POST /Users at once whose userNames are equal under the fold: one 201, one 409,
    four times over (names the fold does not make equal are not this test's case)."""
    app, scim = live
    postgresql_only(app)
    for round_ in range(4):
        results: list[int] = []
        barrier = threading.Barrier(2)

        def post(
            name: str, barrier: Any = barrier, results: Any = results, round_: int = round_
        ) -> None:
            c = client_like(app, scim)
            barrier.wait()
            body = {"schemas": [USER_SCHEMA], "userName": f"r{round_}{name}"}
            results.append(c.post("/scim/v2/Users", body).status_code)

        run_together(*(partial(post, n) for n in names))
        body = {"schemas": [USER_SCHEMA], "userName": f"r{round_}{names[1]}"}
        if scim.post("/scim/v2/Users", body).status_code == 201:
            pytest.skip(f"{names} not equal under the fold")
        assert sorted(results) == [201, 409], (round_, results)
    with db.reader(app)() as s:
        count = select(func.count()).select_from(User).where(User.org_id == scim.org_id)
        assert s.scalar(count) == 4


@pytest.mark.parametrize("held", ["patch", "delete"])
def test_a_patch_and_a_delete_of_one_user(
    live: Any, monkeypatch: pytest.MonkeyPatch, held: str
) -> None:
    """PATCH and DELETE of one user, either held before its commit: the user is gone with its
    index rows and memberships; the PATCH first is 200 then the delete 204, the delete
    first is 204 then the PATCH 404; the audit chain verifies."""
    from scim_server.services import users

    app, scim = live
    postgresql_only(app)
    user = scim.create_user("pd@example.com", title="x", emails=[{"value": "pd@example.com"}])
    scim.create_group("G", [user["id"]])
    url = f"/scim/v2/Users/{user['id']}"
    op = {"op": "replace", "path": "title", "value": "new"}

    def patch() -> int:
        return int(client_like(app, scim).patch_ops(url, op).status_code)

    def delete() -> int:
        return int(client_like(app, scim).delete(url).status_code)

    racer = delete if held == "patch" else patch
    hold = Hold(monkeypatch, app, users, "record", racer, when=main_thread_only())
    first = patch() if held == "patch" else delete()
    hold.join()
    assert scim.get(url).status_code == 404
    assert _leftovers(app, scim.org_id, user["id"]) == {"users": 0, "index": 0, "members": 0}
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 0
    expected = (200, [204]) if held == "patch" else (204, [404])
    assert (first, hold.results) == expected
    with db.reader(app)() as s:
        assert verify(s, scim.org_id).ok


def test_twenty_writers_of_one_org_and_four_of_another_keep_the_chains(live: Any) -> None:
    """24 clients on six apps create, PATCH and delete users in two organizations at once:
    each organization's audit chain verifies, its seqs and event positions
    are gap-free, and its counts are right."""
    from scim_server import create_app
    from scim_server.models import Organization
    from tests.conftest import TEST_CONFIG

    app, scim = live
    postgresql_only(app)
    other_id, other_secret = make_org(app, f"live-{uuid.uuid4().hex[:8]}")
    other = Scim(app.test_client(), other_secret, other_id)
    url = db.engine(app).url.render_as_string(False)
    apps = [create_app({**TEST_CONFIG, "DATABASE_URL": url}) for _ in range(6)]
    try:
        barrier = threading.Barrier(24)
        errors: list[Any] = []

        def work(org: Scim, n: int) -> None:
            c = Scim(apps[n % 6].test_client(), org.token, org.org_id)
            barrier.wait()
            try:
                for i in range(3):
                    u = c.create_user(f"w{n}-{i}@example.com")
                    r = c.patch_ops(
                        f"/scim/v2/Users/{u['id']}",
                        {"op": "replace", "path": "title", "value": "t"},
                    )
                    assert r.status_code == 200
                    if i == 1:
                        assert c.delete(f"/scim/v2/Users/{u['id']}").status_code == 204
            except BaseException as exc:
                errors.append(exc)

        calls = [partial(work, scim, n) for n in range(20)]
        calls += [partial(work, other, 100 + n) for n in range(4)]
        run_together(*calls)
        assert errors == []
        for org, writers in ((scim, 20), (other, 4)):
            assert _admin(app, org).get("/api/v1/audit/verify").status_code == 200
            with db.reader(app)() as s:
                seqs = s.scalars(
                    select(AuditEvent.seq)
                    .where(AuditEvent.org_id == org.org_id)
                    .order_by(AuditEvent.seq)
                ).all()
                positions = s.scalars(
                    select(Event.position)
                    .where(Event.org_id == org.org_id)
                    .order_by(Event.position)
                ).all()
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert positions == list(range(1, len(positions) + 1))
            assert len(positions) == writers * 7
            assert org.get("/scim/v2/Users?count=0").get_json()["totalResults"] == writers * 2
    finally:
        from sqlalchemy import delete as sql_delete

        for extra in apps:
            db.engine(extra).dispose()
        with db.engine(app).begin() as conn:
            conn.execute(sql_delete(Organization).where(Organization.id == other_id))


def test_a_feed_reader_never_skips_an_event(live: Any) -> None:
    """A reader paging through /api/v1/events while six writers PATCH at once sees every
    event position, in order, none skipped."""
    app, scim = live
    postgresql_only(app)
    ids = [scim.create_user(f"f{i}@example.com")["id"] for i in range(6)]
    done = threading.Event()
    seen: list[int] = []

    def writer(uid: str) -> None:
        c = client_like(app, scim)
        for i in range(12):
            c.patch_ops(
                f"/scim/v2/Users/{uid}", {"op": "replace", "path": "title", "value": f"{i}"}
            )

    def reader() -> None:
        a = _admin(app, scim)
        cursor = "0"
        while True:
            finished = done.is_set()
            body = a.get("/api/v1/events", query_string={"after": cursor, "limit": 7}).get_json()
            seen.extend(e["position"] for e in body["events"])
            cursor = body["next_cursor"]
            if finished and not body["events"]:
                return

    r = threading.Thread(target=reader)
    r.start()
    run_together(*(partial(writer, u) for u in ids))
    done.set()
    r.join(60)
    with db.reader(app)() as s:
        positions = s.scalars(
            select(Event.position).where(Event.org_id == scim.org_id).order_by(Event.position)
        ).all()
    assert seen == positions, (len(seen), len(positions), sorted(set(positions) - set(seen))[:10])
