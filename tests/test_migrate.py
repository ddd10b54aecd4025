"""Migrations (scim_server/migrate.py): the newest ones go down and up again."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from scim_server.db import db
from scim_server.migrate import alembic_config
from tests.support.admin_api import admin_of
from tests.support.credentials import employee
from tests.support.data import head_revision
from tests.support.dns_server import add_verified_domain


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


def test_0026_goes_down_and_up_again(alone, connection):
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


def _analyzed_events(connection) -> set[str]:
    """The columns of ``events`` that ANALYZE now gives statistics."""
    connection.execute(text("ANALYZE events"))
    return set(
        connection.execute(
            text(
                "SELECT attname FROM pg_stats WHERE tablename = 'events' "
                "AND schemaname = current_schema()"
            )
        ).scalars()
    )


def test_0027_documents_left_out_of_analyze(alone, connection):
    """0027: the stored documents' statistics target is 0 (ANALYZE leaves them out), the
    columns queries select by keep the default; down: the default again. PostgreSQL only."""
    if connection.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no statistics target")
    documents = {
        ("users", "data"),
        ("audit_events", "changes"),
        ("audit_events", "explanation"),
        ("events", "data"),
    }
    targets = _statistics_targets(connection)
    assert {key for key, target in targets.items() if target == 0} == documents
    assert targets[("users", "user_name_key")] in (-1, None)
    # What ANALYZE then does: statistics for the event's type, none for its payload.
    connection.execute(
        text("INSERT INTO organizations (id, name, created_at) VALUES ('o-27', 'o-27', now())")
    )
    connection.execute(
        text(
            "INSERT INTO events (org_id, position, id, type, occurred_at, data) "
            "SELECT 'o-27', n, 'evt_27_' || n, 'user.created', now(), "
            "jsonb_build_object('n', n) FROM generate_series(1, 20) n"
        )
    )
    analyzed = _analyzed_events(connection)
    assert "type" in analyzed and "data" not in analyzed
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0026")
    assert all(target in (-1, None) for target in _statistics_targets(connection).values())
    assert "data" in _analyzed_events(connection)
    command.upgrade(cfg, "head")
    assert {key for key, t in _statistics_targets(connection).items() if t == 0} == documents


def test_0028_keeps_what_a_deactivation_suspended(alone, connection, scim, admin):
    """0028 up again: an account deactivated while locked by an admin (or told to choose a
    new password) before the column existed gets what its ``user.deactivate`` event says
    it suspended; one deactivated from rest, nothing. Its activation then gives it back."""
    locked = scim.create_user("locked@example.com")
    rested = scim.create_user("rested@example.com")
    assert admin.post(f"/api/v1/users/{locked['id']}/actions/lock", None).status_code == 200
    for user in (locked, rested):
        assert admin.post(f"/api/v1/users/{user['id']}/actions/deactivate", None).status_code == 200
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0027")
    columns = connection.execute(text("SELECT * FROM users LIMIT 0")).keys()
    assert "status_before_deactivation" not in columns
    command.upgrade(cfg, "head")
    held = dict(
        connection.execute(text("SELECT user_name, status_before_deactivation FROM users")).all()
    )
    assert held == {"locked@example.com": "LOCKED_BY_ADMIN", "rested@example.com": None}
    activated = admin.post(f"/api/v1/users/{locked['id']}/actions/activate", None)
    assert activated.get_json()["status"] == "LOCKED_BY_ADMIN"


def test_0031_keeps_existing_domains_verified(alone, connection, admin, other_scim, local_dns):
    """0031 down: pending claims go (the global unique index has room for one row a domain);
    up again: every domain present is verified as of its creation, so sign-ins keep working,
    and the index is unique on the verified rows only."""
    add_verified_domain(admin, "contoso.test")
    assert admin.post("/api/v1/sso/domains", {"domain": "pending.test"}).status_code == 201
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0030")
    columns = connection.execute(text("SELECT * FROM sso_email_domains LIMIT 0")).keys()
    assert "verified_at" not in columns and "verification_token" not in columns
    assert connection.execute(text("SELECT domain FROM sso_email_domains")).scalars().all() == [
        "contoso.test"
    ]
    command.upgrade(cfg, "head")
    rows = connection.execute(
        text("SELECT domain, verified_at = created_at, verification_token FROM sso_email_domains")
    ).all()
    assert [tuple(r) for r in rows] == [("contoso.test", True, None)]
    claimed = admin_of(other_scim).post("/api/v1/sso/domains", {"domain": "contoso.test"})
    assert claimed.status_code == 409  # held verified: the backfill counts
    with connection.begin_nested():
        connection.execute(
            text(
                "INSERT INTO sso_email_domains (org_id, domain, created_at) "
                "SELECT :org, domain, created_at FROM sso_email_domains"
            ),
            {"org": other_scim.org_id},
        )  # a second, pending claim of the same domain: allowed by the partial index
    assert "verified_at IS NOT NULL" in _index_sql(connection, "uq_sso_email_domains_domain")


def _index_sql(connection, name: str) -> str:
    if connection.dialect.name == "postgresql":
        sql = "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :name"
    else:
        sql = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
    return connection.execute(text(sql), {"name": name}).scalar()


def test_0034_names_the_scheduler_of_a_waiting_send_to_me(alone, connection, scim):
    """0034 up again: a waiting send "to me" gets the id of the account its kept name
    finds; one whose name finds none fails with the reason (it cannot be checked at the
    send), the command line's stays (it acts as the organization), a send to the user too."""
    manager, renamed, cli, plain = (  # each with its welcome send waiting
        employee(scim, f"{name}@example.com")["id"] for name in ("manager", "a", "b", "c")
    )
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0033")
    columns = connection.execute(text("SELECT * FROM credential_schedules LIMIT 0")).keys()
    assert "scheduled_by_id" not in columns
    legacy = {
        manager: ("manager@example.com", "manager@example.com"),
        renamed: ("x@example.com", "someone renamed"),
        cli: ("ops@example.com", "scim-server credentials schedule"),
        plain: (None, "manager@example.com"),
    }
    for user_id, (recipient, by) in legacy.items():
        connection.execute(
            text(
                "UPDATE credential_schedules SET recipient = :to, scheduled_by = :by,"
                " reason = 'scheduled' WHERE user_id = :id"
            ),
            {"to": recipient, "by": by, "id": user_id},
        )
    command.upgrade(cfg, "head")
    rows = {
        r.user_id: (r.scheduled_by_id, r.state, r.last_error is not None)
        for r in connection.execute(
            text("SELECT user_id, scheduled_by_id, state, last_error FROM credential_schedules")
        )
    }
    assert rows == {
        manager: (manager, "scheduled", False),
        renamed: (None, "failed", True),
        cli: (None, "scheduled", False),
        plain: (None, "scheduled", False),
    }


