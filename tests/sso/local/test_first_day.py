"""A person's first day, end to end: SCIM create → welcome mail over SMTP → forced change → TOTP.

Nothing is set up behind the pages: the IdP creates the user over SCIM, the
worker mails the welcome through a real SMTP server, and the test reads the
temporary password out of that mail and goes through the sign-in pages as the
person would, with the organization requiring MFA.
"""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from scim_server.models import User
from tests.support import Clock, Scim
from tests.support.admin_api import events, ok
from tests.support.credentials import employee, mail_worker, temporary_password, text_of
from tests.support.local import code_now, codes_of, csrf_of, secret_of, signed_in
from tests.support.sso import read, set_default_license

LOGIN = "dana@example.com"
CHOSEN = "lantern orchard quietly"


def _password_step(client: FlaskClient, password: str, next_path: str) -> tuple[int, str]:
    """The sign-in page as a person uses it: the e-mail first, then the password form."""
    assert client.get(f"/sso/login?next={next_path}").status_code == 200
    form = client.post("/sso/login", data={"email": LOGIN, "next": next_path})
    body = form.get_data(as_text=True)
    assert form.status_code == 200 and 'action="/sso/login/password"' in body
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body))
    resp = client.post("/sso/login/password", data={**fields, "login": LOGIN, "password": password})
    return resp.status_code, resp.headers.get("Location", "")


def _sign_out(client: FlaskClient) -> None:
    client.delete_cookie("session", domain="localhost")
    assert not signed_in(client)


def test_first_day_from_scim_create_to_totp_sign_in(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, clock: Clock, smtp, tmp_path
) -> None:
    recorder, port = smtp
    set_default_license(app, scim.org_id)
    # PUT replaces the whole document: the default license stays in it.
    wanted = {"require_mfa": True, "default_license": "Engineer"}
    assert ok(admin.put("/api/v1/settings", wanted))["require_mfa"] is True

    # The IdP creates Dana; the worker's next pass mails her the welcome.
    created = employee(scim, LOGIN, displayName="Dana Smith")
    assert recorder.messages == []  # nothing is sent inside the SCIM request
    clock.advance(60)  # the test's clock started before the create
    mail_worker(app, port, tmp_path, clock).run_once()
    (welcome,) = recorder.messages
    assert welcome["To"] == LOGIN and f"Username: {LOGIN}" in text_of(welcome)
    temporary = temporary_password(welcome)

    # Signing in with it leads to choosing a new password before anything else.
    status, location = _password_step(client, temporary, "/app")
    assert (status, location) == (303, "/sso/password/change")
    assert not signed_in(client)
    page = client.get("/sso/password/change").get_data(as_text=True)
    resp = client.post(
        "/sso/password/change",
        data={"password": CHOSEN, "confirm": CHOSEN, "csrf": csrf_of(page)},
    )
    # The organization requires MFA: enrolment comes next, still not signed in.
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa/enrol"
    assert not signed_in(client)
    page = client.get("/sso/mfa/enrol").get_data(as_text=True)
    secret = secret_of(page)
    resp = client.post(
        "/sso/mfa/enrol", data={"code": code_now(secret, clock.now), "csrf": csrf_of(page)}
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "/sso/mfa/codes"
    page = client.get("/sso/mfa/codes").get_data(as_text=True)
    assert len(codes_of(page)) == 10
    resp = client.post("/sso/mfa/codes", data={"csrf": csrf_of(page)})
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    assert signed_in(client)
    with read(app) as s:
        assert s.get(User, (scim.org_id, created["id"])).status == "ACTIVE"

    # The next day: password, then a code from the app.
    _sign_out(client)
    clock.advance(86400)
    assert _password_step(client, temporary, "/app")[0] == 401  # the temporary one is gone
    status, location = _password_step(client, CHOSEN, "/app")
    assert (status, location) == (303, "/sso/mfa")
    code = code_now(secret, clock.now)
    page = client.get("/sso/mfa").get_data(as_text=True)
    resp = client.post("/sso/mfa", data={"code": code, "csrf": csrf_of(page)})
    assert resp.status_code == 303 and resp.headers["Location"] == "/app"
    assert signed_in(client)

    # The same code, a second time within its 30 seconds: refused.
    _sign_out(client)
    assert _password_step(client, CHOSEN, "/app") == (303, "/sso/mfa")
    page = client.get("/sso/mfa").get_data(as_text=True)
    resp = client.post("/sso/mfa", data={"code": code, "csrf": csrf_of(page)})
    assert resp.status_code == 401 and not signed_in(client)

    # The log tells the story, and never holds a secret.
    logged = events(admin, resource_id=created["id"])
    actions = [e["action"] for e in logged]
    for expected in (
        "user.create",
        "user.credentials.welcome",
        "user.require_new_password",
        "user.password.set",
        "user.complete_recovery",
        "user.mfa.enrolled",
    ):
        assert expected in actions, (expected, actions)
    everything = str(events(admin))
    assert temporary not in everything and CHOSEN not in everything and secret not in everything
