"""``scim-server audit ...``: verify, export and purge the provisioning log; accept a chain
head the server found not signed."""

from __future__ import annotations

import hmac
import json
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from scim_server.audit.context import AuditContext, use_context
from scim_server.commands import CommandEnv, build_app, domain_errors, not_blank, pass_env
from scim_server.config import MAX_RETENTION_DAYS
from scim_server.db import db
from scim_server.errors import ConflictError, DomainError


def _app() -> Any:
    """The command's app; its connections closed when the command ends (left to the garbage
    collector, a PostgreSQL connection was dropped unclosed: a ResourceWarning)."""
    app = build_app()
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(db.engine(app).dispose)
    return app


def _ensure_schema(app: Any) -> None:
    CommandEnv(app).migrate()


def _session(app: Any, *, write: bool = False) -> Any:
    """``write``: SQLite's write lock taken at BEGIN (a read that then writes would fail at
    once if anything committed in between: ``CommandEnv.session``)."""
    return CommandEnv(app).session(write=write)


def _orgs(app: Any, org_ref: str | None) -> list[tuple[str, str]]:
    from scim_server.services.organizations import list_organizations

    if org_ref:
        org_id = CommandEnv(app).org_id(org_ref)
        return [(org_id, org_ref)]
    with _session(app) as session:
        return [(o.id, o.name) for o in list_organizations(session)]


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or time", param_hint=option
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        # The database holds UTC: 9999-12-31T23:59:59-05:00 is in year 10000 there (as
        # the admin API refuses it: ``admin.common.instant``).
        parsed.astimezone(UTC)
    except OverflowError:
        raise click.BadParameter(
            f"{value!r} is not a time between years 1 and 9999 in UTC", param_hint=option
        ) from None
    return parsed


@click.group("audit")
def audit() -> None:
    """The provisioning log."""


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from None


def _read_checkpoint(path: str) -> dict[str, Any]:
    """A filed checkpoint is a JSON object: anything else is a usage error (``null`` was
    taken for no checkpoint at all, a list or a number for a traceback)."""
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise click.BadParameter(
            f"{path}: not a JSON object (a checkpoint from `audit checkpoint`)",
            param_hint="'--checkpoint'",
        )
    return doc


