"""Journey: a user manager imports people from a CSV file, with a preview first; the preview
and the import are jobs for the worker, whose progress the pages follow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.models import User
from scim_server.worker import Worker
from tests.console.browser.conftest import LiveServer, shoot
from tests.console.browser.people import add_user, console_person
from tests.support.console import browser_sign_in


def test_import_a_csv_with_preview_and_progress(
    page: Any, context: Any, live_server: LiveServer, tmp_path: Any
) -> None:
    """Template → upload → the preview job (the page waits, then shows each row's plan;
    nothing written) → import with progress → done."""
    org_id, user_id = console_person(live_server, "user_manager")
    add_user(live_server, org_id, "old@acme.example")
    rows = ["userName,email,givenName,familyName,active"]
    rows += [f"p{n}@acme.example,p{n}@acme.example,P{n},Person,true" for n in range(40)]
    rows += ["old@acme.example,,Olga,,", "broken@acme.example,,,,perhaps"]
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    browser_sign_in(live_server.app, context, live_server.url, org_id, user_id)

    page.goto("/admin/")
    page.get_by_role("link", name="Import").first.click()
    with page.expect_download() as template:
        page.get_by_role("link", name="Template (CSV)").click()
    assert template.value.suggested_filename == "users-template.csv"
    shoot(page, "import-upload")
    page.get_by_label("Spreadsheet (.csv or .xlsx)").set_input_files(str(csv_file))
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="Preview of people.csv")).to_be_visible()
    # Queued: the page waits for the worker's preview, polling with a plain Refresh link.
    expect(page.get_by_text("Waiting for the background worker")).to_be_visible()
    expect(page.get_by_role("link", name="Refresh")).to_be_visible()
    expect(page.get_by_role("button", name="Import 41 rows")).to_have_count(0)
    shoot(page, "import-preview-pending")
    assert Worker(db.writer(live_server.app)).run_jobs() == 1  # the preview job
    # No reload: the polling swaps in the plan.
    expect(page.get_by_role("button", name="Import 41 rows")).to_be_visible(timeout=10_000)
    expect(page.locator("#preview-errors td.plan-error")).to_have_count(1)  # errors listed first
    expect(page.locator("td.plan-error")).to_have_count(2)  # and in the per-row table
    expect(page.locator("td.plan-create")).to_have_count(40)
    expect(page.locator("td.plan-update")).to_have_count(1)
    expect(page.locator("#preview-errors")).to_contain_text("active must be true or false")
    with db.reader(live_server.app)() as s:
        assert s.query(User).filter_by(org_id=org_id).count() == 2  # nothing written yet
    shoot(page, "import-preview")
    page.get_by_role("button", name="Import 41 rows").click()
    # Queued: the page waits for the worker, polling (htmx) with a plain Refresh link beside.
    expect(page.get_by_text("Waiting for the background worker")).to_be_visible()
    expect(page.locator("#import-counts")).to_contain_text("0 of 42 rows done")
    expect(page.get_by_role("link", name="Refresh")).to_be_visible()
    shoot(page, "import-queued")
    assert Worker(db.writer(live_server.app)).run_jobs() == 1  # the import job
    # No reload: the polling swaps in the finished state.
    expect(page.get_by_role("heading", name="Import finished")).to_be_visible(timeout=10_000)
    expect(page.get_by_text("Nothing has been saved yet")).to_have_count(0)
    expect(page.locator("#import-progress")).to_contain_text(
        "42 of 42 rows done: 40 created, 1 updated, 0 unchanged, 1 with errors"
    )
    expect(page.locator("#import-progress td.plan-error")).to_contain_text("active must be")
    shoot(page, "import-done")
    with page.expect_download() as results:
        page.get_by_role("link", name="Download every row's result (CSV)").click()
    lines = Path(results.value.path()).read_text().splitlines()
    assert lines[0] == "line,userName,result,reason,user_id" and len(lines) == 43
    with db.reader(live_server.app)() as s:
        found = {u.user_name: u for u in s.query(User).filter_by(org_id=org_id)}
    assert len(found) == 42 and found["old@acme.example"].data["name"]["givenName"] == "Olga"
