"""``scim_server.fixed``: a statement run through ``exec_driver_sql`` stores exactly what
``connection.execute`` of the same statement does (its bind processors: UTC times, JSON and
JSON null), and stays visible to engine events and SQLAlchemy's errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, delete, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from scim_server.fixed import Fixed, fixed_of
from scim_server.models import AuditEvent, Organization
from scim_server.services.organizations import create_organization

COLUMNS = [c.name for c in AuditEvent.__table__.columns]
PLUS_TWO = timezone(timedelta(hours=2))


def _row(org_id: str, seq: int, **more: Any) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS)
    row.update(
        org_id=org_id,
        seq=seq,
        occurred_at=datetime(2026, 3, 1, 14, 30, 5, 123456, tzinfo=PLUS_TWO),
        received_at=datetime(2026, 3, 1, 12, 30, 4, tzinfo=UTC),
        actor_type="token",
        action="user.create",
        outcome="success",
        status=201,
        changes={"title": {"before": None, "after": "Ünïcode ✓"}, "n": [1, 2.5, True]},
        explanation=None,  # a JSON column's None: stored as JSON null by an INSERT
        prev_hash="p",
        hash=f"h{seq}",
    )
    row.update(more)
    return row


@pytest.fixture
def org_id(session) -> str:
    return create_organization(session, "Fixed statements").id


def _stored(connection, org_id: str, seq: int) -> tuple[Any, ...]:
    """The row as the database holds it (text: no result processing)."""
    return tuple(
        connection.execute(
            text(
                "SELECT occurred_at, received_at, changes, explanation, explanation IS NULL "
                "FROM audit_events WHERE org_id = :o AND seq = :s"
            ),
            {"o": org_id, "s": seq},
        ).one()
    )


def test_insert_stores_what_execute_stores(connection, org_id):
    """The same row inserted by ``execute`` and by ``Fixed`` is stored the same: times as
    naive UTC, the JSON document, a JSON column's None as JSON null (not SQL NULL)."""
    seq0 = 10_000
    connection.execute(insert(AuditEvent), _row(org_id, seq0))
    Fixed(insert(AuditEvent), keys=COLUMNS).run(connection, _row(org_id, seq0 + 1))
    by_execute = _stored(connection, org_id, seq0)
    by_fixed = _stored(connection, org_id, seq0 + 1)
    assert by_fixed == by_execute
    assert by_fixed[4] in (False, 0)  # JSON null, not SQL NULL


def test_executemany_and_the_statements_own_parameters(connection, org_id):
    """A list of rows is one executemany, read back as ``execute`` stored them; a parameter
    the statement carries (``+ 1``) is bound."""
    rows = [_row(org_id, 30_000 + i) for i in range(3)]
    Fixed(insert(AuditEvent), keys=COLUMNS).run(connection, rows)
    query = select(AuditEvent.seq, AuditEvent.occurred_at, AuditEvent.changes).where(
        AuditEvent.org_id == org_id, AuditEvent.seq >= 30_000
    )
    read = connection.execute(query.order_by(AuditEvent.seq)).all()
    assert [tuple(r) for r in read] == [
        (30_000 + i, datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC), rows[0]["changes"])
        for i in range(3)
    ]
    bump = update(AuditEvent).where(
        AuditEvent.org_id == bindparam("o"), AuditEvent.seq == bindparam("s")
    )
    Fixed(bump.values(status=AuditEvent.status + 1)).run(connection, {"o": org_id, "s": 30_001})
    assert (
        connection.scalar(
            select(AuditEvent.status).where(AuditEvent.org_id == org_id, AuditEvent.seq == 30_001)
        )
        == 202
    )


