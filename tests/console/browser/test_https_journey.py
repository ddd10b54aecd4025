"""Journey over https, as in production: a real browser's forms and htmx requests work.

The pages say ``Referrer-Policy: no-referrer``, so Chromium sends no Referer and its form
POSTs say ``Origin: null``: the console must rely on the session's token plus Origin /
Sec-Fetch-Site, never on a Referer (Flask-WTF's strict https check refused every POST).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from werkzeug.serving import generate_adhoc_ssl_context, make_server

from scim_server import create_app
from scim_server.db import db
from scim_server.migrate import upgrade
from scim_server.scim.resources import parse_resource
from scim_server.scim.schema import USER, USER_SCHEMA
from scim_server.services import console_access, users
from scim_server.services.organizations import create_organization
from tests.conftest import TEST_CONFIG
from tests.console.browser.conftest import LAPTOP, LiveServer
from tests.support.console import browser_sign_in


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app over TLS (a throwaway certificate) on 127.0.0.1, SCIM_BASE_URL its https
    address, the session cookie Secure."""
    path = tmp_path_factory.mktemp("https") / "console.db"
    app = create_app(
        {
            **TEST_CONFIG,
            "TESTING": False,
            "DATABASE_URL": f"sqlite:///{path}",
            "SESSION_COOKIE_SECURE": True,
        }
    )
    upgrade(db.engine(app))
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, ssl_context=generate_adhoc_ssl_context()
    )
    url = f"https://127.0.0.1:{server.server_port}"
    app.config["BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(app, url)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        db.engine(app).dispose()


@pytest.fixture
def https_page(browser: Any, https_server: LiveServer) -> Iterator[Any]:
    """A fresh profile that accepts the throwaway certificate; page errors fail the test."""
    ctx = browser.new_context(viewport=LAPTOP, base_url=https_server.url, ignore_https_errors=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    ctx.close()
    assert errors == []


def _seed(live: LiveServer) -> tuple[str, str]:
    """An organization with its admin and Grace, as an IdP would have pushed them."""
    with db.reader(live.app)() as s:
        org_id = create_organization(s, "Tls Corp").id
    ids = {}
    for login, name in [("admin", "Olga Admin"), ("grace", "Grace Hopper")]:
        body = {
            "schemas": [USER_SCHEMA],
            "userName": f"{login}@tls.example",
            "displayName": name,
            "emails": [{"value": f"{login}@tls.example", "primary": True}],
        }
        with db.reader(live.app)() as s:
            ids[login] = users.create_user(s, org_id, parse_resource(USER, body, creating=True)).id
    with db.reader(live.app)() as s:
        console_access.grant(s, org_id, ids["admin"], "org_admin")
    return org_id, ids["admin"]


def test_console_forms_and_htmx_work_over_https(https_page: Any, https_server: LiveServer) -> None:
    """Over https: HSTS on the pages; a profile's form (Lock), an htmx bulk action (Unlock)
    and Sign out all go through, although the browser sends no Referer."""
    page = https_page
    org_id, admin_id = _seed(https_server)
    browser_sign_in(https_server.app, page.context, https_server.url, org_id, admin_id)
    opened = page.goto("/admin/users/")
    assert opened.headers["referrer-policy"] == "no-referrer"
    assert opened.headers["strict-transport-security"].startswith("max-age=31536000")

    page.get_by_role("link", name="Grace Hopper").click()
    page.get_by_role("button", name="Lock").click()  # a plain form POST: Origin: null
    expect(page.locator(".page-head .badge-LOCKED_BY_ADMIN")).to_be_visible()

    page.goto("/admin/users/")  # goto waits for the load event: htmx is ready
    page.get_by_label("Select Grace Hopper").check()
    page.get_by_role("button", name="Unlock", exact=True).click()  # htmx: X-CSRFToken
    page.wait_for_selector(".bulk-results >> text=1 of 1 done")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sso/login$"))
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/sso/login\?next=/admin/$"))
