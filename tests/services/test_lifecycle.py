"""The status lifecycle (``services.lifecycle``): which transitions end the sessions, and
what an admin decided that only a new password (or an admin) lifts.

Any move into a status that may not sign in (not in ``SIGN_IN_ALLOWED``) moves the account's
``session_epoch`` on, as a password change does: every session and token from before it is
over for good, and the transition that gives access back gives none of them back. That
includes a move out of the automatic lockout, whose sessions were only paused. The one
exception is the automatic lockout itself: a stranger's wrong guesses cause it (its
sessions are refused while it lasts, ``tests/sso/signin/test_session_ends.py``). A move
into a status that may sign in ends nothing (a reset link asked for ends no one's).

An admin's ``require_new_password`` holds (``users.new_password_required``) through a lock,
an automatic lock and a deactivation, until a new password is set.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from scim_server.db import db, utcnow
from scim_server.models import MailOutbox, User
from scim_server.services import lifecycle, lockout
from tests.support import Scim
from tests.support.console import session_epoch
from tests.support.local import give_password, person_with_password, sign_in, signed_in

LOGIN = "alice@example.com"
PRODUCT = "urn:scim-server:schemas:extension:product:1.0:User"

# (admin action, status after it, the epoch after it), from PROVISIONED at epoch 0.
STEPS = (
    ("start_recovery", "RECOVERY", 0),
    ("complete_recovery", "PROVISIONED", 0),
    ("lock", "LOCKED_BY_ADMIN", 1),
    ("deactivate", "DEACTIVATED", 2),
    ("activate", "LOCKED_BY_ADMIN", 3),
    ("unlock", "PROVISIONED", 3),
    ("require_new_password", "AWAITING_NEW_PASSWORD", 4),
    ("deactivate", "DEACTIVATED", 5),
    ("activate", "AWAITING_NEW_PASSWORD", 6),
    ("complete_recovery", "PROVISIONED", 6),
    ("deactivate", "DEACTIVATED", 7),
    ("activate", "PROVISIONED", 7),
)


def test_every_move_to_a_status_that_may_not_sign_in_ends_the_sessions(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """Each admin action's status and epoch, from PROVISIONED: only the moves to a status
    that may not sign in move the epoch, each of them (DEACTIVATED to LOCKED_BY_ADMIN too)."""
    user_id = scim.create_user("ann@example.com")["id"]
    for op, status, epoch in STEPS:
        resp = admin.post(f"/api/v1/users/{user_id}/actions/{op}", None)
        assert resp.status_code == 200, (op, resp.get_json())
        assert resp.get_json()["status"] == status, op
        assert session_epoch(app, scim.org_id, user_id) == epoch, op


def test_the_idps_deactivation_ends_the_sessions_once(app: Flask, scim: Scim) -> None:
    """``active`` false moves the epoch on; the same false again and the reactivation do not."""
    user_id = scim.create_user("ann@example.com")["id"]
    for value, epoch in ((True, 0), (False, 1), ("False", 1), (True, 1), (False, 2)):
        resp = scim.patch_ops(
            f"/scim/v2/Users/{user_id}", {"op": "replace", "path": "active", "value": value}
        )
        assert resp.status_code == 200, resp.get_json()
        assert session_epoch(app, scim.org_id, user_id) == epoch, value


def _status(admin: Scim, user_id: str) -> str:
    resp = admin.get(f"/api/v1/users/{user_id}")
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["status"])


def _act(admin: Scim, user_id: str, op: str) -> None:
    resp = admin.post(f"/api/v1/users/{user_id}/actions/{op}", None)
    assert resp.status_code == 200, (op, resp.get_json())


def _auto_lock(app: Flask, admin: Scim, user_id: str) -> None:
    """A stranger types ten wrong passwords: AUTO_LOCKED (the owner's sessions paused)."""
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 0
    attacker = app.test_client()
    for i in range(10):
        assert sign_in(attacker, LOGIN, f"wrong password number {i}").status_code == 401
    assert _status(admin, user_id) == "AUTO_LOCKED"


def _patch_active(scim: Scim, user_id: str, active: bool) -> None:
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "path": "active", "value": active}
    )
    assert resp.status_code == 200, resp.get_json()


# -- a lock or deactivation of an AUTO_LOCKED account ends its sessions for good ---------------


