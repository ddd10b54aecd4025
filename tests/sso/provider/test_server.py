"""What the provider's grants honour (``sso.provider.server``).

A sign-out ends the codes and tokens of its session: a code and an access token carry the
id of the sign-in session they were issued in (``oauth_codes.session_id`` /
``oauth_tokens.session_id``); once that session is signed out
(``sso.signin.session.end_session``) they are refused at the token endpoint and at
userinfo, checked at each use by primary key (``sso_ended_sessions``). OIDC RP-initiated
logout / OWASP session management: a sign-out ends what the session gave.

And the authorization request's and the token request's checks the code grant adds to
authlib's: a redirect_uri not registered, a prompt or response_mode we cannot honour,
a code redeemed twice at once, a token request naming two clients.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import func, select, update

from scim_server.db import db
from scim_server.models import AuditEvent
from scim_server.services import console_access
from sso.extension import sso_extension
from sso.provider.clients import create_client
from sso.provider.models import OAuthCode, OAuthToken, secret_hash
from sso.provider.server import CodeGrant
from tests.sso.provider.test_endpoints import (
    ODD_CHARACTERS,
    REDIRECT,
    authorize,
    code_from,
    codes,
    error_from,
    exchange,
    login_flow,
    pkce,
    sign_in,
    userinfo,
)
from tests.sso.provider.test_endpoints import app as app  # the provider's fixtures
from tests.sso.provider.test_endpoints import person as person
from tests.sso.provider.test_endpoints import product as product
from tests.sso.saml_idp import FakeIdp, valid_response
from tests.support import Scim
from tests.support.console import csrf_token
from tests.support.credentials import set_settings
from tests.support.local import person_with_password
from tests.support.local import sign_in as password_sign_in
from tests.support.sso import SamlConnection, make_person


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


# -- the connection the session came through --------------------------------------------------
#
# An admin disables or deletes an SSO connection (a partner's IdP found compromised): the
# sessions it made end (``sso.signin.session.connection_open``), and so do the codes and
# tokens issued in them (``oauth_codes.connection_id`` / ``oauth_tokens.connection_id``),
# checked at each use by the connection's primary key. A re-enabled connection vouches only
# for sign-ins after its disabling (``sso_connections.disabled_at``). Found by a probe.


def _saml_sign_in(conn: SamlConnection, idp: FakeIdp) -> None:
    """The person signs in through ``conn`` in its browser (``conn.client``)."""
    resp = conn.post(valid_response(conn.assertion(conn.start()), idp))
    assert resp.status_code == 303, resp.get_data(as_text=True)


def _password_grants(
    app: Flask, admin: Scim, scim: Scim, product: tuple[str, str]
) -> tuple[FlaskClient, dict[str, Any]]:
    """Another person signed in with a password (no connection) in another browser, and what
    that session was given."""
    set_settings(admin, sign_in_methods="password_allowed")
    person_with_password(app, scim, "bob@partner.test")
    browser = app.test_client()
    assert password_sign_in(browser, "bob@partner.test").status_code == 303
    return browser, _grants(browser, product)


def _connection_ids(app: Flask) -> tuple[set[str | None], set[str | None]]:
    with db.reader(app)() as s:
        return set(s.scalars(select(OAuthCode.connection_id))), set(
            s.scalars(select(OAuthToken.connection_id))
        )


def _refused(client: FlaskClient, product: tuple[str, str], grants: dict[str, Any]) -> None:
    """The code is invalid_grant at the token endpoint, the access token 401 at userinfo."""
    resp = exchange(client, product, grants["code"], grants["verifier"])
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant", resp.get_json()
    refused = userinfo(client, grants["access_token"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def _honoured(client: FlaskClient, product: tuple[str, str], grants: dict[str, Any]) -> None:
    """The access token answers at userinfo; the code gives a token that does too."""
    assert userinfo(client, grants["access_token"]).status_code == 200
    resp = exchange(client, product, grants["code"], grants["verifier"])
    assert resp.status_code == 200, resp.get_json()
    assert userinfo(client, resp.get_json()["access_token"]).status_code == 200


@pytest.mark.parametrize("action", ["disable", "delete"])
def test_a_disabled_or_deleted_connection_ends_the_codes_and_tokens_issued_through_it(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    product: tuple[str, str],
    action: str,
) -> None:
    """Signed in through a SAML connection, the person got an access token and a code not
    yet redeemed: once the admin disables (or deletes) the connection, the code is
    invalid_grant and the token 401 at userinfo (they lasted a minute and an hour). Another
    connection's disabling changes nothing; a password session's grants go on."""
    make_person(app, scim)
    _saml_sign_in(saml_connection, saml_idp)
    ended = _grants(client, product)
    browser, kept = _password_grants(app, admin, scim, product)
    assert _connection_ids(app) == ({saml_connection.id, None}, {saml_connection.id, None})
    partner = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Partner", "metadata_xml": saml_idp.metadata_xml()},
    ).get_json()
    assert (
        admin.patch(f"/api/v1/sso/connections/{partner['id']}", {"enabled": False}).status_code
        == 200
    )
    assert userinfo(client, ended["access_token"]).status_code == 200

    url = f"/api/v1/sso/connections/{saml_connection.id}"
    if action == "disable":
        assert admin.patch(url, {"enabled": False}).status_code == 200
    else:
        # The domain bound to it goes first (the API refuses otherwise).
        assert admin.delete("/api/v1/sso/domains/example.com").status_code == 204
        assert admin.delete(url).status_code == 204

    _refused(client, product, ended)
    _honoured(browser, product, kept)


def test_a_re_enabled_connection_gives_back_no_code_or_token_from_before_its_disabling(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    product: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Disabled, then enabled again: the code and token issued before the disabling stay
    refused (they came back to life with the connection); a sign-in after it gets grants
    that work. The sign-in a second later on the sign-in clock: one in the very second of
    the disabling counts as before it (whole seconds, fail closed)."""
    make_person(app, scim)
    _saml_sign_in(saml_connection, saml_idp)
    before = _grants(client, product)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.patch(url, {"enabled": False}).status_code == 200
    assert admin.patch(url, {"enabled": True}).status_code == 200

    _refused(client, product, before)
    later = datetime.now(UTC) + timedelta(seconds=1)
    monkeypatch.setattr(sso_extension(app), "clock", lambda: later)
    _saml_sign_in(saml_connection, saml_idp)
    _honoured(client, product, _grants(client, product))


