"""``scim-server credentials ...``: send, resend, reset and schedule a user's credentials.

The same services as the admin API (``admin/credentials_api.py``); changes
are attributed to the command line in the provisioning log. Mailed links and
the login URL need the server's public address: ``SCIM_BASE_URL``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from sqlalchemy import select

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, domain_errors, not_blank, org_option, pass_env
from scim_server.errors import NotFoundError
from scim_server.models import User
from scim_server.services.credentials import Delivery, Sent
from scim_server.services.passwords import Hashing
from scim_server.text import fold

to_me_option = click.option(
    "--to-me",
    "to_me",
    metavar="ADDRESS",
    default=None,
    callback=not_blank,
    help="Send to this (your) address instead of the user's; the mail says whom it is for.",
)


@click.group("credentials")
def credentials() -> None:
    """Credentials of people who sign in with a password (not SSO)."""


def _delivery(env: CommandEnv) -> Delivery:
    base_url = env.app.config.get("BASE_URL")
    if not base_url:
        raise click.ClickException(
            "Set SCIM_BASE_URL (the server's public address): mailed links start with it."
        )
    return Delivery(hashing=Hashing.from_config(env.app.config), base_url=base_url)


def _user_id(session: Any, org_id: str, ref: str) -> str:
    """A user id, or the id of the user with this userName."""
    found = session.scalar(
        select(User.id).where(
            User.org_id == org_id, (User.id == ref) | (User.user_name_key == fold(ref))
        )
    )
    if found is None:
        raise NotFoundError(f"No user {ref!r} in this organization.")
    return str(found)


def _context(command: str) -> Any:
    return use_context(
        AuditContext(actor_type="cli", actor_name=f"scim-server credentials {command}")
    )


def _echo(sent: Sent) -> None:
    click.echo(f"queued {sent.kind} ({sent.method.replace('_', ' ')}) to {sent.recipient}")


def _send(env: CommandEnv, org_ref: str, user: str, to_me: str | None, how: str) -> None:
    from scim_server.services import credentials as service

    org_id = env.org_id(org_ref)
    delivery = _delivery(env)
    with env.session(write=True) as session, domain_errors(), _context(how):
        user_id = _user_id(session, org_id, user)
        session.rollback()
        if how == "reset-password":
            sent = service.reset_password(session, delivery, org_id, user_id, recipient=to_me)
        else:
            sent = service.send_credentials(
                session, delivery, org_id, user_id, recipient=to_me, resend=how == "resend"
            )
    _echo(sent)


@credentials.command("send")
@org_option()
@click.argument("user")
@to_me_option
@pass_env()
def send(env: CommandEnv, org_ref: str, user: str, to_me: str | None) -> None:
    """Send USER (id or userName) new credentials now."""
    _send(env, org_ref, user, to_me, "send")


@credentials.command("resend")
@org_option()
@click.argument("user")
@to_me_option
@pass_env()
def resend(env: CommandEnv, org_ref: str, user: str, to_me: str | None) -> None:
    """Resend the new-user e-mail (the earlier password or link stops working; 3 an hour)."""
    _send(env, org_ref, user, to_me, "resend")


@credentials.command("reset-password")
@org_option()
@click.argument("user")
@to_me_option
@pass_env()
def reset_password(env: CommandEnv, org_ref: str, user: str, to_me: str | None) -> None:
    """Remove USER's password and mail a reset link or a new temporary password."""
    _send(env, org_ref, user, to_me, "reset-password")


def _when(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date and time.") from None
    if moment.tzinfo is None:
        raise click.BadParameter("Give a timezone, e.g. 2027-01-04T08:00+01:00 or ...Z.")
    return moment


@credentials.command("schedule")
@org_option()
@click.option("--at", "send_at", required=True, help="When (ISO 8601 with a timezone).")
@click.argument("users", nargs=-1, required=True)
@to_me_option
@pass_env()
def schedule(
    env: CommandEnv, org_ref: str, send_at: str, users: tuple[str, ...], to_me: str | None
) -> None:
    """Schedule (or move) the credentials of USERS (ids or userNames) for a date."""
    from scim_server.services import credential_schedules

    moment = _when(send_at)
    org_id = env.org_id(org_ref)
    base_url = _delivery(env).base_url
    with env.session(write=True) as session, domain_errors(), _context("schedule"):
        ids = [_user_id(session, org_id, ref) for ref in users]
        session.rollback()
        results = credential_schedules.schedule(
            session,
            org_id,
            ids,
            moment,
            base_url=base_url,
            recipient=to_me,
            scheduled_by="scim-server credentials schedule",
        )
    for ref, result in zip(users, results, strict=True):
        click.echo(
            f"{ref}: "
            + (f"scheduled for {result['send_at']}" if result["status"] == 200 else result["error"])
        )
    if any(r["status"] != 200 for r in results):
        raise SystemExit(1)


@credentials.command("cancel")
@org_option()
@click.argument("user")
@pass_env()
def cancel(env: CommandEnv, org_ref: str, user: str) -> None:
    """Cancel USER's scheduled credentials send."""
    from scim_server.services import credential_schedules

    org_id = env.org_id(org_ref)
    with env.session(write=True) as session, domain_errors(), _context("cancel"):
        user_id = _user_id(session, org_id, user)
        session.rollback()
        credential_schedules.cancel(session, org_id, user_id)
    click.echo("cancelled")


@credentials.command("list")
@org_option()
@pass_env()
def list_scheduled(env: CommandEnv, org_ref: str) -> None:
    """The waiting credentials sends, soonest first."""
    from scim_server.services import credential_schedules

    org_id = env.org_id(org_ref)
    with env.session() as session:
        _total, rows = credential_schedules.list_schedules(session, org_id, offset=0, limit=1000)
        for row in rows:
            view = credential_schedules.schedule_view(row)
            extra = f" ({view['lastError']})" if view["lastError"] else ""
            click.echo(f"{view['sendAt']}  {row.user_id}  {view['state']}  to {view['to']}{extra}")
