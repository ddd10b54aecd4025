"""``scim-server admin create``: the first console admin of an organization (DESIGN.md §4)."""

from __future__ import annotations

import click

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, domain_errors, org_option, pass_env
from scim_server.errors import DomainError, InvalidValueError
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import console_access, settings, users


@click.group("admin")
def admin() -> None:
    """People who use the admin console (/admin)."""


@admin.command("create")
@org_option()
@click.option(
    "--email",
    required=True,
    help="The person's work e-mail address (or the userName of an existing account).",
)
@pass_env()
def create(env: CommandEnv, org_ref: str, email: str) -> None:
    """Make the person with this e-mail an org_admin of the console (creating the user if new).

    The account whose userName it is, else the one whose contact has it
    (``console_access.find_user_by_email``: an address several accounts share is refused,
    naming them; give the userName instead)."""
    email = email.strip()
    if not email or len(email) > 320 or any(c.isspace() for c in email):
        raise click.ClickException(f"{email!r} is not an e-mail address.")
    org_id = env.org_id(org_ref)
    context = AuditContext(actor_type="cli", actor_name="scim-server admin create")
    with use_context(context), env.session(write=True) as session, domain_errors():
        found = console_access.find_user_by_email(session, org_id, email)
        account = (found.id, found.user_name) if found else None
        session.rollback()  # end the read: each service below owns its transaction
        if account is None:
            if "@" not in email:
                raise click.ClickException(f"{email!r} is not an e-mail address.")
            try:
                body = {
                    "schemas": [USER_SCHEMA],
                    "userName": email,
                    "active": True,
                    "emails": [{"value": email, "type": "work", "primary": True}],
                }
                doc = parse_resource(USER, body, creating=True)
            except DomainError as err:
                raise InvalidValueError(f"{email!r}: {err.detail}") from None
            created = users.create_user(session, org_id, doc, source="manual")
            account = (created.id, created.user_name)
            click.echo(f"Created user {account[1]} ({account[0]}).")
        else:
            click.echo(f"Found user {account[1]} ({account[0]}).")
        granted = console_access.grant(session, org_id, account[0], console_access.ORG_ADMIN)
        click.echo(
            "Granted the org_admin console role."
            if granted
            else "Already an org_admin: nothing changed."
        )
        sso = settings.has_active_sso(session, org_id)
        licensed = users.get_user(session, org_id, account[0]).license_id is not None
        session.rollback()
    base = env.app.config["BASE_URL"] or "http://127.0.0.1:8000"
    click.echo(f"Sign-in: open {base}/admin/ and sign in with {email}.")
    if sso:
        click.echo("The organization's single sign-on (its identity provider) signs them in.")
    else:
        click.echo(
            "No single sign-on connection is enabled for this organization yet: add one "
            "(scim-server sso ... or the admin API) before this person can sign in."
        )
    if not licensed:
        click.echo(
            "Note: the user holds no license, and signing in requires one: set a default "
            "license or assign one (admin API PUT /api/v1/users/<id>/license)."
        )
