"""A password change, a deactivation or a lock ends the account's sign-in sessions
(``users.session_epoch``).

The session is a signed cookie that cannot be taken back: each use compares the epoch it
was signed in at with the account's, which a password set or removed moves on, and so does
a move to a status that may not sign in (``lifecycle.change_status``): a reactivation or
an unlock gives no session back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sso.extension import sso_extension
from tests.sso.provider.test_endpoints import app as app  # the provider's fixtures
from tests.sso.provider.test_endpoints import authorize, code_from, login_flow, pkce, userinfo
from tests.sso.provider.test_endpoints import person as person
from tests.sso.provider.test_endpoints import product as product
from tests.sso.provider.test_endpoints import sign_in as sso_sign_in
from tests.sso.saml_idp import FakeIdp, valid_response
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_as, sign_in_console
from tests.support.local import (
    forgot,
    give_password,
    mail_bodies,
    person_with_password,
    sign_in,
    signed_in,
)
from tests.support.sso import SamlConnection, make_person

LOGIN = "alice@example.com"
NEW = "Saffron-glacier-window-64"


def test_a_password_reset_ends_the_sessions_signed_in_with_the_old_password(
    app: Flask, scim: Scim, client: FlaskClient
) -> None:
    """Someone who learnt the password signs in; the owner notices and resets it by mail.
    The intruder's session no longer says who is signed in (``/sso/welcome``, the security
    page); the owner's sign-in with the new password does."""
    person_with_password(app, scim, LOGIN)
    intruder = app.test_client()
    assert sign_in(intruder, LOGIN).status_code == 303
    assert signed_in(intruder)

    forgot(client, LOGIN)
    (body,) = mail_bodies(app, scim.org_id, "reset_link")
    token = re.search(r"/sso/reset/([A-Za-z0-9_\-]+)", body).group(1)  # type: ignore[union-attr]
    done = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert done.status_code == 200

    assert not signed_in(intruder)
    assert intruder.get("/sso/security").status_code != 200
    assert sign_in(client, LOGIN, NEW).status_code == 303
    assert signed_in(client)


def test_an_admins_password_reset_signs_the_person_out_of_the_console(
    app: Flask, scim: Scim, admin: Scim, client: FlaskClient
) -> None:
    """An admin resets an org admin's password (it is gone, a link is mailed): whoever is
    signed in to the console as that person is out at their next click."""
    boss = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    give_password(app, scim.org_id, boss)
    assert client.get("/admin/").status_code == 200
    resp = admin.post(f"/api/v1/users/{boss}/password/reset", None)
    assert resp.status_code == 202, resp.get_json()
    page = client.get("/admin/")
    assert page.status_code == 303 and "/sso/login" in page.headers["Location"]


def test_a_first_password_ends_no_session(app: Flask, scim: Scim, client: FlaskClient) -> None:
    """A person signed in through their IdP who is given a first password stays signed in:
    nothing was proved with a password that changed."""
    user_id = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    give_password(app, scim.org_id, user_id)
    assert client.get("/admin/").status_code == 200


def test_an_idps_password_change_signs_the_person_out(
    app: Flask, scim: Scim, client: FlaskClient
) -> None:
    """Okta's password sync (SCIM ``password``) replaces the password: sessions end; the
    same password sent again changes nothing and ends nothing."""
    boss = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    give_password(app, scim.org_id, boss)
    changed = scim.patch_ops(
        f"/scim/v2/Users/{boss}", {"op": "replace", "path": "password", "value": NEW}
    )
    assert changed.status_code == 200
    page = client.get("/admin/")
    assert page.status_code == 303 and "/sso/login" in page.headers["Location"]
    sign_in_as(app, client, scim.org_id, boss)  # signed in anew
    again = scim.patch_ops(
        f"/scim/v2/Users/{boss}", {"op": "replace", "path": "password", "value": NEW}
    )
    assert again.status_code == 200
    assert client.get("/admin/").status_code == 200


# -- a deactivation or a lock ends the sessions too ---------------------------------------
#
# The IdP deactivates an account (Entra's soft delete in an incident, Okta's deactivate)
# and later reactivates it (Entra's restore, Okta's reactivate): a session or token from
# before the deactivation, a stolen one included, must not come back with the account.

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def _active(scim: Scim, user_id: str, value: object) -> None:
    """The IdP's PATCH of ``active`` (``"False"``: Entra's legacy string form)."""
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "Replace", "path": "active", "value": value}
    )
    assert resp.status_code == 200, resp.get_json()


