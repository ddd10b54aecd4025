"""Running it like production: database outages, gunicorn settings, and two real servers.

The end-to-end tests start a private PostgreSQL (initdb into a temporary
directory, its own port and socket directory) and two independent
``scim-server serve --production`` instances (2 gunicorn workers each) on it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from scim_server import cli, create_app, gunicorn_conf
from scim_server.audit.signing import new_private_pem
from scim_server.db import db
from tests.support import USER_SCHEMA

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SECRET_KEY = "production-test-secret-key"
AUDIT_SIGNING_KEY = new_private_pem().decode()  # both servers sign with the same key
# Nothing listens on port 1: connecting is refused at once, like a stopped database.
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/scim"


# -- database outage, in process --------------------------------------------------------


@pytest.fixture
def down_app():
    app = create_app({"TESTING": True, "DATABASE_URL": UNREACHABLE, "DB_CONNECT_TIMEOUT": 2})
    yield app
    db.engine(app).dispose()


def test_scim_requests_get_503_scim_error_when_the_database_is_down(down_app):
    """Reads and writes answer 503 with a SCIM Error and Retry-After, never a 500 or HTML."""
    client = down_app.test_client()
    headers = {"Authorization": "Bearer scim_whatever", "Content-Type": "application/scim+json"}
    for resp in (
        client.get("/scim/v2/Users", headers=headers),
        client.post(
            "/scim/v2/Users", headers=headers, json={"schemas": [USER_SCHEMA], "userName": "a"}
        ),
    ):
        assert resp.status_code == 503
        assert resp.mimetype == "application/scim+json"
        assert resp.headers["Retry-After"] == "5"
        body = resp.get_json()
        assert body["schemas"] == [ERROR_SCHEMA]
        assert body["status"] == "503"
    # Discovery needs no database.
    assert client.get("/scim/v2/ServiceProviderConfig").status_code == 200


def test_readyz_and_other_routes_get_503_when_the_database_is_down(down_app):
    """/readyz tells the load balancer; a non-SCIM route gets a JSON 503; /healthz stays up."""

    @down_app.get("/probe")
    def probe() -> str:
        db.session.execute(text("SELECT 1"))
        return "ok"

    client = down_app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["Retry-After"] == "5"
    probe_resp = client.get("/probe")
    assert probe_resp.status_code == 503
    assert probe_resp.get_json()["error"] == "Service Unavailable"
    assert probe_resp.headers["Retry-After"] == "5"
    assert client.get("/healthz").status_code == 200


# -- gunicorn settings -------------------------------------------------------------------


def test_gunicorn_settings_come_from_the_environment(monkeypatch):
    import importlib

    for name, value in {
        "SCIM_WORKERS": "3",
        "SCIM_THREADS": "4",
        "SCIM_TIMEOUT": "20",
        "SCIM_GRACEFUL_TIMEOUT": "7",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        conf = importlib.reload(gunicorn_conf).settings()
    finally:
        monkeypatch.undo()
        importlib.reload(gunicorn_conf)
    assert (conf["workers"], conf["threads"], conf["timeout"], conf["graceful_timeout"]) == (
        3,
        4,
        20,
        7,
    )
    assert callable(conf["child_exit"]) and callable(conf["on_starting"])


def test_metrics_dir_is_created_or_emptied_and_dead_workers_are_marked(monkeypatch, tmp_path):
    """Without PROMETHEUS_MULTIPROC_DIR a fresh one is made; a given one loses stale files."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(gunicorn_conf, "_state", {"prepared": False, "created": None})
    made = gunicorn_conf.prepare_metrics_dir()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made and Path(made).is_dir()
    gunicorn_conf.on_exit(None)
    assert not Path(made).exists()

    monkeypatch.setattr(gunicorn_conf, "_state", {"prepared": False, "created": None})
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    (tmp_path / "counter_999.db").write_bytes(b"stale")
    assert gunicorn_conf.prepare_metrics_dir() == str(tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"")
    gunicorn_conf.child_exit(None, type("Worker", (), {"pid": 4242})())
    assert list(tmp_path.iterdir()) == []


