"""The local sign-in pages in a real browser: Debian's Chromium through Playwright.

What the HTTP tests cannot show: the passkey script (static/js/passkeys.js)
registering and using a passkey with Chromium's virtual authenticator, the QR
code drawn, and no Content-Security-Policy violation on any page. The server
runs on 127.0.0.1 (reached as ``localhost``, a WebAuthn secure context).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from scim_server.db import utcnow
from scim_server.services import totp
from tests.support import Scim
from tests.support.local import PASSWORD, busy_node, give_password
from tests.support.sso import make_person

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")


@pytest.fixture
def server(live: tuple[Flask, Scim]) -> Iterator[tuple[str, Flask, Scim]]:
    app, scim = live
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://localhost:{srv.server_port}"
    app.config["BASE_URL"] = base
    # Its counters would be committed (no test transaction here) and count against other tests.
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield base, app, scim
    srv.shutdown()
    thread.join()


def _page(browser: Any, problems: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda err: problems.append(str(err)))
    return page


def _person(app: Flask, scim: Scim, who: str) -> str:
    """A new person with the password ``PASSWORD``: their login."""
    login = f"{who}-{uuid.uuid4().hex[:8]}@browser.test"
    give_password(app, scim.org_id, make_person(app, scim, login))
    return login


def _sign_in(page: Any, base: str, login: str) -> None:
    page.goto(f"{base}/sso/login?next=/sso/security")
    page.fill("#email", login)
    page.click("button[type=submit]")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_totp_enrolment_in_the_browser(server: tuple[str, Flask, Scim], browser: Any) -> None:
    """The QR code is drawn (an image with a size), the key typed into a code signs in."""
    base, app, scim = server
    login = _person(app, scim, "eve")
    problems: list[str] = []
    page = _page(browser, problems)
    _sign_in(page, base, login)
    page.goto(f"{base}/sso/security/totp")
    assert page.eval_on_selector("p.qr img", "img => img.naturalWidth") > 100
    key = page.inner_text("code.mono").replace(" ", "")
    page.fill("#code", totp.code_at(key, totp.step_of(utcnow())))
    page.click("form button[type=submit]")
    assert len(page.locator("ol.codes li").all()) == 10
    page.goto(f"{base}/sso/security")
    assert page.locator("table.factors tbody tr").count() == 1
    assert problems == []


def test_passkey_register_and_sign_in_in_the_browser(
    server: tuple[str, Flask, Scim], browser: Any
) -> None:
    """passkeys.js with a virtual authenticator: add a passkey, then sign in with it."""
    base, app, scim = server
    login = _person(app, scim, "pat")
    problems: list[str] = []
    page = _page(browser, problems)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    _sign_in(page, base, login)
    assert page.url.endswith("/sso/security")
    page.click("button[data-passkey=register]")
    page.wait_for_url("**/sso/security/recovery-codes/new")
    assert len(page.locator("ol.codes li").all()) == 10
    page.context.clear_cookies()
    _sign_in(page, base, login)
    assert page.url.endswith("/sso/mfa")
    page.click("button[data-passkey=authenticate]")
    page.wait_for_url("**/sso/security")
    assert "Passkey" in page.inner_text("table.factors")
    assert problems == []


def test_busy_node_page_in_the_browser(
    server: tuple[str, Flask, Scim], browser: Any, tmp_path: Path
) -> None:
    """Every argon2 slot busy: the styled password form again with the reason (screenshot)."""
    base, app, scim = server
    login = _person(app, scim, "bo")
    problems: list[str] = []
    page = _page(browser, problems)
    with busy_node(app, tmp_path / "slots"):
        _sign_in(page, base, login)
        assert "Many people are signing in right now" in page.inner_text(".alert")
        assert page.locator("#password").count() == 1
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "signin-busy.png"), full_page=True)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    assert page.url.endswith("/sso/security")
    assert problems == []


def test_a_demanded_new_password_comes_after_the_second_factor_in_the_browser(
    server: tuple[str, Flask, Scim], browser: Any
) -> None:
    """An admin demands a new password of a person with an authenticator app: the browser
    goes password, then the code, then "Choose a new password" (screenshots of both)."""
    from scim_server.db import db
    from scim_server.services import accounts

    base, app, scim = server
    login = f"fay-{uuid.uuid4().hex[:8]}@browser.test"
    user_id = make_person(app, scim, login)
    give_password(app, scim.org_id, user_id)
    problems: list[str] = []
    page = _page(browser, problems)
    _sign_in(page, base, login)
    page.goto(f"{base}/sso/security/totp")
    key = page.inner_text("code.mono").replace(" ", "")
    step = totp.step_of(utcnow())
    page.fill("#code", totp.code_at(key, step))
    page.click("form button[type=submit]")
    page.context.close()
    with db.reader(app)() as s:
        accounts.act(s, scim.org_id, user_id, "require_new_password", "leaked")

    page = _page(browser, problems)
    _sign_in(page, base, login)
    page.wait_for_selector("#code")  # the second factor first, not the new password
    page.screenshot(path=str(SCREENSHOTS / "signin-demanded-change-code.png"), full_page=True)
    page.fill("#code", totp.code_at(key, step + 1))
    page.click("form button[type=submit]")
    page.wait_for_selector("#confirm")
    assert "new password" in page.inner_text("h1").lower()
    page.screenshot(path=str(SCREENSHOTS / "signin-demanded-change-after-code.png"), full_page=True)
    page.fill("#password", "a brand new passphrase 42")
    page.fill("#confirm", "a brand new passphrase 42")
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/sso/security")
    assert problems == []


def test_signing_out_in_the_browser(server: tuple[str, Flask, Scim], browser: Any) -> None:
    """Signed in (no console role), the welcome page says who and offers the sign-out; the
    security page too; signing out lands on its page, and the welcome page then asks for a
    sign-in."""
    base, app, scim = server
    login = _person(app, scim, "sam")
    problems: list[str] = []
    page = _page(browser, problems)
    _sign_in(page, base, login)
    page.screenshot(path=str(SCREENSHOTS / "sso-security-sign-out.png"), full_page=True)
    page.goto(f"{base}/sso/welcome")
    assert login in page.inner_text("main")
    page.screenshot(path=str(SCREENSHOTS / "sso-welcome.png"), full_page=True)
    page.click("form.sign-out button")
    assert page.url.endswith("/sso/signed-out")
    assert "You are signed out" in page.inner_text("main")
    page.screenshot(path=str(SCREENSHOTS / "sso-signed-out.png"), full_page=True)
    page.goto(f"{base}/sso/welcome")
    assert "/sso/login" in page.url
    assert problems == []


def test_an_applications_sign_out_asks_in_the_browser(
    server: tuple[str, Flask, Scim], browser: Any
) -> None:
    """``/oauth/logout`` without the person's ID token asks first; Sign out ends it."""
    base, app, scim = server
    login = _person(app, scim, "ann")
    problems: list[str] = []
    page = _page(browser, problems)
    _sign_in(page, base, login)
    page.goto(f"{base}/oauth/logout")
    assert "Sign out?" in page.inner_text("main") and login in page.inner_text("main")
    page.screenshot(path=str(SCREENSHOTS / "sso-logout-confirm.png"), full_page=True)
    page.click("form.sign-out button")
    assert page.url.endswith("/sso/signed-out")
    assert problems == []
