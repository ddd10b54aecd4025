"""``scim-server import users FILE --org NAME [--dry-run]``, on a fresh SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from scim_server import create_app
from scim_server.cli import main
from scim_server.db import db
from scim_server.models import AuditEvent, User

CSV = "userName,email,givenName\na@example.com,a@example.com,A\nb@example.com,b@example.com,B\n"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("org", "create", "acme").exit_code == 0
    return run


def _state() -> tuple[set[str], list[tuple[str, str | None]]]:
    app = create_app()
    with db.reader(app)() as s:
        names = {u.user_name for u in s.scalars(select(User))}
        events = [
            (e.action, e.actor_name) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        ]
    db.engine(app).dispose()
    return names, events


def test_dry_run_writes_nothing_then_the_import_creates_each_row(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--dry-run only reports; the import creates through SCIM's path, named in the log."""
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    dry = cli("import", "users", str(path), "--org", "acme", "--dry-run")
    assert dry.exit_code == 0 and "2 rows: 2 would be created" in dry.output
    assert _state()[0] == set()
    done = cli("import", "users", str(path), "--org", "acme")
    assert done.exit_code == 0 and "2 rows: 2 were created" in done.output
    names, events = _state()
    assert names == {"a@example.com", "b@example.com"}
    assert ("user.create", "scim-server import users") in events
    again = cli("import", "users", str(path), "--org", "acme")
    assert "0 were created, 0 updated, 2 unchanged" in again.output


def test_a_bad_row_is_reported_with_its_line_and_exit_1(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A row that cannot be imported names its line and reason; the others still go in."""
    path = tmp_path / "people.csv"
    path.write_text("userName,active\nc@example.com,perhaps\nd@example.com,no\n")
    result = cli("import", "users", str(path), "--org", "acme")
    assert result.exit_code == 1
    assert "line 2: c@example.com: active must be true or false" in result.output
    assert _state()[0] == {"d@example.com"}
    missing = cli("import", "users", str(tmp_path / "people.pdf"), "--org", "acme")
    assert missing.exit_code == 2


def test_an_import_leaves_fresh_planner_statistics(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The tables an import grew are analyzed at its end (no statistics before: all of them)."""
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    assert cli("import", "users", str(path), "--org", "acme").exit_code == 0
    app = create_app()
    with db.reader(app)() as s:
        stats = dict(s.execute(text("SELECT tbl, stat FROM sqlite_stat1")).all())
    db.engine(app).dispose()
    assert stats["users"].split()[0] == "2"
    assert {"contacts", "attribute_values", "audit_events"} <= set(stats)
