"""A password change ends the account's sign-in sessions (``users.session_epoch``).

The session is a signed cookie that cannot be taken back: each use compares the epoch it
was signed in at with the account's, which a password set or removed moves on.
"""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.support import Scim
from tests.support.console import sign_in_as, sign_in_console
from tests.support.local import (
    forgot,
    give_password,
    mail_bodies,
    person_with_password,
    sign_in,
    signed_in,
)

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
