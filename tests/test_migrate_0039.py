"""Migration 0039 (users.new_password_required): an admin's demand for a new password that a
status covers now is found again, from the status or the account's log."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from scim_server.migrate import alembic_config


def test_0039_finds_the_demands_a_status_covers(alone, connection, scim, admin):
    """Down to 0038 and up again: accounts awaiting a new password, or locked, deactivated
    while locked, or in RECOVERY from it (their log says so) get the demand back; a lock
    from rest or after the demand was lifted gets none. An unlock then ends awaiting."""

    def user(name: str, *ops: str) -> str:
        user_id = str(scim.create_user(f"{name}@example.com")["id"])
        for op in ops:
            resp = admin.post(f"/api/v1/users/{user_id}/actions/{op}", None)
            assert resp.status_code == 200, (op, resp.get_json())
        return user_id

    user("awaiting", "require_new_password")
    locked = user("locked", "require_new_password", "lock")
    user("deactivated", "require_new_password", "lock", "deactivate")
    recovering = user("recovering", "require_new_password", "start_recovery")
    # Where a reset asked for left such an account before 0039.
    connection.execute(
        text("UPDATE users SET status = 'RECOVERY' WHERE id = :id"), {"id": recovering}
    )
    user("rested", "lock")
    user("lifted", "require_new_password", "complete_recovery", "lock")
    user("plain")
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0038")
    columns = connection.execute(text("SELECT * FROM users LIMIT 0")).keys()
    assert "new_password_required" not in columns
    command.upgrade(cfg, "head")
    required = dict(
        connection.execute(text("SELECT user_name, new_password_required FROM users")).all()
    )
    assert {name.partition("@")[0]: bool(v) for name, v in required.items()} == {
        "awaiting": True,
        "locked": True,
        "deactivated": True,
        "recovering": True,
        "rested": False,
        "lifted": False,
        "plain": False,
    }
    unlocked = admin.post(f"/api/v1/users/{locked}/actions/unlock", None)
    assert unlocked.get_json()["status"] == "AWAITING_NEW_PASSWORD"
