"""Database outages (scim_server/db.py): each blueprint answers 503 of its own kind; and end
to end, a private PostgreSQL stopped and started a dozen times while a real gunicorn
server takes concurrent creates.

One short outage hits the window between a commit and the release of the connection
only sometimes; a dozen in a row hit it every time.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask

from scim_server import create_app
from scim_server.db import db
from scim_server.scim.errors import CONFLICT_URN
from tests.support import PG_URL, USER_SCHEMA
from tests.test_production import (
    ERROR_SCHEMA,
    UNREACHABLE,
    PrivatePostgres,
    Reply,
    Server,
    _pg_bin,
    _setup_database,
    call,
)

OUTAGES = 12
CLIENTS = 16
SCIM_JSON = "application/scim+json"


@pytest.fixture
def down_app() -> Iterator[Flask]:
    """The application on a database that refuses connections (nothing listens on its port)."""
    app = create_app({"TESTING": True, "DATABASE_URL": UNREACHABLE, "DB_CONNECT_TIMEOUT": 2})
    yield app
    db.engine(app).dispose()


def test_sso_pages_get_a_plain_503_page_when_the_database_is_down(down_app):
    """A person signing in while the database is down sees the plain page, 503 + Retry-After."""
    resp = down_app.test_client().post("/sso/login", data={"email": "ann@example.com"})
    assert resp.status_code == 503
    assert resp.mimetype == "text/html"
    assert resp.headers["Retry-After"] == "5"
    page = resp.get_data(as_text=True)
    assert "Sign-in unavailable" in page and "try again" in page
    assert "OperationalError" not in page and "psycopg" not in page


def test_admin_api_gets_a_json_503_when_the_database_is_down(down_app):
    """The admin API (/api/v1) answers its own JSON 503 with Retry-After."""
    resp = down_app.test_client().get(
        "/api/v1/users", headers={"Authorization": "Bearer adm_whatever"}
    )
    assert resp.status_code == 503
    assert resp.get_json() == {
        "error": "Service Unavailable",
        "detail": "database unreachable; retry later",
    }
    assert resp.headers["Retry-After"] == "5"


@dataclass
class Outcome:
    """Every answer one client thread got, by userName."""

    replies: list[tuple[str, Reply]] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)


@pytest.fixture
def stack() -> Iterator[tuple[PrivatePostgres, Server, str]]:
    """A private PostgreSQL and one ``scim-server serve --production`` (2 gunicorn workers) on it."""
    if not PG_URL:
        pytest.skip("PostgreSQL outage test: set SCIM_TEST_DATABASE_URL to run PostgreSQL tests")
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql"
        )
    pg = PrivatePostgres(bin_dir)
    workdir = Path(tempfile.mkdtemp(prefix="scim-outage-"))
    server = None
    try:
        pg.init()
        pg.start()
        token, _limited = _setup_database(pg.url)
        # Fail fast while the database is down, so that a dozen outages fit in seconds.
        server = Server("outage", pg.url, workdir, SCIM_DB_CONNECT_TIMEOUT="2", SCIM_THREADS="8")
        server.wait_ready(time.monotonic() + 30)
        yield pg, server, token
    finally:
        if server is not None:
            server.terminate()
        pg.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def _client(port: int, token: str, prefix: str, stop: threading.Event, out: Outcome) -> None:
    """Create users one after another; after a 503 retry the same userName, as an IdP does."""
    n = 0
    pending: str | None = None
    while not stop.is_set() or pending is not None:
        name = pending or f"{prefix}-{n}@example.com"
        if pending is None:
            n += 1
        body = {"schemas": [USER_SCHEMA], "userName": name, "externalId": name}
        try:
            reply = call(port, "POST", "/scim/v2/Users", token, body)
        except OSError as err:
            out.transport_errors.append(f"{name}: {err!r}")
            return
        out.replies.append((name, reply))
        pending = name if reply.status == 503 else None
        if pending is not None:
            time.sleep(0.05 if not stop.is_set() else 0.3)


def _outages(pg: PrivatePostgres) -> None:
    for _ in range(OUTAGES):
        time.sleep(0.6)  # creates go through
        pg.stop("fast")
        time.sleep(0.3)  # creates fail while it is down
        pg.start()


def test_database_restarts_under_load_never_give_a_500(stack):
    """Each create answers 201 (stored), a SCIM 503 with Retry-After, or 409 with the id on a retry."""
    pg, server, token = stack
    stop = threading.Event()
    outcomes = [Outcome() for _ in range(CLIENTS)]
    threads = [
        threading.Thread(target=_client, args=(server.port, token, f"c{i}", stop, outcomes[i]))
        for i in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    try:
        _outages(pg)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    replies = [r for o in outcomes for r in o.replies]
    assert not [e for o in outcomes for e in o.transport_errors]
    assert not any(t.is_alive() for t in threads)

    bad = [
        (name, r.status, r.headers.get("Content-Type"), str(r.body)[:300])
        for name, r in replies
        if r.status not in (201, 409, 503) or r.headers.get("Content-Type") != SCIM_JSON
    ]
    log = server.log.read_text()
    assert not bad, (
        f"{len(bad)} of {len(replies)} answers were neither 201, 409 nor SCIM 503: {bad[:3]}\n"
        + log[log.find("Error handling request") :][:4000]
    )
    created = {name: r.body["id"] for name, r in replies if r.status == 201}
    unavailable = [r for _name, r in replies if r.status == 503]
    assert len(created) > OUTAGES and unavailable, "the load did not straddle the outages"
    for reply in unavailable:
        assert reply.body["schemas"] == [ERROR_SCHEMA] and reply.body["status"] == "503"
        assert int(reply.headers["Retry-After"]) > 0
    # A 409 only ever answers a retry of a create that answered 503 but was stored:
    # it names the stored user, so the IdP can link it.
    retried = {name for name, r in replies if r.status == 503}
    for name, reply in replies:
        if reply.status == 409:
            assert name in retried, (name, reply.body)
            assert reply.body["scimType"] == "uniqueness"
            created[name] = reply.body[CONFLICT_URN]["id"]

    # Every user answered 201 (or named by a 409) exists, under its own userName.
    for name, user_id in created.items():
        got = call(server.port, "GET", f"/scim/v2/Users/{user_id}", token)
        assert got.status == 200, (name, got.status, got.body)
        assert got.body["userName"] == name
    listed = call(server.port, "GET", "/scim/v2/Users?count=1", token)
    stored = listed.body["totalResults"]
    # Every 503 was retried to a 201 or a 409: no user exists that no answer named.
    assert stored == len(created), (stored, len(created))
    assert "Error handling request" not in log  # gunicorn's own 500
