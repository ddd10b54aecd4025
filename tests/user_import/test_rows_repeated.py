"""A file naming one person twice (userNames equal when folded, as the server compares them):
the first row is imported, the second refused with "the same userName as line N", in the
preview and in the import, on the console and on the command line. Which of the two rows
is meant is the file's own doubt; applying the second over the first would write what the
preview (or the dry run) said it would skip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from scim_server import create_app
from scim_server.cli import main
from scim_server.db import db
from scim_server.models import AuditEvent, ImportRow, User
from scim_server.user_import import rows as import_rows
from scim_server.user_import.sheets import Row
from scim_server.worker import Worker
from tests.console.test_imports import _jobs, _preview, _users
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console

REPEATED = (
    "userName,givenName,title\ndup@example.com,Right,Engineer\nDUP@example.com,Wrong,Intern\n"
)


def _start(app: Flask, client: FlaskClient, token: str, body: str) -> str:
    """Press Import on a preview page and let the worker run the import; the import's page."""
    start = re.search(r'action="(/admin/import/[0-9a-f-]{36}/start)"', body)
    assert start, body
    resp = client.post(start.group(1), data={"csrf_token": token})
    assert resp.status_code == 303
    assert Worker(db.writer(app)).run_jobs() == 1
    return str(resp.headers["Location"])


def test_the_import_refuses_the_row_the_preview_refused(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The preview plans line 2 as a create and line 3 as an error; Import creates line 2's
    user with line 2's values and refuses line 3 with the preview's reason: no update."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, REPEATED.encode())
    assert "the same userName as line 2" in body
    page = _start(app, client, token, body)
    (job,) = _jobs(app, scim.org_id)
    assert job.state == "succeeded"
    assert job.result == {"create": 1, "update": 0, "unchanged": 0, "error": 1}
    users = _users(app, scim.org_id)
    assert "DUP@example.com" not in users
    user = users["dup@example.com"]
    assert user.data["name"]["givenName"] == "Right" and user.data["title"] == "Engineer"
    with db.reader(app)() as s:
        rows = s.query(ImportRow).filter_by(org_id=scim.org_id).order_by(ImportRow.line).all()
        outcomes = [(r.line, r.plan, r.action, r.reason) for r in rows]
        patches = s.query(AuditEvent).filter_by(org_id=scim.org_id, action="user.patch").count()
    assert outcomes == [
        (2, "create", "create", None),
        (3, "error", "error", "the same userName as line 2"),
    ]
    assert patches == 0
    shown = client.get(page).get_data(as_text=True)
    assert "1 created, 0 updated, 0 unchanged, 1 with errors" in shown
    assert "the same userName as line 2" in shown


def test_apply_rows_refuses_a_repeated_userName_as_plan_does(app: Flask, scim: Scim) -> None:
    """``apply_rows`` (the command line's import) gives each row the outcome ``plan`` gave it."""
    rows = [
        Row(2, {"userName": "sam@example.com", "title": "Engineer"}),
        Row(3, {"userName": "SAM@example.com", "title": "Intern"}),
        Row(4, {"userName": "other@example.com"}),
    ]
    with db.writer(app)() as session:
        planned = import_rows.plan(session, scim.org_id, rows)
        applied = list(import_rows.apply_rows(session, scim.org_id, rows))
    assert [(o.action, o.reason) for o in planned] == [
        ("create", ""),
        ("error", "the same userName as line 2"),
        ("create", ""),
    ]
    assert [(o.line, o.action, o.reason) for o in applied] == [
        (o.line, o.action, o.reason) for o in planned
    ]
    users = _users(app, scim.org_id)
    assert set(users) == {"sam@example.com", "other@example.com"}
    assert users["sam@example.com"].data["title"] == "Engineer"


def test_the_cli_run_does_what_its_dry_run_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--dry-run`` says the second row is an error; the run refuses it too (exit 1, its line
    and reason on stderr), and the first row's values stand."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("org", "create", "acme").exit_code == 0
    path = tmp_path / "people.csv"
    path.write_text("userName,title\nsam@example.com,Engineer\nSAM@example.com,Intern\n")
    dry = run("import", "users", str(path), "--org", "acme", "--dry-run")
    assert dry.exit_code == 1
    assert "2 rows: 1 would be created, 0 updated, 0 unchanged, 1 with errors." in dry.output
    done = run("import", "users", str(path), "--org", "acme")
    assert done.exit_code == 1
    assert "2 rows: 1 were created, 0 updated, 0 unchanged, 1 with errors." in done.output
    assert "line 3: SAM@example.com: the same userName as line 2" in done.stderr
    app = create_app()
    with db.reader(app)() as s:
        found = [(u.user_name, u.data.get("title")) for u in s.query(User)]
    db.engine(app).dispose()
    assert found == [("sam@example.com", "Engineer")]
