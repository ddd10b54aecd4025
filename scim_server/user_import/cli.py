"""``scim-server import users FILE --org NAME [--dry-run]``: the Import page on the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, domain_errors, org_option, pass_env
from scim_server.user_import import rows as import_rows
from scim_server.user_import import sheets


@click.group("import")
def import_group() -> None:
    """Bring people in from a spreadsheet."""


@import_group.command("users")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@org_option()
@click.option("--dry-run", is_flag=True, help="Only say what each row would do; write nothing.")
@pass_env()
def import_users(env: CommandEnv, file: Path, org_ref: str, dry_run: bool) -> None:
    """Create or update users from a CSV or XLSX file (columns: see the console's template).

    Each row goes through the same code path as a SCIM create or PATCH. Exit 1
    if any row failed (or, with --dry-run, would fail).
    """
    org_id = env.org_id(org_ref)
    with domain_errors():
        found = sheets.read(file.name, file.read_bytes())
    context = AuditContext(actor_type="cli", actor_name="scim-server import users")
    outcomes: list[import_rows.Outcome] = []
    with use_context(context), env.session(write=not dry_run) as session:
        if dry_run:
            outcomes = import_rows.plan(session, org_id, found)
        else:
            with click.progressbar(
                import_rows.apply_rows(session, org_id, found),
                length=len(found),
                label=f"importing {len(found)} rows",
                file=sys.stderr,
            ) as bar:
                outcomes = list(bar)
            written = import_rows.summary(outcomes)
            session.rollback()  # each row committed itself; end any read begun since
            with session.begin():
                import_rows.refresh_statistics(session, written["create"] + written["update"])
    for outcome in outcomes:
        if outcome.action == "error":
            click.echo(f"line {outcome.line}: {outcome.user_name}: {outcome.reason}", err=True)
    counts = import_rows.summary(outcomes)
    verb = "would be" if dry_run else "were"
    click.echo(
        f"{len(outcomes)} rows: {counts['create']} {verb} created, {counts['update']} updated, "
        f"{counts['unchanged']} unchanged, {counts['error']} with errors."
    )
    if counts["error"]:
        sys.exit(1)
