"""The password form carries a CSRF token, and its POST is refused without it (login CSRF)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.support import Scim
from tests.support.local import PASSWORD, give_password, signed_in
from tests.support.sso import make_person

LOGIN = "alice@example.com"


def _person(app: Flask, scim: Scim) -> str:
    user_id = make_person(app, scim, LOGIN)
    give_password(app, scim.org_id, user_id)
    return user_id


def test_the_password_form_refuses_a_post_without_its_csrf_token(
    app: Flask, scim: Scim, client: FlaskClient
) -> None:
    """README: on the local sign-in pages "Forms carry a CSRF token".

    The password form carries none and ``POST /sso/login/password`` checks none, so a
    page on any site can sign a visitor's browser in as the attacker's account (login
    CSRF): whatever the victim then enrols or types lands in the attacker's account.
    """
    _person(app, scim)
    page = client.post("/sso/login", data={"email": LOGIN, "next": "/after"})
    assert page.status_code == 200
    forged = client.post(
        "/sso/login/password", data={"login": LOGIN, "password": PASSWORD, "next": "/after"}
    )
    assert forged.status_code != 303
    assert not signed_in(client)
