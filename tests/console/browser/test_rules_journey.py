"""Journeys: an organization admin validates, previews, saves and activates a rule set; a
user manager saves a version and is told an org admin activates it."""

from __future__ import annotations

from typing import Any

import yaml
from playwright.sync_api import expect

from scim_server.db import db
from scim_server.services import console_access, licenses, roles, rule_sets
from tests.console.browser.conftest import LiveServer, expect_refusal, shoot
from tests.console.browser.people import add_user, console_person
from tests.support.console import browser_sign_in

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DRAFT = """\
mode: first-match
rules:
  - name: sales
    when: {attribute: department, equals: Sales}
    then: {license: Plannr}
"""


def _sam_then_the_rules_page(
    page: Any, context: Any, live_server: LiveServer, org_id: str, user_id: str
) -> None:
    """Sam of Sales (SCIM), then the admin signed in on the Mapping rules page."""
    add_user(
        live_server,
        org_id,
        "sam@acme.example",
        schemas=["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        **{ENTERPRISE: {"department": "Sales"}},
    )
    browser_sign_in(live_server.app, context, live_server.url, org_id, user_id)
    page.goto("/admin/")
    page.get_by_role("link", name="Mapping rules").first.click()


def test_validate_preview_save_activate(page: Any, context: Any, live_server: LiveServer) -> None:
    """A typo is shown at its line; fixed, the preview names who moves; saved, activated."""
    org_id, user_id = console_person(live_server, "org_admin")
    with db.reader(live_server.app)() as s:
        licenses.create_license(s, org_id, "Planner", 10)
    with db.reader(live_server.app)() as s:
        roles.create_role(s, org_id, "Seller", "task")
    _sam_then_the_rules_page(page, context, live_server, org_id, user_id)
    page.get_by_label("Rule set (YAML)").fill(DRAFT)
    page.get_by_role("button", name="Validate").click()
    problems = page.locator(".problems li")
    expect(problems).to_have_count(1)
    expect(problems.first).to_contain_text("Line 5:")
    expect(problems.first).to_contain_text("rules[0].then.license")
    shoot(page, "rules-problem")
    page.get_by_label("Rule set (YAML)").fill(DRAFT.replace("Plannr", "Planner"))
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("status")).to_contain_text("Valid")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview-result")
    expect(preview).to_contain_text("sam@acme.example")
    expect(preview).to_contain_text("— → Planner")
    shoot(page, "rules-preview")
    page.get_by_label("Version name").fill("sales get Planner")
    page.get_by_role("button", name="Save as new version").click()
    expect(page.get_by_role("heading", name="Version 1: sales get Planner")).to_be_visible()
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("status")).to_contain_text("Version 1 is active")
    shoot(page, "rules-version")
    page.get_by_role("button", name="Apply to everyone").click()
    expect(page.get_by_role("heading", name="Applying the rules to everyone")).to_be_visible()
    expect(page.locator("#job-status")).to_contain_text("Queued")


def test_preview_names_the_rules_that_would_give_what_users_keep(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """A rule renamed: nobody's license or role moves, but each is given by another rule,
    which is a change of those users; the preview counts and shows them."""
    org_id, user_id = console_person(live_server, "org_admin")
    with db.reader(live_server.app)() as s:
        licenses.create_license(s, org_id, "Planner", 10)
    with db.reader(live_server.app)() as s:
        roles.create_role(s, org_id, "Seller", "task")
    active = DRAFT.replace("Plannr", "Planner").replace(
        "then: {license: Planner}", "then: {license: Planner, roles: [Seller]}"
    )
    with db.reader(live_server.app)() as s:
        stored = rule_sets.create_rule_set(s, org_id, "sales", yaml.safe_load(active))
    with db.reader(live_server.app)() as s:
        rule_sets.activate(s, org_id, stored.id)
    _sam_then_the_rules_page(page, context, live_server, org_id, user_id)
    page.get_by_label("Rule set (YAML)").fill(active.replace("name: sales", "name: sellers"))
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview-result")
    expect(preview).to_contain_text("1 would change")
    expect(preview).to_contain_text("1 keep a license or role that other rules would give")
    expect(preview).to_contain_text("by rule sales → sellers")
    expect(preview).to_contain_text("Seller by rule sales → sellers")
    shoot(page, "rules-preview-given-by")


def test_a_user_manager_saves_a_version_and_is_told_who_activates_it(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """Validate, preview, save: theirs. Activate and Apply are not offered; the hint says an
    org admin activates and applies rules, and why."""
    org_id, _boss = console_person(live_server, "org_admin")
    with db.reader(live_server.app)() as s:
        licenses.create_license(s, org_id, "Planner", 10)
    manager = add_user(live_server, org_id, "manager@acme.example")
    with db.reader(live_server.app)() as s:
        console_access.grant(s, org_id, manager, "user_manager")
    _sam_then_the_rules_page(page, context, live_server, org_id, manager)
    hint = page.get_by_text("Rule sets are activated and applied by an organization admin")
    expect(hint).to_be_visible()
    page.get_by_label("Rule set (YAML)").fill(DRAFT.replace("Plannr", "Planner"))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-result")).to_contain_text("sam@acme.example")
    shoot(page, "rules-user-manager")
    page.get_by_label("Version name").fill("sales get Planner")
    page.get_by_role("button", name="Save as new version").click()
    expect(page.get_by_role("heading", name="Version 1: sales get Planner")).to_be_visible()
    expect(hint).to_be_visible()
    expect(page.get_by_role("button", name="Activate")).to_have_count(0)
    expect(page.get_by_role("button", name="Apply to everyone")).to_have_count(0)
    shoot(page, "rules-version-user-manager")


def test_a_deeply_nested_draft_is_reported_not_a_500(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """A draft nested 500 deep: Validate shows "nested too deeply" (an auditor may check);
    saved by an org admin it is refused with the problem on the page, never a 500."""
    org_id, auditor = console_person(live_server, "auditor")
    browser_sign_in(live_server.app, context, live_server.url, org_id, auditor)
    page.goto("/admin/rules/")
    page.get_by_label("Rule set (YAML)").fill("rules:\n" + "  - " * 500 + "x\n")
    with page.expect_response(lambda r: r.url.endswith("/admin/rules/validate")) as answer:
        page.get_by_role("button", name="Validate").click()
    assert answer.value.status == 200, answer.value.status
    expect(page.locator("#checks")).to_contain_text("nested too deeply")

    org_id, admin = console_person(live_server, "org_admin")
    browser_sign_in(live_server.app, context, live_server.url, org_id, admin)
    page.goto("/admin/rules/")
    page.get_by_label("Rule set (YAML)").fill("[" * 600)
    expect_refusal(page)  # 422: the draft is not stored
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save as new version").click()
    assert answer.value.status == 422, answer.value.status
    expect(page.get_by_text("nested too deeply")).to_be_visible()
    assert "Internal Server Error" not in page.content()
