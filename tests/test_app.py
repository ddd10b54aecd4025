"""create_app's app-wide response hook: Strict-Transport-Security behind https (RFC 6797)."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support import Scim
from tests.support.console import sign_in_console

HTTPS = "https://localhost"
HSTS = "max-age=31536000; includeSubDomains"


def _behind_https(app: Flask) -> None:
    app.config["BASE_URL"] = HTTPS
    app.config["SESSION_COOKIE_SECURE"] = True


def test_every_kind_of_response_says_hsts_behind_https(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """SCIM_BASE_URL https: the sign-in page, the console, a redirect, SCIM and OAuth JSON,
    an error page all carry HSTS, so a first plain-http visit or an sslstrip downgrade
    cannot expose the sign-in form (OWASP ASVS 14.4.5)."""
    _behind_https(app)
    sign_in_console(app, client, scim, "org_admin")
    responses = {
        "sign-in page": client.get("/sso/login", base_url=HTTPS),
        "console": client.get("/admin/", base_url=HTTPS),
        "redirect": client.get("/", base_url=HTTPS),
        "SCIM": scim.get("/scim/v2/Users", base_url=HTTPS),
        "OAuth": client.get("/.well-known/openid-configuration", base_url=HTTPS),
        "health": client.get("/healthz", base_url=HTTPS),
        "not found": client.get("/nowhere", base_url=HTTPS),
    }
    assert responses["console"].status_code == 200
    assert responses["redirect"].status_code == 302
    for name, resp in responses.items():
        assert resp.headers.get("Strict-Transport-Security") == HSTS, name
        assert re.search(r"max-age=[1-9]", resp.headers["Strict-Transport-Security"])


@pytest.mark.parametrize("base_url", [None, "http://localhost:5000"])
def test_no_hsts_without_https(app: Flask, client: FlaskClient, base_url: str | None) -> None:
    """A plain-http public address (development): no HSTS, which would pin a browser to an
    https the server does not offer."""
    app.config["BASE_URL"] = base_url
    assert "Strict-Transport-Security" not in client.get("/sso/login").headers


def test_hsts_can_be_turned_off(app: Flask, client: FlaskClient) -> None:
    """SCIM_HSTS=false (a proxy in front sets its own): none from us."""
    _behind_https(app)
    app.config["HSTS"] = False
    resp = client.get("/sso/login", base_url=HTTPS)
    assert resp.status_code == 200
    assert "Strict-Transport-Security" not in resp.headers


def test_a_405_of_the_admin_api_names_the_allowed_methods(client: FlaskClient) -> None:
    """RFC 9110 §15.5.6: the app's fallback answer to a 405 carries ``Allow``."""
    resp = client.open("/api/v1/settings", method="PATCH")
    assert resp.status_code == 405 and "PUT" in resp.headers.get("Allow", "")
