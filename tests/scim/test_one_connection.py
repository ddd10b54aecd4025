"""One pooled connection per SCIM request (scim_server/db.py, ``Database.share_connection``).

The token lookup, the token's last use, the write's own transaction and the read after it
take the request's one connection in turn: one pool checkout per request, and on
PostgreSQL no ping: the lookup, retried once on a dead connection, stands for it. On the real database (``live``): the tests' own app binds
every session to the test transaction's connection, where nothing is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, select, text

from scim_server.db import db
from scim_server.models import AuditEvent, ScimToken, User
from scim_server.services.tokens import create_token, revoke_token
from tests.support import GROUP_SCHEMA, USER_SCHEMA, Scim

BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@dataclass
class PoolUse:
    """What one request did with the engine's pool: checkouts, pings, and the DBAPI
    connection of each statement."""

    checkouts: int = 0
    pings: int = 0
    connections: set[int] = field(default_factory=set)
    statements: list[str] = field(default_factory=list)


@contextmanager
def pool_use(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[PoolUse]:
    engine = db.engine(app)
    use = PoolUse()
    dialect = engine.dialect
    ping = dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        use.pings += 1
        return ping(dbapi_connection)

    def checkout(*_args: Any) -> None:
        use.checkouts += 1

    def statement(conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        use.connections.add(id(conn.connection.dbapi_connection))
        use.statements.append(" ".join(sql.split()))

    with monkeypatch.context() as mp:
        mp.setattr(dialect, "do_ping", counted_ping)
        event.listen(engine, "checkout", checkout)
        event.listen(engine, "before_cursor_execute", statement)
        try:
            yield use
        finally:
            event.remove(engine, "checkout", checkout)
            event.remove(engine, "before_cursor_execute", statement)
    assert engine.pool.checkedout() == 0  # returned at the request's end


def _user(name: str, **attrs: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": name, **attrs}


def _token_last_used(app: Flask, scim: Scim) -> Any:
    with db.reader(app)() as s:
        return s.scalar(select(ScimToken.last_used_at).where(ScimToken.org_id == scim.org_id))


Request = Callable[[Scim, dict[str, Any]], Any]

REQUESTS: dict[str, tuple[Request, int]] = {
    "post-user": (lambda scim, u: scim.post("/scim/v2/Users", _user("new@example.com")), 201),
    "get-user": (lambda scim, u: scim.get(f"/scim/v2/Users/{u['id']}"), 200),
    "list-users": (
        lambda scim, u: scim.get('/scim/v2/Users?filter=userName eq "ann@example.com"'),
        200,
    ),
    "patch-user": (
        lambda scim, u: scim.patch_ops(
            f"/scim/v2/Users/{u['id']}", {"op": "replace", "path": "title", "value": "Boss"}
        ),
        200,
    ),
    "put-user": (
        lambda scim, u: scim.put(f"/scim/v2/Users/{u['id']}", _user("ann@example.com", title="X")),
        200,
    ),
    "delete-user": (lambda scim, u: scim.delete(f"/scim/v2/Users/{u['id']}"), 204),
    "post-group": (
        lambda scim, u: scim.post(
            "/scim/v2/Groups",
            {"schemas": [GROUP_SCHEMA], "displayName": "G", "members": [{"value": u["id"]}]},
        ),
        201,
    ),
    "bulk": (
        lambda scim, u: scim.post(
            "/scim/v2/Bulk",
            {
                "schemas": [BULK_SCHEMA],
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "a", "data": _user("b1@x.org")},
                    {"method": "POST", "path": "/Users", "bulkId": "b", "data": _user("b2@x.org")},
                    {
                        "method": "PATCH",
                        "path": f"/Users/{u['id']}",
                        "data": {
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "title", "value": "T"}],
                        },
                    },
                ],
            },
        ),
        200,
    ),
}


@pytest.mark.parametrize("stale", [True, False], ids=["token-use-written", "token-fresh"])
@pytest.mark.parametrize("name", list(REQUESTS))
def test_a_scim_request_checks_out_one_connection(live, monkeypatch, name, stale):
    """Each SCIM request, read or write (a bulk of three writes too), checks out one pooled
    connection, pings it at most once, runs every statement on it, and answers as before;
    the token's last use is written apart, on the same connection, when it is stale."""
    app, scim = live
    user = scim.create_user("ann@example.com")
    if stale:
        with db.writer(app)() as s, s.begin():
            s.execute(ScimToken.__table__.update().values(last_used_at=None))
    before = _token_last_used(app, scim)
    send, status = REQUESTS[name]
    with pool_use(app, monkeypatch) as use:
        resp = send(scim, user)
    assert resp.status_code == status, resp.get_data(as_text=True)
    if name == "bulk":
        assert [op["status"] for op in resp.get_json()["Operations"]] == ["201", "201", "200"]
    assert use.checkouts == 1, use.statements
    assert use.pings == 0  # the token lookup stands for the ping (PostgreSQL; SQLite has none)
    assert len(use.connections) == 1
    if stale:
        assert before is None and _token_last_used(app, scim) is not None
    else:
        assert _token_last_used(app, scim) == before


