"""A big audit export read by a slow client through a real gunicorn (issue 15, item 12).

Seeds an organization with N chained audit events in a SQLite file, starts
``scim-server serve --production`` on 127.0.0.1 with a short worker timeout,
and reads ``GET /api/v1/audit/export`` at a fixed rate. Reports how many events
arrived and how the body ended: ``manifest`` (complete), ``error`` (an explicit
error record) or ``cut`` (the connection ended without either: the defect).

    python -m bench.export_slow_client --events 200000 --rate 4 --timeout 30
    python -m bench.export_slow_client --worker-class sync   # the old setting, for comparison
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SECRET_KEY = "bench-export-secret-key-0123456789abcdef"


def seed(db_url: str, events: int) -> tuple[str, str]:
    """An organization with ``events`` chained audit events; returns (org id, admin token)."""
    from sqlalchemy import insert, select

    from scim_server import create_app
    from scim_server.audit import chain
    from scim_server.db import db
    from scim_server.migrate import upgrade
    from scim_server.models import AuditEvent, AuditHead
    from scim_server.services.organizations import create_organization
    from scim_server.services.tokens import create_token

    # The audit key the server derives from its SCIM_SECRET_KEY.
    app = create_app({"DATABASE_URL": db_url, "AUDIT_KEY": SECRET_KEY})
    engine = db.engine(app)
    upgrade(engine)
    writer = db.writer(app)
    with writer() as session:
        org = create_organization(session, f"export-{uuid.uuid4().hex[:8]}")
        _token, secret = create_token(session, org.id, "bench", kind="admin")
        org_id = org.id
    with writer() as session, session.begin():
        head = session.scalar(select(AuditHead).where(AuditHead.org_id == org_id))
        seq, prev = (head.seq, head.hash) if head else (0, chain.genesis_hash(org_id))
        start = datetime.now(UTC) - timedelta(days=30)
        rows: list[dict[str, Any]] = []
        for i in range(events):
            seq += 1
            user_id = str(uuid.UUID(int=i))
            row = {name: None for name in chain.FIELDS}
            row.update(
                org_id=org_id,
                seq=seq,
                occurred_at=start + timedelta(milliseconds=10 * i),
                received_at=start + timedelta(milliseconds=10 * i),
                actor_type="token",
                actor_id="9f1c2d3e-0000-4000-8000-000000000001",
                actor_name="Entra ID provisioning",
                source_ip="10.1.2.3",
                user_agent="Azure Active Directory SCIM Client",
                request_id=f"req-{i:08d}",
                action="user.create",
                resource_type="User",
                resource_id=user_id,
                external_id=f"ext-{i:08d}",
                user_name=f"person{i:07d}@example.com",
                outcome="success",
                status=201,
                changes={
                    "userName": {"after": f"person{i:07d}@example.com"},
                    "active": {"after": True},
                    "displayName": {"after": f"Person {i}"},
                },
                prev_hash=prev,
            )
            row["hash"] = prev = chain.event_hash(SimpleNamespace(**row))  # type: ignore[arg-type]
            rows.append(row)
            if len(rows) == 5000:
                session.execute(insert(AuditEvent), rows)
                rows = []
        if rows:
            session.execute(insert(AuditEvent), rows)
        values = {"seq": seq, "hash": prev}
        if head is None:
            genesis = chain.genesis_hash(org_id)
            session.add(AuditHead(org_id=org_id, base_seq=0, base_hash=genesis, **values))
            session.flush()
            head = session.get(AuditHead, org_id)
        assert head is not None
        head.seq, head.hash = seq, prev
        head.signature = chain.head_signature(
            chain.signing_key(session), org_id, seq, prev, head.base_seq, head.base_hash
        )
    engine.dispose()
    return org_id, secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``scim-server serve --production`` on 127.0.0.1, in its own process group."""

    def __init__(
        self, db_url: str, log: Path, *, timeout: int, worker_class: str | None = None
    ) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_", "PROMETHEUS_"))}
        env.update(
            SCIM_DATABASE_URL=db_url,
            SCIM_ENV="production",
            SCIM_BASE_URL=f"http://127.0.0.1:{self.port}",
            SCIM_SECRET_KEY=SECRET_KEY,
            SCIM_AUDIT_SIGNING_KEY=_signing_key(),
            SCIM_WORKERS="1",
            SCIM_TIMEOUT=str(timeout),
            SCIM_GRACEFUL_TIMEOUT="5",
        )
        if worker_class:
            env["SCIM_WORKER_CLASS"] = worker_class
        self.log = log
        with log.open("wb") as out:
            command = [sys.executable, "-m", "scim_server", "serve", "--production"]
            self.proc = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server not ready in 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@dataclass
