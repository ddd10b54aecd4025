"""``scim-server audit ...`` on a SQLite file: what the other tests' commands do not cover."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.orm import Session

from scim_server.cli import main
from scim_server.models import AuditEvent
from tests.support.sqlite_race import another_write_before


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{path}")
    return path


@pytest.fixture
def cli(database: Path) -> Any:
    """Run a command; an exception is caught so that a traceback is a result, not a crash."""
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=True)

    return run


def _no_traceback(result: Any) -> None:
    """A refused command ends with click's own error (SystemExit), never another exception."""
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"traceback: {exc!r}"


def _events(database: Path) -> int:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as s:
            return int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)
    finally:
        engine.dispose()


def _age_the_log(database: Path, days: int) -> None:
    """Every event so far dated ``days`` ago: a log old enough for a purge to reach."""
    engine = create_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as s, s.begin():
            s.execute(update(AuditEvent).values(occurred_at=datetime.now(UTC) - timedelta(days)))
    finally:
        engine.dispose()


def test_purge_holds_the_write_lock_from_its_first_read(tmp_path, monkeypatch):
    """``audit purge`` reads the head, then deletes: a write committed by another process
    in between (the server, a worker) does not fail it, as it would a read that then wrote
    ("database is locked" at once, its snapshot stale)."""
    database = tmp_path / "cli.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{database}")
    runner = CliRunner()
    assert runner.invoke(main, ["org", "create", "acme"], catch_exceptions=False).exit_code == 0
    _age_the_log(database, 3)
    ahead = datetime.now(UTC) - timedelta(days=2)  # every event so far
    with another_write_before("DELETE FROM audit_events", str(database)) as other:
        purged = runner.invoke(
            main,
            ["audit", "purge", "--org", "acme", "--before", ahead.isoformat()],
            catch_exceptions=False,
        )
    assert other == ["database is locked"]  # it waits for the command, not the reverse
    assert purged.exit_code == 0, purged.output
    assert "acme: purged" in purged.output and "purged 0 " not in purged.output


