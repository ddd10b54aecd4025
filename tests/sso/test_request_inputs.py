"""NUL in what a browser or a client sends to the sign-in and OAuth endpoints (``scim_server.request_inputs``).

PostgreSQL text cannot hold NUL: refused before any lookup, on both engines alike.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient


@pytest.fixture
def app(app: Flask) -> Flask:
    app.config["OAUTH_KEY_SECRET"] = "test-oauth-secret"
    return app


NUL_REQUESTS = {
    "oidc_callback_state": ("GET", "/sso/oidc/{oidc}/callback?state=a%00b&code=x", None),
    "test_link_token": ("GET", "/sso/test/a%00b", None),
    "saml_start_connection_id": ("GET", "/sso/saml/a%00b/start", None),
    "saml_metadata_connection_id": ("GET", "/sso/saml/a%00b/metadata", None),
    "oidc_start_connection_id": ("GET", "/sso/oidc/a%00b/start", None),
    "oidc_callback_connection_id": ("GET", "/sso/oidc/a%00b/callback?state=x", None),
    "saml_acs_path": ("POST", "/sso/saml/a%00b/acs", {"SAMLResponse": "AAAA"}),
    "oauth_authorize_client_id": (
        "GET",
        "/oauth/authorize?response_type=code&client_id=a%00b&redirect_uri=https://x.test/cb",
        None,
    ),
    "password_form_login": ("POST", "/sso/login/password", {"login": "a\x00b", "password": "x"}),
    "forgot_form": ("POST", "/sso/forgot", {"identifier": "a\x00b@example.com"}),
    "oauth_token_client_id": (
        "POST",
        "/oauth/token",
        {"grant_type": "authorization_code", "code": "x", "client_id": "a\x00b"},
    ),
}


@pytest.mark.parametrize("case", sorted(NUL_REQUESTS))
def test_nul_in_a_path_a_parameter_or_a_form_is_refused(
    app: Flask, client: FlaskClient, scim: Any, oidc_conn: dict[str, Any], case: str
) -> None:
    """A NUL in a path segment, the OIDC ``state``, an OAuth ``client_id`` or a form field:
    400 before any lookup (on PostgreSQL the lookup was a 500), a JSON error for OAuth."""
    method, path, form = NUL_REQUESTS[case]
    path = path.format(oidc=oidc_conn["id"])
    resp = client.get(path) if method == "GET" else client.post(path, data=form)
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    if path.startswith("/oauth/"):
        assert resp.get_json()["error"] == "invalid_request"
