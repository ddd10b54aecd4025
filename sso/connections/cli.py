"""``scim-server sso ...``: secrets at rest (the SSO connections', the webhooks' signing
secrets and the TOTP factors': the one command that seals them all, and that signs the audit
log again after SCIM_SECRET_KEY changed); e-mail domain verification."""

from __future__ import annotations

from collections import Counter

import click

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, domain_errors, org_option, pass_env

_SECRETS = (
    ("sealed", "encrypted (were in clear)"),
    ("resealed", "re-encrypted with the current secret"),
    ("current", "already encrypted with the current secret"),
    ("unreadable", "could not be decrypted"),
)
_SIGNATURES = (
    ("resigned", "signed again with the current secret"),
    ("unverified", "valid with neither secret: left as they are"),
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

    SSO connection secrets (client_secret, sp_private_key), webhook signing
    secrets (listed as webhook.secret, webhook.previous_secret) and, after a
    change, TOTP factors' secrets (mfa.totp): one line each that changed or could
    not be opened (organization, connection, webhook or factor id, field, status).
    With the previous secret, and no SCIM_AUDIT_KEY of its own, the audit log's
    signatures made with it are signed again (audit.head, audit.checkpoint,
    audit.signing_key; unverified: valid with neither, left as they are).
    Safe to run any number of times. Exits 1 if a secret opens, or a signature is
    valid, with neither the current nor the previous secret (listed; left as it is).
    """
    from scim_server.audit import chain, rekey
    from scim_server.services import webhook_secrets
    from sso.connections.sealing import encryption_secret
    from sso.connections.secrets import encrypt_secrets
    from sso.local.totp_secrets import reseal_factors

    previous = previous_secret.encode() if previous_secret else None
    secret = encryption_secret(env.app)
    actor = AuditContext(actor_type="cli", actor_name="scim-server sso encrypt-secrets")
    states: list[tuple[str, str, str, str]] = []
    with env.session(write=True) as session, use_context(actor):
        # The log first: any other change records an event, which signs its head with
        # the current key whatever it was, before it could be checked.
        if previous is not None and chain.signing_key(session) == secret:  # no SCIM_AUDIT_KEY
            states += [
                (s.org_id or "-", s.row, s.field, s.status) for s in rekey.resign(session, previous)
            ]
        states += [
            (s.org_id, s.connection_id, s.field, s.status)
            for s in encrypt_secrets(session, secret, previous)
        ]
        states += [
            (s.org_id, s.subscription_id, f"webhook.{s.field}", s.status)
            for s in webhook_secrets.encrypt_secrets(session, secret, previous)
        ]
        states += [
            (s.org_id, s.factor_id, "mfa.totp", s.status)
            for s in reseal_factors(session, secret, previous)
        ]
    for org_id, row_id, field, status in states:
        if status != "current":
            click.echo(f"{org_id}\t{row_id}\t{field}\t{status}")
    secrets = Counter(status for _o, _r, field, status in states if not _signature(field))
    signatures = Counter(status for _o, _r, field, status in states if _signature(field))
    for status, label in _SECRETS:
        if secrets[status]:
            click.echo(f"{secrets[status]} secret(s) {label}", err=True)
    for status, label in _SIGNATURES:
        if signatures[status]:
            click.echo(f"{signatures[status]} audit signature(s) {label}", err=True)
    if not secrets:
        click.echo("no connection, webhook or TOTP secrets stored", err=True)
    problems = []
    if secrets["unreadable"]:
        problems.append(
            "some secrets open with neither SCIM_SECRET_KEY nor SCIM_PREVIOUS_SECRET_KEY: "
            "enter those client secrets again, create those SAML connections again, "
            "rotate those webhooks' secrets (and give their receivers the new ones), and "
            "reset those people's second factors (they enrol again at their next sign-in)."
        )
    if signatures["unverified"]:
        problems.append(
            "some audit log signatures are valid with neither SCIM_SECRET_KEY nor "
            "SCIM_PREVIOUS_SECRET_KEY: they were left as they are (a change the server did "
            "not make is never signed); `scim-server audit verify` names them."
        )
    if problems:
        raise click.ClickException(" ".join(problems))


def _signature(field: str) -> bool:
    """Whether a listed row is an audit signature (not a secret)."""
    return field.startswith("audit.")


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
