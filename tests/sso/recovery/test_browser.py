"""The reset pages in a real browser (Chromium): they work under the strict CSP, with no console error."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import delete, select
from werkzeug.serving import make_server

from scim_server.db import db
from scim_server.models import MailOutbox
from scim_server.ratelimit import rate_limit_windows
from tests.support import free_port
from tests.support.credentials import employee, password_verifies

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed"
)


@pytest.fixture
def served(live) -> Iterator[tuple[Any, Any, str]]:
    """The live app on 127.0.0.1 (a test server thread; never part of the product)."""
    app, scim = live
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, scim, f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(10)
    # The forgot form counted this address in the shared table: leave it as found.
    with db.writer(app)() as session, session.begin():
        session.execute(delete(rate_limit_windows).where(rate_limit_windows.c.key.like("forgot:%")))


def test_forgot_then_reset_in_a_browser(served, browser):
    """Forgot → mail's link → a refused password (its rule shown) → a good one → sign-in page."""
    app, scim, base = served
    user_id = employee(scim, "bob@example.com", password="Original-pass-phrase-31")["id"]
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and "status of 4" not in m.text else None
        ),
    )
    page.goto(f"{base}/sso/forgot")
    assert page.locator("link[rel=stylesheet]").count() == 1
    page.fill("#identifier", "bob@example.com")
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Check your mail"
    with db.reader(app)() as session:
        body = (
            session.scalars(select(MailOutbox).where(MailOutbox.org_id == scim.org_id))
            .one()
            .body_text
        )
    token = re.search(r"/sso/reset/(\S+)", body).group(1)
    page.goto(f"{base}/sso/reset/{token}")
    page.fill("#password", "password12345")
    page.fill("#confirm", "password12345")
    page.click("button[type=submit]")
    assert "too common" in page.locator(".alert-error").inner_text()
    page.fill("#password", "Saffron-glacier-window-64")
    page.fill("#confirm", "Saffron-glacier-window-64")
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Your password was changed"
    page.click("text=Go to sign-in")
    assert page.url.endswith("/sso/login")
    # The stylesheet applied (CSP allows 'self'): the card has its background.
    # (Waited for: the click's navigation may still be loading the stylesheet.)
    expect(page.locator(".card")).to_have_css("background-color", "rgb(255, 255, 255)")
    context.close()
    assert problems == []
    assert password_verifies(app, scim.org_id, user_id, "Saffron-glacier-window-64")
