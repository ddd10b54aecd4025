"""``scim-server worker``'s loop outlives an unexpected error in one of its duties.

One process serves every organization's jobs, mail and webhooks: an error in one duty
(a bug, a row the database refuses) that left ``serve`` ended them all, and a restarted
worker met the same row again. It is logged, the round's other duties still run, and the
next round waits the poll interval (a duty failing each round does not spin)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import OperationalError

from scim_server.services import jobs
from scim_server.worker import Worker
from tests.support.admin_api import person
from tests.support.webhooks import subscribe, webhook_receiver, webhook_worker


class StopAtFirstWait(threading.Event):
    """The worker's stop event: its first idle wait ends the loop, and is noted."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.set()
        return True


def _broken_claim(*args, **kwargs):
    raise RuntimeError("a bug in the jobs duty")


def test_a_failing_duty_is_logged_and_the_round_goes_on(app, scim, admin, monkeypatch, caplog):
    """The jobs duty raises: serve logs it, sends the due webhook (a later duty) in the same
    round, then waits the poll interval instead of starting the next round at once."""
    monkeypatch.setattr(jobs, "claim", _broken_claim)
    stop = StopAtFirstWait()
    with webhook_receiver() as receiver:
        subscribe(admin, receiver.url)
        person(scim, "ann@example.com")
        worker = webhook_worker(app, stop=stop)
        worker.serve(poll_interval=7)
        arrived = [r.json["type"] for r in receiver.received]
    assert "user.created" in arrived
    assert stop.waits == [7]  # work was done, but a duty failed: no hot loop
    assert worker.errors == 1 and not worker.serving
    assert "jobs failed; going on" in caplog.text and "a bug in the jobs duty" in caplog.text


def test_a_duty_failing_every_round_waits_between_rounds(app, monkeypatch):
    """Each round with a failure is followed by the poll interval's wait."""
    monkeypatch.setattr(jobs, "claim", _broken_claim)
    waits: list[float | None] = []

    class StopAtThirdWait(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout)
            if len(waits) == 3:
                self.set()
            return True

    from scim_server.db import db

    worker = Worker(db.writer(app), stop=StopAtThirdWait())
    worker.serve(poll_interval=5)
    assert waits == [5, 5, 5] and worker.errors == 3


def test_a_database_outage_still_ends_the_round(app, monkeypatch):
    """An outage is not one duty's error: the round ends and the loop backs off (doubling)."""
    from scim_server.db import db

    def down(*args, **kwargs):
        raise OperationalError("SELECT jobs", {}, Exception("connection refused"))

    monkeypatch.setattr(jobs, "claim", down)
    stop = StopAtFirstWait()
    worker = Worker(db.writer(app), stop=stop)
    worker.serve(poll_interval=5)
    assert stop.waits == [10] and worker.errors == 0


def test_run_once_alone_raises_the_error(app, monkeypatch):
    """Outside ``serve`` (a test, ``worker --once``) the error is raised, not hidden."""
    from scim_server.db import db

    monkeypatch.setattr(jobs, "claim", _broken_claim)
    with pytest.raises(RuntimeError, match="a bug in the jobs duty"):
        Worker(db.writer(app)).run_once()
