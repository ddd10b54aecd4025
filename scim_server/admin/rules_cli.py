"""``scim-server rules ...``: import, export, validate and preview mapping rule sets.

Rule files are YAML or JSON (by extension, or ``--format``). Changes made here
are attributed to the command line in the provisioning log.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, build_app
from scim_server.db import db
from scim_server.errors import DomainError

FORMATS = ("yaml", "json")
EXTENSIONS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
SHOWN_EXAMPLES = 5

org_option = click.option("--org", "org_ref", required=True, help="Organization name or id.")
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="File format (default: by extension)."
)
file_argument = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))


def _app_and_org(org_ref: str) -> tuple[Any, str]:
    env = CommandEnv(build_app())
    env.migrate()
    return env.app, env.org_id(org_ref)


def _session(app: Any, *, write: bool = False) -> Any:
    """``write``: SQLite's write lock taken at BEGIN. A read that then writes would upgrade
    its lock, and fail at once ("database is locked", no busy wait) when a worker or the
    server committed in between."""
    return CommandEnv(app).session(write=write)


def _context(command: str) -> Any:
    return use_context(AuditContext(actor_type="cli", actor_name=f"scim-server rules {command}"))


def _read(file: Path, fmt: str | None) -> Any:
    """The document in ``file``; a syntax error lists its problems and exits 1."""
    from scim_server.services.rule_sets import RuleSetInvalidError, check_storable, parse_text

    fmt = fmt or EXTENSIONS.get(file.suffix.lower())
    if fmt is None:
        raise click.UsageError(f"Cannot tell the format of {file.name}; give --format yaml|json.")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file.name} is not UTF-8 text.") from None
    try:
        document = parse_text(text, fmt)
        check_storable(document)
    except RuleSetInvalidError as err:
        _problems(file, err.problems)
    return document


def _problems(file: Path, problems: list[dict[str, str]]) -> NoReturn:
    click.echo(f"{file.name}: {len(problems)} problem(s)", err=True)
    for problem in problems:
        click.echo(f"{problem['path']}: {problem['message']}")
    sys.exit(1)


def _fail(exc: DomainError) -> click.ClickException:
    return click.ClickException(exc.detail)


@click.group("rules")
def rules() -> None:
    """Mapping rule sets (external identity -> license, roles, contact, status)."""


@rules.command("validate")
@org_option
@format_option
@file_argument
def validate_command(org_ref: str, fmt: str | None, file: Path) -> None:
    """Check FILE against the organization's licenses and roles; exit 1 listing each problem."""
    from scim_server.services.rule_sets import RuleSetInvalidError, validate_document

    app, org_id = _app_and_org(org_ref)
    document = _read(file, fmt)
    with _session(app) as session:
        try:
            validate_document(session, org_id, document)
        except RuleSetInvalidError as err:
            _problems(file, err.problems)
    click.echo(f"{file.name}: valid")


@rules.command("import")
@org_option
@format_option
@click.option("--name", help="A name for this version (default: the file name).")
@click.option("--activate", is_flag=True, help="Make it the active rule set at once.")
@file_argument
def import_command(
    org_ref: str, fmt: str | None, name: str | None, activate: bool, file: Path
) -> None:
    """Store FILE as a new rule-set version (validated first); --activate to switch to it."""
    from scim_server.services.rule_sets import RuleSetInvalidError, create_rule_set
    from scim_server.services.rule_sets import activate as make_active

    app, org_id = _app_and_org(org_ref)
    document = _read(file, fmt)
    with _context("import"), _session(app, write=True) as session:
        try:
            rs = create_rule_set(session, org_id, name or file.stem, document)
            click.echo(f"imported {rs.name!r} as version {rs.version} ({rs.id})")
            if activate:
                make_active(session, org_id, rs.id)
                click.echo(
                    f"version {rs.version} is active; existing users move on their next change "
                    f"(or now: scim-server rules apply --org {org_ref})"
                )
        except RuleSetInvalidError as err:
            _problems(file, err.problems)
        except DomainError as exc:
            raise _fail(exc) from None


@rules.command("export")
@org_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="yaml", show_default=True)
@click.option("--id", "rule_set_id", help="A stored version's id (default: the active one).")
def export_command(org_ref: str, fmt: str, rule_set_id: str | None) -> None:
    """Print a rule set (the active one by default) as YAML or JSON."""
    import mappings
    from scim_server.services.rule_sets import get_rule_set, list_rule_sets

    app, org_id = _app_and_org(org_ref)
    with _session(app) as session:
        if rule_set_id:
            try:
                document = get_rule_set(session, org_id, rule_set_id).document
            except DomainError as exc:
                raise _fail(exc) from None
        else:
            active = next((r for r in list_rule_sets(session, org_id) if r.active), None)
            if active is None:
                raise click.ClickException(f"{org_ref} has no active rule set; give --id.")
            document = active.document
    click.echo(mappings.dump(document, fmt), nl=False)


