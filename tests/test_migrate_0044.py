"""Migration 0044: a mailed link records the account's address it went to
(``credential_tokens.sent_to``); the links present take it from the mail that carried them."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from scim_server.migrate import alembic_config
from tests.support.credentials import employee, set_settings
from tests.support.data import head_revision
from tests.support.local import forgot


def _links(connection) -> dict[str, tuple[str, bool]]:
    rows = connection.execute(
        text("SELECT user_id, purpose, used_at FROM credential_tokens ORDER BY user_id")
    )
    return {user_id: (purpose, used_at is not None) for user_id, purpose, used_at in rows}


def _sent_to(connection) -> dict[str, str | None]:
    rows = connection.execute(text("SELECT user_id, sent_to FROM credential_tokens"))
    return {user_id: sent_to for user_id, sent_to in rows}


def test_0044_goes_down_and_up_again_and_ties_the_live_links_to_their_mails_address(
    alone, connection, app, scim, admin
):
    """Down to 0043: the column is gone, every link still there. Up again: a live link mailed
    to its account takes that mail's recipient (its use is checked against it); one an admin
    had mailed to themselves takes none (theirs to hand over)."""
    carol = employee(scim, "carol@corp.example", password="Original-pass-phrase-31")["id"]
    assert forgot(app.test_client(), "carol@corp.example").status_code == 200
    set_settings(admin, credentials_delivery="activation_link")
    dave = employee(scim, "dave@corp.example", password="Original-pass-phrase-31")["id"]
    resp = admin.post(
        f"/api/v1/users/{dave}/password/reset", {"to": "me", "me": "it-admin@corp.example"}
    )
    assert resp.status_code == 202, resp.get_json()
    before = _links(connection)
    assert before == {carol: ("reset", False), dave: ("reset", False)}
    assert _sent_to(connection) == {carol: "carol@corp.example", dave: None}
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection

    command.downgrade(cfg, "0043")
    columns = connection.execute(text("SELECT * FROM credential_tokens LIMIT 0")).keys()
    assert "sent_to" not in set(columns)
    assert _links(connection) == before

    command.upgrade(cfg, "head")
    assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
        head_revision()
    )
    assert _links(connection) == before
    assert _sent_to(connection) == {carol: "carol@corp.example", dave: None}
