"""Migration 0040 (webhook secrets sealed at rest): the secret columns become text, wide enough
for a sealed value; going back refuses while a sealed secret would not fit or sign."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from scim_server.migrate import alembic_config
from tests.support.admin_api import ok
from tests.support.data import head_revision
from tests.support.webhooks import subscribe


def _types(connection) -> dict[str, str]:
    """The declared type of each secret column, as the database reports it."""
    if connection.dialect.name == "postgresql":
        rows = connection.execute(
            text(
                "SELECT column_name, data_type, character_maximum_length "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_name = 'webhook_subscriptions'"
            )
        ).all()
        return {
            name: f"{kind}({length})" if length else kind
            for name, kind, length in rows
            if name in ("secret", "previous_secret")
        }
    rows = connection.execute(text("PRAGMA table_info(webhook_subscriptions)")).all()
    return {r[1]: r[2].lower() for r in rows if r[1] in ("secret", "previous_secret")}


def _version(connection) -> str:
    return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar())


def test_0040_widens_the_secret_columns_and_refuses_to_go_back_over_sealed_ones(
    alone, connection, admin
):
    """At head the columns are text and hold a sealed secret (longer than the 100 characters
    PostgreSQL enforced before). Down to 0039 with one stored: refused, saying why, nothing
    changed. With only clear secrets (as 0039 stored them): down to varchar(100) and up again,
    the clear secret kept, and sealed by the next write."""
    sub = subscribe(admin, "https://hooks.example.com/in")
    sealed = connection.execute(
        text("SELECT secret FROM webhook_subscriptions WHERE id = :id"), {"id": sub["id"]}
    ).scalar()
    assert sealed.startswith("enc:v1:") and len(sealed) > 100
    wide = "text"
    assert _types(connection) == {"secret": wide, "previous_secret": wide}
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection

    with pytest.raises(
        RuntimeError, match=r"1 webhook subscription\(s\) hold sealed secrets"
    ) as refused:
        command.downgrade(cfg, "0039")
    assert "cannot sign with" in str(refused.value) and "Delete" in str(refused.value)
    # 0040's step refused: later steps may have gone down before it, 0040 itself stays.
    assert _version(connection) in ("0040", head_revision())
    assert _types(connection) == {"secret": wide, "previous_secret": wide}

    connection.execute(
        text("UPDATE webhook_subscriptions SET secret = :s WHERE id = :id"),
        {"s": sub["secret"], "id": sub["id"]},
    )
    command.downgrade(cfg, "0039")
    assert _version(connection) == "0039"
    narrow = "character varying(100)" if connection.dialect.name == "postgresql" else "varchar(100)"
    assert _types(connection) == {"secret": narrow, "previous_secret": narrow}
    command.upgrade(cfg, "head")
    assert _version(connection) == head_revision()
    assert _types(connection) == {"secret": wide, "previous_secret": wide}
    stored = connection.execute(
        text("SELECT secret FROM webhook_subscriptions WHERE id = :id"), {"id": sub["id"]}
    ).scalar()
    assert stored == sub["secret"]
    ok(admin.patch(f"/api/v1/webhooks/{sub['id']}", {"description": "CRM"}))
    stored = connection.execute(
        text("SELECT secret FROM webhook_subscriptions WHERE id = :id"), {"id": sub["id"]}
    ).scalar()
    assert stored.startswith("enc:v1:") and sub["secret"] not in stored
