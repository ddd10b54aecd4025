"""``scim-server audit ...`` on a SQLite file: what the other tests' commands do not cover."""

from __future__ import annotations

from click.testing import CliRunner

from scim_server.cli import main
from tests.support.sqlite_race import another_write_before


def test_purge_holds_the_write_lock_from_its_first_read(tmp_path, monkeypatch):
    """``audit purge`` reads the head, then deletes: a write committed by another process
    in between (the server, a worker) does not fail it, as it would a read that then wrote
    ("database is locked" at once, its snapshot stale)."""
    database = tmp_path / "cli.db"
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{database}")
    runner = CliRunner()
    assert runner.invoke(main, ["org", "create", "acme"], catch_exceptions=False).exit_code == 0
    with another_write_before("DELETE FROM audit_events", str(database)) as other:
        purged = runner.invoke(
            main,
            ["audit", "purge", "--org", "acme", "--retention-days", "0"],
            catch_exceptions=False,
        )
    assert other == ["database is locked"]  # it waits for the command, not the reverse
    assert purged.exit_code == 0, purged.output
    assert "acme: purged" in purged.output and "purged 0 " not in purged.output
