"""The local sign-in pages' forms and JSON endpoints go through the console's origin check
(``scim_server.csrf.foreign_origin``), besides their own session token (``web.check_csrf``)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.sso.local.conftest import LOGIN
from tests.support import Clock, Scim
from tests.support.local import PASSWORD, csrf_of, form_token, sign_in, signed_in


@pytest.mark.usefixtures("person", "clock")
def test_the_password_form_from_another_site_is_refused(app: Flask, client: FlaskClient) -> None:
    """The local sign-in's forms go through the same origin check: a foreign page's POST
    with the right token (login CSRF) is refused as an expired form; our own page's works."""
    fields = {"csrf": form_token(client), "login": LOGIN, "password": PASSWORD, "next": "/after"}
    resp = client.post(
        "/sso/login/password", data=fields, headers={"Origin": "https://evil.example"}
    )
    assert resp.status_code == 400 and "no longer valid" in resp.get_data(as_text=True)
    assert not signed_in(client)
    resp = client.post(
        "/sso/login/password",
        data=fields,
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    )
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert signed_in(client)


def test_passkey_json_from_another_site_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, person: str, clock: Clock
) -> None:
    """The passkey / MFA JSON endpoints too: X-CSRF-Token right, Sec-Fetch-Site cross-site:
    400; from our own page (its Origin): the options."""
    assert sign_in(client, LOGIN).status_code == 303
    token = csrf_of(client.get("/sso/security").get_data(as_text=True))
    url = "/sso/passkeys/register/options"
    foreign = {"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"}
    resp = client.post(url, json={}, headers=foreign)
    assert resp.status_code == 400
    own = {"X-CSRF-Token": token, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    resp = client.post(url, json={}, headers=own)
    assert resp.status_code == 200, resp.get_data(as_text=True)
