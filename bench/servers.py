"""Start and stop the servers under test as real processes (gunicorn, 127.0.0.1 only)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 90.0
# gunicorn answers as soon as its first worker is up; the others boot in
# parallel and need about as long again to import the app.
WORKER_BOOT_GRACE_S = 2.0


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def _wait_ready(
    proc: subprocess.Popen[bytes], port: int, path: str, log: Path, statuses: tuple[int, ...]
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"server exited with {proc.returncode}; log {log}:\n{tail}")
        try:
            if _get(port, path) in statuses:
                time.sleep(WORKER_BOOT_GRACE_S)
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready after {READY_TIMEOUT_S}s; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL to the group this harness started."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def running(
    name: str,
    argv: list[str],
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    ready_path: str,
    *,
    cwd: Path = REPO,
    ready_statuses: tuple[int, ...] = (200,),
) -> Iterator[Server]:
    """Run ``argv`` (which must listen on ``port``) until the block ends.

    It is ready when ``ready_path`` answers one of ``ready_statuses``.
    """
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            _wait_ready(proc, port, ready_path, log, ready_statuses)
            yield Server(name, port, log)
        finally:
            _stop(proc)


def scim_server_argv(port: int, *, with_worker: bool = False) -> list[str]:
    """Ours under gunicorn; ``with_worker``: with ``scim-server worker`` beside it, as it
    is deployed (jobs, mail, the planner statistics a sync outgrows)."""
    argv = [str(BIN / "scim-server"), "serve", "--production", "--host", HOST, "--port", str(port)]
    return [*argv, "--with-worker"] if with_worker else argv


def baseline_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.baseline_app", "--host", HOST, "--port", str(port)]
