"""``scim-server sso ...``: maintenance of the SSO connections' secrets at rest."""

from __future__ import annotations

from collections import Counter

import click

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, pass_env

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
    """Encrypt connection secrets still stored in clear; re-encrypt after a secret change.

    Safe to run any number of times. Exits 1 if a secret opens with neither
    the current nor the previous secret (listed; left as it is).
    """
    from sso.connections.sealing import encryption_secret
    from sso.connections.secrets import encrypt_secrets

    previous = previous_secret.encode() if previous_secret else None
    actor = AuditContext(actor_type="cli", actor_name="scim-server sso encrypt-secrets")
    with env.session(write=True) as session, use_context(actor):
        states = encrypt_secrets(session, encryption_secret(env.app), previous)
    for state in states:
        if state.status != "current":
            click.echo(f"{state.org_id}\t{state.connection_id}\t{state.field}\t{state.status}")
    counts = Counter(state.status for state in states)
    for status, label in _SUMMARY:
        if counts[status]:
            click.echo(f"{counts[status]} secret(s) {label}", err=True)
    if not states:
        click.echo("no connection secrets stored", err=True)
    if counts["unreadable"]:
        raise click.ClickException(
            "some secrets open with neither SCIM_SECRET_KEY nor SCIM_PREVIOUS_SECRET_KEY: "
            "enter those client secrets again, or create those SAML connections again."
        )
