"""What the provider's grants honour: a sign-out ends the codes and tokens of its session.

A code and an access token carry the id of the sign-in session they were issued in
(``oauth_codes.session_id`` / ``oauth_tokens.session_id``); once that session is signed out
(``sso.signin.session.end_session``) they are refused at the token endpoint and at
userinfo, checked at each use by primary key (``sso_ended_sessions``). OIDC RP-initiated
logout / OWASP session management: a sign-out ends what the session gave.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from scim_server.db import db
from scim_server.services import console_access
from sso.extension import sso_extension
from sso.provider.models import OAuthCode, OAuthToken
from tests.sso.provider.test_endpoints import app as app  # the provider's fixtures
from tests.sso.provider.test_endpoints import (
    authorize,
    code_from,
    exchange,
    pkce,
    sign_in,
    userinfo,
)
from tests.sso.provider.test_endpoints import person as person
from tests.sso.provider.test_endpoints import product as product
from tests.support import Scim
from tests.support.console import csrf_token


def _console_person(app: Flask, scim: Scim, user_id: str) -> None:
    """The person may use the console (an auditor), whose sign-out is the one on offer."""
    with db.reader(app)() as s:
        console_access.grant(s, scim.org_id, user_id, "auditor")


def _sign_out(client: FlaskClient) -> None:
    out = client.post("/admin/sign-out", data={"csrf_token": csrf_token(client)})
    assert out.status_code == 303


def _grants(client: FlaskClient, product: tuple[str, str]) -> dict[str, Any]:
    """In the session ``client`` holds: an access token, and a code not yet redeemed."""
    verifier, challenge = pkce()
    resp = exchange(client, product, code_from(authorize(client, product[0], challenge)), verifier)
    assert resp.status_code == 200, resp.get_json()
    pending_verifier, pending_challenge = pkce()
    pending = code_from(authorize(client, product[0], pending_challenge))
    return {
        "access_token": resp.get_json()["access_token"],
        "code": pending,
        "verifier": pending_verifier,
    }


def test_sign_out_ends_the_codes_and_tokens_of_its_session_only(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """The person signs out: the code their session got but the product had not redeemed yet
    is invalid_grant, and the access token it issued is 401 at userinfo (it answered for up
    to SCIM_OAUTH_ACCESS_TOKEN_SECONDS). The same person's session in another browser, and
    what it was given, go on."""
    _console_person(app, scim, person["id"])
    sign_in(app, client, scim.org_id, person["id"])
    ended = _grants(client, product)
    other = app.test_client()
    sign_in(app, other, scim.org_id, person["id"])
    kept = _grants(other, product)
    assert userinfo(client, ended["access_token"]).status_code == 200

    _sign_out(client)

    resp = exchange(client, product, ended["code"], ended["verifier"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    refused = userinfo(client, ended["access_token"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert userinfo(other, kept["access_token"]).status_code == 200
    resp = exchange(other, product, kept["code"], kept["verifier"])
    assert resp.status_code == 200, resp.get_json()
    assert userinfo(other, resp.get_json()["access_token"]).status_code == 200


def test_codes_and_tokens_record_the_session_they_were_issued_in(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """The code and the token it gives carry the session's id, which the cookie holds."""
    sign_in(app, client, scim.org_id, person["id"])
    with client.session_transaction() as sess:
        sid = sess["sso"]["sid"]
    _grants(client, product)
    with db.reader(app)() as s:
        code_sids = set(s.scalars(select(OAuthCode.session_id)))
        token_sids = set(s.scalars(select(OAuthToken.session_id)))
    assert code_sids == token_sids == {sid}


def test_a_token_from_before_the_upgrade_keeps_working_after_a_sign_out(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """Rows issued before sessions were recorded on them have no session id: as before, they
    last until they expire (an hour at most after the upgrade)."""
    _console_person(app, scim, person["id"])
    sign_in(app, client, scim.org_id, person["id"])
    grants = _grants(client, product)
    with db.reader(app)() as s, s.begin():
        s.execute(update(OAuthToken).values(session_id=None))
        s.execute(update(OAuthCode).values(session_id=None))
    _sign_out(client)
    assert userinfo(client, grants["access_token"]).status_code == 200
    resp = exchange(client, product, grants["code"], grants["verifier"])
    assert resp.status_code == 200, resp.get_json()


def test_an_ended_session_is_remembered_while_its_tokens_live(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    person: dict,
    product: tuple[str, str],
    monkeypatch: Any,
) -> None:
    """Ended ids are deleted once the session could no longer be used; a token it issued near
    its end lives an hour past that. A later sign-out's clean-up must not bring it back."""
    extension = sso_extension(app)
    start = datetime.now(UTC)
    monkeypatch.setattr(extension, "clock", lambda: start)
    _console_person(app, scim, person["id"])
    sign_in(app, client, scim.org_id, person["id"])
    grants = _grants(client, product)
    _sign_out(client)
    later = start + timedelta(seconds=app.config["SSO_SESSION_SECONDS"] + 1)
    monkeypatch.setattr(extension, "clock", lambda: later)
    someone = app.test_client()
    user_id = scim.create_user("ada@example.com")["id"]
    _console_person(app, scim, user_id)
    sign_in(app, someone, scim.org_id, user_id)
    _sign_out(someone)  # deletes the ended ids past their time
    assert userinfo(client, grants["access_token"]).status_code == 401
