"""The ``scim-server`` command line (DESIGN.md §4)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from flask import Flask

from scim_server import create_app
from scim_server.config import ConfigError
from scim_server.db import db
from scim_server.errors import DomainError


def _app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _session(app: Flask) -> Any:
    _, reader, _writer = app.extensions["scim_db"]
    return reader()


def _fail(exc: DomainError) -> click.ClickException:
    return click.ClickException(exc.detail)


def _org_id(app: Flask, ref: str) -> str:
    from scim_server.services.organizations import find_organization

    with _session(app) as session:
        try:
            return find_organization(session, ref).id
        except DomainError as exc:
            raise _fail(exc) from None


@click.group()
def main() -> None:
    """SCIM 2.0 provisioning server."""


# -- db ----------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema (safe to run any number of times)."""
    from scim_server.migrate import current_revision, upgrade

    app = _app()
    engine = db.engine(app)
    upgrade(engine)
    click.echo(f"database at revision {current_revision(engine)}")


# -- org ---------------------------------------------------------------------------


@main.group("org")
def org_group() -> None:
    """Organizations (tenants)."""


@org_group.command("create")
@click.argument("name")
def org_create(name: str) -> None:
    """Create an organization and print its id."""
    from scim_server.services.organizations import create_organization

    app = _app()
    _ensure_schema(app)
    with _session(app) as session:
        try:
            org = create_organization(session, name)
        except DomainError as exc:
            raise _fail(exc) from None
    click.echo(org.id)


@org_group.command("list")
def org_list() -> None:
    """List organizations (id and name)."""
    from scim_server.services.organizations import list_organizations

    app = _app()
    _ensure_schema(app)
    with _session(app) as session:
        for org in list_organizations(session):
            click.echo(f"{org.id}\t{org.name}")


# -- token -------------------------------------------------------------------------


@main.group("token")
def token_group() -> None:
    """SCIM bearer tokens."""


@token_group.command("create")
@click.option("--org", "org_ref", required=True, help="Organization name or id.")
@click.option("--name", default="default", show_default=True, help="A label for the token.")
def token_create(org_ref: str, name: str) -> None:
    """Create a token and print it once; only its hash is stored."""
    from scim_server.services.tokens import create_token

    app = _app()
    _ensure_schema(app)
    org_id = _org_id(app, org_ref)
    with _session(app) as session:
        try:
            _token, secret = create_token(session, org_id, name)
        except DomainError as exc:
            raise _fail(exc) from None
    click.echo(secret)


@token_group.command("list")
@click.option("--org", "org_ref", required=True, help="Organization name or id.")
def token_list(org_ref: str) -> None:
    """List an organization's tokens (never their secrets)."""
    from scim_server.services.tokens import list_tokens

    app = _app()
    _ensure_schema(app)
    org_id = _org_id(app, org_ref)
    with _session(app) as session:
        for token in list_tokens(session, org_id):
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            click.echo(f"{token.id}\t{token.name}\t{token.created_at:%Y-%m-%d %H:%M}\t{state}")


@token_group.command("revoke")
@click.option("--org", "org_ref", required=True, help="Organization name or id.")
@click.argument("token_id")
def token_revoke(org_ref: str, token_id: str) -> None:
    """Revoke a token: requests using it get 401 at once."""
    from scim_server.services.tokens import revoke_token

    app = _app()
    _ensure_schema(app)
    org_id = _org_id(app, org_ref)
    with _session(app) as session:
        try:
            revoke_token(session, org_id, token_id)
        except DomainError as exc:
            raise _fail(exc) from None
    click.echo(f"revoked {token_id}")


# -- serve ---------------------------------------------------------------------------


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--production",
    is_flag=True,
    help="Serve with gunicorn (workers from SCIM_WORKERS, timeout from SCIM_TIMEOUT).",
)
def serve(host: str, port: int, production: bool) -> None:
    """Migrate the database, then serve."""
    from scim_server.migrate import upgrade

    app = _app()
    upgrade(db.engine(app))
    _print_start_hint(app, host, port)
    if production:
        _gunicorn(host, port)
        return
    app.run(host=host, port=port, threaded=True, use_reloader=False)


def _ensure_schema(app: Flask) -> None:
    from scim_server.migrate import upgrade

    upgrade(db.engine(app))


def _print_start_hint(app: Flask, host: str, port: int) -> None:
    from scim_server.services.organizations import list_organizations

    with _session(app) as session:
        orgs = list_organizations(session)
    url = f"http://{host}:{port}/scim/v2"
    click.echo(f"SCIM endpoint: {url}  (database: {app.config['DATABASE_URL']})", err=True)
    if not orgs:
        click.echo(
            "No organization yet. In another terminal:\n"
            "  .venv/bin/scim-server org create acme\n"
            "  .venv/bin/scim-server token create --org acme\n"
            f'then: curl -H "Authorization: Bearer <token>" {url}/Users',
            err=True,
        )
    else:
        click.echo(
            "Get a token with: .venv/bin/scim-server token create --org " + orgs[0].name, err=True
        )


def _gunicorn(host: str, port: int) -> None:
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", int(os.environ.get("SCIM_WORKERS", "2")))
            self.cfg.set("threads", int(os.environ.get("SCIM_THREADS", "1")))
            self.cfg.set("timeout", int(os.environ.get("SCIM_TIMEOUT", "30")))
            self.cfg.set("graceful_timeout", int(os.environ.get("SCIM_GRACEFUL_TIMEOUT", "30")))
            self.cfg.set("accesslog", os.environ.get("SCIM_ACCESS_LOG") or None)

        def load(self) -> Any:
            return create_app()

    _Server().run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