_REFERRING = ("user_passwords", "password_history", "console_grants")


def _counts(connection) -> dict[str, int]:
    return {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in _REFERRING}


@pytest.mark.parametrize(
    ("down_to", "column"),
    [
        ("0029", "session_epoch"),
        ("0027", "status_before_deactivation"),
        ("0020", "rules_input_hash"),
    ],
)
def test_going_down_past_a_users_column_keeps_what_refers_to_users(
    alone, app, connection, scim, down_to, column
):
    """0030, 0028 and 0021 down dropped their users column by copying the table: on SQLite
    the DROP TABLE users deleted every row of the tables referring to it (passwords, their
    history, console grants, roles, second factors...). The column is dropped in place now:
    every row stays, down and up again."""
    from tests.support.console import console_user
    from tests.support.local import person_with_password

    person_with_password(app, scim, "ann@example.com")
    console_user(app, scim, "boss@example.com", "org_admin")
    before = _counts(connection)
    assert all(before.values()), before
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, down_to)
    columns = connection.execute(text("SELECT * FROM users LIMIT 0")).keys()
    assert column not in columns
    assert _counts(connection) == before
    command.upgrade(cfg, "head")
    assert _counts(connection) == before


def _migrate_file(url: str) -> str:
    """What one process starting on ``url`` does first: migrate, then read the revision."""
    from scim_server.db import make_engine
    from scim_server.migrate import current_revision, upgrade

    engine = make_engine(url)
    try:
        upgrade(engine)
        return str(current_revision(engine))
    finally:
        engine.dispose()


def test_processes_migrating_one_sqlite_file_take_turns(tmp_path):
    """`serve` and `worker` started together after an upgrade both migrate. On PostgreSQL an
    advisory lock makes them take turns; on SQLite all but one failed at once ("database is
    locked": a read transaction cannot become a write). They take turns too now: the first
    migrates, the others find the head and do nothing."""
    from tests.support.processes import started_together

    for attempt in range(3):
        url = f"sqlite:///{tmp_path / f'race{attempt}.db'}"
        found = started_together(_migrate_file, url, count=6)
        assert found == [head_revision()] * 6, found


def test_down_to_0030_and_up_again_keeps_scim_documents_and_the_chain(alone, app, connection, scim):
    """Users (one deactivated), a group with members, tokens and a checkpoint written at head;
    down to 0030 and up again: every SCIM GET answers the same document, the log verifies,
    and the checkpoint filed before still matches."""
    from scim_server.audit.checkpoints import compare_filed

    admin = admin_of(scim)
    user_schema = "urn:ietf:params:scim:schemas:core:2.0:User"
    ids = []
    for i in range(3):
        resp = scim.post(
            "/scim/v2/Users",
            {"schemas": [user_schema], "userName": f"u{i}@example.com", "active": i != 1},
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
        ids.append(resp.get_json()["id"])
    resp = scim.post(
        "/scim/v2/Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Team",
            "members": [{"value": ids[0]}, {"value": ids[2]}],
        },
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    group_id = resp.get_json()["id"]
    checkpoint = admin.post("/api/v1/audit/checkpoints", None).get_json()
    paths = [f"/scim/v2/Users/{i}" for i in ids] + [f"/scim/v2/Groups/{group_id}"]
    before = {p: scim.get(p).get_json() for p in paths}
    cfg = alembic_config(connection.engine)
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "0030")
    command.upgrade(cfg, "head")
    assert {p: scim.get(p).get_json() for p in paths} == before
    verified = admin.get("/api/v1/audit/verify").get_json()
    assert verified["ok"] is True, verified
    with db.reader(app)() as s:
        assert compare_filed(s, scim.org_id, checkpoint) is None
