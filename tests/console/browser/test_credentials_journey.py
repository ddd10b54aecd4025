"""Journey: an org admin bulk-selects two users and sets their credentials send date (the
dates show in the list), then opens a profile and resets that person's MFA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import delete, func, select

from scim_server.db import db
from scim_server.models import CredentialSchedule, MfaFactor, User
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import console_access, mfa, users
from scim_server.services.organizations import create_organization
from tests.console.browser.conftest import LiveServer, expect_refusal, shoot
from tests.support.console import browser_sign_in


def _seed(live: LiveServer) -> tuple[str, dict[str, str]]:
    """An organization, its admin, two people (one with an authenticator app), no welcomes."""
    with db.reader(live.app)() as s:
        org_id = create_organization(s, "Globex").id
    ids = {}
    for login, name in (("admin", "Olga Admin"), ("ada", "Ada Lovelace"), ("bob", "Bob Ross")):
        body = {
            "schemas": [USER_SCHEMA],
            "userName": f"{login}@globex.example",
            "displayName": name,
            "emails": [{"value": f"{login}@globex.example", "primary": True}],
        }
        with db.reader(live.app)() as s:
            ids[login] = users.create_user(s, org_id, parse_resource(USER, body, creating=True)).id
    with db.writer(live.app)() as s, s.begin():
        s.execute(delete(CredentialSchedule).where(CredentialSchedule.org_id == org_id))
        ada = s.get(User, (org_id, ids["ada"]))
        mfa.add_totp(s, ada, mfa.new_factor_id(), "sealed-for-test", 1, "Ada's phone")
    with db.reader(live.app)() as s:
        console_access.grant(s, org_id, ids["admin"], "org_admin")
    return org_id, ids


def test_bulk_send_date_then_reset_mfa(page: Any, context: Any, live_server: LiveServer) -> None:
    org_id, ids = _seed(live_server)
    browser_sign_in(live_server.app, context, live_server.url, org_id, ids["admin"])
    when = (datetime.now(UTC) + timedelta(days=7)).replace(hour=8, minute=0)

    page.goto("/admin/users/")
    page.locator(f"#sel-{ids['ada']}").check()
    page.locator(f"#sel-{ids['bob']}").check()
    date_field = page.get_by_label("Credentials send date (UTC)")
    date_field.fill("2001-01-01T08:00")
    expect_refusal(page)  # a past date: 400, shown in place by htmx
    page.get_by_role("button", name="Set send date").click()
    expect(page.locator("#results .alert")).to_contain_text("in the past")
    expect(page.locator("#results tbody .badge-scheduled")).to_have_count(0)
    # Enter in the date field sets the date (the form's default button), never Lock.
    page.locator(f"#sel-{ids['ada']}").check()
    page.locator(f"#sel-{ids['bob']}").check()
    date_field.fill(when.strftime("%Y-%m-%dT%H:%M"))
    date_field.press("Enter")
    expect(page.locator("#bulk-results-title")).to_have_text(
        "Set credentials send date: 2 of 2 done"
    )
    badge = f"Credentials {when:%Y-%m-%d %H:%M} UTC"
    expect(page.locator("#results tbody .badge-scheduled")).to_have_count(2)
    page.reload()
    for login in ("ada", "bob"):
        row = page.locator("#results tbody tr", has=page.locator(f"#sel-{ids[login]}"))
        expect(row.locator(".badge-scheduled")).to_have_text(badge)
    shoot(page, "users-send-dates")

    page.get_by_role("link", name="Ada Lovelace").click()
    expect(page.locator("#credentials")).to_contain_text("Authenticator app: Ada's phone")
    expect(page.locator("#credentials")).to_contain_text(f"{when:%Y-%m-%d %H:%M}")
    shoot(page, "profile-credentials")
    page.get_by_role("button", name="Reset MFA").click()
    expect(page.get_by_text("Second factors removed")).to_be_visible()
    expect(page.locator("#credentials")).to_contain_text("None enrolled")
    with db.reader(live_server.app)() as s:
        assert s.scalar(select(func.count()).select_from(MfaFactor)) == 0