@rules.command("preview")
@org_option
@format_option
@file_argument
def preview_command(org_ref: str, fmt: str | None, file: Path) -> None:
    """What activating FILE would change, without changing anything."""
    from scim_server.services.rule_sets import RuleSetInvalidError, preview, with_settings_defaults

    app, org_id = _app_and_org(org_ref)
    document = _read(file, fmt)
    with _session(app) as session:
        try:
            document = with_settings_defaults(session, org_id, document)
            summary = preview(session, org_id, document)
        except RuleSetInvalidError as err:
            _problems(file, err.problems)
        finally:
            session.rollback()
    click.echo(format_preview(summary))


@rules.command("apply")
@org_option
@click.option(
    "--wait",
    "wait_only",
    is_flag=True,
    help="Only queue the job and follow it while scim-server worker runs it.",
)
@click.option("--poll-interval", default=1.0, show_default=True, type=click.FloatRange(min=0.1))
def apply_command(org_ref: str, wait_only: bool, poll_interval: float) -> None:
    """Re-evaluate every user against the active rules now (manual assignments stay).

    Queues the same job the admin API does, then runs it here through the
    worker's code (or, with --wait or if a worker took it first, follows it),
    with a progress bar.
    """
    from scim_server.services.rule_sets import start_apply
    from scim_server.worker import Worker

    app, org_id = _app_and_org(org_ref)
    with _context("apply"), _session(app, write=True) as session:
        try:
            job = start_apply(session, org_id)
        except DomainError as exc:
            raise _fail(exc) from None
    click.echo(f"job {job.id} queued", err=True)
    with click.progressbar(length=1, label="applying rules", file=sys.stderr) as bar:

        def show(done: int, total: int | None) -> None:
            bar.length = max(total or 0, done, 1)
            bar.update(done - bar.pos)

        ran = False
        if not wait_only:
            ran = Worker(db.writer(app)).run_job(job.id, on_progress=show)
        if not ran:
            job = _follow(app, org_id, job.id, show, poll_interval)
    with _session(app) as session:
        from scim_server.services.jobs import get_job

        job = get_job(session, org_id, job.id)
    if job.state != "succeeded":
        raise click.ClickException(f"job {job.id} {job.state}: {job.error}")
    result = job.result or {}
    click.echo(
        f"rules re-applied: {result.get('changed', 0)} user(s) changed "
        f"({result.get('evaluated', 0)} of {result.get('users', 0)} evaluated, "
        "the others' rule inputs unchanged)"
    )


def _follow(app: Any, org_id: str, job_id: str, show: Any, poll_interval: float) -> Any:
    """Poll the job until it ends (a worker runs it), showing its progress."""
    import time

    from scim_server.services.jobs import get_job

    while True:
        with _session(app) as session:
            job = get_job(session, org_id, job_id)
        show(job.progress_done, job.progress_total)
        if job.state in ("succeeded", "failed"):
            return job
        time.sleep(poll_interval)


def format_preview(summary: dict[str, Any]) -> str:
    """The preview as a few readable lines: totals, moves, role counts, examples."""
    lines = [f"users: {summary['users']}, would change: {summary['would_change']}"]
    if summary["given_by_other_rules"]:
        lines.append(
            f"keep a license or role given by other rules: {summary['given_by_other_rules']}"
        )
    moves = sorted(summary["license_moves"].items(), key=lambda kv: (-kv[1], kv[0]))
    lines.append("license moves:" + ("" if moves else " none"))
    lines += [f"  {move}: {count}" for move, count in moves]
    for label, key in (("roles added", "roles_added"), ("roles removed", "roles_removed")):
        counts = sorted(summary[key].items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{role} ({count})" for role, count in counts)
        lines.append(f"{label}: {shown or 'none'}")
    # Shown only when there is something: who the seats do not fit, contact fields set.
    for label, key in (
        ("waiting for a seat", "license_shortages"),
        ("refused (strict seats)", "license_refusals"),
        ("contact fields", "contact_changes"),
    ):
        counts = sorted((summary.get(key) or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        if counts:
            lines.append(f"{label}: " + ", ".join(f"{name} ({count})" for name, count in counts))
    examples = summary["examples"][:SHOWN_EXAMPLES]
    if examples:
        lines.append("examples:")
    for example in examples:
        parts = []
        if "license" in example:
            lic = example["license"]
            parts.append(f"license {lic['before'] or '-'} -> {lic['after'] or '-'}")
        if "license_given_by" in example:
            by = example["license_given_by"]
            parts.append(f"license by rule {by['before'] or '-'} -> {by['after'] or '-'}")
        if "roles" in example:
            added, removed = example["roles"]["added"], example["roles"]["removed"]
            parts += [f"+{r}" for r in added] + [f"-{r}" for r in removed]
        for role, by in example.get("roles_given_by", {}).items():
            parts.append(f"{role} by rule {by['before'] or '-'} -> {by['after'] or '-'}")
        lines.append(f"  {example['userName']}: {'; '.join(parts)}")
    return "\n".join(lines)