def test_grants_from_before_the_upgrade_are_not_checked_against_a_connection(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    product: tuple[str, str],
) -> None:
    """Rows issued before codes and tokens recorded their connection have none: as before,
    they last until they expire (a minute, an hour) whatever becomes of the connection."""
    make_person(app, scim)
    _saml_sign_in(saml_connection, saml_idp)
    grants = _grants(client, product)
    with db.reader(app)() as s, s.begin():
        s.execute(update(OAuthToken).values(connection_id=None, auth_time=None))
        s.execute(update(OAuthCode).values(connection_id=None))
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.patch(url, {"enabled": False}).status_code == 200
    _honoured(client, product, grants)


# -- the authorization request ------------------------------------------------------------------


@pytest.mark.parametrize("value", ODD_CHARACTERS, ids=["quote", "backslash", "tab", "rlo", "e"])
def test_an_unregistered_redirect_uri_is_a_page_whatever_it_holds(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str], value: str
) -> None:
    """RFC 6749 §4.1.2.1: a redirect_uri not registered for the client gets our page, never a
    redirect, whatever it holds (authlib put it in the description: a quote, a tab or
    non-ASCII made its character check a 500)."""
    sign_in(app, client, scim.org_id, person["id"])
    uri = f"https://product.example.com/caf{value}"
    resp = authorize(client, product[0], pkce()[1], redirect_uri=uri)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert "text/html" in resp.content_type
    assert "not registered" in resp.get_data(as_text=True)
    assert codes(app) == []


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        ("select_account", "account_selection_required"),
        ("consent", "consent_required"),
        ("login consent", "consent_required"),
        ("login select_account", "account_selection_required"),
    ],
)
@pytest.mark.parametrize("signed_in", [True, False], ids=["session", "no-session"])
def test_a_prompt_the_provider_cannot_honour_is_an_error_to_the_client(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    person: dict,
    product: tuple[str, str],
    prompt: str,
    error: str,
    signed_in: bool,
) -> None:
    """OIDC Core §3.1.2.1: select_account / consent that the provider cannot obtain "MUST
    return an error": account_selection_required / consent_required at the redirect_uri
    with the state (a signed-in person's product asking to switch account got a code for
    the current one). Discovery offers only none and login."""
    if signed_in:
        sign_in(app, client, scim.org_id, person["id"])
    query = error_from(authorize(client, product[0], pkce()[1], prompt=prompt))
    assert query["error"] == error
    assert codes(app) == []