def test_a_write_after_the_lookup_commits_in_its_own_transaction(live, monkeypatch):
    """On the shared connection the write still commits its user and its audit event, and
    a refused write (409) still writes its failure event and leaves nothing checked out."""
    app, scim = live
    assert scim.get("/scim/v2/Users").status_code == 200  # the token's use written, apart
    with pool_use(app, monkeypatch) as use:
        resp = scim.post("/scim/v2/Users", _user("kim@example.com"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    user_id = resp.get_json()["id"]
    commits = [s for s in use.statements if s.startswith(("COMMIT", "BEGIN"))]
    assert commits in ([], ["BEGIN IMMEDIATE"]), use.statements  # the write's own, only
    with db.engine(app).connect() as conn:  # a connection of its own: what was committed
        assert conn.scalar(select(User.user_name).where(User.id == user_id)) == "kim@example.com"
        actions = conn.scalars(
            select(AuditEvent.action).where(
                AuditEvent.org_id == scim.org_id, AuditEvent.resource_id == user_id
            )
        ).all()
        assert actions == ["user.create"]
    again = scim.post("/scim/v2/Users", _user("kim@example.com"))
    assert again.status_code == 409, again.get_data(as_text=True)
    assert db.engine(app).pool.checkedout() == 0
    with db.engine(app).connect() as conn:
        failures = conn.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.org_id == scim.org_id, AuditEvent.outcome == "failure")
        )
        assert failures == 1


def test_a_revoked_token_is_refused_by_the_next_read_and_write(live):
    """No token is cached on the shared connection: revoked between two requests, the next
    GET and the next POST are both refused."""
    app, scim = live
    user = scim.create_user("ann@example.com")
    assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 200
    with db.reader(app)() as s:
        token_id = s.scalar(select(ScimToken.id).where(ScimToken.org_id == scim.org_id))
    with db.writer(app)() as s:
        revoke_token(s, scim.org_id, token_id)
    assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 401
    assert scim.post("/scim/v2/Users", _user("late@example.com")).status_code == 401
    assert db.engine(app).pool.checkedout() == 0


def test_a_session_made_while_the_connection_is_busy_gets_its_own(live):
    """A side session made while the request's session has a transaction open on the shared
    connection gets a connection of its own, so its write is its own transaction."""
    app, _scim = live
    with app.test_request_context("/scim/v2/Users", method="GET"):
        db.share_connection()
        request_session = db.session
        shared = request_session.connection()
        side = db.side_sessions()()
        try:
            assert side.connection() is not shared
        finally:
            side.close()
        request_session.commit()
        side = db.side_sessions()()
        try:
            assert side.connection() is shared  # idle again: shared
        finally:
            side.close()


