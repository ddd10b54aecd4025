"""Journey: an auditor reads what the organization is billed, and a period's seat changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.services import accounts, directory, licenses
from tests.console.browser.conftest import LiveServer, expect_refusal, shoot
from tests.console.browser.people import add_user, console_person
from tests.support.console import browser_sign_in


def test_auditor_reads_billing(page: Any, context: Any, live_server: LiveServer) -> None:
    """Totals now per license; this month's changes per license, per day and one by one; a bad
    period is said at its field; the CSV downloads."""
    org_id, auditor = console_person(live_server, "auditor", "Billing Org")
    with db.reader(live_server.app)() as s:
        licenses.create_license(s, org_id, "Engineer", 10, 4990, "EUR")
    with db.reader(live_server.app)() as s:
        licenses.create_license(s, org_id, "Planner", None, 1500, "EUR")
    with db.reader(live_server.app)() as s:
        directory.update_settings(s, org_id, {"default_license": "Engineer"})
    ids = [add_user(live_server, org_id, f"p{n}@billing.example") for n in range(3)]
    with db.reader(live_server.app)() as s:
        accounts.set_manual_license(s, org_id, ids[0], "Planner")
    browser_sign_in(live_server.app, context, live_server.url, org_id, auditor)

    page.goto("/admin/")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Billing").click()
    expect(page.get_by_role("heading", name="Billing", exact=True)).to_be_visible()
    current = page.locator("#billing-current")
    expect(current).to_contain_text("Monthly total (EUR)")
    expect(current.locator("tfoot")).to_contain_text("114.80 EUR")  # 2 x 49.90 + 15.00
    summary = page.locator("#billing-summary")
    expect(summary.get_by_role("row", name="Engineer")).to_contain_text("+99.80 EUR")
    expect(summary.get_by_role("row", name="Planner")).to_contain_text("+15.00 EUR")
    today = datetime.now(UTC).date().isoformat()
    expect(page.locator("#billing-days")).to_contain_text(today)
    expect(page.locator("#billing-changes tbody tr")).to_have_count(5)
    shoot(page, "billing")

    page.get_by_label("From").fill("2026-03-10")
    page.get_by_label("To (included)").fill("2026-03-01")
    expect_refusal(page)  # the page answers 400 with the message
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_text("The period's start must not be after its end.")).to_be_visible()
    expect(page.get_by_label("To (included)")).to_have_attribute("aria-invalid", "true")
    shoot(page, "billing-bad-period")

    page.get_by_label("From").fill(today)
    page.get_by_label("To (included)").fill(today)
    page.get_by_role("button", name="Show").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the changes (CSV)").click()
    assert download.value.suggested_filename == f"license-changes-{today}-{today}.csv"
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("occurred_at,license,change") and len(lines) == 6


def test_a_deleted_license_keeps_its_name_per_license_and_per_day(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """A license given and taken back by hand, then deleted: its line and its day's row name
    it, marked as gone (they named it by its id, and the day merged it with a new license
    of its name)."""
    org_id, auditor = console_person(live_server, "auditor", "Gone License Org")
    with db.reader(live_server.app)() as s:
        temp = licenses.create_license(s, org_id, "Temp", 5, 700, "EUR").id
    user = add_user(live_server, org_id, "t@gone.example")
    with db.reader(live_server.app)() as s:
        accounts.set_manual_license(s, org_id, user, "Temp")
    with db.reader(live_server.app)() as s:
        accounts.set_manual_license(s, org_id, user, None)
    with db.reader(live_server.app)() as s:
        directory.delete_license(s, org_id, temp)
    with db.reader(live_server.app)() as s:
        licenses.create_license(s, org_id, "Temp", 5, 900, "EUR")
    with db.reader(live_server.app)() as s:
        accounts.set_manual_license(s, org_id, user, "Temp")
    browser_sign_in(live_server.app, context, live_server.url, org_id, auditor)

    page.goto("/admin/billing/")
    gone = page.locator("#billing-summary tbody tr", has_text="renamed or deleted since")
    expect(gone).to_have_count(1)
    expect(gone).to_contain_text("Temp")
    days = page.locator("#billing-days tbody tr")
    expect(days).to_have_count(2)
    expect(days.filter(has_text="renamed or deleted since")).to_contain_text("Temp")
    changes = page.locator("#billing-changes tbody tr", has_text="renamed or deleted since")
    expect(changes).to_have_count(2)
    shoot(page, "billing-deleted-license")
