"""SQLite query plans of the account lookups (the sign-in's and the forgot-password's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine

from scim_server.db import Base


def assert_indexed_by_key(lookups: list[tuple[str, Any]]) -> None:
    """Each (sql, params) searches users and contacts by an index that names its key.

    Planned on an empty copy of the schema, with no statistics: the test database's
    (left by earlier tests' PRAGMA optimize, for tables of a few rows) would make the
    planner prefer a scan that a real organization's size never would.
    """
    fresh = create_engine("sqlite://")
    Base.metadata.create_all(fresh)
    with fresh.connect() as planner:
        plans = [
            [row[-1] for row in planner.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
            for sql, params in lookups
        ]
    fresh.dispose()
    for plan in plans:
        assert any(step.startswith("SEARCH users USING") for step in plan), plan
        assert any(step.startswith("SEARCH contacts USING") for step in plan), plan
        assert not any(step.startswith(("SCAN users", "SCAN contacts")) for step in plan), plan
        # Each probe names its key, not only the organization (every user of it).
        searches = [step for step in plan if step.startswith(("SEARCH users", "SEARCH contacts"))]
        assert not any(step.endswith("(org_id=?)") for step in searches), plan