@pytest.mark.parametrize("days", ["-30", "0"])
def test_purge_refuses_a_retention_under_a_day(tmp_path, monkeypatch, days):
    """``--retention-days -30`` would put the cutoff a month ahead and purge every event: a
    usage error, by the option and by ``SCIM_AUDIT_RETENTION_DAYS``; nothing is purged."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    assert runner.invoke(main, ["org", "create", "acme"]).exit_code == 0
    given = runner.invoke(main, ["audit", "purge", "--org", "acme", "--retention-days", days])
    assert given.exit_code == 2, given.output
    assert "--retention-days" in given.output and "1<=x<=36500" in given.output
    monkeypatch.setenv("SCIM_AUDIT_RETENTION_DAYS", days)
    from_env = runner.invoke(main, ["audit", "purge", "--org", "acme"])
    assert from_env.exit_code == 2 and "--retention-days" in from_env.output, from_env.output
    monkeypatch.delenv("SCIM_AUDIT_RETENTION_DAYS")  # it stops every other command too
    verified = runner.invoke(main, ["audit", "verify", "--org", "acme"])
    assert verified.exit_code == 0 and "acme: OK, 1 events (1..1)" in verified.output


@pytest.mark.parametrize(
    "before",
    [
        pytest.param("2999-01-01", id="a typo for 2026"),
        pytest.param((datetime.now(UTC) + timedelta(minutes=1)).isoformat(), id="ahead"),
        pytest.param((datetime.now(UTC) - timedelta(hours=1)).isoformat(), id="an hour ago"),
    ],
)
def test_purge_refuses_a_cutoff_less_than_a_day_ago(cli, database, before):
    """``--before`` in the future (or within the last day) is the cutoff ``--retention-days
    0`` was refused for: every event would go. A usage error; nothing is purged."""
    assert cli("org", "create", "acme").exit_code == 0
    assert cli("token", "create", "--org", "acme", "--name", "entra").exit_code == 0
    logged = _events(database)
    assert logged >= 2

    result = cli("audit", "purge", "--org", "acme", "--before", before)

    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "--before" in result.output and "at least a day ago" in result.output
    assert _events(database) == logged


@pytest.mark.parametrize("days", ["99999999999", "36501"])
def test_purge_refuses_a_retention_beyond_a_hundred_years(cli, monkeypatch, days):
    """``--retention-days 99999999999`` was an OverflowError traceback (no timedelta holds
    it): a usage error naming the bound, by the option and by SCIM_AUDIT_RETENTION_DAYS."""
    assert cli("org", "create", "acme").exit_code == 0
    given = cli("audit", "purge", "--org", "acme", "--retention-days", days)
    _no_traceback(given)
    assert given.exit_code == 2 and "1<=x<=36500" in given.output, given.output
    monkeypatch.setenv("SCIM_AUDIT_RETENTION_DAYS", days)
    from_env = cli("audit", "purge", "--org", "acme")
    _no_traceback(from_env)
    assert from_env.exit_code == 2 and "--retention-days" in from_env.output, from_env.output


def test_purge_takes_a_retention_of_a_hundred_years(cli):
    """The largest retention allowed is a usable cutoff (nothing that old to purge)."""
    assert cli("org", "create", "acme").exit_code == 0
    result = cli("audit", "purge", "--org", "acme", "--retention-days", "36500")
    assert result.exit_code == 0, result.output
    assert "acme: purged 0 events" in result.output


def _filed_checkpoint(cli: Any, tmp_path: Path, org: str) -> Path:
    filed = cli("audit", "checkpoint", "--org", org)
    assert filed.exit_code == 0, filed.output
    path = tmp_path / f"{org}-checkpoint.json"
    path.write_text(filed.output, encoding="utf-8")
    return path


def test_verify_against_a_checkpoint_of_an_organization_gone_is_broken(cli, tmp_path, monkeypatch):
    """``audit verify --checkpoint FILE`` (no --org) on a database without the checkpoint's
    organization (its history removed, the database replaced) printed nothing and exited 0:
    it says BROKEN, history removed, and exits 1."""
    assert cli("org", "create", "acme").exit_code == 0
    path = _filed_checkpoint(cli, tmp_path, "acme")
    org_id = json.loads(path.read_text())["organization"]

    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'replaced.db'}")
    assert cli("org", "create", "other").exit_code == 0
    result = cli("audit", "verify", "--checkpoint", str(path))

    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"{org_id}: BROKEN at event ")
    assert "history removed" in result.output
    assert "other" not in result.output


def test_verify_with_an_empty_org_is_a_usage_error(cli):
    """--org '' verified every organization (read as no --org) and said OK: a usage error."""
    assert cli("org", "create", "acme").exit_code == 0
    result = cli("audit", "verify", "--org", "")
    assert result.exit_code == 2, result.output
    assert "--org" in result.output and "must not be empty" in result.output
    assert "acme" not in result.output


def test_verify_against_a_checkpoint_checks_its_own_organization(cli, tmp_path):
    """Without --org, the checkpoint names the organization verified (not the others)."""
    assert cli("org", "create", "acme").exit_code == 0
    assert cli("org", "create", "other").exit_code == 0
    path = _filed_checkpoint(cli, tmp_path, "acme")
    result = cli("audit", "verify", "--checkpoint", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("acme: OK, ") and "other" not in result.output


@pytest.mark.parametrize("content", ["[]", '"checkpoint"', "42", "null"])
@pytest.mark.parametrize("org", [(), ("--org", "acme")])
def test_verify_against_a_checkpoint_that_is_not_an_object_is_a_usage_error(
    cli, tmp_path, content, org
):
    """A file of valid JSON that is not an object was an AttributeError traceback, and
    ``null`` verified as if no checkpoint had been given: a usage error."""
    assert cli("org", "create", "acme").exit_code == 0
    path = tmp_path / "filed.json"
    path.write_text(content, encoding="utf-8")
    result = cli("audit", "verify", *org, "--checkpoint", str(path))
    _no_traceback(result)
    assert result.exit_code == 2, result.output
    assert "--checkpoint" in result.output and "not a JSON object" in result.output


def test_verify_against_a_checkpoint_naming_no_organization_is_a_usage_error(cli, tmp_path):
    """Without --org, a JSON object naming no organization verified nothing and exited 0."""
    assert cli("org", "create", "acme").exit_code == 0
    path = tmp_path / "filed.json"
    path.write_text('{"seq": 1}', encoding="utf-8")
    result = cli("audit", "verify", "--checkpoint", str(path))
    _no_traceback(result)
    assert result.exit_code == 2 and "names no organization" in result.output, result.output


def test_export_to_a_missing_directory_is_a_clear_error(cli, tmp_path):
    """``audit export -o no/such/dir/q1.ndjson`` was a FileNotFoundError traceback."""
    assert cli("org", "create", "acme").exit_code == 0
    target = tmp_path / "no" / "such" / "dir" / "q1.ndjson"
    result = cli("audit", "export", "--org", "acme", "-o", str(target))
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "Error: cannot write" in result.output and str(target) in result.output
    assert not target.parent.exists()


def test_verify_of_a_log_without_its_head_row_is_broken(cli, database):
    """`audit verify` printed OK (0 events) and exited 0 for a log whose events are all there
    but whose signed head row was deleted: BROKEN, ``chain head missing``, exit 1."""
    assert cli("org", "create", "acme").exit_code == 0
    for name in ("t1", "t2", "t3"):
        assert cli("token", "create", "--org", "acme", "--name", name).exit_code == 0
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_heads"))
    finally:
        engine.dispose()
    result = cli("audit", "verify", "--org", "acme")
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "acme: BROKEN at event 1: chain head missing" in result.output


# -- a chain head the server did not sign: verify names it, the operator accepts it -----------


def _sql(database: Path, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def _cut_back(database: Path, keep: int) -> None:
    """Someone with the database and no key: the events after ``keep`` deleted, the head set
    to event ``keep``'s seq and hash (its signature cannot be redone: left as it was)."""
    _sql(database, "DELETE FROM audit_events WHERE seq > :k", k=keep)
    _sql(
        database,
        "UPDATE audit_heads SET seq = :k, hash = (SELECT hash FROM audit_events WHERE seq = :k)",
        k=keep,
    )


