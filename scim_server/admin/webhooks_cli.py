"""``scim-server webhooks ...`` and ``scim-server events ...``: the admin API's, from a shell.

Changes made here are attributed to the command line in the provisioning log.
"""

from __future__ import annotations

import json

import click

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, domain_errors, org_option, pass_env
from scim_server.sealing import encryption_secret
from scim_server.webhook_http import OutboundPolicy


def _actor(command: str) -> AuditContext:
    return AuditContext(actor_type="cli", actor_name=f"scim-server webhooks {command}")


events_option = click.option(
    "--event",
    "events",
    multiple=True,
    help="An event type to send (repeat); default: every type (*).",
)


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook subscriptions: where events are pushed, signed the Standard Webhooks way."""


@webhooks_group.command("list")
@org_option()
@pass_env()
def list_command(env: CommandEnv, org_ref: str) -> None:
    """One line per subscription: id, enabled, events, URL."""
    from scim_server.services import webhooks

    org_id = env.org_id(org_ref)
    with env.session() as session:
        for sub in webhooks.list_subscriptions(session, org_id):
            state = "enabled" if sub.enabled else f"disabled ({sub.disabled_reason or 'by admin'})"
            click.echo(f"{sub.id}\t{state}\t{','.join(sub.events)}\t{sub.url}")


@webhooks_group.command("create")
@org_option()
@click.argument("url")
@events_option
@click.option("--description", default=None)
@click.option("--alert-email", default=None, help="Told by mail if the webhook is disabled.")
@pass_env()
def create_command(
    env: CommandEnv,
    org_ref: str,
    url: str,
    events: tuple[str, ...],
    description: str | None,
    alert_email: str | None,
) -> None:
    """Subscribe URL; prints the id, then the secret (shown this once)."""
    from scim_server.services import webhooks

    org_id = env.org_id(org_ref)
    fields = {
        "url": url,
        "events": list(events) or ["*"],
        "description": description,
        "alert_email": alert_email,
    }
    policy = OutboundPolicy.from_config(env.app.config)
    with env.session(write=True) as session, domain_errors(), use_context(_actor("create")):
        sub, secret = webhooks.create_subscription(
            session, org_id, fields, policy, server_secret=encryption_secret(env.app)
        )
    click.echo(sub.id)
    click.echo(secret)


@webhooks_group.command("update")
@org_option()
@click.argument("webhook_id")
@click.option("--url", default=None)
@events_option
@click.option("--enable/--disable", "enabled", default=None)
@click.option("--alert-email", default=None, help="Told by mail if the webhook is disabled.")
@pass_env()
def update_command(
    env: CommandEnv,
    org_ref: str,
    webhook_id: str,
    url: str | None,
    events: tuple[str, ...],
    enabled: bool | None,
    alert_email: str | None,
) -> None:
    """Change the URL, the event types, or enable/disable (re-enabling resets the failure clock)."""
    from scim_server.services import webhooks

    org_id = env.org_id(org_ref)
    fields: dict[str, object] = {}
    if url is not None:
        fields["url"] = url
    if events:
        fields["events"] = list(events)
    if enabled is not None:
        fields["enabled"] = enabled
    if alert_email is not None:
        fields["alert_email"] = alert_email
    policy = OutboundPolicy.from_config(env.app.config)
    with env.session(write=True) as session, domain_errors(), use_context(_actor("update")):
        sub = webhooks.update_subscription(
            session, org_id, webhook_id, fields, policy, server_secret=encryption_secret(env.app)
        )
        click.echo(json.dumps(webhooks.to_dict(sub), indent=2))


@webhooks_group.command("delete")
@org_option()
@click.argument("webhook_id")
@pass_env()
def delete_command(env: CommandEnv, org_ref: str, webhook_id: str) -> None:
    """Remove a subscription, its pending deliveries and its log."""
    from scim_server.services import webhooks

    org_id = env.org_id(org_ref)
    with env.session(write=True) as session, domain_errors(), use_context(_actor("delete")):
        webhooks.delete_subscription(session, org_id, webhook_id)


@webhooks_group.command("rotate-secret")
@org_option()
@click.argument("webhook_id")
@pass_env()
def rotate_command(env: CommandEnv, org_ref: str, webhook_id: str) -> None:
    """Print a new secret; the old one keeps verifying for 24 hours."""
    from scim_server.services import webhooks

    org_id = env.org_id(org_ref)
    with env.session(write=True) as session, domain_errors(), use_context(_actor("rotate")):
        secret = encryption_secret(env.app)
        click.echo(webhooks.rotate_secret(session, org_id, webhook_id, server_secret=secret))


@webhooks_group.command("test")
@org_option()
@click.argument("webhook_id")
@pass_env()
def test_command(env: CommandEnv, org_ref: str, webhook_id: str) -> None:
    """Queue a signed webhook.test message (the worker sends it)."""
    from scim_server.services import webhooks

    org_id = env.org_id(org_ref)
    with env.session(write=True) as session, domain_errors(), use_context(_actor("test")):
        delivery = webhooks.send_test(session, org_id, webhook_id)
    click.echo(f"queued delivery {delivery.id}")


@webhooks_group.command("replay")
@org_option()
@click.argument("webhook_id")
@click.option("--after", default=None, help="A cursor; default: the oldest retained event.")
@pass_env()
def replay_command(env: CommandEnv, org_ref: str, webhook_id: str, after: str | None) -> None:
    """Deliver again every event after a cursor."""
    from scim_server.services import webhooks

    org_id = env.org_id(org_ref)
    with env.session(write=True) as session, domain_errors(), use_context(_actor("replay")):
        count = webhooks.replay(session, org_id, webhook_id, after)
    click.echo(f"queued {count} event(s)")


@webhooks_group.command("deliveries")
@org_option()
@click.argument("webhook_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@pass_env()
def deliveries_command(env: CommandEnv, org_ref: str, webhook_id: str, limit: int) -> None:
    """The delivery log, newest first: id, state, attempts, last status, event type."""
    from scim_server.services import webhooks

    org_id = env.org_id(org_ref)
    with env.session() as session, domain_errors():
        log = webhooks.delivery_log(session, org_id, webhook_id, limit=limit)
    for d in log:
        status = d["last_status"] if d["last_status"] is not None else "-"
        error = f"\t{d['last_error']}" if d["last_error"] else ""
        click.echo(f"{d['id']}\t{d['state']}\t{d['attempts']}\t{status}\t{d['event_type']}{error}")


@click.group("events")
def events_group() -> None:
    """The events feed (what GET /api/v1/events returns)."""


@events_group.command("list")
@org_option()
@click.option("--after", default=None, help="A cursor, or 'now'; default: the oldest retained.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@pass_env()
def events_list_command(env: CommandEnv, org_ref: str, after: str | None, limit: int) -> None:
    """One event per line as JSON, then the next cursor on stderr."""
    from scim_server.events import feed

    org_id = env.org_id(org_ref)
    with env.session() as session, domain_errors():
        events, next_cursor = feed.list_events(session, org_id, after=after, limit=limit)
    for event in events:
        click.echo(json.dumps(event, sort_keys=True))
    click.echo(f"next cursor: {next_cursor}", err=True)
