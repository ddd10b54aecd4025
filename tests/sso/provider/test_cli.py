"""``scim-server oauth ...`` (``sso.provider.cli``)."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from scim_server.cli import main
from scim_server.models import AuditEvent

REDIRECT = "https://product.example/callback"


def test_a_client_made_on_the_command_line_names_the_cli_as_actor(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """README: each event carries its actor; a client registered for an organization on the
    command line is the CLI's doing, as the other commands' events say, not the server's."""
    database = tmp_path / "cli.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("SCIM_SECRET_KEY", "cli-test-secret")
    runner = CliRunner()
    assert runner.invoke(main, ["org", "create", "acme"]).exit_code == 0
    made = runner.invoke(
        main,
        [
            "oauth",
            "client",
            "create",
            "--org",
            "acme",
            "--name",
            "Product",
            "--redirect-uri",
            REDIRECT,
        ],
        catch_exceptions=False,
    )
    assert made.exit_code == 0
    engine = create_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as s:
            rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "oauth.client_create"))
            actors = [(e.actor_type, e.actor_name) for e in rows]
    finally:
        engine.dispose()
    assert actors == [("cli", "scim-server oauth client create")]


def _client_id(output: str) -> str:
    return dict(line.split(": ", 1) for line in output.strip().splitlines())["client_id"]


def test_a_client_of_all_organizations_can_be_revoked(tmp_path: Any, monkeypatch: Any) -> None:
    """The product's own client (no ``--org``: it signs in every organization's people) had
    no revocation at all (the console's revokes an organization's client): a leaked secret
    could not be stopped. ``oauth client revoke`` stops it; an organization's client is
    revoked with ``--org`` (and its log records it), not without."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCIM_SECRET_KEY", "cli-test-secret")
    runner = CliRunner()
    assert runner.invoke(main, ["org", "create", "acme"]).exit_code == 0
    create = ["oauth", "client", "create", "--name", "Product", "--redirect-uri", REDIRECT]
    product = _client_id(runner.invoke(main, create).output)
    bound = _client_id(runner.invoke(main, [*create, "--org", "acme"]).output)
    revoked = runner.invoke(main, ["oauth", "client", "revoke", product])
    assert revoked.exit_code == 0 and f"revoked: {product} (Product)" in revoked.output
    assert runner.invoke(main, ["oauth", "client", "revoke", bound]).exit_code != 0
    assert runner.invoke(main, ["oauth", "client", "revoke", bound, "--org", "acme"]).exit_code == 0
    listed = runner.invoke(main, ["oauth", "client", "list"]).output.splitlines()
    assert {line.split("\t")[0]: line.split("\t")[4] for line in listed} == {
        product: "revoked",
        bound: "revoked",
    }