def _head_seq(database: Path) -> int:
    [(seq,)] = _sql(database, "SELECT seq FROM audit_heads")
    return int(seq)


def _tokens(cli: Any, *names: str) -> None:
    for name in names:
        assert cli("token", "create", "--org", "acme", "--name", name).exit_code == 0


def test_verify_names_the_head_a_write_found_not_signed(cli, database):
    """The newest events deleted and the head moved back: the next write (a token created)
    succeeds, and `audit verify` still says BROKEN (exit 1), at the first event written onto
    that head, naming where it was found. The write signed the head again: verify said OK."""
    assert cli("org", "create", "acme").exit_code == 0
    _tokens(cli, "t1", "t2", "t3", "t4")
    keep = _head_seq(database) - 2
    _cut_back(database, keep)
    assert cli("audit", "verify", "--org", "acme").exit_code == 1
    _tokens(cli, "after")
    result = cli("audit", "verify", "--org", "acme")
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert (
        f"acme: BROKEN at event {keep + 1}: event {keep + 1} was written onto a chain head "
        f"that did not carry the server's signature, found at {keep}"
    ) in result.output, result.output


def test_an_operator_accepts_a_head_after_an_incident_and_the_next_cut_is_found_again(
    cli, database
):
    """`audit accept-head` (CLI only, a reason required) signs the head again with an
    audit.head_accepted event: verify says OK and exports work again; the checkpoint of the
    history removed is deleted (listed in the event); a later cut is BROKEN again, at its
    own marker. A head the server signed has nothing to accept."""
    assert cli("org", "create", "acme").exit_code == 0
    _tokens(cli, "t1", "t2")
    keep = _head_seq(database)
    _tokens(cli, "t3")
    assert cli("audit", "checkpoint", "--org", "acme").exit_code == 0  # of history removed
    [(removed_cp,)] = _sql(database, "SELECT seq FROM audit_checkpoints")
    _cut_back(database, keep)
    _tokens(cli, "after")
    assert cli("audit", "verify").exit_code == 1

    missing = cli("audit", "accept-head", "--org", "acme")
    assert missing.exit_code == 2 and "--reason" in missing.output, missing.output
    blank = cli("audit", "accept-head", "--org", "acme", "--reason", " ")
    assert blank.exit_code == 2, blank.output
    result = cli(
        "audit", "accept-head", "--org", "acme", "--reason", "INC-42: restored from export"
    )
    _no_traceback(result)
    assert result.exit_code == 0, result.output
    assert f"acme: chain head accepted (found at event {keep + 2}" in result.output, result.output
    assert f"checkpoint(s) removed: {removed_cp}" in result.output
    assert "acme: OK" in result.output
    assert cli("audit", "verify", "--org", "acme").exit_code == 0
    [(actor, detail, changes)] = _sql(
        database,
        "SELECT actor_name, detail, changes FROM audit_events WHERE action = 'audit.head_accepted'",
    )
    assert actor == "scim-server audit accept-head"
    assert detail == "chain head accepted by the operator: INC-42: restored from export"
    changes = json.loads(changes) if isinstance(changes, str) else changes
    assert changes["unsigned_events"] == [keep + 1]
    assert [c["seq"] for c in changes["checkpoints_removed"]] == [removed_cp]
    assert _sql(database, "SELECT seq FROM audit_checkpoints") == []
    out = database.parent / "after.ndjson"
    assert cli("audit", "export", "--org", "acme", "-o", str(out)).exit_code == 0

    again = cli("audit", "accept-head", "--org", "acme", "--reason", "twice")
    assert again.exit_code == 0 and "nothing to accept" in again.output, again.output
    assert (
        len(_sql(database, "SELECT 1 FROM audit_events WHERE action = 'audit.head_accepted'")) == 1
    )

    _tokens(cli, "x1", "x2")
    second = _head_seq(database) - 1  # after the acceptance (cut with it, its marker is open)
    _cut_back(database, second)
    _tokens(cli, "later")
    result = cli("audit", "verify", "--org", "acme")
    assert result.exit_code == 1, result.output
    assert f"acme: BROKEN at event {second + 1}: " in result.output, result.output


