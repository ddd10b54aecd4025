"""The Import page: template, preview per row before anything is written, the import as a job
for the worker with a progress page and per-row results."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from openpyxl import Workbook, load_workbook
from werkzeug.test import EnvironBuilder

from scim_server.db import db
from scim_server.models import AuditEvent, ImportRow, Job, User
from scim_server.worker import Worker
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


def _jobs(app: Flask, org_id: str) -> list[Job]:
    with db.reader(app)() as s:
        return list(s.query(Job).filter_by(org_id=org_id, kind="users.import"))


def _plans(body: str) -> list[str]:
    """The actions of the preview's per-row table (not its errors table)."""
    table = body.rsplit("What each row would do", 1)[1]
    return re.findall(r'<td class="plan-(\w+)">', table)


def _upload(client: FlaskClient, token: str, data: bytes, name: str = "people.csv") -> Any:
    """POST the file to the preview; the test client's spooled body is closed after."""
    environ = EnvironBuilder(
        path="/admin/import/preview",
        method="POST",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    ).get_environ()
    try:
        return client.open(environ)
    finally:
        environ["wsgi.input"].close()


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
    assert _plans(body) == ["create", "unchanged", "error", "error"]
    assert "active must be true or false" in body and "the same userName as line 2" in body
    assert "new.one@example.com" not in _users(app, scim.org_id)
    with db.reader(app)() as s:
        assert s.query(AuditEvent).filter_by(org_id=scim.org_id).count() == events_before


