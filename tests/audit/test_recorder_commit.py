"""On PostgreSQL a write's last statement goes out with its COMMIT (``recorder.flush``'s
``last``, ``Fixed.run_and_commit``).

On the real database (``live``: every request commits): the audit statement of a SCIM
write is sent in pipeline mode with the COMMIT, nothing runs after it, what it wrote is all
there and verifies; a failure of that statement is raised by the commit and leaves nothing
behind; a savepoint's release or a session joined to an enclosing transaction commits
nothing early.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from scim_server.audit import queries, recorder
from scim_server.db import db
from scim_server.models import AuditEvent, Event, User
from tests.support import Scim


@pytest.fixture
def pg_live(live: tuple[Flask, Scim]) -> tuple[Flask, Scim]:
    app, _scim = live
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: psycopg's pipeline mode")
    return live


def _in_pipeline(dbapi_connection: Any) -> bool:
    return bool(dbapi_connection.pgconn.pipeline_status)


def test_a_scim_write_sends_its_audit_statement_with_the_commit(
    pg_live: tuple[Flask, Scim],
) -> None:
    app, scim = pg_live
    seen: list[tuple[str, bool]] = []

    def spy(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        # Whether the transaction had ended (committed) once the statement had run.
        status = cursor.connection.info.transaction_status
        seen.append((statement[:16], status == status.IDLE))

    engine = db.engine(app)
    event.listen(engine, "after_cursor_execute", spy)
    try:
        created = scim.create_user("pipe@example.com")
        patched = scim.patch_ops(
            f"/scim/v2/Users/{created['id']}", {"op": "replace", "path": "active", "value": False}
        )
        deleted = scim.delete(f"/scim/v2/Users/{created['id']}")
    finally:
        event.remove(engine, "after_cursor_execute", spy)
    assert patched.status_code == 200 and patched.get_json()["active"] is False
    assert deleted.status_code == 204
    # Each write's audit statement (``recorder._combined``) ended its transaction, and no
    # other statement of the writes did (the token's lookup and its last use, written at
    # most once a minute, run in none).
    token = ("SELECT scim_toke", "UPDATE scim_toke")
    ended = [text for text, done in seen if done and text not in token]
    assert ended == ["WITH recorded AS"] * 3
    assert [ended for text, ended in seen if text == "WITH recorded AS"] == [True] * 3
    with engine.connect() as connection:
        assert not _in_pipeline(connection.connection.driver_connection)
    with db.reader(app)() as s:
        actions = s.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.org_id == scim.org_id, AuditEvent.resource_id == created["id"])
            .order_by(AuditEvent.seq)
        ).all()
        assert actions[0] == "user.create" and actions[-1] == "user.delete"
        kinds = s.scalars(
            select(Event.type).where(
                Event.org_id == scim.org_id, Event.resource_id == created["id"]
            )
        ).all()
        assert {"user.created", "user.deleted"} <= set(kinds)
        assert queries.verify(s, scim.org_id).ok


def test_a_failure_of_the_last_statement_is_the_commits_and_leaves_nothing(
    pg_live: tuple[Flask, Scim],
) -> None:
    app, scim = pg_live
    with db.reader(app)() as s:
        before = s.scalar(select(func.count()).where(AuditEvent.org_id == scim.org_id))
    with db.writer(app)() as session:
        recorder.record(session, scim.org_id, "x" * 65)  # past the column's 64: refused
        driver = session.connection().connection.driver_connection
        with pytest.raises(DBAPIError, match="too long"):
            session.commit()
        assert not _in_pipeline(driver)
        session.rollback()
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.org_id == scim.org_id)) == before
        assert queries.verify(s, scim.org_id).ok
    # The organization's next write numbers on from the same head; the connection works.
    assert scim.create_user("after@example.com")["userName"] == "after@example.com"
    missing = scim.patch_ops(
        "/scim/v2/Users/00000000-0000-0000-0000-000000000000",
        {"op": "replace", "path": "active", "value": False},
    )
    assert missing.status_code == 404
    with db.reader(app)() as s:
        assert queries.verify(s, scim.org_id).ok
        assert s.scalar(select(func.count()).where(User.org_id == scim.org_id)) == 1


def test_a_savepoints_events_are_not_committed_with_it(pg_live: tuple[Flask, Scim]) -> None:
    """Events written at a savepoint's release stay in the enclosing transaction: its
    rollback takes them."""
    app, scim = pg_live
    with db.reader(app)() as s:
        before = s.scalar(select(func.count()).where(AuditEvent.org_id == scim.org_id))
    with db.writer(app)() as session:
        session.begin()
        with session.begin_nested():
            recorder.record(session, scim.org_id, "user.update", resource_type="User")
        session.rollback()
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.org_id == scim.org_id)) == before
        assert queries.verify(s, scim.org_id).ok


def test_a_session_joined_to_a_callers_transaction_commits_nothing_of_it(
    pg_live: tuple[Flask, Scim],
) -> None:
    """A session bound to a connection whose transaction its caller began (SQLAlchemy's
    default: the session joins it and leaves its commit to the caller): its commit sends
    no COMMIT, and the caller's rollback takes the events with the rest."""
    app, scim = pg_live
    with db.reader(app)() as s:
        before = s.scalar(select(func.count()).where(AuditEvent.org_id == scim.org_id))
    factory = db.writer(app)
    with db.engine(app).connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, info=dict(factory.kw.get("info") or {}))
        recorder.record(session, scim.org_id, "user.update", resource_type="User")
        session.commit()
        status = connection.connection.driver_connection.info.transaction_status
        assert status == status.INTRANS  # still the caller's, open
        session.close()
        outer.rollback()
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.org_id == scim.org_id)) == before
        assert queries.verify(s, scim.org_id).ok


def test_the_recorders_commit_hook_runs_last(app: Flask) -> None:
    """What it writes may go out with the COMMIT only if no hook runs after it."""
    with db.writer(app)() as session:
        hooks = list(session.dispatch.before_commit)
    assert hooks[-1] is recorder._write_at_commit
