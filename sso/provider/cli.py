"""``scim-server oauth ...``: register the product as a client, rotate the signing key."""

from __future__ import annotations

import click

from scim_server.audit import AuditContext, use_context
from scim_server.commands import CommandEnv, domain_errors, pass_env


@click.group("oauth")
def oauth() -> None:
    """The OpenID Connect provider the product signs in with."""


@oauth.group("client")
def client_group() -> None:
    """Registered clients (the product)."""


@client_group.command("create")
@click.option("--name", required=True, help="A label, shown on refusal pages and in the log.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    required=True,
    multiple=True,
    help="Exact callback URL of the product (repeat for several).",
)
@click.option("--public", is_flag=True, help="A public client (SPA, native app): no secret.")
@click.option("--org", "org_ref", help="Only this organization's users (default: all).")
@pass_env()
def client_create(
    env: CommandEnv, name: str, redirect_uris: tuple[str, ...], public: bool, org_ref: str | None
) -> None:
    """Register a client; print its client_id and (once) its secret."""
    from sso.provider.clients import create_client

    org_id = env.org_id(org_ref) if org_ref else None
    # Its event names the command line, as every command's does (not the server, ``system``).
    actor = AuditContext(actor_type="cli", actor_name="scim-server oauth client create")
    with env.session(write=True) as session, use_context(actor), domain_errors():
        client, secret = create_client(
            session, name, list(redirect_uris), public=public, org_id=org_id
        )
    click.echo(f"client_id: {client.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")


@client_group.command("list")
@pass_env()
def client_list(env: CommandEnv) -> None:
    """List clients (never their secrets)."""
    from sso.provider.clients import list_clients

    with env.session() as session:
        for c in list_clients(session):
            kind = "public" if c.is_public else "confidential"
            state = "revoked" if c.revoked_at else "active"
            scope = c.org_id or "all organizations"
            uris = " ".join(c.redirect_uris)
            click.echo(f"{c.client_id}\t{c.name}\t{kind}\t{scope}\t{state}\t{uris}")


@client_group.command("revoke")
@click.argument("client_id")
@click.option("--org", "org_ref", help="An organization's client (default: one of all).")
@pass_env()
def client_revoke(env: CommandEnv, client_id: str, org_ref: str | None) -> None:
    """Revoke a client: it gets no new code or token. To replace a secret, register a new
    client and revoke the old one once the product uses the new one."""
    from sso.provider.clients import revoke_client

    org_id = env.org_id(org_ref) if org_ref else None
    actor = AuditContext(actor_type="cli", actor_name="scim-server oauth client revoke")
    with env.session(write=True) as session, use_context(actor), domain_errors():
        client = revoke_client(session, org_id, client_id)
    click.echo(f"revoked: {client.client_id} ({client.name})")


@oauth.group("keys")
def keys_group() -> None:
    """id_token signing keys."""


@keys_group.command("rotate")
@click.option(
    "--now",
    "at_once",
    is_flag=True,
    help="Sign with the new key at once (the old one cannot be opened or must not sign).",
)
@pass_env()
def keys_rotate(env: CommandEnv, at_once: bool) -> None:
    """Publish a new signing key, which signs once relying parties have fetched it (10 minutes;
    at once with --now); the old one stays in the JWKS for the grace period after."""
    from sso.provider.keys import STAGING, active_key, encryption_secret, rotate

    with env.session(write=True) as session, session.begin():
        row = rotate(session, encryption_secret(env.app), at_once=at_once)
        # The signer's own rule: the new key signs now only when no other may.
        signs_now = active_key(session, row.created_at) is row
        start = row.created_at if signs_now else row.created_at + STAGING
    click.echo(f"signing key: {row.kid}")
    click.echo(f"signs from: {start.strftime('%Y-%m-%dT%H:%M:%SZ')}")