def test_accepting_a_head_launders_no_edited_event(cli, database):
    """The acceptance signs the head, nothing else: an event edited before the incident is
    still found by verify (which the command runs after it: exit 1)."""
    assert cli("org", "create", "acme").exit_code == 0
    _tokens(cli, "t1", "t2", "t3")
    keep = _head_seq(database) - 1
    _sql(database, "UPDATE audit_events SET detail = 'nothing happened' WHERE seq = 2")
    _cut_back(database, keep)
    _tokens(cli, "after")
    result = cli("audit", "accept-head", "--org", "acme", "--reason", "INC-43")
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "acme: BROKEN at event 2: content does not match its hash (edited)" in result.output


def test_a_marked_head_is_purged_only_once_accepted(cli, database):
    """A purge past the marker would leave a head marked with no marker in the chain (the
    incident's evidence deleted): refused while the head is marked; once the operator
    accepted it, the retention applies again and verify stays OK."""
    assert cli("org", "create", "acme").exit_code == 0
    _tokens(cli, "t1", "t2")
    _cut_back(database, _head_seq(database) - 1)
    _tokens(cli, "after")
    events = _sql(database, "SELECT count(*) FROM audit_events")
    refused = cli("audit", "purge", "--org", "acme", "--retention-days", "1")
    _no_traceback(refused)
    assert refused.exit_code == 1 and "acme: refused" in refused.output, refused.output
    assert _sql(database, "SELECT count(*) FROM audit_events") == events  # not even its event
    result = cli("audit", "accept-head", "--org", "acme", "--reason", "INC-44")
    assert result.exit_code == 0 and "acme: OK" in result.output, result.output
    assert cli("audit", "purge", "--org", "acme", "--retention-days", "1").exit_code == 0
    result = cli("audit", "verify", "--org", "acme")
    assert result.exit_code == 0 and "acme: OK" in result.output, result.output


