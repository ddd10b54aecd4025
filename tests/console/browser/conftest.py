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
from werkzeug.serving import make_server

from scim_server import create_app
from scim_server.db import db
from scim_server.migrate import upgrade
from tests.conftest import TEST_CONFIG

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("SCIM_REQUIRE_BROWSER"):
        raise pytest.UsageError(f"{CHROMIUM} is missing and SCIM_REQUIRE_BROWSER is set")
    skip = pytest.mark.skip(
        reason=f"browser tests need Debian's Chromium at {CHROMIUM}: sudo apt-get install chromium"
    )
    here = str(Path(__file__).parent)
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
        found = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield found
        found.close()


@pytest.fixture
def context(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser profile (no cookies) at laptop size; console errors fail the test."""
    ctx = browser.new_context(viewport=LAPTOP, base_url=live_server.url)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A page that records console errors (a CSP violation is one): none may occur."""
    found = context.new_page()
    errors: list[str] = []
    found.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    found.on("pageerror", lambda exc: errors.append(str(exc)))
    yield found
    assert errors == [], errors


def shoot(page: Any, name: str) -> None:
    """Screenshots at laptop and phone widths into tests/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    size = page.viewport_size
    page.screenshot(path=str(SCREENSHOTS / f"{name}-laptop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(size)
