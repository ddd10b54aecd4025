"""The scim-server command line (DESIGN.md §4), on a fresh SQLite file each test."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from scim_server import create_app
from scim_server.cli import main
from scim_server.models import AuditEvent

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def test_db_upgrade_creates_and_is_idempotent(cli):
    """db upgrade can be run repeatedly and reports the revision."""
    first = cli("db", "upgrade")
    assert first.exit_code == 0
    from tests.support.data import head_revision

    assert head_revision() in first.output
    again = cli("db", "upgrade")
    assert again.exit_code == 0


def test_org_and_token_create_give_a_working_token(cli):
    """org create prints an id; token create prints a token that authenticates SCIM requests."""
    org = cli("org", "create", "acme")
    assert org.exit_code == 0
    org_id = org.output.strip()
    assert len(org_id) == 36
    token = cli("token", "create", "--org", "acme", "--name", "entra")
    assert token.exit_code == 0
    secret = token.output.strip()
    assert secret.startswith("scim_")
    by_id = cli("token", "create", "--org", org_id)
    assert by_id.exit_code == 0
    client = create_app().test_client()
    resp = client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 200
    assert resp.get_json()["totalResults"] == 0


def test_token_list_and_revoke(cli):
    """token list shows names, never secrets; token revoke makes the token fail with 401."""
    cli("org", "create", "acme")
    secret = cli("token", "create", "--org", "acme", "--name", "okta").output.strip()
    listed = cli("token", "list", "--org", "acme")
    assert "okta" in listed.output and secret not in listed.output
    token_id = listed.output.split("\t")[0]
    assert cli("token", "revoke", "--org", "acme", token_id).exit_code == 0
    assert "revoked" in cli("token", "list", "--org", "acme").output
    client = create_app().test_client()
    resp = client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 401


def _events(database) -> list[AuditEvent]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as s:
            return list(s.scalars(select(AuditEvent).order_by(AuditEvent.org_id, AuditEvent.seq)))
    finally:
        engine.dispose()


def test_org_and_token_commands_name_the_cli_as_actor(cli, tmp_path):
    """README: each event carries its actor (token, admin, CLI or system); as every other
    command's, these name the CLI (and the command), not the server itself ("system")."""
    assert cli("org", "create", "acme").exit_code == 0
    assert cli("org", "set-rate-limit", "acme", "120").exit_code == 0
    assert cli("token", "create", "--org", "acme", "--name", "entra").exit_code == 0
    assert cli("token", "create", "--org", "acme", "--admin", "--name", "ops").exit_code == 0
    token_id = next(
        e.resource_id for e in _events(tmp_path / "cli.db") if e.action == "token.create"
    )
    assert cli("token", "revoke", "--org", "acme", token_id).exit_code == 0
    actors = [(e.action, e.actor_type, e.actor_name) for e in _events(tmp_path / "cli.db")]
    assert actors == [
        ("organization.create", "cli", "scim-server org create"),
        ("organization.rate_limit", "cli", "scim-server org set-rate-limit"),
        ("token.create", "cli", "scim-server token create"),
        ("token.create", "cli", "scim-server token create"),
        ("token.revoke", "cli", "scim-server token revoke"),
    ]


def test_errors_are_clear_and_exit_nonzero(cli):
    """Duplicate organizations and unknown organizations are reported without a traceback."""
    cli("org", "create", "acme")
    dup = cli("org", "create", "acme")
    assert dup.exit_code == 1
    assert "already exists" in dup.output
    unknown = cli("token", "create", "--org", "nope")
    assert unknown.exit_code == 1
    assert "No organization" in unknown.output


def test_secret_key_required_outside_development(cli, monkeypatch):
    """SCIM_ENV=production without SCIM_SECRET_KEY is a clear error."""
    monkeypatch.setenv("SCIM_ENV", "production")
    monkeypatch.delenv("SCIM_SECRET_KEY", raising=False)
    result = cli("db", "upgrade")
    assert result.exit_code == 1
    assert "SCIM_SECRET_KEY is required" in result.output


