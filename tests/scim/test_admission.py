"""At most SCIM_API_CONCURRENCY SCIM requests at once in a worker (``scim.admission``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import func, select

from scim_server.config import ConfigError, load_config
from scim_server.db import db
from scim_server.models import AuditEvent, User
from scim_server.scim.admission import EXTENSION, Gate, default_slots
from tests.support import USER_SCHEMA, Scim, assert_error

BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@pytest.fixture
def gate(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Gate:
    """One turn, and a short wait for it."""
    one = Gate(1, 0.05)
    monkeypatch.setitem(app.extensions, EXTENSION, one)
    return one


@contextmanager
def held_elsewhere(gate: Gate) -> Iterator[None]:
    """Another thread holds the worker's turn until the block ends (a slow request)."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        assert gate.enter()
        taken.set()
        done.wait(10)
        gate.leave()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(5)
    try:
        yield
    finally:
        done.set()
        thread.join(5)


def _counts(app: Flask, org_id: str) -> tuple[int, int]:
    with db.reader(app)() as s:
        users = s.scalar(select(func.count()).select_from(User).where(User.org_id == org_id))
        events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.org_id == org_id)
        )
    return users or 0, events or 0


def test_a_request_that_finds_no_turn_gets_503_and_changes_nothing(app, scim, gate):
    """A create that waited its limit out is a SCIM 503 with Retry-After; no user, no event."""
    before = _counts(app, scim.org_id)
    with held_elsewhere(gate):
        resp = scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "late@x"})
        assert_error(resp, 503, None)
        assert resp.headers["Retry-After"] == "1"
        assert "busy" in resp.get_json()["detail"]
        assert_error(scim.get("/scim/v2/Users?count=1"), 503, None)
    assert _counts(app, scim.org_id) == before
    # The turn came back: the same create now succeeds, and the gate is free again.
    assert (
        scim.post("/scim/v2/Users", {"schemas": [USER_SCHEMA], "userName": "late@x"}).status_code
        == 201
    )
    assert gate.enter()
    gate.leave()


def test_every_request_gives_its_turn_back(scim, gate):
    """Success, a SCIM error, a refused token: after each, the next request gets the turn."""
    user = scim.create_user("turns@x")
    assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 200
    assert_error(scim.get("/scim/v2/Users/missing"), 404, None)
    assert_error(scim.get("/scim/v2/Users?filter=userName eq"), 400, "invalidFilter")
    stranger = Scim(scim.client, "not-a-token", scim.org_id)
    assert stranger.get("/scim/v2/Users").status_code == 401
    with held_elsewhere(gate):  # the holder gets the turn at once: nothing kept it
        pass


def test_bulk_operations_run_in_their_request_turn(scim, gate):
    """A Bulk request's operations are requests of their own in its thread: they must not
    wait for the turn the Bulk request holds (they would, and fail, without re-entry)."""
    body = {
        "schemas": [BULK_SCHEMA],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": f"u{i}",
             "data": {"schemas": [USER_SCHEMA], "userName": f"bulk{i}@x"}}
            for i in range(3)
        ],
    }  # fmt: skip
    resp = scim.post("/scim/v2/Bulk", body)
    assert resp.status_code == 200
    assert [op["status"] for op in resp.get_json()["Operations"]] == ["201"] * 3
    with held_elsewhere(gate):
        pass


def test_discovery_is_gated_too(client, gate):
    """Unauthenticated discovery is SCIM traffic as well: it waits for a turn like the rest."""
    with held_elsewhere(gate):
        assert_error(client.get("/scim/v2/ServiceProviderConfig"), 503, None)
    assert client.get("/scim/v2/ServiceProviderConfig").status_code == 200


def test_zero_means_no_gate():
    """SCIM_API_CONCURRENCY=0: no bound, every request enters at once."""
    gate = Gate(0, 0.0)
    assert all(gate.enter() for _ in range(100))


def test_the_settings_refuse_a_negative_count(monkeypatch, tmp_path):
    monkeypatch.setenv("SCIM_API_CONCURRENCY", "-1")
    with pytest.raises(ConfigError, match="SCIM_API_CONCURRENCY"):
        load_config(str(tmp_path))


@pytest.mark.parametrize("slots", [1, 3])
def test_a_gate_of_n_admits_n_threads_and_no_more(slots):
    """N turns: N threads hold one each; the next waits its limit out; a freed one is taken."""
    gate = Gate(slots, 0.05)
    entered = threading.Barrier(slots + 1)
    release = threading.Event()

    def hold() -> None:
        assert gate.enter()
        entered.wait(5)
        release.wait(5)
        gate.leave()

    threads = [threading.Thread(target=hold) for _ in range(slots)]
    for t in threads:
        t.start()
    entered.wait(5)
    assert not gate.enter()  # this thread holds none, and none is free
    release.set()
    for t in threads:
        t.join(5)
    assert gate.enter()
    assert gate.enter()  # re-entrant in the holding thread
    gate.leave()
    gate.leave()


@pytest.mark.parametrize(
    ("url", "slots"),
    [
        ("sqlite:///instance/scim.db", 1),
        ("sqlite://", 1),
        ("postgresql+psycopg://scim@127.0.0.1:5432/scim", 0),
        ("postgresql+psycopg:///scim", 0),
        ("postgresql+psycopg://scim@db.internal:5432/scim", 0),
    ],
)
def test_the_default_gates_sqlite_only(url, slots):
    """SQLite's work is the worker's own CPU: one request at a time. PostgreSQL's waits
    (WAL flush, round trips) are time other threads fill: no gate."""
    assert default_slots(url) == slots


def test_the_setting_overrides_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("SCIM_API_CONCURRENCY", raising=False)
    assert load_config(str(tmp_path))["SCIM_API_CONCURRENCY"] is None
    monkeypatch.setenv("SCIM_API_CONCURRENCY", "3")
    assert load_config(str(tmp_path))["SCIM_API_CONCURRENCY"] == 3
    monkeypatch.setenv("SCIM_API_CONCURRENCY", "0")
    assert load_config(str(tmp_path))["SCIM_API_CONCURRENCY"] == 0


def test_turns_go_to_waiters_in_arrival_order():
    """A turn given back goes to the longest waiter, never to a later one."""
    gate = Gate(1, 5.0)
    assert gate.enter()  # this thread holds the turn
    order: list[int] = []
    queued = [threading.Event() for _ in range(4)]

    def wait_turn(i: int) -> None:
        queued[i].set()
        assert gate.enter()
        order.append(i)
        gate.leave()

    threads = []
    for i in range(4):
        t = threading.Thread(target=wait_turn, args=(i,))
        t.start()
        queued[i].wait(5)
        # Queued once it waits on its own lock: wait until the gate has it.
        for _ in range(500):
            if gate.waiting == i + 1:
                break
            threading.Event().wait(0.002)
        threads.append(t)
    assert gate.waiting == 4
    gate.leave()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3]


def test_a_waiter_that_gives_up_leaves_the_queue():
    """A timed-out waiter is no longer queued: the turn it would have had goes on."""
    gate = Gate(1, 0.02)
    assert gate.enter()
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(gate.enter()))
    t.start()
    t.join(5)
    assert result == [False]
    assert gate.waiting == 0
    gate.leave()
    assert gate.enter()  # free again
    gate.leave()
