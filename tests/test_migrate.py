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
