"""Strict seat mode: an import whose new users the rules give a license with too few seats left.

The run refuses a create that finds no seat (``licenses.SeatsExhaustedError``); the preview
(and the command line's dry run) says so first, row by row in file order, with the run's
own message: the rows a seat is left for are creates, the rest errors naming the license.
An organization that is not strict previews every row as a create, as before (the run
then creates them waiting for a seat)."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from scim_server import create_app
from scim_server.cli import main
from scim_server.db import db
from scim_server.models import ImportRow, Organization, User
from scim_server.services import directory, licenses
from scim_server.user_import import rows as import_rows
from scim_server.user_import.sheets import Row
from tests.admin.rules import activate, catalogue
from tests.console.test_imports import _jobs, _plans, _preview, _users
from tests.support import Scim
from tests.support.admin_api import licenses_by_name, ok
from tests.support.console import csrf_token, sign_in_console
from tests.user_import.test_rows_repeated import _start

# The rules (``tests.admin.rules``) give Sales the Planner license; Ops gets none.
SALES = (
    "userName,department\n"
    "s1@example.com,Sales\n"
    "s2@example.com,Sales\n"
    "ops@example.com,Ops\n"
    "s3@example.com,Sales\n"
    "s4@example.com,Sales\n"
)
NO_SEAT = (
    "No seat left on license 'Planner' (all 2 seats are taken) and the organization "
    "requires one (strict seat mode)."
)


def _organization(admin: Scim, *, strict: bool, seats: int = 2) -> None:
    catalogue(admin, planner_seats=seats)
    activate(admin)
    ok(admin.put("/api/v1/settings", {"strict_seats": strict}))


def test_the_preview_refuses_the_creates_strict_seats_cannot_seat(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Planner has 2 seats, 4 Sales rows: the first 2 are creates, the last 2 errors with the
    run's message (the Ops row needs no seat); Import creates exactly those and reports the 2."""
    _organization(admin, strict=True)
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, SALES.encode())
    assert _plans(body) == ["create", "create", "create", "error", "error"]
    assert NO_SEAT in html.unescape(body)
    (previewed,) = _jobs(app, scim.org_id)
    assert previewed.result == {"create": 3, "update": 0, "unchanged": 0, "error": 2}
    assert set(_users(app, scim.org_id)) == {"user_manager@example.com"}  # nothing written

    _start(app, client, token, body)
    (job,) = _jobs(app, scim.org_id)
    assert job.state == "succeeded"
    assert job.result == {"create": 3, "update": 0, "unchanged": 0, "error": 2}
    with db.reader(app)() as s:
        rows = s.query(ImportRow).filter_by(org_id=scim.org_id).order_by(ImportRow.line).all()
        outcomes = [(r.line, r.plan, r.action, r.reason) for r in rows]
    assert outcomes == [
        (2, "create", "create", None),
        (3, "create", "create", None),
        (4, "create", "create", None),
        (5, "error", "error", NO_SEAT),
        (6, "error", "error", NO_SEAT),
    ]
    assert set(_users(app, scim.org_id)) == {
        "user_manager@example.com",
        "s1@example.com",
        "s2@example.com",
        "ops@example.com",
    }
    planner = licenses_by_name(admin)["Planner"]
    assert (planner["used"], planner["seats_left"], planner["shortage"]) == (2, 0, 0)


def test_without_strict_seats_the_preview_plans_every_create(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Not strict: a create without a seat waits for one; the preview is unchanged."""
    _organization(admin, strict=False)
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, SALES.encode())
    assert _plans(body) == ["create"] * 5
    assert "No seat left" not in html.unescape(body)


def test_plan_counts_the_seats_left_as_apply_rows_takes_them(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """3 seats, one held already: of 5 Sales rows the plan makes the first 2 creates and the
    last 3 errors, and applying the rows (the command line's import) does exactly that."""
    _organization(admin, strict=True, seats=3)
    scim.create_user(
        "held@example.com",
        **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}},
    )
    rows = [Row(n + 2, {"userName": f"p{n}@example.com", "department": "Sales"}) for n in range(5)]
    with db.writer(app)() as session:
        planned = import_rows.plan(session, scim.org_id, rows)
        applied = list(import_rows.apply_rows(session, scim.org_id, rows))
    full = NO_SEAT.replace("all 2 seats", "all 3 seats")
    assert [(o.action, o.reason) for o in planned] == [("create", "")] * 2 + [("error", full)] * 3
    assert [(o.line, o.action, o.reason) for o in applied] == [
        (o.line, o.action, o.reason) for o in planned
    ]
    assert licenses_by_name(admin)["Planner"]["used"] == 3


