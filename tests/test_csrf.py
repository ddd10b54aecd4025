"""Cross-site request checks shared by the console and the local sign-in pages (``csrf``).

The session-bound token is always required; on top, the origin a browser names (``Origin``,
else ``Sec-Fetch-Site``) must be our own. No Referer is asked for: every page says
``Referrer-Policy: no-referrer``, under which a browser's form POST says ``Origin: null``.
"""

from __future__ import annotations

import pytest
from flask import Flask

from scim_server import csrf

HTTPS = "https://id.example.com"


@pytest.mark.parametrize(
    ("base_url", "headers", "foreign"),
    [
        (HTTPS, {}, False),  # neither header: a script, an old browser (the token alone)
        (HTTPS, {"Origin": HTTPS}, False),
        (HTTPS, {"Origin": "https://ID.example.com:443"}, False),  # the same origin, spelt out
        (HTTPS + "/", {"Origin": HTTPS}, False),
        (HTTPS, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}, False),
        (HTTPS, {"Sec-Fetch-Site": "same-origin"}, False),
        (HTTPS, {"Sec-Fetch-Site": "none"}, False),  # typed, a bookmark
        (HTTPS, {"Origin": "null"}, False),  # an old browser under no-referrer
        (HTTPS, {"Origin": "https://evil.example"}, True),
        (HTTPS, {"Origin": "http://id.example.com"}, True),  # a downgraded page
        (HTTPS, {"Origin": "https://id.example.com:8443"}, True),
        (HTTPS, {"Origin": "https://sub.id.example.com"}, True),
        (HTTPS, {"Origin": "https://id.example.com.evil.example"}, True),
        (HTTPS, {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, True),
        (HTTPS, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}, True),
        (HTTPS, {"Sec-Fetch-Site": "same-site"}, True),
        (HTTPS, {"Origin": "not a url["}, True),
        ("http://localhost:5000", {"Origin": "http://localhost:5000"}, False),
        ("http://localhost:5000", {"Origin": "http://localhost"}, True),
        (None, {"Origin": "https://id.example.com"}, False),  # development: the request's root
        (None, {"Origin": "https://other.example"}, True),
    ],
)
def test_foreign_origin(
    app: Flask, base_url: str | None, headers: dict[str, str], foreign: bool
) -> None:
    """Origin must be SCIM_BASE_URL's origin (else the request's own root); without a usable
    Origin, Sec-Fetch-Site must be same-origin or none; with neither, nothing is foreign."""
    app.config["BASE_URL"] = base_url
    with app.test_request_context("/admin/x", method="POST", base_url=HTTPS, headers=headers):
        assert (csrf.foreign_origin() is not None) is foreign


def test_safe_methods_are_never_checked(app: Flask) -> None:
    """A GET from anywhere (a link on another site) is no forgery: nothing is asked of it."""
    with app.test_request_context("/admin/", headers={"Origin": "https://evil.example"}):
        csrf.check_csrf()