# -- end to end: a private PostgreSQL and two gunicorn servers --------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster owned by the test (run as ``postgres`` when we are root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = _free_port()
        self.prefix: list[str] = []
        owner = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="scim-pg-"))
        self.data = self.dir / "data"
        if owner is not None:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 30) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
            "-o", options, "-w", "-t", "20", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "20", "stop"
        )

    def cleanup(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any


def call(port: int, method: str, path: str, token: str | None = None, body: Any = None) -> Reply:
    headers = {"Content-Type": "application/scim+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers, method=method)
    try:
        with _opener.open(req, timeout=15) as resp:
            status, got, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, got, raw = err.code, err.headers, err.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Reply(status, got, parsed)


class Server:
    """``scim-server serve --production`` in its own process group."""

    def __init__(self, name: str, db_url: str, workdir: Path, **env: str) -> None:
        self.port = _free_port()
        self.log = workdir / f"{name}.log"
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("SCIM_", "PROMETHEUS_"))
        }
        environ.update(
            SCIM_DATABASE_URL=db_url,
            SCIM_ENV="production",
            SCIM_BASE_URL=f"http://127.0.0.1:{self.port}",
            SCIM_SECRET_KEY=SECRET_KEY,
            SCIM_AUDIT_SIGNING_KEY=AUDIT_SIGNING_KEY,
            SCIM_WORKERS="2",
            SCIM_GRACEFUL_TIMEOUT="5",
            SCIM_LOG_FORMAT="json",
            **env,
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scim_server",
                    "serve",
                    "--production",
                    "--port",
                    str(self.port),
                ],
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}"
                )
            try:
                if call(self.port, "GET", "/healthz").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"server not ready in time:\n{self.log.read_text()[-3000:]}")

    def terminate(self, timeout: float = 15) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


@dataclass
class Cluster:
    pg: PrivatePostgres
    a: Server
    b: Server
    metrics_dir: Path
    token: str  # organization "acme": no limit
    limited_token: str  # organization "limited": 10 requests per minute per token


def _setup_database(url: str) -> tuple[str, str]:
    """Migrate and create the organizations and tokens through the command line, in process."""
    runner = CliRunner(env={"SCIM_DATABASE_URL": url, "SCIM_AUDIT_KEY": SECRET_KEY})

    def run(*args: str) -> str:
        result = runner.invoke(cli.main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output.strip()

    run("db", "upgrade")
    run("org", "create", "acme")
    token = run("token", "create", "--org", "acme", "--name", "e2e")
    run("org", "create", "limited")
    run("org", "set-rate-limit", "limited", "10")
    limited = run("token", "create", "--org", "limited")
    return token, limited


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql"
        )
    pg = PrivatePostgres(bin_dir)
    workdir = Path(tempfile.mkdtemp(prefix="scim-e2e-"))
    servers: list[Server] = []
    try:
        pg.init()
        pg.start()
        token, limited = _setup_database(pg.url)
        metrics_dir = workdir / "metrics"
        # A: a given metrics directory; B: serve --production makes its own.
        servers.append(Server("a", pg.url, workdir, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)))
        servers.append(Server("b", pg.url, workdir))
        deadline = time.monotonic() + 30
        for server in servers:
            server.wait_ready(deadline)
        yield Cluster(pg, servers[0], servers[1], metrics_dir, token, limited)
    finally:
        for server in servers:
            server.terminate()
        pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def test_state_is_shared_between_instances(cluster):
    """A user created through one instance is immediately visible through the other."""
    user = {"schemas": [USER_SCHEMA], "userName": "bjensen@example.com"}
    created = call(cluster.a.port, "POST", "/scim/v2/Users", cluster.token, user)
    assert created.status == 201, created.body
    user_id = created.body["id"]
    seen = call(cluster.b.port, "GET", f"/scim/v2/Users/{user_id}", cluster.token)
    assert seen.status == 200
    assert seen.body["userName"] == "bjensen@example.com"
    query = "/scim/v2/Users?filter=userName%20eq%20%22BJENSEN@example.com%22"
    assert call(cluster.b.port, "GET", query, cluster.token).body["totalResults"] == 1
    conflict = call(cluster.b.port, "POST", "/scim/v2/Users", cluster.token, user)
    assert conflict.status == 409