def test_the_plan_counts_seats_once_per_license_not_per_row(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """The preview of a big file reads the same few statements for 10 rows as for 300."""
    _organization(admin, strict=True, seats=50)
    engine = db.engine(app)

    def statements(count: int) -> tuple[int, list[str]]:
        rows = [
            Row(n + 2, {"userName": f"q{n}@example.com", "department": "Sales"})
            for n in range(count)
        ]
        seen: list[str] = []

        def note(*args: Any) -> None:
            seen.append(str(args[2]))

        event.listen(engine, "before_cursor_execute", note)
        try:
            with db.writer(app)() as session:
                planned = import_rows.plan(session, scim.org_id, rows)
        finally:
            event.remove(engine, "before_cursor_execute", note)
        return import_rows.summary(planned)["error"], seen

    statements(1)  # the organization's rules read and validated once (``identity_config``)
    few_errors, few = statements(10)
    many_errors, many = statements(300)
    assert (few_errors, many_errors) == (0, 250)
    assert len(many) == len(few)
    assert sum("count(" in s.lower() for s in many) == 1  # Planner's seats, counted once
    with db.reader(app)() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("org", "create", "acme").exit_code == 0
    return run


def test_the_dry_run_says_what_the_strict_run_refuses(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    """The settings' default license (2 seats), strict: of 5 new users the dry run and the
    run both create 2 and name the last 3 with the same message."""
    app = create_app()
    with db.writer(app)() as s:
        org_id = s.scalar(select(Organization.id).where(Organization.name == "acme"))
        assert org_id is not None
        s.rollback()  # the services below own their transactions
        licenses.create_license(s, org_id, "Planner", 2)
        directory.update_settings(s, org_id, {"strict_seats": True, "default_license": "Planner"})
    db.engine(app).dispose()
    path = tmp_path / "people.csv"
    path.write_text("userName\n" + "".join(f"p{n}@example.com\n" for n in range(5)))
    dry = cli("import", "users", str(path), "--org", "acme", "--dry-run")
    assert dry.exit_code == 1
    assert "5 rows: 2 would be created, 0 updated, 0 unchanged, 3 with errors." in dry.output
    done = cli("import", "users", str(path), "--org", "acme")
    assert done.exit_code == 1
    assert "5 rows: 2 were created, 0 updated, 0 unchanged, 3 with errors." in done.output
    refused = [f"line {n + 2}: p{n}@example.com: {NO_SEAT}" for n in (2, 3, 4)]
    assert dry.stderr.splitlines() == refused
    assert [line for line in done.stderr.splitlines() if line.startswith("line ")] == refused


def _plan(app: Flask, org_id: str, *rows: dict[str, str]) -> list[tuple[str, str]]:
    lines = [Row(i + 2, values) for i, values in enumerate(rows)]
    with db.writer(app)() as session:
        return [(o.action, o.reason) for o in import_rows.plan(session, org_id, lines)]


def test_the_preview_refuses_the_updates_strict_seats_would_refuse(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """Updates, as the run refuses them (``provisioning.OwnChange``): one moving a user onto
    the full Planner (the rules did not want it for Ops) and the reactivation of a user
    waiting for it are errors with the run's message (the preview said "update" and the
    run refused them); a title change of the waiting user, who asks for nothing new, and a
    move onto nothing stay updates."""
    _organization(admin, strict=False, seats=1)
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    scim.create_user("holder@example.com", **{ent: {"department": "Sales"}})
    scim.create_user("waiting@example.com", **{ent: {"department": "Sales"}})
    scim.create_user("ops@example.com", **{ent: {"department": "Ops"}})
    leaver = scim.create_user("leaver@example.com", **{ent: {"department": "Sales"}})
    off = {"op": "replace", "path": "active", "value": False}
    assert scim.patch_ops(f"/scim/v2/Users/{leaver['id']}", off).status_code == 200
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    no_seat = NO_SEAT.replace("all 2 seats", "all 1 seats")
    assert _plan(
        app,
        scim.org_id,
        {"userName": "ops@example.com", "department": "Sales"},
        {"userName": "leaver@example.com", "active": "true"},
        {"userName": "waiting@example.com", "title": "Lead"},
        {"userName": "holder@example.com", "department": "Ops"},
    ) == [
        ("error", no_seat),
        ("error", no_seat),
        ("update", "changes title"),
        ("update", "changes department"),
    ]
    ok(admin.put("/api/v1/settings", {"strict_seats": False}))
    assert _plan(app, scim.org_id, {"userName": "ops@example.com", "department": "Sales"}) == [
        ("update", "changes department")
    ]


def test_the_preview_counts_the_seat_an_earlier_update_frees(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """Planner's one seat is held; the file moves its holder out of Sales, then creates a
    Sales user: the update frees the seat the create then takes, in the run as in the plan
    (the preview refused the create and the import followed it, a seat free by then). A
    create before the freeing update still finds none."""
    _organization(admin, strict=True, seats=1)
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    scim.create_user("holder@example.com", **{ent: {"department": "Sales"}})
    no_seat = NO_SEAT.replace("all 2 seats", "all 1 seats")
    rows = [
        Row(2, {"userName": "early@example.com", "department": "Sales"}),
        Row(3, {"userName": "holder@example.com", "department": "Ops"}),
        Row(4, {"userName": "late@example.com", "department": "Sales"}),
        Row(5, {"userName": "later@example.com", "department": "Sales"}),
    ]
    with db.writer(app)() as session:
        planned = import_rows.plan(session, scim.org_id, rows)
        applied = list(import_rows.apply_rows(session, scim.org_id, rows))
    assert [(o.action, o.reason) for o in planned] == [
        ("error", no_seat),
        ("update", "changes department"),
        ("create", ""),
        ("error", no_seat),
    ]
    assert [(o.action, o.reason) for o in applied] == [(o.action, o.reason) for o in planned]
    assert licenses_by_name(admin)["Planner"]["used"] == 1


def test_an_inactive_row_asks_no_seat_in_the_plan_as_in_the_run(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """Strict, the default license full: a row creating an inactive user was an error in
    the plan (so the console's import skipped it) while the run created it, waiting for a
    seat: a deactivated account never asks for one. Both create it now."""
    licenses_made = ok(admin.post("/api/v1/licenses", {"name": "Field", "seat_limit": 0}), 201)
    assert licenses_made["name"] == "Field"
    ok(admin.put("/api/v1/settings", {"default_license": "Field", "strict_seats": True}))
    rows = [Row(2, {"userName": "leaver@example.com", "active": "false"})]
    with db.writer(app)() as session:
        planned = import_rows.plan(session, scim.org_id, rows)
        applied = list(import_rows.apply_rows(session, scim.org_id, rows))
    assert [o.action for o in planned] == [o.action for o in applied] == ["create"]
