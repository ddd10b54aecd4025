"""What the command line refuses: a clear message and a non-zero exit, never a traceback.

Values a column cannot hold are refused where they come in (click's types, and
``pass_env`` for NUL, which PostgreSQL text cannot hold) and again by the service
every entry point shares, so the command line gets the admin API's limits: a rate
limit up to 2**31-1 (an Integer column), a webhook description of 500 characters.
Run on this session's database (the SQLite file or the PostgreSQL schema).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from scim_server.cli import main
from scim_server.errors import InvalidValueError
from scim_server.models import Organization, WebhookSubscription
from scim_server.ratelimit import MAX_LIMIT, set_org_limit
from scim_server.services import webhooks


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``scim-server`` on this run's database; an exception in a command fails the test."""
    monkeypatch.setenv("SCIM_DATABASE_URL", engine.url.render_as_string(False))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def org(cli: Any, engine: Engine) -> Iterator[str]:
    """A new organization's name, committed by the CLI; deleted after (the database is the
    session's: a migration test's downgrade must not meet its webhook subscriptions)."""
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert cli("org", "create", name).exit_code == 0
    yield name
    with engine.begin() as conn:
        conn.execute(delete(Organization).where(Organization.name == name))


def _org_limit(engine: Engine, name: str) -> Any:
    with engine.connect() as conn:
        stmt = select(Organization.rate_limit_per_minute).where(Organization.name == name)
        return conn.execute(stmt).scalar_one()


def _webhooks(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        org_id = conn.execute(select(Organization.id).where(Organization.name == name)).scalar_one()
        stmt = select(func.count()).select_from(WebhookSubscription)
        return int(conn.execute(stmt.where(WebhookSubscription.org_id == org_id)).scalar_one())


def _organizations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Organization)).scalar_one())


@pytest.mark.parametrize("limit", [MAX_LIMIT + 1, 2**63, 2**70])
def test_a_rate_limit_beyond_the_column_is_a_usage_error(cli, engine, org, limit):
    """``org set-rate-limit ORG N``: exit 2 with the range; the override is unchanged."""
    result = cli("org", "set-rate-limit", org, str(limit))
    assert result.exit_code == 2
    assert f"0<=x<={MAX_LIMIT}" in result.output
    assert _org_limit(engine, org) is None


def test_the_largest_rate_limit_is_stored(cli, engine, org):
    """2**31-1 requests per minute is a limit like any other."""
    assert cli("org", "set-rate-limit", org, str(MAX_LIMIT)).exit_code == 0
    assert _org_limit(engine, org) == MAX_LIMIT


def test_the_service_refuses_a_rate_limit_beyond_the_column(app, session, scim):
    """ratelimit.set_org_limit checks the bound too, for any other caller."""
    with pytest.raises(InvalidValueError):
        set_org_limit(session, scim.org_id, MAX_LIMIT + 1)


def test_a_webhook_description_too_long_is_a_clear_error(cli, engine, org):
    """``webhooks create --description`` of 501 characters: exit 1 with the limit; no
    subscription (SQLite, which ignores varchar lengths, stores nothing longer either)."""
    url = "https://h.example.com/"
    result = cli("webhooks", "create", "--org", org, url, "--description", "d" * 501)
    assert result.exit_code == 1
    assert f"at most {webhooks.MAX_DESCRIPTION} characters" in result.output
    assert _webhooks(engine, org) == 0


def test_a_webhook_description_of_500_characters_is_stored(cli, engine, org):
    """The limit itself is accepted."""
    url = "https://h.example.com/"
    assert cli("webhooks", "create", "--org", org, url, "--description", "d" * 500).exit_code == 0
    assert _webhooks(engine, org) == 1


@pytest.mark.parametrize(
    "args",
    [
        ("org", "create", "a\x00b"),
        ("token", "create", "--org", "{org}", "--name", "a\x00b"),
        ("token", "create", "--org", "a\x00b"),
        ("webhooks", "update", "--org", "{org}", "a\x00b", "--disable"),
        ("webhooks", "deliveries", "--org", "{org}", "a\x00b"),
        ("webhooks", "create", "--org", "{org}", "https://h.example.com/", "--event", "a\x00b"),
    ],
)
def test_nul_in_an_argument_is_a_usage_error(cli, engine, org, args):
    """Exit 2 naming the parameter, before any query; nothing is created."""
    before = _organizations(engine)
    result = cli(*(a.format(org=org) for a in args))
    assert result.exit_code == 2
    assert "NUL characters are not allowed." in result.output
    assert "Invalid value for" in result.output
    assert _organizations(engine) == before
    assert _webhooks(engine, org) == 0