def test_sqlite_reads_the_stored_user_before_the_write_lock_on_the_shared_connection(
    live, monkeypatch
):
    """SQLite: a PATCH's early read of the stored document (``db.read_before_lock``) runs on
    the request's one connection without BEGIN, before the write's BEGIN IMMEDIATE."""
    app, scim = live
    if db.engine(app).dialect.name != "sqlite":
        pytest.skip("the early read is SQLite's (PostgreSQL writers lock only their rows)")
    user = scim.create_user("ann@example.com")
    with pool_use(app, monkeypatch) as use:
        resp = scim.patch_ops(
            f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Boss"}
        )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert use.checkouts == 1 and len(use.connections) == 1
    early = use.statements.index(
        "SELECT users.data FROM users WHERE users.org_id = ? AND users.id = ?"
    )
    assert use.statements.index("BEGIN IMMEDIATE") > early
    assert not any(s.startswith("BEGIN") for s in use.statements[:early])


@pytest.fixture
def killer(live) -> Iterator[Callable[[], int]]:
    """PostgreSQL: ends the backend of every connection the app's pool holds (as a restart
    does); returns how many it ended."""
    app, _scim = live
    engine = db.engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("a dead pooled connection is PostgreSQL's (SQLite opens a file)")
    admin = create_engine(engine.url)

    def kill() -> int:
        pids = [rec.info["pid"] for rec in list(engine.pool._pool.queue)]  # idle ones
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return len(pids)

    event.listen(engine, "connect", _note_pid)
    yield kill
    event.remove(engine, "connect", _note_pid)
    admin.dispose()


def _note_pid(dbapi_connection: Any, record: Any) -> None:
    record.info["pid"] = dbapi_connection.info.backend_pid


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_dead_pooled_connection_is_replaced_without_a_ping(live, killer, monkeypatch, method):
    """PostgreSQL restarted under a pooled connection: the next SCIM request's lookup finds
    it dead and runs again on a new connection (200/201, not 503); an admin API request,
    which pings, also gets a live one; a healthy pool is then used without pings."""
    app, scim = live
    engine = db.engine(app)
    engine.dispose()  # only connections made from here on, whose backends are known
    user = scim.create_user("ann@example.com")
    with db.reader(app)() as s:
        _token, admin_secret = create_token(s, scim.org_id, "ops", kind="admin")
    assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 200
    assert killer() >= 1
    invalidated: list[Any] = []
    event.listen(engine.pool, "invalidate", lambda *args: invalidated.append(args))
    if method == "GET":
        resp = scim.get(f"/scim/v2/Users/{user['id']}")
        assert resp.status_code == 200, resp.get_data(as_text=True)
    else:
        resp = scim.post("/scim/v2/Users", _user("bo@example.com"))
        assert resp.status_code == 201, resp.get_data(as_text=True)
    assert invalidated  # the lookup did meet the dead connection
    assert killer() >= 1
    admin = scim.client.get("/api/v1/users", headers={"Authorization": f"Bearer {admin_secret}"})
    assert admin.status_code == 200, admin.get_data(as_text=True)
    with pool_use(app, monkeypatch) as use:
        assert scim.get(f"/scim/v2/Users/{user['id']}").status_code == 200
    assert use.pings == 0 and use.checkouts == 1


def test_a_write_s_representation_is_read_in_the_reader_s_mode(live, monkeypatch):
    """After a write commits, what its representation still reads (here a PATCH that
    changes nothing: its groups are read again) runs in a reader's mode on the request's
    one connection: on SQLite under a plain BEGIN, never a second BEGIN IMMEDIATE; and the
    representation is the stored user, groups included."""
    app, scim = live
    user = scim.create_user("ann@example.com", title="Boss")
    group = scim.post(
        "/scim/v2/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Crew", "members": [{"value": user["id"]}]},
    )
    assert group.status_code == 201, group.get_data(as_text=True)
    with pool_use(app, monkeypatch) as use:
        resp = scim.patch_ops(
            f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Boss"}
        )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["title"] == "Boss"
    assert [g["display"] for g in body["groups"]] == ["Crew"]
    assert use.checkouts == 1 and len(use.connections) == 1
    if db.engine(app).dialect.name == "sqlite":
        begins = [s for s in use.statements if s.startswith("BEGIN")]
        assert begins == ["BEGIN IMMEDIATE", "BEGIN"], use.statements
        read = use.statements[use.statements.index("BEGIN") + 1 :]
        assert read and all(s.startswith(("SELECT", "WITH")) for s in read), read