def test_no_checkpoint_is_signed_over_a_head_the_server_did_not_sign(cli, database):
    """A checkpoint vouches for the chain up to its head: after a cut, before and after the
    next write marks it, `audit checkpoint` is refused (exit 1, saying why and what to do)
    and signs nothing; once the head is accepted it signs one again."""
    assert cli("org", "create", "acme").exit_code == 0
    _tokens(cli, "t1", "t2", "t3")
    keep = _head_seq(database) - 1
    _cut_back(database, keep)
    for write in (False, True):
        if write:
            _tokens(cli, "after")
        result = cli("audit", "checkpoint", "--org", "acme")
        _no_traceback(result)
        assert result.exit_code == 1, result.output
        assert "not signed by this server" in result.output, result.output
        assert "audit accept-head" in result.output, result.output
        assert _sql(database, "SELECT seq FROM audit_checkpoints") == []
    accepted = cli("audit", "accept-head", "--org", "acme", "--reason", "checked with IT")
    assert accepted.exit_code == 0, accepted.output
    signed = cli("audit", "checkpoint", "--org", "acme")
    assert signed.exit_code == 0, signed.output
    # The checkpoint's own audit.checkpoint event follows the head it signed.
    assert json.loads(signed.output)["seq"] == _head_seq(database) - 1


def test_no_purge_runs_over_a_head_the_server_did_not_sign(cli, database):
    """A purge deletes history and signs a checkpoint at its new start: on a log cut back
    (the next write marked it), it is refused for that organization (exit 1, saying why),
    deletes nothing, and the other organizations are purged all the same."""
    for org in ("acme", "globex"):
        assert cli("org", "create", org).exit_code == 0
    _tokens(cli, "t1", "t2", "t3")
    [(acme,)] = _sql(database, "SELECT id FROM organizations WHERE name = 'acme'")
    [(keep,)] = _sql(database, "SELECT seq - 1 FROM audit_heads WHERE org_id = :o", o=acme)
    _sql(database, "DELETE FROM audit_events WHERE org_id = :o AND seq > :k", o=acme, k=keep)
    _sql(
        database,
        "UPDATE audit_heads SET seq = :k, hash = (SELECT hash FROM audit_events "
        "WHERE org_id = :o AND seq = :k) WHERE org_id = :o",
        o=acme,
        k=keep,
    )
    _tokens(cli, "after")  # marks acme's head
    _sql(database, "UPDATE audit_events SET occurred_at = '2000-01-01 00:00:00'")
    before = _sql(database, "SELECT org_id, count(*) FROM audit_events GROUP BY org_id")
    result = cli("audit", "purge", "--retention-days", "30")
    _no_traceback(result)
    assert result.exit_code == 1, result.output
    assert "acme: refused" in result.output and "not signed by this server" in result.output
    assert "globex: purged" in result.output, result.output
    after = dict(_sql(database, "SELECT org_id, count(*) FROM audit_events GROUP BY org_id"))
    assert after[acme] == dict(before)[acme]