class Outcome:
    status: int
    events: int
    bytes: int
    ended_with: str  # manifest | error | cut
    seconds: float
    manifest_count: int | None


def slow_read(port: int, token: str, rate_mb_s: float, fmt: str = "ndjson") -> Outcome:
    """Read the export at ``rate_mb_s`` through a small receive window; classify its end."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    assert conn.sock is not None
    # A small window: the server's writes wait for this client, as over a slow link.
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    conn.request(
        "GET", f"/api/v1/audit/export?format={fmt}", headers={"Authorization": f"Bearer {token}"}
    )
    resp = conn.getresponse()
    started = time.monotonic()
    chunk = 64 * 1024
    body = bytearray()
    cut = False
    while True:
        try:
            data = resp.read(chunk)
        except (http.client.IncompleteRead, ConnectionError) as exc:
            cut = True
            if isinstance(exc, http.client.IncompleteRead):
                body += exc.partial
            break
        if not data:
            break
        body += data
        ahead = len(body) / (rate_mb_s * 1024 * 1024) - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    seconds = time.monotonic() - started
    conn.close()
    lines = bytes(body).decode("utf-8", "replace").splitlines()
    last = lines[-1] if lines else ""
    ended, count = "cut", None
    try:
        record = json.loads(last)
    except ValueError:
        record = {}
    if not cut and "manifest" in record:
        ended, count = "manifest", record["manifest"]["count"]
    elif not cut and "error" in record:
        ended = "error"
    events = sum(1 for line in lines if line.startswith('{"action"'))
    return Outcome(resp.status, events, len(body), ended, round(seconds, 1), count)


def run(events: int, rate: float, timeout: int, worker_class: str, workdir: Path) -> Outcome:
    db_url = f"sqlite:///{workdir / 'export.db'}"
    if not (workdir / "seeded.json").exists():
        org_id, token = seed(db_url, events)
        (workdir / "seeded.json").write_text(json.dumps({"org": org_id, "token": token}))
    token = json.loads((workdir / "seeded.json").read_text())["token"]
    server = Server(db_url, workdir / f"server-{worker_class}.log", timeout=timeout,
                    worker_class=worker_class)  # fmt: skip
    try:
        return slow_read(server.port, token, rate)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=4.0, help="client read rate, MB/s")
    parser.add_argument("--timeout", type=int, default=30, help="gunicorn worker timeout, s")
    parser.add_argument("--worker-class", choices=["gthread", "sync", "both"], default="both")
    args = parser.parse_args()
    classes = ["sync", "gthread"] if args.worker_class == "both" else [args.worker_class]
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        started = time.monotonic()
        print(f"seeding {args.events} events ...", flush=True)
        for worker_class in classes:
            outcome = run(args.events, args.rate, args.timeout, worker_class, Path(tmp))
            print(
                f"worker_class={worker_class} timeout={args.timeout}s rate={args.rate}MB/s: "
                f"status {outcome.status}, {outcome.events}/{args.events} events, "
                f"{outcome.bytes / 1e6:.1f} MB in {outcome.seconds}s, ended with "
                f"{outcome.ended_with}"
                + (f" (manifest count {outcome.manifest_count})" if outcome.manifest_count else ""),
                flush=True,
            )
        print(f"total {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()


def _signing_key() -> str:
    """An Ed25519 audit signing key (required outside development), made for this run."""
    from scim_server.audit.signing import new_private_pem

    return new_private_pem().decode()