def _signed_out(client: FlaskClient) -> None:
    page = client.get("/admin/")
    assert page.status_code == 303, page.status_code
    assert page.headers["Location"].startswith("/sso/login")


def test_an_access_token_from_before_a_deactivation_stays_dead_after_the_reactivation(
    app: Flask, client: FlaskClient, scim: Scim, product: Any, person: dict[str, Any]
) -> None:
    body = login_flow(app, client, product, person)
    assert userinfo(client, body["access_token"]).status_code == 200
    _active(scim, person["id"], "False")
    assert userinfo(client, body["access_token"]).status_code == 401
    _active(scim, person["id"], "True")
    # The token was issued to the session the deactivation ended.
    assert userinfo(client, body["access_token"]).status_code == 401


def test_an_sso_session_from_before_a_deactivation_gives_no_code_after_the_reactivation(
    app: Flask, client: FlaskClient, scim: Scim, product: Any, person: dict[str, Any]
) -> None:
    sso_sign_in(app, client, scim.org_id, person["id"])
    _active(scim, person["id"], False)
    _active(scim, person["id"], True)
    _, challenge = pkce()
    location = authorize(client, product[0], challenge, prompt="none").headers["Location"]
    assert "code=" not in location and "error=login_required" in location, location


def test_a_console_session_from_before_a_deactivation_is_over_after_the_reactivation(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    boss = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    assert client.get("/admin/").status_code == 200
    _active(scim, boss, False)
    _active(scim, boss, True)
    _signed_out(client)
    sign_in_as(app, client, scim.org_id, boss)  # a sign-in after the reactivation works
    assert client.get("/admin/").status_code == 200


def test_the_idps_put_with_active_false_ends_the_sessions(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    boss = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    doc = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "boss@example.com",
        "emails": [{"value": "boss@example.com", "primary": True}],
    }
    for active in (False, True):
        resp = scim.put(f"/scim/v2/Users/{boss}", {**doc, "active": active})
        assert resp.status_code == 200, resp.get_json()
    _signed_out(client)


def test_a_bulk_deactivation_ends_the_sessions(app: Flask, client: FlaskClient, scim: Scim) -> None:
    boss = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    for active in (False, True):
        op = {"op": "replace", "path": "active", "value": active}
        resp = scim.post(
            "/scim/v2/Bulk",
            {
                "schemas": [BULK],
                "Operations": [
                    {
                        "method": "PATCH",
                        "path": f"/Users/{boss}",
                        "data": {
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [op],
                        },
                    }
                ],
            },
        )
        assert resp.get_json()["Operations"][0]["status"] == "200", resp.get_json()
    _signed_out(client)


def test_an_admins_lock_ends_the_sessions_and_the_unlock_gives_none_back(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    boss = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    for op in ("lock", "unlock"):
        resp = admin.post(f"/api/v1/users/{boss}/actions/{op}", None)
        assert resp.status_code == 200, resp.get_json()
    _signed_out(client)


def test_a_lock_in_the_console_ends_the_locked_persons_sessions(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    ada = sign_in_console(app, client, scim, "auditor", "ada@example.com")
    manager = app.test_client()
    sign_in_console(app, manager, scim, "org_admin", "manager@example.com")
    for op in ("lock", "unlock", "deactivate", "activate"):
        data = {"csrf_token": csrf_token(manager), "op": op}
        assert manager.post(f"/admin/users/{ada}/status", data=data).status_code == 303
        if op == "lock":
            _signed_out(client)
            sign_in_as(app, client, scim.org_id, ada)  # unlocked later: signed in anew
    _signed_out(client)
    assert manager.get("/admin/").status_code == 200  # the actor's own session is untouched


def test_an_automatic_lockout_pauses_the_sessions_and_does_not_end_them(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Ten wrong passwords lock the account: its sessions are refused while the lock lasts,
    and are the owner's again when it ends. A stranger's guesses cause this lock, so ending
    the sessions for good would let anyone sign the owner out of everything at will."""
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 0
    user_id = person_with_password(app, scim, LOGIN)
    assert sign_in(client, LOGIN).status_code == 303 and signed_in(client)
    attacker = app.test_client()
    for i in range(10):
        assert sign_in(attacker, LOGIN, f"wrong password number {i}").status_code == 401
    assert admin.get(f"/api/v1/users/{user_id}").get_json()["status"] == "AUTO_LOCKED"
    assert not signed_in(client)
    resp = admin.post(f"/api/v1/users/{user_id}/actions/unlock", None)
    assert resp.status_code == 200, resp.get_json()
    assert signed_in(client)


# -- sign-out ends the session on the server ------------------------------------------------
#
# The cookie is signed, not stored: each session has a random id (``start_session``), and
# signing out records it as ended until the session could have lasted anyway
# (``SCIM_SSO_SESSION_SECONDS``); ``speaks_for`` refuses an ended id. A copy of the cookie
# (malware, a proxy log, a shared machine's browser profile) is as dead as the original.


def _sign_out(client: FlaskClient) -> None:
    out = client.post("/admin/sign-out", data={"csrf_token": csrf_token(client)})
    assert out.status_code == 303


def _copy_of_cookie(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie, taken now."""
    name = app.config["SESSION_COOKIE_NAME"]
    copy = app.test_client()
    copy.set_cookie(name, client.get_cookie(name).value)  # type: ignore[union-attr]
    return copy


def _ended_rows(app: Flask) -> list[tuple[str, Any]]:
    from scim_server.db import db
    from sso.connections.models import SsoEndedSession

    with db.reader(app)() as s:
        return [(r.id, r.expires_at) for r in s.query(SsoEndedSession).order_by("expires_at")]


def test_sign_out_ends_the_session_for_a_copied_cookie_too(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An org admin signs out on a shared or compromised machine; someone who copied the
    session cookie before replays it: the console answered as the org admin until the
    12-hour sign-on limit. OWASP ASVS 3.3.1: logout invalidates the session on the server.
    Found by a probe."""
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    assert client.get("/admin/access/").status_code == 200
    stolen = _copy_of_cookie(app, client)
    _sign_out(client)
    assert client.get("/admin/access/").status_code != 200  # this browser is out
    assert stolen.get("/admin/access/").status_code != 200


def test_a_signed_out_copy_gets_no_code_from_the_provider_nor_the_sso_pages(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The same session signs the person in to the product (our OIDC provider's authorize)
    and opens /sso/welcome and /sso/security: after sign-out the copy is sent to sign in."""
    from scim_server.db import db
    from sso.provider.clients import create_client

    with db.reader(app)() as s:
        product, _secret = create_client(s, "Product", ["https://product.example.com/cb"])
    query = {
        "response_type": "code",
        "client_id": product.client_id,
        "redirect_uri": "https://product.example.com/cb",
        "scope": "openid",
        "state": "st",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    stolen = _copy_of_cookie(app, client)
    before = stolen.get("/oauth/authorize", query_string=query)
    assert "/sso/login" not in before.headers.get("Location", "")  # the session vouched
    assert stolen.get("/sso/welcome").status_code == 200
    _sign_out(client)
    after = stolen.get("/oauth/authorize", query_string=query)
    assert after.status_code == 302 and after.headers["Location"].startswith("/sso/login")
    assert stolen.get("/sso/welcome").status_code == 303
    assert stolen.get("/sso/security").status_code != 200


def test_a_console_session_ended_by_the_idle_limit_ends_for_a_copy_too(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The person leaves the console idle; their next click signs them out. Someone using a
    copy all along (so the copy itself was never idle) is out as well."""
    import time

    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    assert client.get("/admin/").status_code == 200
    stolen = _copy_of_cookie(app, client)
    assert stolen.get("/admin/").status_code == 200
    with client.session_transaction() as sess:
        sess["console_seen"] = int(time.time()) - app.config["CONSOLE_IDLE_SECONDS"] - 1
    assert client.get("/admin/").status_code == 303
    assert stolen.get("/admin/").status_code == 303


def test_ended_ids_are_kept_for_the_sessions_lifetime_then_deleted(
    app: Flask, client: FlaskClient, scim: Scim, monkeypatch: Any
) -> None:
    """An ended id is kept until the session would have expired anyway (its sign-in time
    plus SCIM_SSO_SESSION_SECONDS); the next sign-out deletes the rows past that."""
    from datetime import UTC, datetime, timedelta

    from sso.extension import sso_extension

    extension = sso_extension(app)
    start = datetime.now(UTC)
    monkeypatch.setattr(extension, "clock", lambda: start)
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    _sign_out(client)
    ((first, expires),) = _ended_rows(app)
    # The session's lifetime, then an access token from a code issued at its last moment.
    lifetime = sum(
        app.config[k]
        for k in ("SSO_SESSION_SECONDS", "OAUTH_CODE_SECONDS", "OAUTH_ACCESS_TOKEN_SECONDS")
    )
    assert abs((expires - start).total_seconds() - lifetime) < 2
    later = start + timedelta(seconds=lifetime + 1)
    monkeypatch.setattr(extension, "clock", lambda: later)
    other = app.test_client()
    sign_in_console(app, other, scim, "auditor", "ada@example.com")
    _sign_out(other)
    (row,) = _ended_rows(app)
    assert row[0] != first


def test_a_session_without_an_id_is_refused(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A cookie from before sessions had ids could not be ended: it is not taken (the person
    signs in once more)."""
    user_id = sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    with client.session_transaction() as sess:
        sess["sso"] = {k: v for k, v in sess["sso"].items() if k != "sid"}
    page = client.get("/admin/")
    assert page.status_code == 303 and "/sso/login" in page.headers["Location"]
    sign_in_as(app, client, scim.org_id, user_id)
    assert client.get("/admin/").status_code == 200


# -- the connection a session came through ------------------------------------------------
#
# An admin disables (or deletes) an SSO connection, e.g. a partner's IdP found compromised:
# no new sign-in goes through it, and the sessions it already made end too, in the console,
# the SSO pages and our OIDC provider's authorize; the person signs in again through a
# connection still trusted. Found by a probe.


@pytest.mark.parametrize("action", ["disable", "delete"])
def test_the_sessions_of_a_disabled_or_deleted_connection_end(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    product: Any,
    action: str,
) -> None:
    """Signed in through a SAML connection: another connection's change leaves the session;
    this one's disabling or deletion ends it for /sso/welcome and the provider."""
    make_person(app, scim)
    resp = saml_connection.post(
        valid_response(saml_connection.assertion(saml_connection.start()), saml_idp)
    )
    assert resp.status_code == 303
    _verifier, challenge = pkce()
    assert signed_in(client)
    code_from(authorize(client, product[0], challenge))
    other = admin.post(
        "/api/v1/sso/connections",
        {"protocol": "saml", "name": "Partner", "metadata_xml": saml_idp.metadata_xml()},
    ).get_json()
    assert (
        admin.patch(f"/api/v1/sso/connections/{other['id']}", {"enabled": False}).status_code == 200
    )
    assert signed_in(client)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    if action == "disable":
        assert admin.patch(url, {"enabled": False}).status_code == 200
    else:
        # The domain bound to it goes first (the API refuses otherwise).
        assert admin.delete("/api/v1/sso/domains/example.com").status_code == 204
        assert admin.delete(url).status_code == 204
    assert not signed_in(client)
    page = authorize(client, product[0], challenge)
    assert page.status_code == 302 and page.headers["Location"].startswith("/sso/login")


def test_a_re_enabled_connection_gives_back_no_session_from_before_its_disabling(
    app: Flask,
    admin: Scim,
    client: FlaskClient,
    scim: Scim,
    saml_connection: SamlConnection,
    saml_idp: FakeIdp,
    product: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Disabled (a partner's IdP found compromised), then enabled again once it is safe: the
    sessions the connection made before the disabling stay over (a copy of a cookie stolen
    through the compromised IdP included), for /sso/welcome and the provider's authorize;
    the person signs in again and that session works. The new sign-in a second later on the
    sign-in clock: one in the very second of the disabling counts as before it (whole
    seconds, fail closed)."""
    make_person(app, scim)

    def saml_sign_in() -> None:
        resp = saml_connection.post(
            valid_response(saml_connection.assertion(saml_connection.start()), saml_idp)
        )
        assert resp.status_code == 303

    saml_sign_in()
    assert signed_in(client)
    stolen = _copy_of_cookie(app, client)
    url = f"/api/v1/sso/connections/{saml_connection.id}"
    assert admin.patch(url, {"enabled": False}).status_code == 200
    assert not signed_in(client)
    assert admin.patch(url, {"enabled": True}).status_code == 200

    _, challenge = pkce()
    for browser in (client, stolen):
        assert not signed_in(browser)
        page = authorize(browser, product[0], challenge)
        assert page.status_code == 302 and page.headers["Location"].startswith("/sso/login")
    later = datetime.now(UTC) + timedelta(seconds=1)
    monkeypatch.setattr(sso_extension(app), "clock", lambda: later)
    saml_sign_in()
    assert signed_in(client)
    code_from(authorize(client, product[0], challenge))
    assert not signed_in(stolen)