@contextmanager
def sessions_made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every ORM Session made meanwhile."""
    from sqlalchemy.orm import Session

    made: list[Any] = []
    init = Session.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(Session, "__init__", counted)
        yield made


GETS: dict[str, tuple[Callable[[str], tuple[str, dict[str, str]]], int]] = {
    "200": (lambda uid: (f"/scim/v2/Users/{uid}", {}), 200),
    "304": (lambda uid: (f"/scim/v2/Users/{uid}", {"If-None-Match": 'W/"1"'}), 304),
    "404": (lambda uid: ("/scim/v2/Users/nobody", {}), 404),
    "attributes": (lambda uid: (f"/scim/v2/Users/{uid}?attributes=userName", {}), 200),
}


@pytest.mark.parametrize("case", list(GETS))
def test_a_get_by_id_reads_on_the_connection_without_a_session(live, monkeypatch, case):
    """GET /Users/{id} (200, 304, 404, with attributes) makes no ORM Session: the token
    lookup and the user's one statement run on the request's connection, on SQLite in one
    read transaction (one BEGIN before both), on PostgreSQL statement by statement."""
    app, scim = live
    user = scim.create_user("ann@example.com")
    scim.get("/scim/v2/Users")  # the token's last use written: not what this test reads
    url, headers = GETS[case][0](user["id"])
    with pool_use(app, monkeypatch) as use, sessions_made(monkeypatch) as made:
        resp = scim.get(url, headers=headers)
    assert resp.status_code == GETS[case][1], resp.get_data(as_text=True)
    assert made == []
    assert use.checkouts == 1 and len(use.connections) == 1
    selects = [s for s in use.statements if s.startswith(("SELECT", "WITH"))]
    assert len(selects) == 2, use.statements
    if db.engine(app).dialect.name == "sqlite":
        assert use.statements == ["BEGIN", *selects]
    else:
        assert use.statements == selects
    assert db.engine(app).pool.checkedout() == 0


def test_a_get_by_id_renders_as_a_write_s_representation(live):
    """The session-less GET renders the same document as a write's answer (groups, roles,
    license names read with the row); attributes / excludedAttributes still apply."""
    _app, scim = live
    boss = scim.create_user("boss@example.com")
    ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    user = scim.create_user(
        "ann@example.com", title="Eng", **{ext: {"manager": {"value": boss["id"]}}}
    )
    group = scim.post(
        "/scim/v2/Groups",
        {"schemas": [GROUP_SCHEMA], "displayName": "Crew", "members": [{"value": user["id"]}]},
    )
    assert group.status_code == 201
    url = f"/scim/v2/Users/{user['id']}"
    written = scim.patch_ops(url, {"op": "replace", "path": "title", "value": "Eng"})
    read = scim.get(url)
    assert read.status_code == 200 and written.status_code == 200
    assert read.get_data() == written.get_data()
    assert read.headers["ETag"] == written.headers["ETag"]
    assert [g["display"] for g in read.get_json()["groups"]] == ["Crew"]
    assert read.get_json()[ext]["manager"]["$ref"].endswith(f"/Users/{boss['id']}")
    assert "groups" not in scim.get(f"{url}?excludedAttributes=groups").get_json()
    only = scim.get(f"{url}?attributes=userName").get_json()
    assert set(only) == {"schemas", "id", "userName"}