def test_seen_by_engine_events_and_errors_are_sqlalchemys(connection, org_id):
    """The statement reaches ``before_cursor_execute`` (statement counts) and a constraint
    violation is SQLAlchemy's ``IntegrityError``, as with ``execute``."""
    seen: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    statement = Fixed(insert(AuditEvent), keys=COLUMNS)
    event.listen(connection.engine, "before_cursor_execute", spy)
    try:
        statement.run(connection, _row(org_id, 40_000))
        with connection.begin_nested() as savepoint:
            with pytest.raises(IntegrityError):
                statement.run(connection, _row(org_id, 40_000))
            savepoint.rollback()
    finally:
        event.remove(connection.engine, "before_cursor_execute", spy)
    assert sum(s.startswith("INSERT INTO audit_events") for s in seen) == 2


def test_what_it_cannot_run_goes_through_execute(connection, org_id):
    """An expanding IN list, or rows to return (RETURNING), run by ``execute`` as before."""
    Fixed(insert(AuditEvent), keys=COLUMNS).run(
        connection, [_row(org_id, 50_000), _row(org_id, 50_001)]
    )
    gone = delete(AuditEvent).where(
        AuditEvent.org_id == bindparam("org_id"),
        AuditEvent.seq.in_(bindparam("seqs", expanding=True)),
    )
    fixed = fixed_of(gone)
    assert fixed.execute(connection, {"org_id": org_id, "seqs": [50_000, 7]}).rowcount == 1
    assert fixed._compiled(connection.dialect) is None
    assert fixed_of(gone) is fixed
    returning = fixed_of(
        delete(AuditEvent)
        .where(AuditEvent.org_id == bindparam("org_id"), AuditEvent.seq >= 50_000)
        .returning(AuditEvent.seq, AuditEvent.occurred_at)
    )
    assert returning.execute(connection, {"org_id": org_id}).all() == [
        (50_001, datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC))
    ]
    assert returning._compiled(connection.dialect) is None


