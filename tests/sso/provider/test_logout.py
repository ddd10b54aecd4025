"""OpenID Connect RP-Initiated Logout 1.0 (``/oauth/logout``, the ``end_session_endpoint``):
the application signs its person out of this provider too. There was none: on a shared
computer the next person clicking "Sign in" silently became the previous one."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from tests.sso.provider.test_endpoints import (
    REDIRECT,
    authorize,
    error_from,
    login_flow,
    pkce,
)
from tests.sso.provider.test_endpoints import app as app  # the provider's fixtures
from tests.sso.provider.test_endpoints import person as person
from tests.sso.provider.test_endpoints import product as product
from tests.support import Scim
from tests.support.local import csrf_of


def _logout_path(client: FlaskClient) -> str:
    found = client.get("/.well-known/openid-configuration").get_json()
    return urlsplit(found["end_session_endpoint"]).path


def test_the_application_signs_its_person_out_and_gets_them_back(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str], person: dict
) -> None:
    """With the person's ID token as the hint: the session ends at once (a silent renewal
    then is login_required), back to a registered URI with the state."""
    body = login_flow(app, client, product, person)
    resp = client.get(
        _logout_path(client),
        query_string={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": REDIRECT,
            "state": "s-1",
        },
    )
    assert resp.status_code == 303
    where = urlsplit(resp.headers["Location"])
    assert f"{where.scheme}://{where.netloc}{where.path}" == REDIRECT
    assert parse_qs(where.query) == {"state": ["s-1"]}
    again = authorize(client, product[0], pkce()[1], prompt="none")
    assert error_from(again)["error"] == "login_required"


def test_without_the_persons_id_token_the_person_is_asked(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str], person: dict
) -> None:
    """A link another site planted (no hint) signs nobody out by itself: the page asks, and
    its Sign out ends the session."""
    login_flow(app, client, product, person)
    page = client.get(_logout_path(client), query_string={"client_id": product[0]})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Sign out?" in text and 'action="/sso/sign-out"' in text
    still = authorize(client, product[0], pkce()[1], prompt="none")
    assert "code" in parse_qs(urlsplit(still.headers["Location"]).query)
    done = client.post("/sso/sign-out", data={"csrf": csrf_of(text)})
    assert done.status_code == 303
    gone = authorize(client, product[0], pkce()[1], prompt="none")
    assert error_from(gone)["error"] == "login_required"


def test_an_unregistered_return_or_a_foreign_hint_is_refused(
    app: Flask, client: FlaskClient, scim: Scim, product: tuple[str, str], person: dict
) -> None:
    body = login_flow(app, client, product, person)
    path = _logout_path(client)
    evil = client.get(
        path,
        query_string={
            "id_token_hint": body["id_token"],
            "post_logout_redirect_uri": "https://evil.example/cb",
        },
    )
    assert evil.status_code == 400 and "Location" not in evil.headers
    forged = client.get(path, query_string={"id_token_hint": body["id_token"][:-4] + "AAAA"})
    assert forged.status_code == 400
    # Refused, both: the session is untouched.
    still = authorize(client, product[0], pkce()[1], prompt="none")
    assert "code" in parse_qs(urlsplit(still.headers["Location"]).query)
