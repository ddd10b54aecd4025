"""``scim-server audit ...`` on a SQLite file: what the other tests' commands do not cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from scim_server.cli import main
from tests.support.sqlite_race import another_write_before


def test_purge_holds_the_write_lock_from_its_first_read(tmp_path, monkeypatch):
    """``audit purge`` reads the head, then deletes: a write committed by another process
    in between (the server, a worker) does not fail it, as it would a read that then wrote
    ("database is locked" at once, its snapshot stale)."""
    database = tmp_path / "cli.db"
    ahead = datetime.now(UTC) + timedelta(minutes=1)  # every event so far
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{database}")
    runner = CliRunner()
    assert runner.invoke(main, ["org", "create", "acme"], catch_exceptions=False).exit_code == 0
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
    assert "--retention-days" in given.output and "x>=1" in given.output
    monkeypatch.setenv("SCIM_AUDIT_RETENTION_DAYS", days)
    from_env = runner.invoke(main, ["audit", "purge", "--org", "acme"])
    assert from_env.exit_code == 2 and "--retention-days" in from_env.output, from_env.output
    verified = runner.invoke(main, ["audit", "verify", "--org", "acme"])
    assert verified.exit_code == 0 and "acme: OK, 1 events (1..1)" in verified.output
