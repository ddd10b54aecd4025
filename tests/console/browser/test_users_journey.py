"""Journey: an org admin creates a license and a role, then works the users dashboard:
search as you type, sort, filter, a profile (license, role, lock and unlock), bulk actions."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import console_access, users
from scim_server.services.organizations import create_organization
from tests.console.browser.conftest import LiveServer, shoot
from tests.console.browser.people import add_user, console_person
from tests.support.console import browser_sign_in

PEOPLE = [
    ("ada", "Ada Lovelace"),
    ("grace", "Grace Hopper"),
    ("alan", "Alan Turing"),
    ("edsger", "Edsger Dijkstra"),
    ("barbara", "Barbara Liskov"),
    ("mallory", "<script>alert('x')</script>"),
]


def _seed(live: LiveServer, org: str) -> tuple[str, str, dict[str, str]]:
    """An organization, its first admin, and a few people as an IdP would have pushed them."""
    with db.reader(live.app)() as s:
        org_id = create_organization(s, org).id
    ids = {}
    for login, name in [("admin", "Olga Admin"), *PEOPLE]:
        body = {
            "schemas": [USER_SCHEMA],
            "userName": f"{login}@{org.lower()}.example",
            "displayName": name,
            "emails": [{"value": f"{login}@{org.lower()}.example", "primary": True}],
        }
        with db.reader(live.app)() as s:
            ids[login] = users.create_user(s, org_id, parse_resource(USER, body, creating=True)).id
    with db.reader(live.app)() as s:
        console_access.grant(s, org_id, ids["admin"], "org_admin")
    return org_id, ids["admin"], ids


def ROWS(page: Any) -> Any:
    return page.locator("#results tbody tr")


def _rows(page: Any) -> list[str]:
    return page.locator("#results tbody tr td:nth-child(2) a").all_inner_texts()


def test_admin_works_the_users_dashboard(page: Any, context: Any, live_server: LiveServer) -> None:
    org_id, admin_id, _ids = _seed(live_server, "Initech")
    browser_sign_in(live_server.app, context, live_server.url, org_id, admin_id)

    # A license and a role, through their pages.
    page.goto("/admin/licenses/")
    page.get_by_label("Name").fill("Engineer")
    page.get_by_label("Seats").fill("3")
    page.get_by_label("Price per seat and month").fill("49.90")
    page.get_by_role("button", name="Create license").click()
    expect(page.get_by_text("License Engineer created.")).to_be_visible()
    shoot(page, "licenses")
    page.goto("/admin/roles/")
    page.get_by_label("Name").fill("Dispatcher")
    page.get_by_label("Kind").select_option("task")
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_text("Role Dispatcher (task) created.")).to_be_visible()
    shoot(page, "roles")

    # The dashboard: every user, the <script> name shown as text.
    page.get_by_role("link", name="Users", exact=True).click()
    page.wait_for_load_state()  # htmx is loaded at the end of the page: typing waits for it
    expect(ROWS(page)).to_have_count(7)
    assert "<script>alert('x')</script>" in _rows(page)
    shoot(page, "users")

    # Search as you type (htmx, no submit), and the URL follows.
    page.get_by_label("Search name, e-mail or username").fill("gra")
    expect(ROWS(page)).to_have_count(1)
    assert _rows(page) == ["Grace Hopper"]
    expect(page).to_have_url(re.compile(r"q=gra"))
    page.get_by_label("Search name, e-mail or username").fill("")
    expect(ROWS(page)).to_have_count(7)

    # Sort by name, then descending.
    page.get_by_role("link", name=re.compile("^Name")).click()
    expect(page.locator('th[aria-sort="ascending"]')).to_have_text(re.compile("Name"))
    page.get_by_role("link", name=re.compile("^Name")).click()
    expect(page.locator('th[aria-sort="descending"]')).to_have_text(re.compile("Name"))
    names = _rows(page)
    assert names == sorted(names, key=str.casefold, reverse=True)

    # A profile: license, role task, lock and unlock.
    page.get_by_role("link", name="Ada Lovelace").click()
    picker = page.get_by_label("Assign a license")
    # The options' values are the licenses' ids; their labels also say price and seats.
    picker.select_option(picker.locator("option", has_text="Engineer").get_attribute("value"))
    page.get_by_role("button", name="Save license").click()
    expect(page.get_by_text("License Engineer assigned.")).to_be_visible()
    page.get_by_label("Role task (manual)").select_option(label="Dispatcher")
    page.get_by_role("button", name="Save role task").click()
    expect(page.get_by_role("cell", name="Dispatcher", exact=True)).to_be_visible()
    page.get_by_role("button", name="Lock").click()
    expect(page.locator(".page-head .badge-LOCKED_BY_ADMIN")).to_be_visible()
    shoot(page, "profile")
    page.get_by_role("button", name="Unlock").click()
    expect(page.locator(".page-head .badge-PROVISIONED")).to_be_visible()

    # Filters: the license, then the role.
    page.goto("/admin/users/")  # goto waits for the load event: htmx is ready
    page.get_by_label("License").select_option(label="Engineer")
    expect(ROWS(page)).to_have_count(1)
    assert _rows(page) == ["Ada Lovelace"]
    page.get_by_label("License").select_option(label="Any license")
    page.get_by_label("Role").select_option(label="Dispatcher (task)")
    expect(ROWS(page)).to_have_count(1)
    assert page.locator("#results tbody tr td:nth-child(5)").inner_text() == "Dispatcher"
    page.get_by_label("Role").select_option(label="Any role")
    expect(ROWS(page)).to_have_count(7)

    # Bulk: lock two, one of them is me (refused for that row).
    page.get_by_label("Select Grace Hopper").check()
    page.get_by_label("Select Olga Admin").check()
    page.get_by_role("button", name="Lock", exact=True).click()
    page.wait_for_selector(".bulk-results")
    results = page.locator(".bulk-results li").all_inner_texts()
    assert "grace@initech.example: Locked" in results
    assert any("your own account" in r for r in results)
    shoot(page, "users-bulk")
    page.get_by_label("Select Grace Hopper").check()
    page.get_by_role("button", name="Unlock", exact=True).click()
    page.wait_for_selector(".bulk-results >> text=1 of 1 done")

    # Bulk delete asks for DELETE first.
    page.get_by_label("Select Barbara Liskov").check()
    page.get_by_role("button", name="Delete…").click()
    page.get_by_label("Type DELETE to confirm").fill("DELETE")
    page.get_by_role("button", name="Delete for good").click()
    page.wait_for_selector(".bulk-results >> text=barbara@initech.example: Deleted")
    assert "Barbara Liskov" not in _rows(page)


def test_select_all_and_phone_layout(page: Any, context: Any, live_server: LiveServer) -> None:
    """Select all ticks every row; the dashboard at phone width keeps its table in its box."""
    org_id, admin_id, _ids = _seed(live_server, "Globex")
    browser_sign_in(live_server.app, context, live_server.url, org_id, admin_id)
    page.goto("/admin/users/")
    page.get_by_label("Select all users on this page").check()
    assert page.locator("input[name=user]:checked").count() == 7
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page itself never scrolls sideways"


def test_a_user_manager_sees_an_admin_s_account_as_not_theirs_to_change(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """The org admin's profile, to a user manager: a note says why, and no status, contact,
    credentials or delete action is offered (each is refused if posted anyway)."""
    org_id, admin_id = console_person(live_server, "org_admin")
    email = "manager@manager.example"
    body = {"schemas": [USER_SCHEMA], "userName": email, "emails": [{"value": email}]}
    with db.reader(live_server.app)() as s:
        manager = users.create_user(s, org_id, parse_resource(USER, body, creating=True))
    with db.reader(live_server.app)() as s:
        console_access.grant(s, org_id, manager.id, "user_manager")
    browser_sign_in(live_server.app, context, live_server.url, org_id, manager.id)
    page.goto(f"/admin/users/{admin_id}")
    expect(page.get_by_text("This account holds console roles beyond yours")).to_be_visible()
    for label in ("Lock", "Deactivate", "Reset password", "Delete user", "Save contact details"):
        expect(page.get_by_role("button", name=label)).to_have_count(0)
    shoot(page, "user-beyond-your-roles")


def test_own_profile_offers_no_lock_or_deactivate(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """An org admin on their own profile: "Lock" and "Deactivate" (always refused, 400, on
    one's own account) are not offered; another user's profile offers both."""
    org_id, me = console_person(live_server, "org_admin")
    other = add_user(live_server, org_id, "other@other.example")
    browser_sign_in(live_server.app, context, live_server.url, org_id, me)
    page.goto(f"/admin/users/{me}")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    for label in ("Lock", "Deactivate"):
        expect(page.get_by_role("button", name=label, exact=True)).to_have_count(0)
    page.goto(f"/admin/users/{other}")
    for label in ("Lock", "Deactivate"):
        expect(page.get_by_role("button", name=label, exact=True)).to_have_count(1)