def test_serve_keeps_existing_data(cli, monkeypatch):
    """Serving migrates first and never loses data already there."""
    cli("org", "create", "acme")
    started = {}
    monkeypatch.setattr("flask.Flask.run", lambda self, **kw: started.update(kw))
    result = cli("serve", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert started["port"] == 8123
    assert "acme" in cli("org", "list").output


def test_webhooks_and_events_commands(cli, monkeypatch):
    """webhooks create/list/update/test/deliveries/rotate-secret/replay/delete; events list."""
    import json

    assert cli("org", "create", "acme").exit_code == 0
    created = cli("webhooks", "create", "--org", "acme", "https://hooks.example.com/in")
    assert created.exit_code == 0
    webhook_id, secret = created.output.split()
    assert secret.startswith("whsec_")
    listed = cli("webhooks", "list", "--org", "acme")
    assert listed.output.split("\t") == [
        webhook_id,
        "enabled",
        "*",
        "https://hooks.example.com/in\n",
    ]
    updated = cli(
        "webhooks",
        "update",
        "--org",
        "acme",
        webhook_id,
        "--event",
        "user.created",
        "--disable",
        "--alert-email",
        "ops@acme.test",
    )
    assert updated.exit_code == 0
    view = json.loads(updated.output)
    assert (view["events"], view["alert_email"]) == (["user.created"], "ops@acme.test")
    assert cli("webhooks", "test", "--org", "acme", webhook_id).output.startswith("queued delivery")
    log = cli("webhooks", "deliveries", "--org", "acme", webhook_id).output
    assert "\tpending\t0\t-\twebhook.test" in log
    rotated = cli("webhooks", "rotate-secret", "--org", "acme", webhook_id).output.strip()
    assert rotated.startswith("whsec_") and rotated != secret
    assert cli("webhooks", "replay", "--org", "acme", webhook_id).output == "queued 0 event(s)\n"
    bad = cli("webhooks", "create", "--org", "acme", "http://hooks.example.com/in")
    assert bad.exit_code == 1 and "https" in bad.output
    unknown = cli("webhooks", "delete", "--org", "acme", "nope")
    assert unknown.exit_code == 1 and "not found" in unknown.output
    assert cli("webhooks", "delete", "--org", "acme", webhook_id).exit_code == 0
    assert cli("webhooks", "list", "--org", "acme").output == ""
    events = cli("events", "list", "--org", "acme", "--after", "now")
    assert events.exit_code == 0 and events.stdout == "" and "next cursor: 0" in events.stderr
    stale = cli("events", "list", "--org", "acme", "--after", "x")
    assert stale.exit_code == 1 and "Invalid cursor" in stale.output


def _no_traceback(result) -> None:
    """A refused command ends with click's own error (SystemExit), never another exception."""
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"traceback: {exc!r}"


@pytest.fixture
def lenient_cli(tmp_path, monkeypatch):
    """``cli`` whose command exceptions are caught: a traceback is a result, not a crash."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=True)

    return run


def _feed_events(tmp_path) -> int:
    from sqlalchemy import func

    from scim_server.models.event import Event

    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        with Session(engine) as s:
            return int(s.scalar(select(func.count()).select_from(Event)) or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("days", ["0", "-1", "36501", "99999999999"])
def test_worker_refuses_an_events_retention_out_of_range(lenient_cli, tmp_path, monkeypatch, days):
    """SCIM_EVENTS_RETENTION_DAYS=0 or less had the worker delete every event of the feed
    (but each organization's newest); 99999999999 was an OverflowError traceback. The
    worker does not start: a clear error, exit 1, the feed untouched."""
    assert lenient_cli("org", "create", "acme").exit_code == 0
    secret = lenient_cli("token", "create", "--org", "acme").output.strip()
    client = create_app().test_client()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/scim+json"}
    for name in ("a@example.com", "b@example.com", "c@example.com"):
        body = {"schemas": [USER], "userName": name}
        assert client.post("/scim/v2/Users", json=body, headers=headers).status_code == 201
    before = _feed_events(tmp_path)
    assert before >= 3

    monkeypatch.setenv("SCIM_EVENTS_RETENTION_DAYS", days)
    result = lenient_cli("worker", "--once")

    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "SCIM_EVENTS_RETENTION_DAYS must be a number of days from 1 to 36500" in result.output
    assert _feed_events(tmp_path) == before


@pytest.mark.parametrize("port", ["70000", "65536", "-1"])
def test_serve_refuses_a_port_out_of_range(lenient_cli, monkeypatch, port):
    """``serve --port 70000`` served on 4464 (70000 % 65536) and said 70000; ``--port -1``
    was an OverflowError traceback: a usage error, nothing served."""
    started: dict = {}
    monkeypatch.setattr("flask.Flask.run", lambda self, **kw: started.update(kw))
    result = lenient_cli("serve", "--port", port)
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "'--port'" in result.output and "0<=x<=65535" in result.output
    assert not started


def test_an_organization_cannot_be_named_like_an_id(cli):
    """``--org NAME_OR_ID`` matches ids and names: an organization named with another's id
    (or any UUID) would make ``token create --org <it>`` mint a token for the other one."""
    acme_id = cli("org", "create", "acme").output.strip()
    for name in (acme_id, acme_id.upper(), "f00dbabe-0000-4000-8000-000000000000"):
        refused = cli("org", "create", name)
        assert refused.exit_code == 1, refused.output
        assert "cannot be a UUID" in refused.output
    assert cli("org", "list").output == f"{acme_id}\tacme\n"


@pytest.mark.parametrize(
    "args",
    [
        ("org", "create", "Acme\nf00dbabe-0000-0000-0000-000000000000\tEvil"),
        ("org", "create", "Acme\t"),
        ("token", "create", "--org", "acme", "--name", "okta\nfake-id\tentra\tscim"),
        ("token", "create", "--org", "acme", "--name", "okta\x85"),
    ],
)
def test_names_with_control_characters_are_refused(cli, args):
    """Organization and token names with a newline or tab forged lines of ``org list`` /
    ``token list`` (tab-separated, one per line): refused as license and role names are."""
    assert cli("org", "create", "acme").exit_code == 0
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert "cannot hold control characters" in result.output
    assert len(cli("org", "list").output.splitlines()) == 1
    assert cli("token", "list", "--org", "acme").output == ""


# -- a database the server cannot use: one clear line, not a traceback ---------------------

COMMANDS = [("serve", "--port", "8123"), ("db", "upgrade"), ("org", "list"), ("audit", "verify")]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreachable_database_is_one_clear_line(lenient_cli, monkeypatch, command):
    """A PostgreSQL that is down (or refuses us): `serve`, `db upgrade` and every command
    migrate first, and printed psycopg's OperationalError traceback. One line now, naming
    the database without its password; exit 1, nothing served."""
    monkeypatch.setenv("SCIM_DATABASE_URL", "postgresql+psycopg://scim:hunter2@127.0.0.1:1/scim")
    monkeypatch.setenv("SCIM_DB_CONNECT_TIMEOUT", "2")
    started: dict = {}
    monkeypatch.setattr("flask.Flask.run", lambda self, **kw: started.update(kw))
    result = lenient_cli(*command)
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(
        "Error: cannot connect to the database at postgresql+psycopg://scim:***@127.0.0.1:1/scim: "
    ), result.output
    assert result.output.count("\n") == 1 and "hunter2" not in result.output
    assert not started


@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_a_newer_release_migrated_is_one_clear_line(
    lenient_cli, tmp_path, monkeypatch, command
):
    """After rolling the code back, the database is at a revision this release does not
    know: Alembic's "Can't locate revision" traceback before. One line saying so, exit 1,
    the database left as it is."""
    assert lenient_cli("db", "upgrade").exit_code == 0
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE alembic_version SET version_num = '0999'")
    started: dict = {}
    monkeypatch.setattr("flask.Flask.run", lambda self, **kw: started.update(kw))
    result = lenient_cli(*command)
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    from tests.support.data import head_revision

    assert result.output == (
        "Error: the database is at revision 0999, which this release does not know (its "
        f"newest is {head_revision()}): a newer release migrated it. Run that release, or "
        "restore the backup taken before the upgrade.\n"
    )
    assert not started
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0999"
    engine.dispose()