@pytest.mark.parametrize("mode", ["form_post", "fragment", "query.jwt", 'x"\u00e9'])
@pytest.mark.parametrize("signed_in", [True, False], ids=["session", "no-session"])
def test_an_unsupported_response_mode_is_refused_not_ignored(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    person: dict,
    product: tuple[str, str],
    mode: str,
    signed_in: bool,
) -> None:
    """Discovery says response_modes_supported ["query"]: another mode is invalid_request at
    the redirect_uri (in its query, with the state), no code (it was answered in the query
    as if asked for, the code in a URL the client meant to keep it out of)."""
    if signed_in:
        sign_in(app, client, scim.org_id, person["id"])
    query = error_from(authorize(client, product[0], pkce()[1], response_mode=mode))
    assert query["error"] == "invalid_request"
    assert "response_mode" in query["error_description"]
    assert codes(app) == []


def test_response_mode_query_is_the_default_and_allowed(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """response_mode=query, the one supported, gives the code as without it."""
    sign_in(app, client, scim.org_id, person["id"])
    code_from(authorize(client, product[0], pkce()[1], response_mode="query"))


# -- the token request ---------------------------------------------------------------------------


def test_a_code_redeemed_twice_at_once_revokes_the_winners_tokens(
    app: Flask,
    client: FlaskClient,
    scim: Scim,
    person: dict,
    product: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RFC 6749 §4.1.2 on two nodes: the second redemption read the code before the first
    committed, then loses the atomic claim: it is invalid_grant, its own token is not kept,
    and the tokens the first got are revoked, logged (they stayed valid), as a reuse's."""
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    first = exchange(client, product, code, verifier)
    assert first.status_code == 200
    access = first.get_json()["access_token"]

    def read_before_the_first_commit(self: CodeGrant, code: str, client: Any) -> OAuthCode:
        """The other node's read: the row as it was before the first redemption committed."""
        row = db.session.get(OAuthCode, secret_hash(code))
        assert row is not None
        columns = OAuthCode.__table__.columns
        return OAuthCode(**{c.key: getattr(row, c.key) for c in columns} | {"used_at": None})

    monkeypatch.setattr(CodeGrant, "query_authorization_code", read_before_the_first_commit)
    second = exchange(client, product, code, verifier)
    monkeypatch.undo()
    assert second.status_code == 400 and second.get_json()["error"] == "invalid_grant"
    assert userinfo(client, access).status_code == 401
    with db.reader(app)() as s:
        tokens = s.execute(select(OAuthToken.token_hash, OAuthToken.revoked_at)).all()
        details = s.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.action == "oauth.token", AuditEvent.outcome == "failure"
            )
        ).all()
        issued = s.scalar(
            select(func.count()).where(
                AuditEvent.action == "oauth.token", AuditEvent.outcome == "success"
            )
        )
    assert [(t, r is not None) for t, r in tokens] == [(secret_hash(access), True)]
    assert len(details) == 1 and "reused" in (details[0] or "")
    assert issued == 1  # the loser's own "tokens issued" event went with its rollback


def test_a_token_request_naming_another_client_in_the_body_is_invalid_request(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """RFC 6749 §2.3 / §5.2: Basic credentials of one client and a client_id of another in
    the body is a bad request (the body's was ignored), the code left unused."""
    with db.reader(app)() as s:
        other, _ = create_client(s, "Other", [REDIRECT])
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    resp = exchange(client, product, code, verifier, client_id=other.client_id)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"] == "invalid_request"
    assert [c.used_at for c in codes(app)] == [None]
    assert exchange(client, product, code, verifier, client_id=product[0]).status_code == 200


def test_a_code_of_one_client_is_useless_to_another_and_stays_redeemable(
    app: Flask, client: FlaskClient, scim: Scim, person: dict, product: tuple[str, str]
) -> None:
    """RFC 6749 §4.1.3: a code is bound to its client: another client's try is
    invalid_grant and leaves it unused for its own."""
    with db.reader(app)() as s:
        other, secret = create_client(s, "Other", [REDIRECT])
    assert secret is not None
    sign_in(app, client, scim.org_id, person["id"])
    verifier, challenge = pkce()
    code = code_from(authorize(client, product[0], challenge))
    stolen = exchange(client, (other.client_id, secret), code, verifier)
    assert stolen.status_code == 400 and stolen.get_json()["error"] == "invalid_grant"
    assert exchange(client, product, code, verifier).status_code == 200


def test_an_id_token_or_a_forged_jwt_is_no_access_token(
    app: Flask, client: FlaskClient, person: dict, product: tuple[str, str]
) -> None:
    """RFC 6750: only a stored access token's hash opens userinfo; the id_token, or a JWT
    naming the person's sub signed with any key, is 401."""
    body = login_flow(app, client, product, person)
    assert userinfo(client, body["id_token"]).status_code == 401
    forged = jwt.encode({"alg": "HS256"}, {"sub": person["id"]}, OctKey.import_key("k" * 32))
    assert userinfo(client, forged).status_code == 401
