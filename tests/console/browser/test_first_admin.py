"""Journey: the first admin of an organization signs in and finds the console."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.services import console_access
from scim_server.services.organizations import create_organization
from tests.console.browser.conftest import LiveServer, expect_refusal, shoot
from tests.console.browser.people import add_user, console_person
from tests.support.console import browser_sign_in


def _org_admin(live: LiveServer, org: str, email: str) -> tuple[str, str]:
    from scim_server.scim.resources import parse_resource
    from scim_server.scim.schema import USER, USER_SCHEMA
    from scim_server.services import users

    with db.reader(live.app)() as s:
        org_id = create_organization(s, org).id
    body = {"schemas": [USER_SCHEMA], "userName": email, "emails": [{"value": email}]}
    with db.reader(live.app)() as s:
        user = users.create_user(s, org_id, parse_resource(USER, body, creating=True))
    with db.reader(live.app)() as s:
        console_access.grant(s, org_id, user.id, "org_admin")
    return org_id, user.id


def test_stranger_is_sent_to_sign_in(page: Any, live_server: LiveServer) -> None:
    """Opening the site's root without a session lands on the product's sign-in page."""
    page.goto("/")
    assert "/sso/login" in page.url
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shoot(page, "signin")


def test_first_admin_signs_in_and_sees_the_overview(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """Signed in (the session a sign-in sets), the admin sees the organization and signs out."""
    org_id, user_id = _org_admin(live_server, "Acme Corp", "ada@acme.example")
    browser_sign_in(live_server.app, context, live_server.url, org_id, user_id)
    page.goto("/")
    assert page.url.endswith("/admin/")
    expect(page.get_by_role("heading", name="Acme Corp")).to_be_visible()
    shoot(page, "overview")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sso/login$"))
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/sso/login\?next=/admin/$"))


def test_a_person_without_a_console_role_is_told_so_and_can_sign_out(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """Signed in, but no console role: the page says so and names the organization; the
    header's Sign out ends the session (the console's sign-out is open to them)."""
    org_id, _admin = console_person(live_server, "org_admin", "No Access Org")
    plain = add_user(live_server, org_id, "plain@noaccess.example")
    browser_sign_in(live_server.app, context, live_server.url, org_id, plain)
    expect_refusal(page)  # the console answers 403 with its page
    page.goto("/admin/")
    expect(page.get_by_role("heading", name="No console access")).to_be_visible()
    expect(page.locator("main")).to_contain_text("No Access Org")
    shoot(page, "console-no-access")
    expect(page.get_by_role("link", name="Your sign-in security")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sso/login"))
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/sso/login"))