def _checkpoint_orgs(app: Any, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The organization a checkpoint names, when this database has it (else none)."""
    from scim_server.models import Organization

    org_id = doc.get("organization")
    if not isinstance(org_id, str):
        raise click.BadParameter(
            "names no organization (a checkpoint from `audit checkpoint` does)",
            param_hint="'--checkpoint'",
        )
    with _session(app) as session:
        org = session.get(Organization, org_id)
        return [(org.id, org.name)] if org is not None else []


@audit.command("verify")
@click.option(
    "--org", "org_ref", callback=not_blank, help="Organization name or id (default: all)."
)
@click.option(
    "--checkpoint",
    "filed",
    type=click.Path(exists=True, dir_okay=False),
    help="A filed checkpoint (JSON, from `audit checkpoint`): the chain must agree with it.",
)
def verify(org_ref: str | None, filed: str | None) -> None:
    """Check the hash chain and signatures; name the first broken event. Exit 1 if broken."""
    from scim_server.audit.checkpoints import compare_filed
    from scim_server.audit.queries import verify as verify_chain

    filed_doc = _read_checkpoint(filed) if filed else None
    app = _app()
    _ensure_schema(app)
    if filed_doc is not None and not org_ref:
        # A checkpoint is one organization's: verify that one. Its organization gone from
        # the database is its whole history removed, not "nothing to check".
        orgs = _checkpoint_orgs(app, filed_doc)
        if not orgs:
            click.echo(
                f"{filed_doc.get('organization')}: BROKEN at event {filed_doc.get('seq')}: "
                "the filed checkpoint's organization is not in this database (history removed)"
            )
            sys.exit(1)
    else:
        orgs = _orgs(app, org_ref)
    broken = False
    for org_id, name in orgs:
        with _session(app) as session:
            result = verify_chain(session, org_id)
            if filed_doc is not None and result.ok:
                problem = compare_filed(session, org_id, filed_doc)
                if problem:
                    result.ok, result.broken_seq, result.reason = (
                        False,
                        filed_doc.get("seq"),
                        problem,
                    )
        if result.ok:
            click.echo(
                f"{name}: OK, {result.checked} events"
                + (f" ({result.first_seq}..{result.last_seq})" if result.checked else "")
                + f", head {result.head_hash or '-'}"
            )
        else:
            broken = True
            click.echo(f"{name}: BROKEN at event {result.broken_seq}: {result.reason}")
    if broken:
        sys.exit(1)


_SIGNATURES = (
    ("resigned", "signed again with the current audit key"),
    ("unverified", "valid with neither key: left as they are"),
)


@audit.command("rekey")
@pass_env()
def rekey_command(env: CommandEnv) -> None:
    """Sign the log again after SCIM_AUDIT_KEY changed, with the old key in SCIM_PREVIOUS_AUDIT_KEY.

    Run once, with the new SCIM_AUDIT_KEY, before the server and the worker write with it.
    Each organization's head and checkpoints and the published keys' rows are signed again
    with the current key, only those valid with the previous one, with an audit.rekey event:
    one line each (organization, row, audit.head / audit.checkpoint / audit.signing_key,
    resigned or unverified). The previous key is read from the environment only (a command
    line is visible to other users). Safe to run any number of times. Exits 1 if a
    signature is valid with neither key (listed; left as it is: `audit verify` names it).
    """
    from scim_server.audit import chain, rekey

    configured = env.app.config.get("PREVIOUS_AUDIT_KEY")
    if not configured:
        raise click.UsageError(
            "SCIM_PREVIOUS_AUDIT_KEY is not set: set it to the audit key the log was signed "
            "with before the change (the old SCIM_AUDIT_KEY; SCIM_SECRET_KEY's value if there "
            "was none), and SCIM_AUDIT_KEY to the new one."
        )
    previous = str(configured).encode()
    actor = AuditContext(actor_type="cli", actor_name="scim-server audit rekey")
    with env.session(write=True) as session, use_context(actor):
        if hmac.compare_digest(previous, chain.signing_key(session)):
            raise click.UsageError(
                "SCIM_PREVIOUS_AUDIT_KEY is the current audit key: nothing to sign again. "
                "Set SCIM_AUDIT_KEY to the new key (in every process's configuration) first."
            )
        states = rekey.resign(session, previous)
    for s in states:
        if s.status != rekey.CURRENT:
            click.echo(f"{s.org_id or '-'}\t{s.row}\t{s.field}\t{s.status}")
    counts = Counter(s.status for s in states)
    for status, label in _SIGNATURES:
        if counts[status]:
            click.echo(f"{counts[status]} audit signature(s) {label}", err=True)
    if not counts[rekey.RESIGNED] and not counts[rekey.UNVERIFIED]:
        click.echo("nothing to sign again: every signature is the current key's", err=True)
    if counts[rekey.UNVERIFIED]:
        nothing = (
            "nothing was signed again (is SCIM_PREVIOUS_AUDIT_KEY the audit key from before "
            "the change?): "
            if not counts[rekey.RESIGNED]
            else ""
        )
        raise click.ClickException(
            f"{nothing}some audit log signatures are valid with neither SCIM_AUDIT_KEY nor "
            "SCIM_PREVIOUS_AUDIT_KEY: they were left as they are (a change the server did not "
            "make is never signed); `scim-server audit verify` names them."
        )


@audit.command("export")
@click.option("--org", "org_ref", required=True, help="Organization name or id.")
@click.option(
    "--format", "fmt", type=click.Choice(["ndjson", "csv"]), default="ndjson", show_default=True
)
@click.option("--since", help="Events at or after this time (ISO 8601, UTC if no zone).")
@click.option("--until", help="Events before this time.")
@click.option("--action", help="Only this action (e.g. user.deactivate).")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout)."
)
def export(
    org_ref: str,
    fmt: str,
    since: str | None,
    until: str | None,
    action: str | None,
    output: str | None,
) -> None:
    """Stream events oldest first, ending with a manifest (count, range, chain head)."""
    from scim_server.audit.export import export_lines
    from scim_server.audit.queries import EventFilter, count

    app = _app()
    _ensure_schema(app)
    org_id = _orgs(app, org_ref)[0][0]
    flt = EventFilter(since=_when(since, "--since"), until=_when(until, "--until"), action=action)
    with _session(app) as session:
        total = count(session, org_id, flt)
    factory = db.reader(app)
    try:
        out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
    except OSError as exc:  # a folder that does not exist, no permission: not a traceback
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    failed = None
    try:
        lines = export_lines(factory, org_id, flt, fmt)
        with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
            for line in lines:
                out.write(line)
                if line.startswith(("# error", '{"error"')):
                    failed = line
                elif not line.startswith(("# manifest", '{"manifest"')):
                    bar.update(1)
    finally:
        if output:
            out.close()
    if failed is not None:
        raise click.ClickException(f"the export is incomplete: {failed.strip()}")


@audit.command("purge")
@click.option("--org", "org_ref", help="Organization name or id (default: all).")
@click.option("--before", help="Delete events before this time (ISO 8601), at least a day ago.")
@click.option(
    "--retention-days",
    # Under a day the cutoff is now or ahead of it (a negative one: every event goes); past
    # MAX_RETENTION_DAYS no date holds the cutoff.
    type=click.IntRange(min=1, max=MAX_RETENTION_DAYS),
    envvar="SCIM_AUDIT_RETENTION_DAYS",
    help=f"Delete events older than this many days, 1 to {MAX_RETENTION_DAYS}"
    " (default: SCIM_AUDIT_RETENTION_DAYS).",
)
def purge(org_ref: str | None, before: str | None, retention_days: int | None) -> None:
    """Apply the retention period; the chain stays verifiable and the purge is logged."""
    from scim_server.audit.queries import PURGE_MIN_AGE
    from scim_server.audit.queries import purge as purge_events

    if (before is None) == (retention_days is None):
        raise click.UsageError("Give exactly one of --before or --retention-days.")
    now = datetime.now(UTC)
    cutoff = _when(before, "--before") if before else now - timedelta(days=retention_days or 0)
    assert cutoff is not None
    if cutoff > now - PURGE_MIN_AGE:
        # A date typed in the future (2062 for 2026) would purge every event.
        raise click.BadParameter(
            f"{before!r} must be at least a day ago: a later cutoff deletes every event",
            param_hint="'--before'",
        )
    app = _app()
    _ensure_schema(app)
    refused = False
    with use_context(AuditContext(actor_type="cli", actor_name="scim-server audit purge")):
        for org_id, name in _orgs(app, org_ref):
            try:
                with _session(app, write=True) as session:
                    removed = purge_events(session, org_id, cutoff)
            except ConflictError as exc:  # this organization's log: the others are purged
                click.echo(f"{name}: refused: {exc.detail}", err=True)
                refused = True
                continue
            except DomainError as exc:
                raise click.ClickException(exc.detail) from None
            click.echo(f"{name}: purged {removed} events before {cutoff.isoformat()}")
    if refused:
        raise SystemExit(1)


@audit.command("public-key")
@click.option(
    "--json", "as_json", is_flag=True, help="Every published key with its validity period."
)
def public_key(as_json: bool) -> None:
    """The Ed25519 public key that signs checkpoints and export manifests (PEM)."""
    from scim_server.audit.signing import published_keys

    app = _app()
    signer = app.config["AUDIT_SIGNER"]
    if not as_json:
        click.echo(signer.public_pem, nl=False)
        return
    _ensure_schema(app)
    with _session(app) as session:
        click.echo(json.dumps(published_keys(session, signer), indent=2))


@audit.command("checkpoint")
@click.option("--org", "org_ref", required=True, help="Organization name or id.")
def checkpoint(org_ref: str) -> None:
    """Sign a checkpoint of the chain head now; print it (JSON) to file or mail elsewhere."""
    from scim_server.audit.checkpoints import create

    app = _app()
    _ensure_schema(app)
    org_id = _orgs(app, org_ref)[0][0]
    actor = AuditContext(actor_type="cli", actor_name="scim-server audit checkpoint")
    with use_context(actor), CommandEnv(app).session(write=True) as session, domain_errors():
        doc = create(session, org_id)
    click.echo(json.dumps(doc, indent=2, sort_keys=True))


@audit.command("accept-head")
@click.option(
    "--org", "org_ref", required=True, callback=not_blank, help="Organization name or id."
)
@click.option(
    "--reason",
    required=True,
    callback=not_blank,
    help="Why (the incident, what the log was compared with): recorded in the event.",
)
def accept_head(org_ref: str, reason: str) -> None:
    """Sign again a chain head the server found not signed, once the log was checked; verify.

    Only here, never over HTTP: the events the log holds become the log. Compare it first
    with what was filed outside (`audit verify --checkpoint`, exports). Exit 1 if it is
    still broken (an event edited, deleted or added is not accepted)."""
    from scim_server.audit.queries import accept_head as accept
    from scim_server.audit.queries import verify as verify_chain

    app = _app()
    _ensure_schema(app)
    org_id, name = _orgs(app, org_ref)[0]
    actor = AuditContext(actor_type="cli", actor_name="scim-server audit accept-head")
    with use_context(actor), CommandEnv(app).session(write=True) as session:
        done = accept(session, org_id, reason)
    if not done.accepted:
        click.echo(f"{name}: the chain head is the server's: nothing to accept")
    else:
        markers = [str(seq) for seq in done.markers] + (["one written now"] * done.marked_now)
        click.echo(
            f"{name}: chain head accepted (found at event {done.found_seq}; markers settled: "
            f"{', '.join(markers) or 'none'}; checkpoint(s) removed: "
            f"{', '.join(map(str, done.removed)) or 'none'})"
        )
    with _session(app) as session:
        result = verify_chain(session, org_id)
    if not result.ok:
        click.echo(f"{name}: BROKEN at event {result.broken_seq}: {result.reason}")
        sys.exit(1)
    click.echo(f"{name}: OK, {result.checked} events, head {result.head_hash or '-'}")


@audit.command("verify-export")
@click.argument("export_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--public-key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False),
    help="The published keys (JSON, `audit public-key --json`) or one PEM public key.",
)
@click.option(
    "--checkpoint",
    "filed",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A filed checkpoint (JSON); repeatable.",
)
def verify_export(export_file: str, key_file: str | None, filed: tuple[str, ...]) -> None:
    """Verify an export offline (no database, no secret); name the first line at fault.

    The same code as the standalone verifier (`audit verifier`). Exit 1 if not verified.
    """
    from scim_server.audit import offline

    status, text = offline.run(export_file, key_file, list(filed))
    click.echo(text)
    sys.exit(status)


@audit.command("verifier")
def verifier() -> None:
    """Print the standalone verifier (one Python file: stdlib + cryptography) for auditors."""
    from scim_server.audit import offline

    click.echo(Path(offline.__file__).read_text(encoding="utf-8"), nl=False)
