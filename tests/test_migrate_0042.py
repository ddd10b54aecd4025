"""Migration 0042: the OIDC provider's codes and tokens carry the SSO connection their
session came through (``connection_id``; a token its sign-in time, ``auth_time``), and a
connection keeps when it was last disabled (``disabled_at``)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from scim_server.migrate import alembic_config
from tests.support.data import head_revision

ADDED = {
    "oauth_codes": {"connection_id"},
    "oauth_tokens": {"connection_id", "auth_time"},
    "sso_connections": {"disabled_at"},
}


def _columns(connection, table: str) -> set[str]:
    return set(connection.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys())


def _counts(connection) -> dict[str, int]:
    tables = ("sso_connections", "sso_identity_links", "sso_email_domains")
    return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in tables}


def test_0042_goes_down_and_up_again_keeping_the_connections_and_their_links(
    alone, connection, scim, admin
):
    """Down to 0041: the columns are gone, and the connection, its identity links and its
    domain are all still there (its columns are dropped in place: a copy of
    ``sso_connections`` would have deleted the links, ON DELETE CASCADE). Up again: the
    columns are back, empty (rows from before are not checked against a connection)."""
    conn = admin.post("/api/v1/sso/connections", {"protocol": "saml", "name": "Entra"})
    assert conn.status_code == 201, conn.get_json()
    conn_id = conn.get_json()["id"]
    assert admin.patch(f"/api/v1/sso/connections/{conn_id}", {"enabled": False}).status_code == 200
    user_id = scim.create_user("ann@example.com")["id"]
    connection.execute(
        text(
            "INSERT INTO sso_identity_links (org_id, connection_id, subject, user_id, created_at)"
            " VALUES (:org, :conn, 'ann', :user, CURRENT_TIMESTAMP)"
        ),
        {"org": scim.org_id, "conn": conn_id, "user": user_id},
    )
    domain = admin.post("/api/v1/sso/domains", {"domain": "pending.test", "connection_id": conn_id})
    assert domain.status_code == 201, domain.get_json()
    before = _counts(connection)
    assert all(before.values()), before
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection

    command.downgrade(cfg, "0041")
    for table, added in ADDED.items():
        assert not added & _columns(connection, table), table
    assert _counts(connection) == before

    command.upgrade(cfg, "head")
    assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
        head_revision()
    )
    for table, added in ADDED.items():
        assert added <= _columns(connection, table), table
    assert _counts(connection) == before
    disabled = connection.execute(
        text("SELECT enabled, disabled_at FROM sso_connections WHERE id = :id"), {"id": conn_id}
    ).one()
    assert (bool(disabled[0]), disabled[1]) == (False, None)