def test_rate_limit_is_shared_across_processes_and_instances(cluster):
    """The organization's 10 requests per minute are counted across all four workers together."""
    if time.time() % 60 > 54:  # do not straddle a window boundary
        time.sleep(60 - time.time() % 60 + 0.2)
    ports = [cluster.a.port, cluster.b.port]
    replies = [
        call(ports[i % 2], "GET", "/scim/v2/Users", cluster.limited_token) for i in range(12)
    ]
    assert [r.status for r in replies] == [200] * 10 + [429, 429]
    for refused in replies[10:]:
        assert refused.body["status"] == "429"
        assert refused.body["schemas"] == [ERROR_SCHEMA]
        assert "10 requests per minute" in refused.body["detail"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another organization's token is not affected.
    assert call(cluster.a.port, "GET", "/scim/v2/Users", cluster.token).status == 200


def _users_total(port: int) -> float:
    reply = call(port, "GET", "/metrics")
    assert reply.status == 200
    total = 0.0
    for line in str(reply.body).splitlines():
        wanted = (
            "scim_requests_total{",
            'endpoint="/scim/v2/Users"',
            'method="GET"',
            'status="200"',
        )
        if all(part in line for part in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_add_up_every_worker(cluster):
    """/metrics from any worker counts the requests every worker served (multiprocess mode)."""
    for server in (cluster.a, cluster.b):
        before = _users_total(server.port)
        for _ in range(8):
            assert call(server.port, "GET", "/scim/v2/Users", cluster.token).status == 200
        assert _users_total(server.port) - before == 8
    assert list(cluster.metrics_dir.glob("counter_*.db"))  # A used the directory it was given


def test_logs_are_json_lines(cluster):
    """SCIM_LOG_FORMAT=json: one JSON object per request, with the request id."""
    lines = [
        json.loads(line) for line in cluster.a.log.read_text().splitlines() if line.startswith("{")
    ]
    paths = {doc.get("path") for doc in lines}
    assert "/scim/v2/Users" in paths
    assert all(doc.get("request_id") for doc in lines if doc.get("path"))


def test_503_while_the_database_is_down_then_recovery(cluster):
    """Stopping PostgreSQL gives 503 SCIM errors; starting it again gives 200 without a restart."""
    cluster.pg.stop()
    try:
        for port in (cluster.a.port, cluster.b.port):
            down = call(port, "GET", "/scim/v2/Users", cluster.token)
            assert down.status == 503
            assert down.body["schemas"] == [ERROR_SCHEMA]
            assert down.body["status"] == "503"
            assert down.headers["Retry-After"] == "5"
            assert call(port, "GET", "/readyz").status == 503
            assert call(port, "GET", "/healthz").status == 200
    finally:
        cluster.pg.start()
    deadline = time.monotonic() + 20
    for port in (cluster.a.port, cluster.b.port):
        while True:
            reply = call(port, "GET", "/scim/v2/Users", cluster.token)
            if reply.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert reply.status == 200, reply.body
        assert reply.body["totalResults"] == 1  # the data survived
        assert call(port, "GET", "/readyz").status == 200
    assert cluster.a.proc.poll() is None and cluster.b.proc.poll() is None


def test_sigterm_stops_gracefully(cluster):
    """SIGTERM: gunicorn lets the workers finish and exits 0."""
    assert cluster.b.terminate() == 0
    assert "Shutting down" in cluster.b.log.read_text()
    assert call(cluster.a.port, "GET", "/scim/v2/Users", cluster.token).status == 200


def test_a_worker_freezes_what_it_loaded_before_serving():
    """gunicorn calls post_worker_init once the worker has loaded the app: what is alive then
    is frozen, out of every later full collection's walk; what a request makes is not."""
    assert gunicorn_conf.settings()["post_worker_init"] is gunicorn_conf.post_worker_init
    script = (
        "import gc\n"
        "from scim_server import create_app, gunicorn_conf\n"
        "app = create_app({'TESTING': True, 'DATABASE_URL': 'sqlite://'})\n"
        "assert gc.get_freeze_count() == 0\n"
        "gunicorn_conf.post_worker_init(None)\n"
        "frozen = gc.get_freeze_count()\n"
        "made = [{} for _ in range(1000)]\n"
        "print(frozen, gc.get_freeze_count(), len(gc.get_objects(generation=2)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    frozen, after, tracked = map(int, done.stdout.split())
    # The app's modules, engine and settings: tens of thousands of objects, all frozen;
    # the oldest generation is then nearly empty, and a request's objects are not frozen.
    assert frozen > 50_000 and after == frozen and tracked < frozen // 10


def test_gunicorn_runs_gthread_workers_by_default():
    """A streamed response is not killed at the worker timeout: gthread heartbeats on its own."""
    from gunicorn.util import load_class
    from gunicorn.workers.gthread import ThreadWorker

    worker_class = load_class(gunicorn_conf.settings()["worker_class"])
    assert issubclass(worker_class, ThreadWorker)
