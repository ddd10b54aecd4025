"""Journey: a user manager imports people from a CSV file, with a preview first."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.models import User
from tests.console.browser.conftest import LiveServer, shoot
from tests.console.browser.people import add_user, console_person
from tests.support.console import browser_sign_in


def test_import_a_csv_with_preview_and_progress(
    page: Any, context: Any, live_server: LiveServer, tmp_path: Any
) -> None:
    """Template → upload → per-row preview (nothing written) → import with progress → done."""
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
    expect(page.locator("td.plan-error")).to_have_count(1)
    expect(page.locator("td.plan-create")).to_have_count(40)
    expect(page.locator("td.plan-update")).to_have_count(1)
    expect(page.get_by_text("active must be true or false")).to_be_visible()
    with db.reader(live_server.app)() as s:
        assert s.query(User).filter_by(org_id=org_id).count() == 2  # nothing written yet
    shoot(page, "import-preview")
    page.get_by_role("button", name="Import 41 rows").click()
    expect(page.get_by_role("heading", name="Import finished")).to_be_visible()
    expect(page.get_by_text("Nothing has been saved yet")).to_have_count(0)
    expect(page.locator("#import-progress")).to_contain_text(
        "42 of 42 rows: 40 created, 1 updated, 0 unchanged, 1 with errors"
    )
    shoot(page, "import-done")
    with db.reader(live_server.app)() as s:
        found = {u.user_name: u for u in s.query(User).filter_by(org_id=org_id)}
    assert len(found) == 42 and found["old@acme.example"].data["name"]["givenName"] == "Olga"
