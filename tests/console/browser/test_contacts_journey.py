"""Journey: an org admin finds a contact by searching as they type, enables access for it
despite a warning (no seat left) by ticking the override, opens the new user; then edits
the availability hours of a resource contact (a mistake first, shown next to its day)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, ContactAvailability, User
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import console_access, directory, groups, licenses, users
from scim_server.services.organizations import create_organization
from tests.console.browser.conftest import LiveServer, expect_refusal, shoot
from tests.console.browser.people import add_user, console_person
from tests.support.console import browser_sign_in


def _seed(live: LiveServer) -> tuple[str, str, dict[str, str]]:
    """An organization whose default license (one seat) its admin holds, a default group,
    and contacts."""
    app = live.app
    with db.reader(app)() as s:
        org_id = create_organization(s, "Initrode").id
    with db.reader(app)() as s:
        licenses.create_license(s, org_id, "Planner", 1, price_cents=2900)
    with db.reader(app)() as s:
        field = groups.create_group(s, org_id, {"displayName": "Field staff"})
    with db.reader(app)() as s:
        directory.update_settings(
            s, org_id, {"default_license": "Planner", "default_groups": [field.id]}
        )
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "olga@initrode.example",
        "displayName": "Olga Admin",
        "emails": [{"value": "olga@initrode.example", "primary": True}],
    }
    with db.reader(app)() as s:
        admin_id = users.create_user(s, org_id, parse_resource(USER, body, creating=True)).id
    with db.reader(app)() as s:
        console_access.grant(s, org_id, admin_id, "org_admin")
    ids = {}
    with db.reader(app)() as s:
        ids["initrode"] = directory.create_contact(s, org_id, "organization", "Initrode AG", {}).id
    people = [
        ("grace", "Grace Hopper", {"email": "grace@initrode.example", "title": "Rear admiral"}),
        ("alan", "Alan Turing", {"email": "alan@initrode.example"}),
        ("crane", "Crane Operator 7", {"resource_system": "PlanIt"}),
        ("mallory", "<script>alert('x')</script>", {}),
    ]
    for key, name, fields in people:
        with db.reader(app)() as s:
            ids[key] = directory.create_contact(
                s,
                org_id,
                "person",
                name,
                {**fields, "organization_contact_id": ids["initrode"]},
            ).id
    return org_id, admin_id, ids


def test_admin_enables_access_and_edits_hours(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    org_id, admin_id, ids = _seed(live_server)
    browser_sign_in(live_server.app, context, live_server.url, org_id, admin_id)

    # The menu leads to Contacts; every contact, the <script> name shown as text.
    page.goto("/admin/")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Contacts").click()
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(6)
    expect(page.get_by_role("link", name="<script>alert('x')</script>", exact=True)).to_be_visible()
    shoot(page, "contacts")

    # Search as you type: the list narrows without a submit, the URL follows.
    page.get_by_label("Search name or e-mail").fill("grac")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Grace Hopper")
    expect(page).to_have_url(re.compile(r"q=grac"))
    page.get_by_label("Account").select_option(label="With an account")
    expect(page.locator("#results .empty")).to_be_visible()
    page.get_by_label("Account").select_option(label="Without an account")
    expect(rows).to_have_count(1)

    # Enable access: the plan and its warning, then the deliberate override.
    page.get_by_role("link", name="Enable access for Grace Hopper").click()
    warning = page.locator("#access .alert-warn")
    expect(warning).to_contain_text("No seat left on license Planner")
    expect(page.locator("#access")).to_contain_text("grace@initrode.example")
    expect(page.locator("#access .plan")).to_contain_text("Field staff (the default groups)")
    shoot(page, "contact-enable-access")
    page.get_by_label("I understand, enable anyway").check()
    page.get_by_role("button", name="Enable access").click()
    expect(page.get_by_text("Access enabled: username grace@initrode.example.")).to_be_visible()
    with db.reader(live_server.app)() as s:
        user = s.scalar(select(User).where(User.org_id == org_id, User.contact_id == ids["grace"]))
        assert user is not None and user.license_wanted_id is not None  # waits for a seat
        event = s.scalar(
            select(AuditEvent).where(
                AuditEvent.org_id == org_id,
                AuditEvent.action == "user.create",
                AuditEvent.resource_id == user.id,
            )
        )
        assert event.explanation["access"]["override"] is True
        assert [g["displayName"] for g in event.explanation["default_groups"]] == ["Field staff"]

    # Open the user: the profile of the new account.
    page.locator(".page-head").get_by_role("link", name="Open user").click()
    expect(page).to_have_url(re.compile(f"/admin/users/{user.id}$"))
    expect(page.locator("h1")).to_have_text("Grace Hopper")
    expect(page.locator(".page-head")).to_contain_text("Manual")
    expect(page.get_by_text("no seat is left")).to_be_visible()

    # A resource contact's availability hours: a mistake is shown at its day, then saved.
    page.goto("/admin/contacts/")
    page.get_by_label("Search name or e-mail").fill("crane")
    expect(rows).to_have_count(1)
    page.get_by_role("link", name="Crane Operator 7", exact=True).click()
    expect(page.get_by_role("heading", name="Availability hours")).to_be_visible()
    page.get_by_label("Monday, odd weeks").fill("13:00-17:00, 08:00-12:00")
    page.get_by_label("Tuesday, odd weeks").fill("10:00-09:00")
    page.get_by_label("Friday, even weeks").fill("07:30-15:30")
    expect_refusal(page)
    page.get_by_role("button", name="Save availability hours").click()
    expect(page.locator("#odd_tuesday-error")).to_contain_text("ends before it starts")
    expect(page.get_by_label("Friday, even weeks")).to_have_value("07:30-15:30")
    page.get_by_label("Tuesday, odd weeks").fill("09:00-10:00")
    page.get_by_role("button", name="Save availability hours").click()
    expect(page.get_by_text("Availability hours saved.")).to_be_visible()
    expect(page.get_by_label("Monday, odd weeks")).to_have_value("08:00-12:00, 13:00-17:00")
    with db.reader(live_server.app)() as s:
        stored = s.scalars(
            select(ContactAvailability).where(ContactAvailability.contact_id == ids["crane"])
        ).all()
        assert len(stored) == 4
    shoot(page, "contact-availability")


def test_a_user_manager_is_not_offered_the_form_of_an_org_admins_contact(
    page: Any, context: Any, live_server: LiveServer
) -> None:
    """The contact page of an org admin, to a user manager: the profile's note says why,
    the details and hours are shown without "Save contact" or "Save availability hours"
    (each post is refused with 403)."""
    org_id, admin_id = console_person(live_server, "org_admin")
    with db.reader(live_server.app)() as s:
        contact_id = s.get(User, (org_id, admin_id)).contact_id
    with db.reader(live_server.app)() as s:
        directory.update_contact(s, org_id, contact_id, {"resource_system": "PlanIt"})
    manager = add_user(live_server, org_id, "mike@initrode.example")
    with db.reader(live_server.app)() as s:
        console_access.grant(s, org_id, manager, "user_manager")
    browser_sign_in(live_server.app, context, live_server.url, org_id, manager)
    page.goto(f"/admin/contacts/{contact_id}")
    expect(page.get_by_text("This account holds console roles beyond yours")).to_be_visible()
    for label in ("Save contact", "Save availability hours"):
        expect(page.get_by_role("button", name=label)).to_have_count(0)
    expect(page.get_by_label("Monday, odd weeks")).to_have_attribute("readonly", "")
    shoot(page, "contact-beyond-your-roles")
