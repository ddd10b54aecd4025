"""A write's last statement goes out with its COMMIT on PostgreSQL (``commit_pipeline``).

On the real database (``live``: every request commits): the audit statement of a SCIM
write is sent in pipeline mode, what it wrote is all there and verifies, a failure of that
statement is raised by the commit and leaves nothing behind, and no connection stays in
pipeline mode (a statement after it must run and report its row count as ever).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from psycopg import pq
from sqlalchemy import bindparam, event, func, select, update
from sqlalchemy.exc import DBAPIError

from scim_server import commit_pipeline
from scim_server.audit import queries, recorder
from scim_server.db import db
from scim_server.fixed import Fixed
from scim_server.models import AuditEvent, Event, Organization, User
from tests.support import Scim


@pytest.fixture
def pg_live(live: tuple[Flask, Scim]) -> tuple[Flask, Scim]:
    app, _scim = live
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: psycopg's pipeline mode")
    return live


def _in_pipeline(dbapi_connection: Any) -> bool:
    return bool(dbapi_connection.pgconn.pipeline_status)


def _pooled_connections_in_pipeline(app: Flask) -> list[bool]:
    engine = db.engine(app)
    with engine.connect() as connection:
        return [_in_pipeline(connection.connection.driver_connection)]


def test_a_scim_write_sends_its_audit_statement_with_the_commit(
    pg_live: tuple[Flask, Scim],
) -> None:
    app, scim = pg_live
    seen: list[tuple[str, bool]] = []

    def spy(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((statement[:16], _in_pipeline(cursor.connection)))

    engine = db.engine(app)
    event.listen(engine, "before_cursor_execute", spy)
    try:
        created = scim.create_user("pipe@example.com")
        patched = scim.patch_ops(
            f"/scim/v2/Users/{created['id']}", {"op": "replace", "path": "active", "value": False}
        )
        deleted = scim.delete(f"/scim/v2/Users/{created['id']}")
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert patched.status_code == 200 and patched.get_json()["active"] is False
    assert deleted.status_code == 204
    # One statement in pipeline mode per write: the audit events' (``recorder._combined``).
    assert [start for start, piped in seen if piped] == ["WITH recorded AS"] * 3
    assert _pooled_connections_in_pipeline(app) == [False]
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


def test_a_failure_of_the_sent_statement_is_the_commits_and_leaves_nothing(
    pg_live: tuple[Flask, Scim],
) -> None:
    app, scim = pg_live
    with db.reader(app)() as s:
        before = s.scalar(select(func.count()).where(AuditEvent.org_id == scim.org_id))
    session = db.writer(app)()
    try:
        recorder.record(session, scim.org_id, "x" * 65)  # past the column's 64: refused
        driver = session.connection().connection.driver_connection
        with pytest.raises(DBAPIError, match="too long"):
            session.commit()
        # Out of pipeline mode and rolled back by the failure itself, as a failed COMMIT
        # leaves a connection (in pipeline mode PostgreSQL skips the COMMIT after an error).
        assert not _in_pipeline(driver)
        assert driver.info.transaction_status == pq.TransactionStatus.IDLE
        session.rollback()
        assert not commit_pipeline.sent_with_commit(session)
    finally:
        session.close()
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).where(AuditEvent.org_id == scim.org_id)) == before
        assert queries.verify(s, scim.org_id).ok
    # The organization's next write numbers on from the same head; the connection works.
    assert scim.create_user("after@example.com")["userName"] == "after@example.com"
    missing = scim.patch_ops(
        "/scim/v2/Users/00000000-0000-0000-0000-000000000000",
        {"op": "replace", "path": "active", "value": False},
    )
    assert missing.status_code == 404  # a row count read after the pipeline, as ever
    with db.reader(app)() as s:
        assert queries.verify(s, scim.org_id).ok
        assert s.scalar(select(func.count()).where(User.org_id == scim.org_id)) == 1


def test_a_connection_checked_in_in_pipeline_mode_leaves_it_rolled_back(
    pg_live: tuple[Flask, Scim],
) -> None:
    """A session closed with its statement sent but no COMMIT: nothing of it is kept, and
    the pool hands the connection out as any other."""
    app, scim = pg_live
    engine = db.engine(app)
    session = db.writer(app)()
    connection = session.connection()
    rename = Fixed(
        update(Organization)
        .where(Organization.id == bindparam("org"))
        .values(name=bindparam("name"))
    )
    with commit_pipeline.sending_with_commit(session, connection):
        rename.run(connection, {"org": scim.org_id, "name": "gone"})
    session.close()
    for _ in range(engine.pool.size()):
        with engine.connect() as other:
            assert not _in_pipeline(other.connection.driver_connection)
    with db.reader(app)() as s:
        assert s.scalar(select(Organization.name).where(Organization.id == scim.org_id)) != "gone"
    assert scim.create_user("later@example.com")["active"] is True
