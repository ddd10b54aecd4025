"""Browser journeys: Playwright for Python driving Debian's Chromium against a live server.

The server is the real app on a SQLite file of its own, served on 127.0.0.1 by
werkzeug in a thread. A browser is never downloaded: without /usr/bin/chromium
these tests are skipped with the reason (``sudo apt-get install chromium``),
unless SCIM_REQUIRE_BROWSER is set (CI), where that is a failure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect
from werkzeug.serving import make_server

from scim_server import create_app
from scim_server.db import db
from scim_server.migrate import upgrade
from tests.conftest import TEST_CONFIG

# A web-first assertion waits for its condition (5 s by default); on a CI machine whose two
# cores are shared with the rest of the suite a page can take longer. A passing check returns
# as soon as it holds: this only bounds how long a failing one waits.
expect.set_options(timeout=15_000)

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


# The browser cancels static downloads it no longer needs (a favicon, a page left early):
# werkzeug's development server then leaves the file to the garbage collector, which
# warns from the server thread. Not our code, and not a leak that outlives the test.
_SERVER_THREAD_NOISE = (
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            for mark in _SERVER_THREAD_NOISE:
                item.add_marker(mark)
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("SCIM_REQUIRE_BROWSER"):
        raise pytest.UsageError(f"{CHROMIUM} is missing and SCIM_REQUIRE_BROWSER is set")
    skip = pytest.mark.skip(
        reason=f"browser tests need Debian's Chromium at {CHROMIUM}: sudo apt-get install chromium"
    )
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)


@dataclass
class LiveServer:
    app: Flask
    url: str


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on its own migrated SQLite file, answering on 127.0.0.1:<free port>."""
    path = tmp_path_factory.mktemp("browser") / "console.db"
    app = create_app({**TEST_CONFIG, "TESTING": False, "DATABASE_URL": f"sqlite:///{path}"})
    upgrade(db.engine(app))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveServer(app, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        db.engine(app).dispose()


@pytest.fixture
def context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser profile (no cookies) at laptop size; console errors fail the test."""
    ctx = browser.new_context(viewport=LAPTOP, base_url=live_server.url)
    # A CSP violation names its source and element in the console (injected by the browser
    # driver, outside the page's CSP), so a failing test says what was blocked.
    ctx.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'CSP violation', e.violatedDirective, e.sourceFile + ':' + e.lineNumber, "
        "e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 300) : ''))"
    )
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A page that records console errors (a CSP violation is one): none may occur."""
    found = context.new_page()
    errors: list[str] = []
    found.on(
        "console",
        lambda msg: errors.append(f"{msg.text} at {found.url}") if msg.type == "error" else None,
    )
    found.on("pageerror", lambda exc: errors.append(str(exc)))
    yield found
    expected = _EXPECTED_REFUSALS.pop(id(found), 0)
    refusals = [e for e in errors if _REFUSAL in e]
    assert len(refusals) == expected, errors
    assert [e for e in errors if _REFUSAL not in e] == [], errors


# Chromium logs a 4xx answer as a console error; a test that provokes a refusal on purpose
# (a bad date shown by htmx with its 400, a domain whose TXT record is missing: 409) says
# how many it expects.
_REFUSAL = "the server responded with a status of 4"
_EXPECTED_REFUSALS: dict[int, int] = {}


def expect_refusal(page: Any) -> None:
    """The next request of ``page`` is answered 4xx on purpose (its console line is expected)."""
    _EXPECTED_REFUSALS[id(page)] = _EXPECTED_REFUSALS.get(id(page), 0) + 1


def shoot(page: Any, name: str) -> None:
    """Screenshots at laptop and phone widths into tests/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    size = page.viewport_size
    page.screenshot(path=str(SCREENSHOTS / f"{name}-laptop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    # Usable on a phone: wide tables scroll inside their box, the page never sideways.
    width = page.evaluate("document.documentElement.scrollWidth")
    widest = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .slice(-3).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""
    )
    page.set_viewport_size(size)
    assert width <= PHONE["width"], f"{name}: {width}px wide at phone width: {widest}"
