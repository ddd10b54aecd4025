"""The gunicorn worker of ``serve --production``: gthread, its heartbeat at most once a second,
new connections left to a worker with room."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

import pytest

from scim_server import config
from scim_server.gunicorn_worker import ThreadWorker, accept_limit
from scim_server.scim import admission
from tests.support import USER_SCHEMA
from tests.test_production import Server, _setup_database, call


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


class _App:
    def __init__(self, slots: int | None) -> None:
        self.extensions = {} if slots is None else {admission.EXTENSION: admission.Gate(slots, 1)}


def test_a_worker_accepts_below_its_scim_gate_or_its_threads():
    """A gated worker (SQLite: one SCIM request at a time) takes a connection only when it
    runs none; without a gate, while a thread is free; an app that is not ours, likewise."""
    assert accept_limit(_App(1), 4) == 1
    assert accept_limit(_App(2), 4) == 2
    assert accept_limit(_App(8), 4) == 4
    assert accept_limit(_App(0), 4) == 4
    assert accept_limit(_App(None), 4) == 4
    assert accept_limit(object(), 1) == 1


# -- a real server -----------------------------------------------------------------------


def _workers(master: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def _holder(server_port: int, client_port: int, workers: list[int]) -> int | None:
    """The worker whose descriptors include the server's end of the client's connection."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == server_port and (
            int(remote.split(":")[1], 16) == client_port
        ):
            inodes.add(f"socket:[{inode}]")
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return pid
    return None


def _busy_connection(port: int, token: str, workers: list[int]) -> tuple[socket.socket, bytes, int]:
    """A connection whose POST is being read: its headers and part of its body are sent, so
    the worker that accepted it runs that request until the rest comes. The rest, and the
    connection's worker."""
    body = json.dumps({"schemas": [USER_SCHEMA], "userName": f"u{time.monotonic_ns()}"})
    conn = socket.create_connection(("127.0.0.1", port), timeout=20)
    head = (
        f"POST /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/scim+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    conn.sendall(head.encode() + body[:5].encode())
    deadline = time.monotonic() + 10
    while (pid := _holder(port, conn.getsockname()[1], workers)) is None:
        assert time.monotonic() < deadline, "the connection was not accepted"
        time.sleep(0.02)
    time.sleep(0.3)  # its bytes read by the worker's loop: a running request, past its grace
    return conn, body[5:].encode(), pid


def _cpu_seconds(pids: list[int]) -> float:
    """The processes' user and system CPU so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_until_both_accept(port: int, workers: list[int]) -> None:
    """Until each worker has accepted a connection (a worker still loading the app accepts
    none: the other would take every connection, rightly)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while seen != set(workers):
        assert time.monotonic() < deadline, f"only {seen} of {workers} accept"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            for _ in range(50):
                pid = _holder(port, conn.getsockname()[1], workers)
                if pid is not None:
                    seen.add(pid)
                    break
                time.sleep(0.01)
        time.sleep(0.05)
    time.sleep(0.2)  # past the grace of those connections


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
@pytest.mark.parametrize("gate", ["one SCIM request a worker", "no gate"])
def test_a_busy_worker_leaves_new_connections_to_an_idle_one(tmp_path, gate):
    """SQLite, two workers: while one runs a request, the next connection goes to the
    other (gthread alone puts it on either: this test without ``ThreadWorker``'s accept
    failed in two runs of three), and a kept-alive client stays where it landed; also
    without the SCIM gate (PostgreSQL's default), where the busy worker has threads to
    spare but the other has nothing running. With every worker busy, a new connection is
    still taken."""
    url = f"sqlite:///{tmp_path / 'spread.db'}"
    token, _limited = _setup_database(url)
    # A hold long enough that the idle worker takes the connection on a loaded machine.
    env = {"SCIM_ACCEPT_HOLD_MS": "1500"}
    if gate == "no gate":
        env["SCIM_API_CONCURRENCY"] = "0"
    server = Server("spread", url, tmp_path, **env)
    try:
        server.wait_ready(time.monotonic() + 30)
        workers = _workers(server.proc.pid)
        assert len(workers) == 2
        _wait_until_both_accept(server.port, workers)
        for _ in range(3):
            first, first_rest, first_pid = _busy_connection(server.port, token, workers)
            second, second_rest, second_pid = _busy_connection(server.port, token, workers)
            assert first_pid != second_pid
            # Every worker busy: a worker still takes the next connection after its hold.
            started = time.monotonic()
            assert call(server.port, "GET", "/healthz").status == 200
            assert time.monotonic() - started < 1.5 + 2.5
            for conn, rest in ((first, first_rest), (second, second_rest)):
                with conn:
                    conn.sendall(rest)
                    assert conn.recv(64).startswith(b"HTTP/1.1 201")
        # Idle, the workers wait in their poller: no loop spinning on an old connection's
        # grace or hold.
        time.sleep(0.3)
        before = _cpu_seconds(workers)
        time.sleep(1.0)
        assert _cpu_seconds(workers) - before < 0.2
        # Connections that send nothing (a browser's preconnect, a slow or hostile client)
        # are not running requests: with one on each worker and more, a request is served
        # at once, not after gthread's 5 s wait for their first bytes.
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        try:
            time.sleep(0.3)
            started = time.monotonic()
            assert call(server.port, "GET", "/scim/v2/Users", token).status == 200
            assert time.monotonic() - started < 2.5
        finally:
            for conn in idle:
                conn.close()
    finally:
        server.terminate()
