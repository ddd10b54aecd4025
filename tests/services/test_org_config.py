"""The per-process cache of settings and active rules: every change reaches the next write.

Each test first makes a write (which fills the cache), then changes what the
cache holds through the admin API, then checks that the next write follows the
change. The last test makes the change through a second application in the
same process, as another worker would.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy.engine import Connection, Engine

from scim_server import create_app
from scim_server.services import org_config
from tests.admin.rules import activate, catalogue
from tests.support import Scim, bind_to_connection
from tests.support.admin_api import account, make_license, ok, person


def _license(admin: Scim, user: dict) -> str | None:
    lic = account(admin, user["id"]).get("license")
    return lic["value"] if lic else None


def test_activating_rules_reaches_the_next_create(scim, admin):
    catalogue(admin)
    before = person(scim, "ann@example.com", department="Sales")
    activate(admin)
    after = person(scim, "bob@example.com", department="Sales")
    assert _license(admin, before) is None
    assert _license(admin, after) == "Planner"


def test_saving_settings_reaches_the_next_create(scim, admin):
    catalogue(admin)
    before = person(scim, "ann@example.com")
    ok(admin.put("/api/v1/settings", {"default_license": "Engineer"}))
    after = person(scim, "bob@example.com")
    assert _license(admin, before) is None
    assert _license(admin, after) == "Engineer"


def test_a_change_through_another_app_reaches_this_one(
    app: Flask, engine: Engine, connection: Connection, scim: Scim, admin: Scim
):
    """Two apps in one process (two workers' worth): the other's change is seen here."""
    other_app = bind_to_connection(
        create_app({"TESTING": True, "DATABASE_URL": engine.url.render_as_string(False)}),
        engine,
        connection,
    )
    other_admin = Scim(other_app.test_client(), admin.token, admin.org_id)
    catalogue(admin)
    person(scim, "ann@example.com", department="Sales")  # this app has the settings cached
    ok(other_admin.put("/api/v1/settings", {"default_license": "Engineer"}))
    bob = person(scim, "bob@example.com")
    assert _license(admin, bob) == "Engineer"
    activate(other_admin)
    cy = person(scim, "cy@example.com", department="Sales")
    assert _license(admin, cy) == "Planner"


def test_the_fingerprint_holds_every_license_and_role_name(scim, admin, session):
    """Each engine's own aggregate (``group_concat``, ``string_agg``) joins the names."""
    catalogue(admin)
    make_license(admin, "Ünïcode, with a comma", 1)
    row = session.execute(org_config._FINGERPRINT, {"org_id": admin.org_id}).one()
    licenses, roles = row.fp_licenses, row.fp_roles
    assert sorted(licenses.split("\x1f")) == ["Engineer", "Planner", "Ünïcode, with a comma"]
    assert sorted(roles.split("\x1f")) == ["Engineer", "Portal"]
