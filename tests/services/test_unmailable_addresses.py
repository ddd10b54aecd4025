"""An account whose stored address mail cannot go to (``addresses.user_address``).

A SCIM e-mail is stored as the IdP sends it (``Name <addr>`` is common), but
``mail.check_recipient`` refuses anything but a plain address, and the flows
below queue their mail inside the transaction of the change itself: such an
address counts as none, so the refusal no longer rolls that change back (a
lock that never held, a forgot page that answered 500 for such an account).
"""

from __future__ import annotations

from scim_server.db import db
from scim_server.models import User
from tests.support.local import give_password, sign_in
from tests.support.sso import make_person

ODD = "Mallory <mallory@example.com>"  # a display-name form, no CR/LF, no comma


def _odd_user(scim, user_name: str) -> str:
    doc = scim.create_user(user_name, emails=[{"type": "work", "value": ODD, "primary": True}])
    return str(doc["id"])


def _forgot(client, identifier: str, ip: str = "10.0.0.1"):
    return client.post(
        "/sso/forgot", data={"identifier": identifier}, environ_base={"REMOTE_ADDR": ip}
    )


def test_forgot_answers_the_same_when_the_account_address_is_not_mailable(app, scim, client):
    """Known account with an unmailable address vs unknown name: the page must be identical.

    Today the known one raises InvalidValueError out of request_reset (a 500 in
    production): the form tells an attacker the account exists.
    """
    app.config["PROPAGATE_EXCEPTIONS"] = False
    user_id = _odd_user(scim, "mallory")
    give_password(app, scim.org_id, user_id)
    unknown = _forgot(client, "nobody")
    known = _forgot(client, "mallory")
    assert (unknown.status_code, known.status_code) == (200, 200)
    assert unknown.data == known.data


def test_lockout_still_locks_an_account_whose_address_is_not_mailable(app, scim, client):
    """Ten distinct wrong passwords lock the account even if its lock mail cannot be queued.

    make_person's contact gets the e-mail "mallory" (its userName). Today the 10th
    failure raises in queue_mail("account_locked") (500) and rolls the lock back,
    every time: the account is never locked, password guessing is unlimited.
    """
    app.config["SIGNIN_ATTEMPTS_PER_MINUTE"] = 0
    app.config["PROPAGATE_EXCEPTIONS"] = False
    user_id = make_person(app, scim, "mallory")
    give_password(app, scim.org_id, user_id)
    statuses = [sign_in(client, "mallory", f"wrong guess {i}").status_code for i in range(14)]
    with db.reader(app)() as s:
        status = s.get(User, (scim.org_id, user_id)).status
    assert (status, statuses[9:]) == ("AUTO_LOCKED", [401] * 5)
