"""Planner statistics after bulk changes: ANALYZE a table once enough of it changed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from scim_server.services import table_stats
from tests.support.admin_api import person


def test_a_table_without_statistics_is_analyzed_then_only_past_the_fraction(scim, session):
    """No statistics: analyzed at the first change; then only when changes pass 10 %."""
    for i in range(20):
        person(scim, f"p{i}@example.com")
    session.rollback()
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DROP TABLE IF EXISTS sqlite_stat1"))
    else:
        session.execute(text("UPDATE pg_class SET reltuples = -1 WHERE oid = 'users'::regclass"))
    assert table_stats.estimated_rows(session, "users") is None
    assert table_stats.refresh(session, {"users": 1, "contacts": 0}) == ["users"]
    rows = table_stats.estimated_rows(session, "users")
    assert rows is not None and rows >= 20
    assert table_stats.refresh(session, {"users": rows // 20}) == []
    assert table_stats.refresh(session, {"users": rows // 5 + 1}) == ["users"]


def test_an_unknown_table_is_refused(session):
    """Only the schema's tables: the name goes into SQL."""
    with pytest.raises(ValueError, match="unknown table"):
        table_stats.refresh(session, {'users"; DROP TABLE users; --': 5})


def test_a_minimum_holds_back_small_changes_to_a_small_table(scim, session):
    """During a bulk change: past 10 % but under the minimum, no ANALYZE; at the minimum, one."""
    for i in range(5):
        person(scim, f"m{i}@example.com")
    session.rollback()
    assert table_stats.refresh(session, {"users": 5}) == ["users"]
    assert table_stats.refresh(session, {"users": 5}, minimum=6) == []
    assert table_stats.refresh(session, {"users": 6}, minimum=6) == ["users"]


def test_one_worker_at_a_time_refreshes_stale_statistics(engine, session):
    """While another worker holds the refresh (its advisory lock), a worker's check leaves it
    to them: two ANALYZEs of one table would queue on each other."""
    if engine.dialect.name != "postgresql":
        assert table_stats.refresh_stale(session) == []
        return
    take = table_stats.TAKE_REFRESH_LOCK
    with engine.connect() as other:
        with other.begin():
            assert other.scalar(take)
            assert table_stats.refresh_stale(session) == []
        table_stats.refresh_stale(session)  # free again: this one takes it, to its commit
        with other.begin():
            assert not other.scalar(take)
