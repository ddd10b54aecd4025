"""The ``scim-server`` command line (DESIGN.md §4)."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Any

import click
from flask import Flask

from scim_server import create_app
from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import (
    CommandEnv,
    build_app,
    domain_errors,
    migrate_schema,
    org_option,
    pass_env,
)
from scim_server.config import ConfigError
from scim_server.db import db
from scim_server.ratelimit import MAX_LIMIT


@click.group()
def main() -> None:
    """SCIM 2.0 provisioning server."""


def _as_cli(command: str) -> AbstractContextManager[AuditContext]:
    """The events ``command`` writes name the command line as their actor, as every
    command's do (not the server itself, ``system``)."""
    return use_context(AuditContext(actor_type="cli", actor_name=f"scim-server {command}"))


# -- db ----------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema (safe to run any number of times)."""
    from scim_server.migrate import current_revision

    engine = db.engine(build_app())
    try:
        migrate_schema(engine)
        click.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


# -- org ---------------------------------------------------------------------------


@main.group("org")
def org_group() -> None:
    """Organizations (tenants)."""


@org_group.command("create")
@click.argument("name")
@pass_env()
def org_create(env: CommandEnv, name: str) -> None:
    """Create an organization and print its id."""
    from scim_server.services.organizations import create_organization

    with env.session(write=True) as session, _as_cli("org create"), domain_errors():
        org = create_organization(session, name)
    click.echo(org.id)


@org_group.command("list")
@pass_env()
def org_list(env: CommandEnv) -> None:
    """List organizations (id and name)."""
    from scim_server.services.organizations import list_organizations

    with env.session() as session:
        for org in list_organizations(session):
            click.echo(f"{org.id}\t{org.name}")


@org_group.command("set-rate-limit")
@click.argument("org_ref", metavar="NAME_OR_ID")
@click.argument("limit", type=click.IntRange(min=0, max=MAX_LIMIT), required=False)
@click.option(
    "--default",
    "use_default",
    is_flag=True,
    help="Clear the override: follow SCIM_RATE_LIMIT_PER_MINUTE.",
)
@pass_env()
def org_set_rate_limit(env: CommandEnv, org_ref: str, limit: int | None, use_default: bool) -> None:
    """Set SCIM requests per minute per token for one organization (0 = unlimited)."""
    from scim_server.ratelimit import set_org_limit

    if use_default == (limit is not None):
        raise click.UsageError("Give either a limit N or --default.")
    org_id = env.org_id(org_ref)
    with env.session(write=True) as session, _as_cli("org set-rate-limit"), domain_errors():
        set_org_limit(session, org_id, limit)
    if limit is None:
        shown = "the default (SCIM_RATE_LIMIT_PER_MINUTE)"
    else:
        shown = "unlimited" if limit == 0 else f"{limit} requests per minute per token"
    click.echo(f"{org_ref}: {shown}")


# -- token -------------------------------------------------------------------------


@main.group("token")
def token_group() -> None:
    """SCIM bearer tokens."""


@token_group.command("create")
@org_option()
@click.option("--name", default="default", show_default=True, help="A label for the token.")
@click.option("--admin", is_flag=True, help="An admin API token (/api/v1) instead of a SCIM token.")
@pass_env()
def token_create(env: CommandEnv, org_ref: str, name: str, admin: bool) -> None:
    """Create a token and print it once; only its hash is stored."""
    from scim_server.services.tokens import create_token

    org_id = env.org_id(org_ref)
    with env.session(write=True) as session, _as_cli("token create"), domain_errors():
        _token, secret = create_token(session, org_id, name, "admin" if admin else "scim")
    click.echo(secret)


@token_group.command("list")
@org_option()
@pass_env()
def token_list(env: CommandEnv, org_ref: str) -> None:
    """List an organization's tokens (never their secrets)."""
    from scim_server.services.tokens import list_tokens

    org_id = env.org_id(org_ref)
    with env.session() as session:
        for token in list_tokens(session, org_id):
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            created = f"{token.created_at:%Y-%m-%d %H:%M}"
            click.echo(f"{token.id}\t{token.name}\t{token.kind}\t{created}\t{state}")


@token_group.command("revoke")
@org_option()
@click.argument("token_id")
@pass_env()
def token_revoke(env: CommandEnv, org_ref: str, token_id: str) -> None:
    """Revoke a token: requests using it get 401 at once."""
    from scim_server.services.tokens import revoke_token

    org_id = env.org_id(org_ref)
    with env.session(write=True) as session, _as_cli("token revoke"), domain_errors():
        revoke_token(session, org_id, token_id)
    click.echo(f"revoked {token_id}")


