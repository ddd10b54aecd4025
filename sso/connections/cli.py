"""``scim-server sso ...``: secrets at rest (the SSO connections', and the webhooks' signing
secrets: the one command that seals them all); e-mail domain verification."""

from __future__ import annotations

from collections import Counter

import click

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, domain_errors, org_option, pass_env

_SUMMARY = (
    ("sealed", "encrypted (were in clear)"),
    ("resealed", "re-encrypted with the current secret"),
    ("current", "already encrypted with the current secret"),
    ("unreadable", "could not be decrypted"),
)


@click.group("sso")
def sso() -> None:
    """Single sign-on connections."""


@sso.command("encrypt-secrets")
@click.option(
    "--previous-secret",
    envvar="SCIM_PREVIOUS_SECRET_KEY",
    show_envvar=True,
    default=None,
    help=(
        "The server secret the values were encrypted with before SCIM_SECRET_KEY changed. "
        "Prefer the environment variable: a command line is visible to other users."
    ),
)
@pass_env()
def encrypt_secrets_command(env: CommandEnv, previous_secret: str | None) -> None:
    """Encrypt secrets still stored in clear; re-encrypt after a secret change.

    SSO connection secrets (client_secret, sp_private_key) and webhook signing
    secrets (listed as webhook.secret, webhook.previous_secret): one line each
    that changed or could not be opened (organization, connection or webhook id,
    field, status). Safe to run any number of times. Exits 1 if a secret opens
    with neither the current nor the previous secret (listed; left as it is).
    """
    from scim_server.services import webhook_secrets
    from sso.connections.sealing import encryption_secret
    from sso.connections.secrets import encrypt_secrets

    previous = previous_secret.encode() if previous_secret else None
    secret = encryption_secret(env.app)
    actor = AuditContext(actor_type="cli", actor_name="scim-server sso encrypt-secrets")
    with env.session(write=True) as session, use_context(actor):
        states = [
            (s.org_id, s.connection_id, s.field, s.status)
            for s in encrypt_secrets(session, secret, previous)
        ]
        states += [
            (s.org_id, s.subscription_id, f"webhook.{s.field}", s.status)
            for s in webhook_secrets.encrypt_secrets(session, secret, previous)
        ]
    for org_id, row_id, field, status in states:
        if status != "current":
            click.echo(f"{org_id}\t{row_id}\t{field}\t{status}")
    counts = Counter(status for *_key, status in states)
    for status, label in _SUMMARY:
        if counts[status]:
            click.echo(f"{counts[status]} secret(s) {label}", err=True)
    if not states:
        click.echo("no connection or webhook secrets stored", err=True)
    if counts["unreadable"]:
        raise click.ClickException(
            "some secrets open with neither SCIM_SECRET_KEY nor SCIM_PREVIOUS_SECRET_KEY: "
            "enter those client secrets again, create those SAML connections again, or "
            "rotate those webhooks' secrets (and give their receivers the new ones)."
        )


@sso.group("domain")
def domain() -> None:
    """E-mail domains: verification of an organization's claim."""


@domain.command("verify")
@org_option()
@click.argument("name")
@click.option(
    "--without-dns",
    is_flag=True,
    help=(
        "Verify without the TXT record: you, the operator, vouch that the organization "
        "owns the domain (e.g. a self-hosted server with one organization)."
    ),
)
@pass_env()
def verify_domain_command(env: CommandEnv, org_ref: str, name: str, without_dns: bool) -> None:
    """Verify the organization's claim of domain NAME (added on its Single sign-on page).

    By default the TXT record is looked up as the console's Verify button does. Refused
    if another organization holds the domain verified. Audited (sso.domain.verify).
    """
    from sso.signin import domains

    org_id = env.org_id(org_ref)
    command = "scim-server sso domain verify" + (" --without-dns" if without_dns else "")
    actor = AuditContext(actor_type="cli", actor_name=command)
    with env.session(write=True) as session, use_context(actor), domain_errors():
        if without_dns:
            row = domains.verify_domain_without_dns(session, org_id, name)
        else:
            row = domains.verify_domain(
                session,
                org_id,
                name,
                resolvers=env.app.config["DNS_RESOLVERS"],
                timeout=env.app.config["DNS_TIMEOUT_SECONDS"],
            )
        click.echo(
            f"{row.domain}\tverified {row.verified_at.isoformat() if row.verified_at else ''}"
        )
