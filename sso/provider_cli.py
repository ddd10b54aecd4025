"""``scim-server oauth ...``: register the product as a client, rotate the signing key."""

from __future__ import annotations

import click

from scim_server.errors import DomainError


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
def client_create(
    name: str, redirect_uris: tuple[str, ...], public: bool, org_ref: str | None
) -> None:
    """Register a client; print its client_id and (once) its secret."""
    from scim_server.cli import _app, _ensure_schema, _fail, _org_id, _session
    from sso.provider_clients import create_client

    app = _app()
    _ensure_schema(app)
    org_id = _org_id(app, org_ref) if org_ref else None
    with _session(app) as session:
        try:
            client, secret = create_client(
                session, name, list(redirect_uris), public=public, org_id=org_id
            )
        except DomainError as exc:
            raise _fail(exc) from None
    click.echo(f"client_id: {client.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")


@client_group.command("list")
def client_list() -> None:
    """List clients (never their secrets)."""
    from scim_server.cli import _app, _ensure_schema, _session
    from sso.provider_clients import list_clients

    app = _app()
    _ensure_schema(app)
    with _session(app) as session:
        for c in list_clients(session):
            kind = "public" if c.is_public else "confidential"
            state = "revoked" if c.revoked_at else "active"
            scope = c.org_id or "all organizations"
            uris = " ".join(c.redirect_uris)
            click.echo(f"{c.client_id}\t{c.name}\t{kind}\t{scope}\t{state}\t{uris}")


@oauth.group("keys")
def keys_group() -> None:
    """id_token signing keys."""


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Sign with a new key from now on; the old one stays in the JWKS for the grace period."""
    from scim_server.cli import _app, _ensure_schema, _session
    from sso.provider_keys import encryption_secret, rotate

    app = _app()
    _ensure_schema(app)
    with _session(app) as session, session.begin():
        row = rotate(session, encryption_secret(app))
    click.echo(f"signing key: {row.kid}")
