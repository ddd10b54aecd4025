"""A mailed reset or activation link works only while the account still has the address it
went to: whoever holds a mailbox the account no longer has (a typo the IdP corrected, a
mailbox given to someone else) cannot choose the account's password with it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import AuditEvent, CredentialToken
from tests.support import Scim
from tests.support.admin_api import account
from tests.support.credentials import (
    employee,
    link_token,
    mail_worker,
    password_verifies,
    set_settings,
)
from tests.support.local import forgot
from tests.support.sso import set_default_license

ORIGINAL = "Original-pass-phrase-31"
NEW = "Saffron-glacier-window-64"


def _by_scim_patch(scim: Scim, admin: Scim, user_id: str, address: str) -> None:
    emails = [{"type": "work", "value": address, "primary": True}]
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user_id}", {"op": "replace", "path": "emails", "value": emails}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)


def _by_scim_put(scim: Scim, admin: Scim, user_id: str, address: str) -> None:
    doc = scim.get(f"/scim/v2/Users/{user_id}").get_json()
    doc["emails"] = [{"type": "work", "value": address, "primary": True}]
    resp = scim.put(f"/scim/v2/Users/{user_id}", doc)
    assert resp.status_code == 200, resp.get_data(as_text=True)


def _by_admin_contact_edit(scim: Scim, admin: Scim, user_id: str, address: str) -> None:
    contact_id = account(admin, user_id)["contactId"]
    resp = admin.patch(f"/api/v1/contacts/{contact_id}", {"email": address})
    assert resp.status_code == 200, resp.get_json()


READDRESS = [_by_scim_patch, _by_scim_put, _by_admin_contact_edit]


def _mailed_reset_token(app: Flask, port: int, tmp_path: Any, recorder: Any, to: str) -> str:
    assert forgot(app.test_client(), to).status_code == 200
    mail_worker(app, port, tmp_path).send_mail()
    message = recorder.messages[-1]
    assert str(message["To"]) == to
    return link_token(message, "reset")


def _completed(app: Flask, org_id: str) -> int:
    with db.reader(app)() as s:
        return len(
            s.scalars(
                select(AuditEvent.seq).where(
                    AuditEvent.org_id == org_id,
                    AuditEvent.action.in_(
                        ("user.credentials.reset_completed", "user.credentials.activated")
                    ),
                )
            ).all()
        )


@pytest.mark.parametrize("readdress", READDRESS, ids=["scim-patch", "scim-put", "admin-contact"])
def test_a_mailed_reset_link_dies_when_the_accounts_address_changes(
    app, scim, admin, smtp, tmp_path, readdress
):
    """A reset link went to carol@; then the address was corrected (SCIM PATCH or PUT, an
    admin's edit of the contact). The link's page and its POST answer 410 as for any dead
    link, the password is unchanged and nothing was completed."""
    recorder, port = smtp
    user_id = employee(scim, "carol@corp.example", password=ORIGINAL)["id"]
    token = _mailed_reset_token(app, port, tmp_path, recorder, "carol@corp.example")

    readdress(scim, admin, user_id, "carol.new@corp.example")

    client = app.test_client()
    page = client.get(f"/sso/reset/{token}")
    assert page.status_code == 410 and b"Nothing was changed" in page.data
    resp = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert resp.status_code == 410 and b"Nothing was changed" in resp.data
    assert password_verifies(app, scim.org_id, user_id, ORIGINAL)
    assert not password_verifies(app, scim.org_id, user_id, NEW)
    assert _completed(app, scim.org_id) == 0


def test_a_delivered_activation_link_dies_when_the_idp_corrects_the_address(
    app, scim, admin, smtp, tmp_path
):
    """Welcome in link mode delivered to a mistyped address (a stranger's mailbox); the IdP
    corrects it. The activation link (valid for days) no longer sets the account's first
    password (410); a new reset link asked for goes to the corrected address and works."""
    recorder, port = smtp
    set_default_license(app, scim.org_id)
    set_settings(admin, credentials_delivery="activation_link", default_license="Engineer")
    user_id = employee(scim, "erin@examp1e.com")["id"]  # the typo
    worker = mail_worker(app, port, tmp_path)
    assert worker.send_credentials() == 1
    worker.send_mail()
    (message,) = recorder.messages
    assert str(message["To"]) == "erin@examp1e.com"
    token = link_token(message, "activate")

    _by_scim_patch(scim, admin, user_id, "erin@example.com")

    client = app.test_client()
    assert client.get(f"/sso/activate/{token}").status_code == 410
    resp = client.post(f"/sso/activate/{token}", data={"password": NEW, "confirm": NEW})
    assert resp.status_code == 410
    assert not password_verifies(app, scim.org_id, user_id, NEW)
    assert account(admin, user_id)["status"] == "AWAITING_NEW_PASSWORD"
    # The person at the corrected address still has a way in.
    reset = _mailed_reset_token(app, port, tmp_path, recorder, "erin@example.com")
    done = client.post(f"/sso/reset/{reset}", data={"password": NEW, "confirm": NEW})
    assert done.status_code == 200
    assert password_verifies(app, scim.org_id, user_id, NEW)


def test_a_link_outlives_a_change_of_case_of_its_address(app, scim, admin, smtp, tmp_path):
    """Carol@Corp.Example is the mailbox carol@corp.example (the mail worker's rule too,
    ``mail_delivery.why_unwanted``): an IdP that only changes the case keeps the link."""
    recorder, port = smtp
    user_id = employee(scim, "carol@corp.example", password=ORIGINAL)["id"]
    token = _mailed_reset_token(app, port, tmp_path, recorder, "carol@corp.example")

    _by_scim_patch(scim, admin, user_id, "Carol@Corp.Example")

    client = app.test_client()
    assert client.get(f"/sso/reset/{token}").status_code == 200
    resp = client.post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert resp.status_code == 200
    assert password_verifies(app, scim.org_id, user_id, NEW)


def test_a_link_an_admin_had_mailed_to_themselves_outlives_the_accounts_address_change(
    app, scim, admin, smtp, tmp_path
):
    """An admin's reset sent "to myself" went to the admin, not to the account's address:
    it is the admin's to hand over, and the account's new address does not end it (the
    row records no account address)."""
    recorder, port = smtp
    user_id = employee(scim, "carol@corp.example", password=ORIGINAL)["id"]
    set_settings(admin, credentials_delivery="activation_link")
    resp = admin.post(
        f"/api/v1/users/{user_id}/password/reset", {"to": "me", "me": "it-admin@corp.example"}
    )
    assert resp.status_code == 202, resp.get_json()
    mail_worker(app, port, tmp_path).send_mail()
    message = recorder.messages[-1]
    assert str(message["To"]) == "it-admin@corp.example"
    token = link_token(message, "reset")
    with db.reader(app)() as s:
        link = s.scalars(select(CredentialToken).where(CredentialToken.used_at.is_(None))).one()
        assert link.sent_to is None

    _by_scim_patch(scim, admin, user_id, "carol.new@corp.example")

    done = app.test_client().post(f"/sso/reset/{token}", data={"password": NEW, "confirm": NEW})
    assert done.status_code == 200
    assert password_verifies(app, scim.org_id, user_id, NEW)


def test_a_link_records_the_address_it_was_mailed_to(app, scim, admin):
    """The reset link's row names the account's address it went to (what its use is checked
    against), as the mail's recipient."""
    employee(scim, "carol@corp.example", password=ORIGINAL)
    assert forgot(app.test_client(), "CAROL@corp.example").status_code == 200
    with db.reader(app)() as s:
        link = s.scalars(select(CredentialToken)).one()
    assert (link.purpose, link.sent_to) == ("reset", "carol@corp.example")
