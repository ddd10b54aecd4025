"""``scim-server admin create``: the first console admin, on a fresh SQLite file."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from scim_server import create_app
from scim_server.cli import main
from scim_server.db import db
from scim_server.models import AuditEvent, Organization, User
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import console_access, users


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def _state(org_name: str):
    app = create_app()
    with db.reader(app)() as s:
        users = list(s.scalars(select(User)))
        grants = {u.user_name: console_access.roles_of(s, u.org_id, u.id) for u in users}
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    db.engine(app).dispose()
    return users, grants, actions


def _add_user(org_name: str, user_name: str, email: str) -> None:
    """An account ``user_name`` whose contact's e-mail is ``email``."""
    app = create_app()
    body = {"schemas": [USER_SCHEMA], "userName": user_name, "emails": [{"value": email}]}
    with db.reader(app)() as s:
        org_id = s.scalar(select(Organization.id).where(Organization.name == org_name))
        s.rollback()
        users.create_user(s, org_id, parse_resource(USER, body, creating=True), source="manual")
    db.engine(app).dispose()


def test_admin_create_makes_the_user_and_grants_org_admin(cli):
    """A new e-mail: the user is created (user.create) and made org_admin (console.grant)."""
    cli("org", "create", "acme")
    result = cli("admin", "create", "--org", "acme", "--email", "Ada@Example.com")
    assert result.exit_code == 0, result.output
    assert "Created user Ada@Example.com" in result.output
    assert "Granted the org_admin console role." in result.output
    assert "/admin/" in result.output and "No single sign-on connection" in result.output
    assert "holds no license" in result.output
    users, grants, actions = _state("acme")
    assert [u.user_name for u in users] == ["Ada@Example.com"]
    assert grants == {"Ada@Example.com": {"org_admin"}}
    assert actions.count("user.create") == 1 and actions.count("console.grant") == 1


def test_admin_create_finds_an_existing_user_and_is_idempotent(cli):
    """Run twice (another case of the e-mail): one user, one grant, 'nothing changed'."""
    cli("org", "create", "acme")
    cli("admin", "create", "--org", "acme", "--email", "ada@example.com")
    again = cli("admin", "create", "--org", "acme", "--email", "ADA@example.com")
    assert again.exit_code == 0
    assert "Found user ada@example.com" in again.output
    assert "Already an org_admin: nothing changed." in again.output
    users, grants, actions = _state("acme")
    assert grants == {"ada@example.com": {"org_admin"}}
    assert len(users) == 1 and actions.count("console.grant") == 1


@pytest.mark.parametrize("email", ["not-an-address", "two words@example.com", ""])
def test_admin_create_refuses_a_bad_email(cli, email):
    """A value that is not an e-mail address: exit 1, a clear message, nothing written."""
    cli("org", "create", "acme")
    result = cli("admin", "create", "--org", "acme", "--email", email)
    assert result.exit_code == 1
    assert "is not an e-mail address" in result.output
    users, _grants, _actions = _state("acme")
    assert users == []


def test_admin_create_unknown_org(cli):
    """An unknown organization is a clean error."""
    result = cli("admin", "create", "--org", "nope", "--email", "a@example.com")
    assert result.exit_code == 1 and "No organization 'nope'" in result.output


def test_admin_create_takes_the_account_whose_username_is_the_address(cli):
    """An older account with the address as its contact e-mail does not win over the
    account whose userName it is."""
    cli("org", "create", "acme")
    _add_user("acme", "mallory", "ada@example.com")
    _add_user("acme", "ada@example.com", "ada@example.com")
    result = cli("admin", "create", "--org", "acme", "--email", "ADA@example.com")
    assert result.exit_code == 0, result.output
    assert "Found user ada@example.com" in result.output
    _users, grants, _actions = _state("acme")
    assert grants == {"mallory": set(), "ada@example.com": {"org_admin"}}


def test_admin_create_refuses_an_address_several_accounts_share(cli):
    """Two accounts have the contact e-mail, neither as userName: exit 1 naming both,
    nothing granted or created; the userName given instead finds the account."""
    cli("org", "create", "acme")
    _add_user("acme", "jdoe", "cto@example.com")
    _add_user("acme", "other", "cto@example.com")
    result = cli("admin", "create", "--org", "acme", "--email", "cto@example.com")
    assert result.exit_code == 1
    assert "several accounts (jdoe, other)" in result.output
    assert "give the userName" in result.output
    users_now, grants, _actions = _state("acme")
    assert len(users_now) == 2 and grants == {"jdoe": set(), "other": set()}
    named = cli("admin", "create", "--org", "acme", "--email", "jdoe")
    assert named.exit_code == 0, named.output
    _users, grants, _actions = _state("acme")
    assert grants == {"jdoe": {"org_admin"}, "other": set()}
