"""The Import page: template, preview per row before anything is written, chunked import."""

from __future__ import annotations

import io
import json
import re

from flask import Flask
from flask.testing import FlaskClient
from openpyxl import Workbook, load_workbook

from scim_server.db import db
from scim_server.models import AuditEvent, User
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console

CSV = """userName,email,givenName,familyName,active,department
new.one@example.com,new.one@example.com,New,One,true,Sales
known@example.com,known@example.com,Known,Person,true,
bad@example.com,bad@example.com,Bad,Row,maybe,
new.one@example.com,,,,,
"""


def _users(app: Flask, org_id: str) -> dict[str, User]:
    with db.reader(app)() as s:
        return {u.user_name: u for u in s.query(User).filter_by(org_id=org_id)}


def _upload(client: FlaskClient, token: str, data: bytes, name: str = "people.csv") -> object:
    return client.post(
        "/admin/import/preview",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_templates_download_as_csv_and_xlsx(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Both templates carry the header and an example row."""
    sign_in_console(app, client, scim, "user_manager")
    csv_resp = client.get("/admin/import/template.csv")
    assert csv_resp.status_code == 200 and csv_resp.mimetype == "text/csv"
    assert csv_resp.get_data(as_text=True).startswith("userName,email,givenName")
    xlsx = client.get("/admin/import/template.xlsx")
    assert "attachment" in xlsx.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(xlsx.data)).worksheets[0]
    assert [c.value for c in sheet[1]][:2] == ["userName", "email"]
    assert client.get("/admin/import/template.pdf").status_code == 404


def test_preview_plans_each_row_and_writes_nothing(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """create / unchanged-or-update / error with reason / duplicate; no user or event added."""
    scim.create_user(
        "known@example.com",
        emails=[{"value": "known@example.com", "type": "work", "primary": True}],
        name={"givenName": "Known", "familyName": "Person"},
    )
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    with db.reader(app)() as s:
        events_before = s.query(AuditEvent).filter_by(org_id=scim.org_id).count()
    resp = _upload(client, token, CSV.encode())
    body = resp.get_data(as_text=True)  # type: ignore[attr-defined]
    assert resp.status_code == 200  # type: ignore[attr-defined]
    plans = re.findall(r'<td class="plan-(\w+)">', body)
    assert plans == ["create", "unchanged", "error", "error"]
    assert "active must be true or false" in body and "the same userName as line 2" in body
    assert "new.one@example.com" not in _users(app, scim.org_id)
    with db.reader(app)() as s:
        assert s.query(AuditEvent).filter_by(org_id=scim.org_id).count() == events_before


def test_import_runs_in_chunks_through_the_scim_path(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The import creates and updates as SCIM does (user.create / user.patch events)."""
    scim.create_user("known@example.com")
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["User Name", "Email", "Given Name", "Department"])
    for n in range(30):
        sheet.append([f"p{n}@example.com", f"p{n}@example.com", f"P{n}", "Ops"])
    sheet.append(["known@example.com", "", "Renamed", ""])
    out = io.BytesIO()
    book.save(out)
    preview = _upload(client, token, out.getvalue(), "people.xlsx")
    body = preview.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Import 31 rows" in body
    rows = re.search(
        r'<textarea name="rows" hidden aria-hidden="true">(.*?)</textarea>', body, re.S
    )
    assert rows
    rows_json = rows.group(1).replace("&#34;", '"').replace("&quot;", '"')
    form = {"csrf_token": token, "rows": rows_json, "start": "0"}
    first = client.post("/admin/import/run", data=form, headers={"HX-Request": "true"})
    text = first.get_data(as_text=True)
    assert "25 of 31 rows" in text and 'hx-trigger="load"' in text
    form.update(start="25", create="25", update="0", unchanged="0", error="0", errors="[]")
    second = client.post("/admin/import/run", data=form).get_data(as_text=True)
    assert "31 of 31 rows: 30 created, 1 updated" in second and "Import finished" in second
    found = _users(app, scim.org_id)
    assert len([u for u in found if u.startswith("p")]) == 30
    assert found["known@example.com"].data["name"]["givenName"] == "Renamed"
    with db.reader(app)() as s:
        actions = {e.action for e in s.query(AuditEvent).filter_by(org_id=scim.org_id)}
    assert {"user.create", "user.patch"} <= actions


def test_bad_files_are_clear_errors(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Wrong type, no userName column, not UTF-8, a damaged carried form: 400, nothing written."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    for data, name, message in (
        (b"x", "people.pdf", "Upload a .csv or .xlsx file"),
        (b"email\nx@example.com\n", "a.csv", "missing: userName"),
        ("userName\nJosé\n".encode("latin-1"), "a.csv", "not UTF-8"),
        (b"not a zip", "a.xlsx", "not a readable .xlsx"),
    ):
        resp = _upload(client, token, data, name)
        assert resp.status_code == 400, name  # type: ignore[attr-defined]
        assert message in resp.get_data(as_text=True), name  # type: ignore[attr-defined]
    damaged = client.post(
        "/admin/import/run",
        data={"csrf_token": token, "rows": json.dumps([{"line": 2, "values": {"x": 1}}])},
    )
    assert damaged.status_code == 400 and "damaged" in damaged.get_data(as_text=True)


def test_auditor_cannot_import_and_csrf_is_checked(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Import is a write: 403 for an auditor; a post without its token is refused."""
    sign_in_console(app, client, scim, "auditor")
    assert client.get("/admin/import/").status_code == 403
    token = csrf_token(client)
    assert _upload(client, token, CSV.encode()).status_code == 403  # type: ignore[attr-defined]
    other = app.test_client()
    sign_in_console(app, other, scim, "user_manager", "um@example.com")
    resp = other.post(
        "/admin/import/preview",
        data={"file": (io.BytesIO(CSV.encode()), "p.csv")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400 and "Form expired" in resp.get_data(as_text=True)


def test_imported_values_are_escaped(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A userName with markup shows as text in the preview."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    body = _upload(client, token, b"userName\n<script>x</script>\n").get_data(as_text=True)  # type: ignore[attr-defined]
    assert "<script>x</script>" not in body and "&lt;script&gt;x&lt;/script&gt;" in body
