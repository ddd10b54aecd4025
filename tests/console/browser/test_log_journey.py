"""Journey: a compliance auditor searches the log, opens a timeline, verifies, exports."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.services import accounts
from tests.console.browser.conftest import LiveServer, shoot
from tests.console.browser.people import add_user, console_person
from tests.support.console import browser_sign_in


def test_auditor_searches_verifies_and_exports(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """Search as you type narrows the events; verify says intact; the export downloads."""
    org_id, user_id = console_person(live_server, "auditor", "Acme Corp")
    add_user(live_server, org_id, "grace@acme.example", displayName="<b>Grace</b>")
    add_user(live_server, org_id, "linus@acme.example")
    browser_sign_in(live_server.app, context, live_server.url, org_id, user_id)
    page.goto("/admin/")
    page.get_by_role("link", name="Provisioning log").first.click()
    expect(page.get_by_role("heading", name="Provisioning log")).to_be_visible()
    shoot(page, "log")
    page.get_by_label("User (userName or id)").fill("grace@acme.example")
    expect(page.locator("#results")).not_to_contain_text("linus@acme.example")
    expect(page.locator("#results")).to_contain_text("grace@acme.example")
    assert "user=grace%40acme.example" in page.url  # the search is in the address (shareable)
    shoot(page, "log-search")
    page.get_by_role("link", name="grace@acme.example").first.click()
    expect(page.get_by_role("heading", name="Timeline of grace@acme.example")).to_be_visible()
    shoot(page, "log-timeline")
    page.locator(".timeline a").first.click()
    expect(page.get_by_role("heading", name="Before and after")).to_be_visible()
    expect(page.get_by_text("<b>Grace</b>").first).to_be_visible()  # shown as text
    shoot(page, "log-event")
    page.goto("/admin/log/")
    page.get_by_role("link", name="Verify chain").click()
    expect(page.get_by_role("heading", name="✔ The chain is intact")).to_be_visible()
    shoot(page, "log-verify")
    page.goto("/admin/log/?action=user.create")
    with page.expect_download() as info:
        page.get_by_role("link", name="Export NDJSON").click()
    path = info.value.path()
    with open(path, encoding="utf-8") as exported:
        lines = [json.loads(line) for line in exported]
    assert lines[-1]["manifest"]["count"] == len(lines) - 1 == 3
    assert {doc["action"] for doc in lines[:-1]} == {"user.create"}


def test_reports_and_sign_in_log(page: Any, context: Any, live_server: LiveServer) -> None:
    """The reports draw their charts; the sign-in log lists attempts."""
    org_id, user_id = console_person(live_server, "org_admin")
    leaver = add_user(live_server, org_id, "leaver@acme.example")
    with db.reader(live_server.app)() as s:
        accounts.act(s, org_id, leaver, "deactivate", None)
    browser_sign_in(live_server.app, context, live_server.url, org_id, user_id)
    page.goto("/admin/reports/")
    expect(page.get_by_role("heading", name="Deprovisioning latency")).to_be_visible()
    assert page.locator("svg.chart-svg").count() == 1  # no license yet: no seats chart
    expect(page.get_by_role("link", name="leaver@acme.example")).to_be_visible()
    shoot(page, "reports")
    page.goto("/admin/sign-ins/")
    expect(page.get_by_role("heading", name="Sign-in log")).to_be_visible()
    shoot(page, "sign-ins")
