"""A secret shown once (a new API token, a new OIDC client's secret) never rides the
session cookie readable: it is sealed there for the one page that shows it."""

from __future__ import annotations

import base64
import re
import zlib
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console


def _cookie_payload(set_cookie: str) -> str:
    """What anyone holding the session cookie reads in it, without the server's key."""
    value = set_cookie.split(";", 1)[0].split("=", 1)[1]
    compressed = value.startswith(".")
    data = value.lstrip(".").split(".", 1)[0]
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    return (zlib.decompress(raw) if compressed else raw).decode()


def _session_cookies(app: Flask, resp: Any) -> list[str]:
    return [
        _cookie_payload(v)
        for v in resp.headers.getlist("Set-Cookie")
        if v.startswith(app.config["SESSION_COOKIE_NAME"] + "=")
    ]


def test_a_new_scim_token_does_not_travel_readable_in_the_session_cookie(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Flask's session is a signed, not encrypted, cookie: a token (full provisioning
    rights over the organization) readable there would sit in proxies, logs and crash
    reports, and a saved copy of the cookie would show it again."""
    sign_in_console(app, client, scim, "org_admin")
    resp = client.post(
        "/admin/tokens/",
        data={"csrf_token": csrf_token(client), "name": "Entra prod", "kind": "scim"},
    )
    assert resp.status_code == 303
    cookies = _session_cookies(app, resp)
    shown = client.get(resp.headers["Location"]).get_data(as_text=True)
    secret = re.search(r'<p class="secret" id="new-secret">([^<]+)</p>', shown).group(1)  # type: ignore[union-attr]
    assert cookies, "the POST set the session cookie"
    assert not any(secret in payload for payload in cookies)
    # Shown once: the next view of the page has it no more.
    assert secret not in client.get("/admin/tokens/").get_data(as_text=True)


def test_a_new_oidc_clients_secret_does_not_travel_readable_in_the_session_cookie(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    sign_in_console(app, client, scim, "org_admin")
    resp = client.post(
        "/admin/oidc-clients/",
        data={
            "csrf_token": csrf_token(client),
            "name": "Field app",
            "redirect_uris": "https://app.example/cb",
        },
    )
    assert resp.status_code == 303
    cookies = _session_cookies(app, resp)
    html = client.get("/admin/oidc-clients/").get_data(as_text=True)
    secret = re.search(r'<p class="secret" id="new-client-secret">([^<]+)</p>', html).group(1)  # type: ignore[union-attr]
    assert cookies and not any(secret in payload for payload in cookies)


def test_a_sealed_secret_opens_only_for_the_console_user_it_was_made_for(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The sealed value copied into another console user's session reads as absent."""
    sign_in_console(app, client, scim, "org_admin", "first@example.com")
    resp = client.post(
        "/admin/tokens/",
        data={"csrf_token": csrf_token(client), "name": "Entra prod", "kind": "scim"},
    )
    with client.session_transaction() as sess:
        sealed = sess["console_new_token"]
    other = app.test_client()
    sign_in_console(app, other, scim, "org_admin", "second@example.com")
    with other.session_transaction() as sess:
        sess["console_new_token"] = sealed
    page = other.get("/admin/tokens/").get_data(as_text=True)
    assert 'id="new-secret"' not in page
    assert resp.status_code == 303
