"""``scim-server credentials ...`` on a fresh SQLite file: send, schedule, list, cancel."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from scim_server import create_app
from scim_server.cli import main
from scim_server.db import db
from scim_server.models import CredentialSchedule, MailOutbox
from scim_server.services import tokens
from scim_server.services.organizations import find_organization
from tests.support import USER_SCHEMA


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCIM_BASE_URL", "https://id.acme.example")
    monkeypatch.setenv("SCIM_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("SCIM_ARGON2_MEMORY_KIB", "1024")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("org", "create", "acme").exit_code == 0
    return run


@pytest.fixture
def app_with_user(cli) -> Any:
    """A SCIM user whose welcome is dropped, so the commands start from nothing."""
    app = create_app()
    with db.writer(app)() as session:
        org_id = find_organization(session, "acme").id
        session.rollback()
        _token, secret = tokens.create_token(session, org_id, "idp")
    resp = app.test_client().post(
        "/scim/v2/Users",
        json={
            "schemas": [USER_SCHEMA],
            "userName": "sam@example.com",
            "emails": [{"value": "sam@example.com", "primary": True}],
        },
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert resp.status_code == 201
    with db.writer(app)() as session, session.begin():
        session.execute(CredentialSchedule.__table__.delete())
    yield app
    db.engine(app).dispose()


def test_send_by_username_queues_the_mail(cli, app_with_user):
    """credentials send --org acme sam@example.com: one welcome mail, its link on our base URL."""
    result = cli("credentials", "send", "--org", "acme", "sam@example.com")
    assert result.exit_code == 0, result.output
    assert "queued welcome (temporary password) to sam@example.com" in result.output
    with db.reader(app_with_user)() as session:
        mail = session.scalars(select(MailOutbox)).one()
        assert "https://id.acme.example/sso/login" in mail.body_text


def test_an_empty_to_me_is_a_usage_error_not_the_users_address(cli, app_with_user):
    """--to-me '' read as no --to-me mailed the user's credentials to the user: the operator
    asked for them at an address they did not manage to type. Now a usage error, nothing
    queued."""
    for blank in ("", "  "):
        result = cli("credentials", "send", "--org", "acme", "--to-me", blank, "sam@example.com")
        assert result.exit_code == 2, result.output
        assert "--to-me" in result.output and "must not be empty" in result.output
    with db.reader(app_with_user)() as session:
        assert session.scalars(select(MailOutbox)).all() == []


def test_schedule_list_and_cancel(cli, app_with_user):
    """schedule --at (zone required), list shows it, cancel removes it; unknown users exit 1."""
    naive = cli(
        "credentials", "schedule", "--org", "acme", "--at", "2030-01-01T08:00", "sam@example.com"
    )
    assert naive.exit_code == 2 and "timezone" in naive.output
    ok = cli(
        "credentials",
        "schedule",
        "--org",
        "acme",
        "--at",
        "2027-06-01T08:00+01:00",
        "sam@example.com",
    )
    assert ok.exit_code == 0 and "scheduled for 2027-06-01T07:00:00Z" in ok.output
    listed = cli("credentials", "list", "--org", "acme")
    assert "2027-06-01T07:00:00Z" in listed.output and "scheduled" in listed.output
    assert cli("credentials", "cancel", "--org", "acme", "sam@example.com").exit_code == 0
    assert cli("credentials", "list", "--org", "acme").output.strip() == ""
    missing = cli("credentials", "send", "--org", "acme", "nobody@example.com")
    assert missing.exit_code == 1 and "No user" in missing.output
