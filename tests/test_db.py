"""Releasing a request's connection (scim_server/db.py): a failure there never undoes an answer.

Faults are injected at the engine (the dialect's rollback, a statement), as a
database going away would raise them, not by replacing our own functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from scim_server.db import db
from tests.support import GROUP_SCHEMA, USER_SCHEMA


class RollbackFault:
    """Once armed, every ROLLBACK on ``engine`` fails like PostgreSQL shutting down (AdminShutdown)."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.failed = 0
        self.invalidated = 0
        dialect = engine.dialect
        dbapi_error = dialect.loaded_dbapi.OperationalError
        rollback = dialect.do_rollback

        def do_rollback(dbapi_connection: Any) -> None:
            if not self.armed:
                return rollback(dbapi_connection)
            self.failed += 1
            raise dbapi_error("terminating connection due to administrator command")

        monkeypatch.setattr(dialect, "do_rollback", do_rollback)

        def count(*_args: Any) -> None:
            self.invalidated += 1

        event.listen(engine.pool, "invalidate", count)
        self._remove = lambda: event.remove(engine.pool, "invalidate", count)


@pytest.fixture
def rollback_fault(live, monkeypatch) -> Iterator[RollbackFault]:
    """The database goes away once the answer is built, before the request's connection is released."""
    app, _scim = live
    engine = db.engine(app)
    with monkeypatch.context() as mp:
        fault = RollbackFault(engine, mp)

        @app.after_request
        def _arm(resp: Any) -> Any:
            fault.armed = True
            return resp

        yield fault
        fault.armed = False
    fault._remove()


def test_failed_release_after_commit_keeps_the_201(live, rollback_fault, caplog):
    """The teardown's rollback failing after the commit: 201, the group stored, the connection
    discarded. (A group: its representation reads its members after the commit; a user's
    reads nothing then, the events writer having read its groups and roles at the commit.)"""
    app, scim = live
    engine = db.engine(app)
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Kept"}
    with caplog.at_level(logging.WARNING, logger="scim_server.db"):
        resp = scim.post("/scim/v2/Groups", body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert rollback_fault.failed >= 1  # the fault did hit the request's release
    assert "could not release a database connection" in caplog.text
    assert rollback_fault.invalidated >= 1  # the broken connection is not pooled again
    assert engine.pool.checkedout() == 0  # nor leaked
    group_id = resp.get_json()["id"]
    rollback_fault.armed = False
    got = scim.get(f"/scim/v2/Groups/{group_id}")
    assert got.status_code == 200 and got.get_json()["displayName"] == "Kept"


def test_a_created_user_is_answered_without_a_read_after_the_commit(live, rollback_fault):
    """POST /Users: the answer needs no statement after the commit. (The request's one
    connection goes back to the pool at teardown, idle: its reset's ROLLBACK sends nothing
    on either database, and failing here, it is discarded, the 201 kept.)"""
    app, scim = live
    engine = db.engine(app)
    assert scim.get("/scim/v2/Users").status_code == 200  # the token's use written before
    rollback_fault.armed = False
    after_commit: list[str] = []
    wrote = committed = False

    def commit(_conn: Any) -> None:
        nonlocal committed
        committed = wrote

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        nonlocal wrote
        if committed:
            after_commit.append(sql)
        wrote = wrote or "INSERT INTO" in sql

    event.listen(engine, "commit", commit)
    event.listen(engine, "before_cursor_execute", statement)
    body = {"schemas": [USER_SCHEMA], "userName": "kept@example.com"}
    try:
        resp = scim.post("/scim/v2/Users", body)
    finally:
        event.remove(engine, "commit", commit)
        event.remove(engine, "before_cursor_execute", statement)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["userName"] == "kept@example.com"
    assert committed and after_commit == []
    assert engine.pool.checkedout() == 0


def test_failed_release_after_a_read_keeps_the_200(live, rollback_fault):
    """A read whose transaction cannot be rolled back at teardown still answers 200."""
    _app, scim = live
    resp = scim.get("/scim/v2/Users")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["totalResults"] == 0
    assert rollback_fault.failed >= 1


def test_failed_rollback_before_a_refusal_event_keeps_the_answer(live, rollback_fault):
    """The refusal hook's rollback failing (the database went away) keeps the SCIM answer, no 500."""
    app, scim = live
    member = scim.create_user("member@example.com")
    app.config["MAX_INLINE_MEMBERS"] = 0
    # Armed before the SCIM refusal hook runs (a blueprint's hooks run last-registered first):
    # the read that rendering left open cannot be rolled back.
    app.after_request_funcs.setdefault("scim", []).append(_arm_hook(rollback_fault))
    body = {
        "schemas": [GROUP_SCHEMA],
        "displayName": "Too big",
        "members": [{"value": member["id"]}],
    }
    resp = scim.post("/scim/v2/Groups", body)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["scimType"] == "invalidValue"
    assert rollback_fault.failed >= 1
    assert db.engine(app).pool.checkedout() == 0


def _arm_hook(fault: RollbackFault) -> Any:
    def arm(resp: Any) -> Any:
        fault.armed = True
        return resp

    return arm


def test_the_request_session_outside_an_app_context_is_flasks_error():
    """``db.session`` and ``db.state()`` read the app context from Flask's context variable:
    outside one they still raise Flask's "Working outside of application context"."""
    with pytest.raises(RuntimeError, match="application context"):
        db.session  # noqa: B018
    with pytest.raises(RuntimeError, match="application context"):
        db.state()


def test_jsonb_as_text_is_the_statements_own(session):
    """A statement marked ``JSONB_AS_TEXT`` (a list page's rows) gets ``jsonb`` as its text;
    the next statement on the same connection gets it parsed, as the ORM needs it."""
    from sqlalchemy import JSON, cast, literal, select

    from scim_server.db import JSONB_AS_TEXT, JSONDoc

    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: psycopg's loaders")
    doc = cast(literal('{"b": 1, "a": [2]}'), JSONDoc)
    marked = select(doc).execution_options(**{JSONB_AS_TEXT: True})
    assert session.execute(marked).scalar_one() == '{"a": [2], "b": 1}'
    assert session.execute(select(doc)).scalar_one() == {"a": [2], "b": 1}
    assert session.execute(select(cast(literal("[1]"), JSON))).scalar_one() == [1]


def test_new_rows_are_keyed_by_plain_strings() -> None:
    """A ``Batch``'s rows travel as JSON made by orjson, which refuses a ``str`` subclass
    as a key (SQLAlchemy's ``quoted_name``): a row keyed by one fell back to ``json``, about
    2.5 times slower for a user's row."""
    import orjson

    from scim_server.db import _insert_values
    from scim_server.models import Contact, User

    for obj in (
        User(org_id="o", id="u", user_name="a"),
        Contact(org_id="o", id="c", kind="person"),
    ):
        values = _insert_values(obj)
        assert {type(key) for key in values} == {str}
        orjson.dumps([values])  # as ``Batch`` sends them, without the fallback
