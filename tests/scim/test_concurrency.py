"""Concurrent writers on real, committed transactions: no lost member, no lost update."""

from __future__ import annotations

import threading
from functools import partial

from sqlalchemy import delete, select

from scim_server.audit.queries import verify
from scim_server.db import db
from scim_server.models import Event
from scim_server.scim.errors import CONFLICT_URN
from tests.support import USER_SCHEMA, Scim
from tests.support.threads import run_together


def test_racing_member_adds_all_land(live):
    """Two clients adding different members to one group at once lose none."""
    app, scim = live
    users = [scim.create_user(f"r{i}@example.com")["id"] for i in range(16)]
    group = scim.create_group("Racers")
    url = f"/scim/v2/Groups/{group['id']}"
    statuses: list[int] = []

    def add(ids: list[str]) -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        for uid in ids:
            resp = client.patch_ops(
                url, {"op": "add", "path": "members", "value": [{"value": uid}]}
            )
            statuses.append(resp.status_code)

    run_together(*(partial(add, users[i::2]) for i in range(2)))
    assert statuses == [204] * 16
    body = scim.get(url).get_json()
    assert sorted(m["value"] for m in body["members"]) == sorted(users)
    assert body["meta"]["version"] == 'W/"17"'


def test_if_match_race_has_one_winner(live):
    """Two replaces with the same If-Match: one succeeds, the other gets 412."""
    app, scim = live
    user = scim.create_user("etag-race@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    results: list[int] = []
    barrier = threading.Barrier(2)

    def put(title: str) -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        body = {"schemas": [USER_SCHEMA], "userName": "etag-race@example.com", "title": title}
        barrier.wait()
        results.append(client.put(url, body, headers={"If-Match": 'W/"1"'}).status_code)

    run_together(partial(put, "A"), partial(put, "B"))
    assert sorted(results) == [200, 412]
    assert scim.get(url).get_json()["meta"]["version"] == 'W/"2"'


def test_patch_if_match_race_has_one_winner(live):
    """Two PATCHes with the same If-Match: one 200, the other 412 (the row read locked)."""
    app, scim = live
    user = scim.create_user("patch-etag-race@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    results: list[int] = []
    barrier = threading.Barrier(2)

    def patch(title: str) -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        op = {"op": "replace", "path": "title", "value": title}
        barrier.wait()
        results.append(client.patch_ops(url, op, headers={"If-Match": 'W/"1"'}).status_code)

    run_together(partial(patch, "A"), partial(patch, "B"))
    assert sorted(results) == [200, 412]
    body = scim.get(url).get_json()
    assert body["meta"]["version"] == 'W/"2"'
    assert body["title"] in ("A", "B")


def test_racing_patches_of_one_user_lose_nothing(live):
    """Four clients PATCHing different attributes of one user at once: every change lands,
    each moves the version once, the audit chain verifies and event positions have no gap."""
    app, scim = live
    user = scim.create_user("patch-race@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    statuses: list[int] = []
    barrier = threading.Barrier(4)
    attributes = ("title", "displayName", "nickName", "userType")

    def patch(attribute: str) -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        barrier.wait()
        for i in range(3):
            op = {"op": "replace", "path": attribute, "value": f"{attribute}-{i}"}
            statuses.append(client.patch_ops(url, op).status_code)

    run_together(*(partial(patch, a) for a in attributes))
    assert statuses == [200] * 12
    body = scim.get(url).get_json()
    assert {a: body[a] for a in attributes} == {a: f"{a}-2" for a in attributes}
    assert body["meta"]["version"] == 'W/"13"'
    with db.reader(app)() as session:
        assert verify(session, scim.org_id).ok
        positions = session.scalars(
            select(Event.position).where(Event.org_id == scim.org_id).order_by(Event.position)
        ).all()
        assert positions == list(range(1, 14))
        session.execute(delete(Event).where(Event.org_id == scim.org_id))
        session.commit()


def test_retried_create_gets_409_not_a_twin(live):
    """An IdP re-sending the same create at the same time gets one 201 and one 409."""
    app, scim = live
    results: list[int] = []
    barrier = threading.Barrier(2)

    def create() -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        barrier.wait()
        resp = client.post(
            "/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "twin@example.com"}
        )
        results.append(resp.status_code)
        bodies[resp.status_code] = resp.get_json()

    bodies: dict[int, dict] = {}
    run_together(create, create)
    assert sorted(results) == [201, 409]
    assert scim.get("/scim/v2/Users").get_json()["totalResults"] == 1
    # The loser, whether it lost at the check or at the insert, names the winner.
    assert bodies[409][CONFLICT_URN]["id"] == bodies[201]["id"]


def test_racing_creates_and_deletes_keep_totals_without_deadlock(live):
    """Joiners and leavers at once, some re-using a leaver's person contact: every
    request succeeds (no deadlock between the audit head and the resource count)
    and totalResults is exact."""
    app, scim = live
    statuses: list[int] = []
    kept: list[str] = []
    barrier = threading.Barrier(4)

    def churn(worker: int) -> None:
        client = Scim(app.test_client(), scim.token, scim.org_id)
        barrier.wait()
        for i in range(6):
            email = f"w{worker}-{i % 2}@example.com"
            body = {
                "schemas": [USER_SCHEMA],
                "userName": f"w{worker}-{i}@example.com",
                "emails": [{"value": email, "type": "work", "primary": True}],
            }
            resp = client.post("/scim/v2/Users", body)
            statuses.append(resp.status_code)
            if resp.status_code != 201:
                continue
            if i < 4:
                # a leaver: its contact stays behind, for the next joiner with that e-mail
                statuses.append(
                    client.delete(f"/scim/v2/Users/{resp.get_json()['id']}").status_code
                )
            else:
                kept.append(resp.get_json()["id"])

    run_together(*(partial(churn, w) for w in range(4)))
    assert sorted(set(statuses)) == [201, 204], statuses
    body = scim.get("/scim/v2/Users?count=100&attributes=id").get_json()
    assert body["totalResults"] == len(kept) == 8
    assert sorted(r["id"] for r in body["Resources"]) == sorted(kept)
