"""The users dashboard as the README shows it: a realistic organization, laptop width."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect

from scim_server.db import db
from scim_server.models import User
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import accounts, console_access, licenses, roles, users
from scim_server.services.organizations import create_organization
from tests.console.browser.conftest import LiveServer, shoot
from tests.support.console import browser_sign_in

PEOPLE = [
    ("Amara Okafor", "Engineer", "Dispatcher", "Helpdesk L2", "ACTIVE"),
    ("Bruno Costa", "Planner", "Planner", None, "ACTIVE"),
    ("Chen Wei", "Engineer", "Field engineer", "Helpdesk L1", "PROVISIONED"),
    ("Dana Kowalski", "Manager", None, "Helpdesk L2", "ACTIVE"),
    ("Elif Demir", "Engineer", "Field engineer", None, "LOCKED_BY_ADMIN"),
    ("Farid Haddad", None, None, None, "DEACTIVATED"),
    ("Grace Lindqvist", "Planner", "Planner", "Helpdesk L1", "ACTIVE"),
    ("Hana Sato", "Engineer", "Dispatcher", None, "AUTO_LOCKED"),
]


def test_users_dashboard_for_the_readme(page: Any, context: Any, live_server: LiveServer) -> None:
    app = live_server.app
    with db.reader(app)() as s:
        org_id = create_organization(s, "Northwind Field Services").id
    for name, seats, price in (("Engineer", 50, 4900), ("Planner", 10, 2900), ("Manager", 5, 7900)):
        with db.reader(app)() as s:
            licenses.create_license(s, org_id, name, seats, price)
    for name, kind in (
        ("Dispatcher", "task"),
        ("Field engineer", "task"),
        ("Planner", "task"),
        ("Helpdesk L1", "ticket"),
        ("Helpdesk L2", "ticket"),
    ):
        with db.reader(app)() as s:
            roles.create_role(s, org_id, name, kind)
    now = datetime.now(UTC).replace(microsecond=0)
    ids = []
    for n, (name, lic, task, ticket, status) in enumerate(PEOPLE):
        given, family = name.split()
        email = f"{given.lower()}.{family.lower()}@northwind.example"
        body = {
            "schemas": [USER_SCHEMA],
            "userName": email,
            "displayName": name,
            "name": {"givenName": given, "familyName": family},
            "emails": [{"value": email, "primary": True}],
        }
        with db.reader(app)() as s:
            uid = users.create_user(s, org_id, parse_resource(USER, body, creating=True)).id
        ids.append(uid)
        for role in (task, ticket):
            if role:
                with db.reader(app)() as s:
                    accounts.add_manual_role(s, org_id, uid, role)
        if lic:
            with db.reader(app)() as s:
                accounts.set_manual_license(s, org_id, uid, lic)
        with db.reader(app)() as s, s.begin():
            user = s.get(User, (org_id, uid))
            user.status = status
            if status != "PROVISIONED":
                user.last_login_at = now - timedelta(hours=5 * n + 1)
    with db.reader(app)() as s:
        console_access.grant(s, org_id, ids[3], "org_admin")
    browser_sign_in(app, context, live_server.url, org_id, ids[3])
    page.goto("/admin/users/?sort=name")
    expect(page.locator("#results tbody tr")).to_have_count(len(PEOPLE))
    shoot(page, "readme-users-dashboard")