def _xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_import_is_a_worker_job_through_the_scim_path(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Preview stages the rows (a job no worker takes); Import queues it; the worker applies
    every row as SCIM does; the progress page counts; the results CSV lists every row."""
    scim.create_user("known@example.com")
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    rows = [["User Name", "Email", "Given Name", "Department", "active"]]
    rows += [[f"p{n}@example.com", f"p{n}@example.com", f"P{n}", "Ops", ""] for n in range(60)]
    rows += [["known@example.com", "", "Renamed", "", ""], ["bad@example.com", "", "", "", "maybe"]]
    preview = _upload(client, token, _xlsx(rows), "people.xlsx")
    body = preview.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Import 61 rows" in body and "62 rows read" in body
    (staged,) = _jobs(app, scim.org_id)
    assert (staged.state, staged.progress_total) == ("staged", 62)
    # A worker pass leaves a staged import alone.
    assert Worker(db.writer(app)).run_jobs() == 0
    start = re.search(r'action="(/admin/import/[0-9a-f-]{36}/start)"', body)
    assert start
    resp = client.post(start.group(1), data={"csrf_token": token})
    assert resp.status_code == 303
    page = resp.headers["Location"]
    assert page == f"/admin/import/jobs/{staged.id}"
    queued = client.get(page).get_data(as_text=True)
    assert "0 of 62 rows done" in queued and 'hx-trigger="every 2s"' in queued
    assert f'href="{page}">Refresh</a>' in queued and "Waiting for the background worker" in queued
    # A second click changes nothing: still one job, still queued.
    assert client.post(start.group(1), data={"csrf_token": token}).status_code == 303
    assert [j.state for j in _jobs(app, scim.org_id)] == ["queued"]

    assert Worker(db.writer(app)).run_jobs() == 1
    (job,) = _jobs(app, scim.org_id)
    assert job.state == "succeeded"
    assert job.result == {"create": 60, "update": 1, "unchanged": 0, "error": 1}
    done = client.get(page, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert done.lstrip().startswith('<section id="import-progress"')  # htmx: the block alone
    assert "62 of 62 rows done: 60 created, 1 updated, 0 unchanged, 1 with errors." in done
    assert "Import finished" in done and "hx-trigger" not in done
    assert "active must be true or false" in done
    found = _users(app, scim.org_id)
    assert len([u for u in found if u.startswith("p")]) == 60
    assert found["known@example.com"].data["name"]["givenName"] == "Renamed"
    with db.reader(app)() as s:
        events = s.query(AuditEvent).filter_by(org_id=scim.org_id).all()
    creates = [e for e in events if e.action == "user.create" and e.user_name.startswith("p")]
    # the person who pressed Import is the actor of what the worker did for them
    assert len(creates) == 60 and {e.actor_type for e in creates} == {"console"}
    assert {"user.patch", "users.import.start", "users.import"} <= {e.action for e in events}

    results = client.get(f"{page}/results.csv")
    assert results.status_code == 200 and results.mimetype == "text/csv"
    listed = list(csv.DictReader(io.StringIO(results.get_data(as_text=True))))
    assert len(listed) == 62
    assert listed[0]["line"] == "2" and listed[0]["result"] == "create" and listed[0]["user_id"]
    assert listed[-1]["userName"] == "bad@example.com" and listed[-1]["result"] == "error"


def test_a_resumed_import_applies_no_row_twice(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A worker that stops after one batch hands the job back; the next resumes after it."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    data = "userName\n" + "".join(f"r{n}@example.com\n" for n in range(120))
    body = _upload(client, token, data.encode()).get_data(as_text=True)  # type: ignore[attr-defined]
    start = re.search(r'action="(/admin/import/[0-9a-f-]{36}/start)"', body)
    assert start
    client.post(start.group(1), data={"csrf_token": token})
    stopping = Worker(db.writer(app), worker_id="stopping")
    stopping.run_job(_jobs(app, scim.org_id)[0].id, on_progress=lambda *_: stopping.stop.set())
    (job,) = _jobs(app, scim.org_id)
    assert (job.state, job.progress_done) == ("queued", 50)
    page = client.get(f"/admin/import/jobs/{job.id}").get_data(as_text=True)
    assert "50 of 120 rows done: 50 created" in page
    assert Worker(db.writer(app), worker_id="next").run_jobs() == 1
    (job,) = _jobs(app, scim.org_id)
    assert job.state == "succeeded" and job.result["create"] == 120
    with db.reader(app)() as s:
        creates = s.query(AuditEvent).filter_by(org_id=scim.org_id, action="user.create").count()
        assert s.query(ImportRow).filter_by(job_id=job.id, action=None).count() == 0
    assert creates == 120 + 1  # and the console user's own account


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
    too_many = "userName\n" + "".join(f"u{n}\n" for n in range(100_001))
    resp = _upload(client, token, too_many.encode())
    assert resp.status_code == 400  # type: ignore[attr-defined]
    assert "More than 100,000 rows" in resp.get_data(as_text=True)  # type: ignore[attr-defined]
    huge = _upload(client, token, b"u\n" + b"x" * (33 << 20), "big.csv")
    assert huge.status_code == 413  # type: ignore[attr-defined]
    assert "larger than 30 MiB" in huge.get_data(as_text=True)  # type: ignore[attr-defined]
    assert _jobs(app, scim.org_id) == []  # no bad file left a job behind
    assert client.get("/admin/import/jobs/nope").status_code == 404


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


def test_staging_drops_stale_previews_and_old_results(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A preview left unimported for a day goes (with its rows) at the next upload; a recent one
    stays; another organization's are not touched."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _upload(client, token, b"userName\nold@example.com\n", "old.csv")
    _upload(client, token, b"userName\nrecent@example.com\n", "recent.csv")
    by_name = {j.params["filename"]: j for j in _jobs(app, scim.org_id)}
    old, recent = by_name["old.csv"], by_name["recent.csv"]
    with db.reader(app)() as s:
        s.query(Job).filter_by(id=old.id).update({"created_at": old.created_at - timedelta(days=2)})
        s.commit()
    _upload(client, token, b"userName\nthird@example.com\n")
    left = {j.id for j in _jobs(app, scim.org_id)}
    assert old.id not in left and recent.id in left and len(left) == 2
    with db.reader(app)() as s:
        assert s.query(ImportRow).filter_by(job_id=old.id).count() == 0
        assert s.query(ImportRow).filter_by(job_id=recent.id).count() == 1


def test_imported_accounts_join_the_default_groups(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A created row joins the default groups (with its member event); an updated one does not."""
    from scim_server.services import directory

    staff = scim.create_group("Staff")
    known = scim.create_user("known@example.com")
    with db.reader(app)() as s:
        directory.update_settings(s, scim.org_id, {"default_groups": [staff["id"]]})
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    data = "userName,email,givenName\nnew@example.com,new@example.com,New\nknown@example.com,,K\n"
    body = _upload(client, token, data.encode()).get_data(as_text=True)
    start = re.search(r'action="(/admin/import/[0-9a-f-]{36}/start)"', body)
    assert start
    assert client.post(start.group(1), data={"csrf_token": token}).status_code == 303
    assert Worker(db.writer(app)).run_jobs() == 1
    new = _users(app, scim.org_id)["new@example.com"]
    group = scim.get(f"/scim/v2/Groups/{staff['id']}").get_json()
    assert [m["value"] for m in group["members"]] == [new.id]
    assert known["id"] != new.id
    with db.reader(app)() as s:
        added = s.query(AuditEvent).filter_by(org_id=scim.org_id, action="group.member.add").all()
    assert [(e.resource_id, e.actor_type) for e in added] == [(new.id, "console")]
