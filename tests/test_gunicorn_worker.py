"""The gunicorn worker of ``serve --production``: gthread, its heartbeat at most once a second."""

from __future__ import annotations

from scim_server import config
from scim_server.gunicorn_worker import ThreadWorker


class _Tmp:
    def __init__(self) -> None:
        self.touched = 0

    def notify(self) -> None:
        self.touched += 1


def _worker(timeout: float) -> ThreadWorker:
    worker = ThreadWorker.__new__(ThreadWorker)  # no arbiter, no sockets: notify alone
    worker.tmp = _Tmp()
    worker.timeout = timeout
    return worker


def test_the_heartbeat_is_written_at_most_once_a_second(monkeypatch):
    """Many wake-ups within a second write the heartbeat file once; the next second, again."""
    clock = [1000.0]
    monkeypatch.setattr("scim_server.gunicorn_worker.time.monotonic", lambda: clock[0])
    worker = _worker(15.0)  # the arbiter's 30 s, halved
    for _ in range(50):
        worker.notify()
        clock[0] += 0.01
    assert worker.tmp.touched == 1
    clock[0] += 0.6
    worker.notify()
    assert worker.tmp.touched == 2


def test_a_short_timeout_gets_a_heartbeat_four_times_within_it(monkeypatch):
    """With a worker timeout of 1 s the heartbeat comes every 0.25 s; with none, every time."""
    clock = [0.0]
    monkeypatch.setattr("scim_server.gunicorn_worker.time.monotonic", lambda: clock[0])
    short = _worker(1.0)
    for _ in range(10):
        short.notify()
        clock[0] += 0.25
    assert short.tmp.touched == 10
    unbounded = _worker(0)
    for _ in range(3):
        unbounded.notify()
    assert unbounded.tmp.touched == 3


def test_gthread_names_ours_and_other_classes_stay_gunicorn_s(monkeypatch):
    """SCIM_WORKER_CLASS unset or "gthread": ours; "sync" (or a class path): as given."""
    monkeypatch.delenv("SCIM_WORKER_CLASS", raising=False)
    assert config.server_config()["worker_class"] == config.GTHREAD_WORKER
    monkeypatch.setenv("SCIM_WORKER_CLASS", "gthread")
    assert config.server_config()["worker_class"] == config.GTHREAD_WORKER
    monkeypatch.setenv("SCIM_WORKER_CLASS", "sync")
    assert config.server_config()["worker_class"] == "sync"
