"""Migrations (scim_server/migrate.py): the newest ones go down and up again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from scim_server.migrate import alembic_config
from tests.support.data import head_revision


def _users_fillfactor(connection) -> str | None:
    options = connection.execute(
        text("SELECT reloptions FROM pg_class WHERE oid = 'users'::regclass")
    ).scalar()
    return next((o for o in options or [] if o.startswith("fillfactor=")), None)


def _wanted_index(connection) -> str:
    if connection.dialect.name == "postgresql":
        sql = "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :name"
    else:
        sql = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
    return connection.execute(text(sql), {"name": "ix_users_org_id_license_wanted_id"}).scalar()


def test_0026_goes_down_and_up_again(connection):
    """0026 down: users' fillfactor back to the default, the shortage index on every user;
    up again: fillfactor 80 (PostgreSQL) and the index of the users waiting for a license.
    In the test's transaction (rolled back after)."""
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        assert _users_fillfactor(connection) == "fillfactor=80"
    assert "license_wanted_id IS NOT NULL" in _wanted_index(connection)

    command.downgrade(cfg, "0025")
    assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0025"
    if postgresql:
        assert _users_fillfactor(connection) is None
    assert "WHERE" not in _wanted_index(connection).upper()

    command.upgrade(cfg, "head")
    assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
        head_revision()
    )
    if postgresql:
        assert _users_fillfactor(connection) == "fillfactor=80"
    assert "license_wanted_id IS NOT NULL" in _wanted_index(connection)


def _statistics_targets(connection) -> dict[tuple[str, str], int]:
    rows = connection.execute(
        text(
            "SELECT c.relname, a.attname, a.attstattarget FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE c.relname IN ('users', 'audit_events', 'events') "
            "AND c.relnamespace = current_schema()::regnamespace "
            "AND a.attname IN ('data', 'changes', 'explanation', 'user_name_key', 'action')"
        )
    )
    return {(table, column): target for table, column, target in rows}


def test_0027_documents_left_out_of_analyze(connection):
    """0027: the stored documents' statistics target is 0 (ANALYZE leaves them out), the
    columns queries select by keep the default; down: the default again. PostgreSQL only."""
    if connection.dialect.name != "postgresql":
        return  # SQLite has no statistics target: nothing to change
    documents = {
        ("users", "data"),
        ("audit_events", "changes"),
        ("audit_events", "explanation"),
        ("events", "data"),
    }
    targets = _statistics_targets(connection)
    assert {key for key, target in targets.items() if target == 0} == documents
    assert targets[("users", "user_name_key")] in (-1, None)
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0026")
    assert all(target in (-1, None) for target in _statistics_targets(connection).values())
    command.upgrade(cfg, "head")
    assert {key for key, t in _statistics_targets(connection).items() if t == 0} == documents
