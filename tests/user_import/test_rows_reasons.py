"""What the preview says a row changes: each attribute by its name, the enterprise
extension's by the attribute a row carries in it (department), never "User" (its URN's
last part)."""

from __future__ import annotations

from flask import Flask

from scim_server.db import db
from scim_server.user_import import rows as import_rows
from scim_server.user_import.sheets import Row
from tests.support import ENTERPRISE, Scim


def test_the_preview_names_a_department_change_by_its_name(app: Flask, scim: Scim) -> None:
    scim.create_user("dee@example.com", title="Clerk", **{ENTERPRISE: {"department": "Ops"}})
    rows = [Row(2, {"userName": "dee@example.com", "department": "Sales", "title": "Lead"})]
    with db.writer(app)() as session:
        (planned,) = import_rows.plan(session, scim.org_id, rows)
    assert (planned.action, planned.reason) == ("update", "changes title, department")