def test_in_a_transaction_it_runs_on_the_cursor_with_events_and_rowcount(connection, org_id):
    """In a transaction a statement runs on the driver's cursor (``fixed.Ran``, no
    execution context or result): both cursor events see it with its parameters, the
    rowcount is the driver's (an executemany's too) and the rows change as ``execute``'s
    UPDATE would change them."""
    from scim_server.fixed import Ran

    Fixed(insert(AuditEvent), keys=COLUMNS).run(
        connection, [_row(org_id, 60_000 + i) for i in range(3)]
    )
    seen: list[tuple[str, str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, params: Any, *_args: Any) -> None:
        seen.append(("before", statement, params))

    def after(_conn: Any, _cursor: Any, statement: str, params: Any, *_args: Any) -> None:
        seen.append(("after", statement, params))

    bump = Fixed(
        update(AuditEvent)
        .where(AuditEvent.org_id == bindparam("o"), AuditEvent.seq >= bindparam("s"))
        .values(status=AuditEvent.status + 1)
    )
    one = Fixed(
        update(AuditEvent)
        .where(AuditEvent.org_id == bindparam("o"), AuditEvent.seq == bindparam("s"))
        .values(outcome=bindparam("outcome"))
    )
    event.listen(connection, "before_cursor_execute", before)
    event.listen(connection, "after_cursor_execute", after)
    try:
        assert connection.in_transaction()
        result = bump.execute(connection, {"o": org_id, "s": 60_001})
        many = one.execute(
            connection,
            [
                {"o": org_id, "s": 60_000, "outcome": "failure"},
                {"o": org_id, "s": 60_002, "outcome": "failure"},
            ],
        )
    finally:
        event.remove(connection, "before_cursor_execute", before)
        event.remove(connection, "after_cursor_execute", after)
    assert isinstance(result, Ran) and result.rowcount == 2
    assert isinstance(many, Ran) and many.rowcount == 2
    assert [(kind, sql.split()[0]) for kind, sql, _p in seen] == [
        ("before", "UPDATE"),
        ("after", "UPDATE"),
        ("before", "UPDATE"),
        ("after", "UPDATE"),
    ]
    assert org_id in str(seen[0][2]) and "failure" in str(seen[2][2])
    read = connection.execute(
        select(AuditEvent.seq, AuditEvent.status, AuditEvent.outcome)
        .where(AuditEvent.org_id == org_id, AuditEvent.seq >= 60_000)
        .order_by(AuditEvent.seq)
    ).all()
    assert [tuple(r) for r in read] == [
        (60_000, 201, "failure"),
        (60_001, 202, "success"),
        (60_002, 202, "failure"),
    ]


def test_without_a_transaction_it_begins_one_as_execute_does(engine):
    """On a connection with no transaction begun, the statement goes through
    ``exec_driver_sql`` (its autobegin: on SQLite a writer's BEGIN IMMEDIATE); a unique
    violation in the transaction it began is SQLAlchemy's ``IntegrityError``."""
    seen: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    row = {
        "id": "fixed-autobegin",
        "name": "Fixed autobegin",
        "created_at": datetime(2026, 3, 1, tzinfo=UTC),
        "rate_limit_per_minute": None,
        "settings": {},
    }
    statement = Fixed(insert(Organization), keys=list(row))
    with engine.execution_options(sqlite_immediate=True).connect() as conn:
        event.listen(conn, "before_cursor_execute", spy)
        assert not conn.in_transaction()
        statement.run(conn, row)
        assert conn.in_transaction()
        with pytest.raises(IntegrityError):
            statement.run(conn, row)
        conn.rollback()
    if engine.dialect.name == "sqlite":
        assert seen[0] == "BEGIN IMMEDIATE"
    assert sum(s.startswith("INSERT INTO organizations") for s in seen) == 2


def _organization_row(org: str) -> dict[str, Any]:
    return {
        "id": org,
        "name": org,
        "created_at": datetime(2026, 3, 1, tzinfo=UTC),
        "rate_limit_per_minute": None,
        "settings": {},
    }


def test_run_and_commit_commits_with_the_statement_on_postgresql(engine):
    """The statement and the transaction's COMMIT in one go: committed when it returns, the
    connection out of pipeline mode, and the COMMIT SQLAlchemy sends after finds nothing to
    do. Elsewhere (SQLite, or a transaction that is not the connection's own) it does
    nothing and says so."""
    org = f"fixed-commit-{engine.dialect.name}"
    statement = Fixed(insert(Organization), keys=list(_organization_row(org)))
    try:
        with engine.connect() as conn:
            conn.begin()
            committed = statement.run_and_commit(conn, _organization_row(org))
            if engine.dialect.name != "postgresql":
                assert not committed
                return
            assert committed
            driver = conn.connection.driver_connection
            assert not driver.pgconn.pipeline_status
            assert driver.info.transaction_status == driver.info.transaction_status.IDLE
            conn.rollback()  # too late: it is committed
            conn.begin_nested()  # a savepoint's statement commits nothing
            assert not statement.run_and_commit(conn, _organization_row(org + "-2"))
        with engine.connect() as conn:
            found = conn.scalars(select(Organization.id).where(Organization.id.like(f"{org}%")))
            assert found.all() == [org]
    finally:
        with engine.begin() as conn:
            conn.execute(delete(Organization).where(Organization.id.like(f"{org}%")))


def test_run_and_commit_raises_the_statements_error_and_commits_nothing(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: psycopg's pipeline mode")
    org = "fixed-commit-error"
    statement = Fixed(insert(Organization), keys=list(_organization_row(org)))
    other = Fixed(update(Organization).where(Organization.id == bindparam("o")).values(name="x"))
    try:
        with engine.begin() as conn:
            statement.run(conn, _organization_row(org))
        with engine.connect() as conn:
            conn.begin()
            other.run(conn, {"o": org})  # in the transaction that then fails
            with pytest.raises(IntegrityError):
                statement.run_and_commit(conn, _organization_row(org))  # a duplicate
            driver = conn.connection.driver_connection
            assert not driver.pgconn.pipeline_status
            conn.rollback()
            assert conn.scalar(select(Organization.name).where(Organization.id == org)) == org
    finally:
        with engine.begin() as conn:
            conn.execute(delete(Organization).where(Organization.id == org))
