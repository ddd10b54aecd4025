"""Journeys: a security admin sets the username format (live preview) and a default group,
finds that tokens and OIDC clients are an org admin's to make, and the org admin creates a
SCIM token (shown once) and registers a client; an auditor finds no write action and is
refused one (403)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.services import console_access, groups
from tests.console.browser.conftest import LiveServer, shoot
from tests.console.browser.test_users_journey import _seed
from tests.support.console import browser_sign_in


def test_security_admin_settings_and_tokens(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    org_id, _admin, ids = _seed(live_server, "Umbrella")
    with db.reader(live_server.app)() as s:
        console_access.grant(s, org_id, ids["alan"], "security_admin")
    for name in ("Field staff", "Head office"):  # as the IdP pushed them
        with db.reader(live_server.app)() as s:
            groups.create_group(s, org_id, {"displayName": name})
    browser_sign_in(live_server.app, context, live_server.url, org_id, ids["alan"])
    page.goto("/admin/")
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link")).to_have_text(
        [
            "Users",
            "Licenses",
            "Roles",
            "Single sign-on",
            "Provisioning log",
            "Sign-ins",
            "Reports",
            "Settings",
            "SCIM tokens",
            "OIDC clients",
        ]
    )

    nav.get_by_role("link", name="Settings").click()
    page.wait_for_load_state()  # htmx is loaded at the end of the page: typing waits for it
    page.get_by_label("Username format").fill("{email}x{nope}")
    expect(page.locator("#username-preview")).to_contain_text("unknown placeholder {nope}")
    page.get_by_label("Username format").fill("{userName}.ext")
    expect(page.locator("#username-preview")).to_contain_text("mallory@umbrella.example.ext")
    page.get_by_role("group", name="Default groups").get_by_label("Field staff").check()
    shoot(page, "settings")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    expect(page.get_by_label("Username format")).to_have_value("{userName}.ext")
    default_groups = page.get_by_role("group", name="Default groups")
    expect(default_groups.get_by_label("Field staff")).to_be_checked()
    expect(default_groups.get_by_label("Head office")).not_to_be_checked()

    nav.get_by_role("link", name="SCIM tokens").click()
    expect(page.get_by_role("button", name="Create token")).to_have_count(0)
    expect(page.get_by_text("Tokens are made by an organization admin")).to_be_visible()
    shoot(page, "tokens-security-admin")
    nav.get_by_role("link", name="OIDC clients").click()
    expect(page.get_by_role("button", name="Register client")).to_have_count(0)
    expect(
        page.get_by_text("Clients are registered and revoked by an organization admin")
    ).to_be_visible()
    shoot(page, "oidc-clients-security-admin")

    # The organization's admin makes the token.
    context.clear_cookies()
    browser_sign_in(live_server.app, context, live_server.url, org_id, _admin)
    page.goto("/admin/tokens/")
    page.get_by_label("Name").fill("Okta production")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-secret")).to_have_text(re.compile(r"^scim_"))
    shoot(page, "tokens")
    page.reload()  # shown once: a reload shows the list without it, and creates nothing
    expect(page.locator("#new-secret")).to_have_count(0)
    expect(page.get_by_role("cell", name="Okta production", exact=True)).to_have_count(1)
    page.goto("/admin/oidc-clients/")
    page.get_by_label("Name").fill("Field app")
    page.get_by_label("Redirect URIs").fill("https://field.umbrella.example/callback")
    page.get_by_role("button", name="Register client").click()
    expect(page.locator("#new-client-secret")).to_be_visible()
    shoot(page, "oidc-clients")


def test_auditor_cannot_reach_a_write_action(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    org_id, _admin, ids = _seed(live_server, "Hooli")
    with db.reader(live_server.app)() as s:
        console_access.grant(s, org_id, ids["grace"], "auditor")
    browser_sign_in(live_server.app, context, live_server.url, org_id, ids["grace"])
    page.goto("/admin/users/")
    expect(page.locator("#results tbody tr")).to_have_count(7)
    expect(page.get_by_role("button", name="Lock")).to_have_count(0)
    expect(page.locator("input[name=user]")).to_have_count(0)
    page.get_by_role("link", name="Ada Lovelace").click()
    expect(page.get_by_role("button", name="Save contact details")).to_have_count(0)
    # A write the page does not offer, posted anyway (with a valid CSRF token): 403.
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    resp = page.request.post(
        f"{live_server.url}/admin/users/bulk",
        form={"csrf_token": token, "op": "lock", "user": ids["ada"]},
    )
    assert resp.status == 403
    page.goto("/admin/tokens/")  # auditors may read tokens, not create them
    expect(page.get_by_role("button", name="Create token")).to_have_count(0)


def test_form_without_csrf_token_is_refused(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """A cross-site style post (no token) is refused with the console's own page; nothing done."""
    org_id, admin_id, ids = _seed(live_server, "Massive")
    browser_sign_in(live_server.app, context, live_server.url, org_id, admin_id)
    page.goto("/admin/users/")
    resp = page.request.post(
        f"{live_server.url}/admin/users/bulk", form={"op": "lock", "user": ids["ada"]}
    )
    assert resp.status == 400 and "Form expired" in resp.text()
    page.goto(f"/admin/users/{ids['ada']}")
    expect(page.locator(".page-head .badge-PROVISIONED")).to_be_visible()