def test_an_admin_lock_of_an_auto_locked_account_ends_its_sessions_for_good(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """Signed in, auto-locked by a stranger's guesses, then locked and unlocked by the admin:
    the session from before the admin's lock does not come back with the unlock."""
    user_id = person_with_password(app, scim, LOGIN)
    assert sign_in(client, LOGIN).status_code == 303 and signed_in(client)
    _auto_lock(app, admin, user_id)
    epoch = session_epoch(app, scim.org_id, user_id)
    _act(admin, user_id, "lock")
    assert session_epoch(app, scim.org_id, user_id) == epoch + 1
    _act(admin, user_id, "unlock")
    assert _status(admin, user_id) == "ACTIVE"
    assert not signed_in(client), "the session from before the admin's lock is alive again"


def test_an_idp_deactivation_of_an_auto_locked_account_ends_its_sessions_for_good(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """An auto-locked account deactivated by the IdP (``active=false``) and restored later:
    the session from before the deactivation stays ended."""
    user_id = person_with_password(app, scim, LOGIN)
    assert sign_in(client, LOGIN).status_code == 303 and signed_in(client)
    _auto_lock(app, admin, user_id)
    _patch_active(scim, user_id, False)
    assert _status(admin, user_id) == "DEACTIVATED"
    _patch_active(scim, user_id, True)
    assert _status(admin, user_id) == "ACTIVE"
    assert not signed_in(client), "the session from before the IdP's deactivation is alive again"


def test_the_end_of_an_automatic_lockout_gives_the_paused_session_back(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """The automatic lockout only pauses: when it ends (the worker's sweep), the owner's
    session works again (a stranger's guesses must not sign anyone out)."""
    user_id = person_with_password(app, scim, LOGIN)
    assert sign_in(client, LOGIN).status_code == 303 and signed_in(client)
    _auto_lock(app, admin, user_id)
    assert not signed_in(client)
    with db.reader(app)() as s:
        assert lockout.release_due(s, utcnow() + timedelta(days=2)) == 1
    assert _status(admin, user_id) == "ACTIVE"
    assert signed_in(client)


# -- an admin's "require a new password" holds until a new password is set --------------------


def test_an_admin_lock_and_unlock_keeps_the_require_new_password(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """require_new_password, lock, unlock: still AWAITING_NEW_PASSWORD, and the old
    password leads to "Choose a new password" (as a deactivation and reactivation does)."""
    user_id = person_with_password(app, scim, LOGIN)
    _act(admin, user_id, "require_new_password")
    _act(admin, user_id, "lock")
    _act(admin, user_id, "unlock")
    assert _status(admin, user_id) == "AWAITING_NEW_PASSWORD"
    resp = sign_in(app.test_client(), LOGIN)
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/sso/password/change"), resp.headers["Location"]


def test_the_require_new_password_outlasts_a_lock_a_deactivation_and_an_auto_lock(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """Locked, deactivated by the IdP, reactivated (still locked), unlocked, auto-locked,
    unlocked: the requirement is there at each end; the admin's ``complete_recovery``
    lifts it."""
    user_id = person_with_password(app, scim, LOGIN)
    _act(admin, user_id, "require_new_password")
    _act(admin, user_id, "lock")
    _patch_active(scim, user_id, False)
    _patch_active(scim, user_id, True)
    assert _status(admin, user_id) == "LOCKED_BY_ADMIN"
    _act(admin, user_id, "unlock")
    assert _status(admin, user_id) == "AWAITING_NEW_PASSWORD"
    _auto_lock(app, admin, user_id)
    _act(admin, user_id, "unlock")
    assert _status(admin, user_id) == "AWAITING_NEW_PASSWORD"
    _act(admin, user_id, "complete_recovery")
    assert _status(admin, user_id) == "PROVISIONED"
    _act(admin, user_id, "lock")
    _act(admin, user_id, "unlock")
    assert _status(admin, user_id) == "PROVISIONED"


# -- the SCIM view of a status change -----------------------------------------------------------


def test_the_first_sign_in_moves_meta_last_modified_with_the_version(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The first sign-in (PROVISIONED -> ACTIVE) moves ``meta.lastModified`` with
    ``meta.version`` (RFC 7643 §3.1), so a ``meta.lastModified gt`` filter finds it."""
    user_id = person_with_password(app, scim, LOGIN)
    before = scim.get(f"/scim/v2/Users/{user_id}").get_json()
    assert sign_in(client, LOGIN).status_code == 303
    after = scim.get(f"/scim/v2/Users/{user_id}").get_json()
    assert (before[PRODUCT]["status"], after[PRODUCT]["status"]) == ("PROVISIONED", "ACTIVE")
    assert after["meta"]["version"] != before["meta"]["version"]
    assert after["meta"]["lastModified"] > before["meta"]["lastModified"]
    since = before["meta"]["lastModified"]
    found = scim.get(f'/scim/v2/Users?filter=meta.lastModified gt "{since}"').get_json()
    assert [r["id"] for r in found["Resources"]] == [user_id]


def test_any_account_awaiting_a_new_password_keeps_the_demand_through_a_lock() -> None:
    """An account put in AWAITING_NEW_PASSWORD by other means than the transition (a mapping
    rule's initial status, a row from before 0039) holds the demand through lock and
    unlock as well; a new password set while locked meets it."""
    user = User(status="AWAITING_NEW_PASSWORD", data={}, version=1, session_epoch=0)
    user.new_password_required = False
    lifecycle.change_status(user, "lock")
    assert user.new_password_required
    lifecycle.change_status(user, "unlock")
    assert user.status == "AWAITING_NEW_PASSWORD"
    lifecycle.change_status(user, "lock")
    user.new_password_required = False  # what ``passwords.set_password`` does
    lifecycle.change_status(user, "unlock")
    assert user.status == "PROVISIONED"


def test_a_new_password_set_while_locked_meets_the_demand(
    app: Flask, scim: Scim, admin: Scim
) -> None:
    """require_new_password, lock, then a password of the person's own is set (the IdP's
    SCIM ``password``): the unlock ends at PROVISIONED, the demand met; a temporary
    password set while locked meets nothing."""
    user_id = person_with_password(app, scim, LOGIN)
    _act(admin, user_id, "require_new_password")
    _act(admin, user_id, "lock")
    give_password(app, scim.org_id, user_id, "Temporary-glacier-42", temporary=True)
    _act(admin, user_id, "unlock")
    assert _status(admin, user_id) == "AWAITING_NEW_PASSWORD"
    _act(admin, user_id, "lock")
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}",
        {"op": "replace", "path": "password", "value": "Saffron-glacier-window-64"},
    )
    assert resp.status_code == 200, resp.get_json()
    _act(admin, user_id, "unlock")
    assert _status(admin, user_id) == "PROVISIONED"


# -- a lock or deactivation ends the mailed links -------------------------------------------

NEW = "Quartz-meadow-lantern-97"


def _reset_link(app: Flask, client: FlaskClient, org_id: str) -> str:
    """A stranger (or the person) asks for a reset link: its token, from the mail."""
    assert client.post("/sso/forgot", data={"identifier": LOGIN}).status_code == 200
    with db.reader(app)() as s:
        (body,) = s.scalars(
            select(MailOutbox.body_text).where(
                MailOutbox.org_id == org_id, MailOutbox.kind == "reset_link"
            )
        ).all()
    return str(body).split("/sso/reset/")[1].split()[0]


def _undo(app: Flask, scim: Scim, admin: Scim, user_id: str, how: str) -> None:
    """The lock or deactivation, then its end."""
    if how == "idp":
        _patch_active(scim, user_id, False)
        _patch_active(scim, user_id, True)
    elif how == "auto_lock":
        _auto_lock(app, admin, user_id)
        _act(admin, user_id, "unlock")
    else:
        _act(admin, user_id, how)
        _act(admin, user_id, {"lock": "unlock", "deactivate": "activate"}[how])
    assert _status(admin, user_id) == "ACTIVE"


@pytest.mark.parametrize("how", ["lock", "deactivate", "idp"])
def test_a_lock_or_deactivation_ends_the_links_mailed_before(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim, how: str
) -> None:
    """A reset link goes out; the admin locks the account (a suspected takeover) or it is
    deactivated (the admin, the IdP), and later given back: the link from before is dead
    (410), the password unchanged, as the sessions from before are."""
    user_id = person_with_password(app, scim, LOGIN)
    assert sign_in(client, LOGIN).status_code == 303  # ACTIVE
    token = _reset_link(app, client, scim.org_id)
    _undo(app, scim, admin, user_id, how)
    used = app.test_client().post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert used.status_code == 410
    assert sign_in(app.test_client(), LOGIN).status_code == 303  # the password is the same


def test_an_activation_link_dies_with_a_lock(app: Flask, scim: Scim, admin: Scim) -> None:
    """An activation link, then a lock and an unlock: the link from before is dead."""
    assert admin.put("/api/v1/settings", {"credentials_delivery": "activation_link"}).status_code
    user_id = scim.create_user(
        "ann@example.com", emails=[{"type": "work", "value": "ann@example.com", "primary": True}]
    )["id"]
    resp = admin.post(f"/api/v1/users/{user_id}/credentials/send", None)
    assert resp.status_code == 202, resp.get_json()
    with db.reader(app)() as s:
        body = s.scalars(select(MailOutbox.body_text).where(MailOutbox.kind == "activation_link"))
        token = str(body.one()).split("/sso/activate/")[1].split()[0]
    _act(admin, user_id, "lock")
    _act(admin, user_id, "unlock")
    used = app.test_client().post(f"/sso/activate/{token}", data={"password": NEW, "confirm": NEW})
    assert used.status_code == 410


def test_the_automatic_lockout_keeps_the_owner_s_link(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """A stranger's wrong guesses lock the account for a while: they must not also kill the
    reset link its owner asked for (as they end none of the owner's sessions)."""
    user_id = person_with_password(app, scim, LOGIN)
    assert sign_in(client, LOGIN).status_code == 303
    token = _reset_link(app, client, scim.org_id)
    _undo(app, scim, admin, user_id, "auto_lock")
    used = app.test_client().post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert used.status_code == 200
