"""NUL anywhere in a console request (its address, a search box, a form field): one 400 page
from the parent blueprint (``refuse_nul``), before any area looks an id or a filter up.

PostgreSQL text cannot hold NUL: such a value reaching a lookup made the database refuse
it (a 500); SQLite stored it and found nothing. The console refuses it on both, with the
same check as the sign-in pages (``scim_server.request_inputs``).
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scim_server.db import db
from scim_server.models import AuditEvent, Contact
from scim_server.services import directory
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console

REFUSED = "holds a character that is not allowed"


@pytest.fixture
def console(app: Flask, client: FlaskClient, scim: Scim) -> FlaskClient:
    sign_in_console(app, client, scim, "org_admin")
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/users/?q=a%00b",
        "/admin/users/a%00b",
        "/admin/contacts/?q=a%00b",
        "/admin/log/?action=a%00b",
        "/admin/log/timeline/a%00b",
        "/admin/sign-ins/?reason_code=a%00b",
        "/admin/import/jobs/a%00b",
        "/admin/log/?user=ok&actor=a%00",
    ],
)
def test_nul_in_the_address_is_a_400_page(console: FlaskClient, url: str) -> None:
    """A search box or an id with NUL: 400 and the reason, on every engine."""
    resp = console.get(url)
    assert resp.status_code == 400
    assert REFUSED in resp.get_data(as_text=True)


def test_nul_in_a_posted_form_changes_nothing(app: Flask, console: FlaskClient, scim: Scim) -> None:
    """An edit whose field holds NUL is refused whole: the contact keeps its name; the log
    has the refusal only."""
    with db.reader(app)() as s:
        ann = directory.create_contact(s, scim.org_id, "person", "Ann", {}).id
        events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "success")
        )
    resp = console.post(
        f"/admin/contacts/{ann}", data={"csrf_token": csrf_token(console), "name": "A\x00nn"}
    )
    assert resp.status_code == 400
    assert REFUSED in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        assert s.get(Contact, (scim.org_id, ann)).name == "Ann"
        assert (
            s.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "success")
            )
            == events
        )
        failed = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "failure")).all()
        assert [(e.action, e.resource_id, e.status) for e in failed] == [
            ("console.contacts.update_contact", ann, 400)
        ]


def test_a_stranger_with_nul_is_sent_to_sign_in(client: FlaskClient) -> None:
    """No session: the sign-in page comes first (the address is only carried in ``next``)."""
    resp = client.get("/admin/users/a%00b")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/sso/login?next=/admin/users/a%00b"