# -- serve ---------------------------------------------------------------------------


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
# A TCP port: a larger number was taken modulo 65536 (70000 served on 4464), a negative
# one was a traceback from bind().
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--production",
    is_flag=True,
    help="Serve with gunicorn (SCIM_WORKERS, SCIM_THREADS, SCIM_TIMEOUT, SCIM_GRACEFUL_TIMEOUT).",
)
@click.option(
    "--with-worker",
    is_flag=True,
    help="Also run `scim-server worker` as a child process, stopped with the server.",
)
def serve(host: str, port: int, production: bool, with_worker: bool) -> None:
    """Migrate the database, then serve."""
    if production:
        try:  # its import reads the server's settings (config.server_config)
            from scim_server.gunicorn_conf import prepare_metrics_dir
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None

        # Before create_app imports prometheus_client: it picks its mode at import.
        prepare_metrics_dir()
    app = build_app()
    migrate_schema(db.engine(app))
    _print_start_hint(app, host, port)
    worker = _start_worker() if with_worker else None
    try:
        if production:
            db.engine(app).dispose()  # workers open their own connections after the fork
            _gunicorn(host, port)
            return
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        if worker is not None:
            _stop_worker(worker)


def _start_worker() -> Any:
    """``scim-server worker`` as a child (its own process: never a thread of the web server).

    SIGTERM to the server then runs the ``finally`` that stops it too.
    """
    import signal
    import subprocess

    def _exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit)  # gunicorn installs its own, and returns
    child = subprocess.Popen([sys.executable, "-m", "scim_server", "worker"])
    click.echo(f"worker started (pid {child.pid})", err=True)
    return child


def _stop_worker(child: Any) -> None:
    import subprocess

    if child.poll() is None:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# -- worker --------------------------------------------------------------------------


@main.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs due now, then exit.")
@click.option(
    "--poll-interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between looks for due jobs.",
)
@pass_env()
def worker_command(env: CommandEnv, once: bool, poll_interval: float) -> None:
    """The background worker: runs queued jobs (rules apply, ...), sends queued mail and webhooks.

    Run any number of them, on any nodes: each job is run, and each mail sent,
    by one worker at a time. A job interrupted by SIGTERM is handed back and
    resumed at once. Mail goes to SCIM_SMTP_URL, else to .eml files in SCIM_MAIL_DIR.
    Events older than SCIM_EVENTS_RETENTION_DAYS are deleted.
    """
    import signal
    from datetime import timedelta

    from scim_server.mailer import Mailer
    from scim_server.sealing import encryption_secret
    from scim_server.services.passwords import Hashing
    from scim_server.webhook_http import OutboundPolicy
    from scim_server.worker import Worker

    config = env.app.config
    worker = Worker(
        db.writer(env.app),
        mailer=Mailer.from_config(config),
        hashing=Hashing.from_config(config),
        outbound=OutboundPolicy.from_config(config),
        event_retention=timedelta(days=config["EVENTS_RETENTION_DAYS"]),
        base_url=config["BASE_URL"],
        server_secret=encryption_secret(env.app),
    )
    if once:
        jobs_run, creds = worker.run_jobs(), worker.send_credentials()
        locks = worker.release_lockouts()
        mails, hooks = worker.send_mail(), worker.send_webhooks()
        worker.purge_events()
        click.echo(
            f"ran {jobs_run} job(s), handled {creds} credentials send(s), "
            f"ended {locks} lockout(s), handled {mails} mail(s) and {hooks} webhook(s)"
        )
        return

    def _stop(signum: int, _frame: Any) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"worker {worker.worker_id}: polling every {poll_interval}s", err=True)
    worker.serve(poll_interval)


def _print_start_hint(app: Flask, host: str, port: int) -> None:
    from scim_server.services.organizations import list_organizations

    with db.reader(app)() as session:
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
    """gunicorn with scim_server.gunicorn_conf; each worker builds its own app after the fork."""
    from gunicorn.app.base import BaseApplication

    from scim_server import gunicorn_conf

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in gunicorn_conf.settings().items():
                if name in self.cfg.settings:  # older gunicorn lacks some settings
                    self.cfg.set(name, value)
            self.cfg.set("bind", f"{host}:{port}")

        def load(self) -> Any:
            return create_app()

    _Server().run()


def _register_subcommands() -> None:
    from scim_server.admin.credentials_cli import credentials
    from scim_server.admin.rules_cli import rules
    from scim_server.admin.webhooks_cli import events_group, webhooks_group
    from scim_server.audit.cli import audit
    from scim_server.console.cli import admin
    from scim_server.user_import.cli import import_group
    from sso.connections.cli import sso
    from sso.provider.cli import oauth

    main.add_command(admin)
    main.add_command(import_group)
    main.add_command(audit)
    main.add_command(rules)
    main.add_command(credentials)
    main.add_command(oauth)
    main.add_command(sso)
    main.add_command(webhooks_group)
    main.add_command(events_group)


_register_subcommands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
