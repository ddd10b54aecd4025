"""The Import page: template, a preview job per upload (each row planned by the worker before
anything is written), the import as a job for the worker with a progress page and per-row
results."""

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
from scim_server.models import AuditEvent, ImportRow, ImportUpload, Job, User
from scim_server.user_import import jobs as import_jobs
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
    """The organization's imports, previewed or started."""
    with db.reader(app)() as s:
        return list(
            s.query(Job).filter(
                Job.org_id == org_id, Job.kind.in_(("users.import", "users.import.preview"))
            )
        )


def _plans(body: str) -> list[str]:
    """The actions of the preview's per-row table (not its errors table)."""
    table = body.rsplit("What each row would do", 1)[1]
    return re.findall(r'<td class="plan-(\w+)">', table)


def _upload(client: FlaskClient, token: str, data: bytes, name: str = "people.csv") -> Any:
    """POST the file to the upload; the test client's spooled body is closed after."""
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


def _preview(
    app: Flask, client: FlaskClient, token: str, data: bytes, name: str = "people.csv"
) -> tuple[str, str]:
    """Upload (303 to the preview page), the worker's preview job, then the page: its URL and
    body."""
    resp = _upload(client, token, data, name)
    assert resp.status_code == 303, resp.get_data(as_text=True)  # type: ignore[attr-defined]
    page = resp.headers["Location"]  # type: ignore[attr-defined]
    assert re.fullmatch(r"/admin/import/previews/[0-9a-f-]{36}", page)
    assert Worker(db.writer(app)).run_jobs() == 1
    shown = client.get(page)
    assert shown.status_code == 200
    return page, shown.get_data(as_text=True)


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
    assert resp.status_code == 303  # type: ignore[attr-defined]
    page = resp.headers["Location"]  # type: ignore[attr-defined]
    # Until the worker has read the file: a page that follows it, with a plain Refresh link.
    waiting = client.get(page).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in waiting and f'href="{page}">Refresh</a>' in waiting
    assert "Waiting for the background worker" in waiting and "Import 1 row" not in waiting
    with db.reader(app)() as s:
        (upload,) = s.query(ImportUpload).filter_by(org_id=scim.org_id).all()
        assert upload.data == CSV.encode()  # the file in the database, no rows yet
        assert s.query(ImportRow).filter_by(job_id=upload.job_id).count() == 0
    assert Worker(db.writer(app)).run_jobs() == 1
    resp = client.get(page)
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "hx-trigger" not in body
    assert "4 rows read" in body and "Import 1 row<" in body
    assert re.search(r'plan-create">1</strong> to create', body)
    assert re.search(r'plan-error">2</strong> with errors', body)
    assert _plans(body) == ["create", "unchanged", "error", "error"]
    assert "active must be true or false" in body and "the same userName as line 2" in body
    assert "new.one@example.com" not in _users(app, scim.org_id)
    with db.reader(app)() as s:
        assert s.query(AuditEvent).filter_by(org_id=scim.org_id).count() == events_before
        assert s.query(ImportUpload).count() == 0  # read, then dropped
        planned = s.query(ImportRow).filter_by(org_id=scim.org_id).order_by(ImportRow.line).all()
    assert [(r.plan, r.action) for r in planned] == [
        ("create", None),
        ("unchanged", None),
        ("error", None),
        ("error", None),
    ]
    # An htmx poll gets the block alone.
    block = client.get(page, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert block.lstrip().startswith('<section id="import-preview"')


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
    preview_page, body = _preview(app, client, token, _xlsx(rows), "people.xlsx")
    assert "Import 61 rows" in body and "62 rows read" in body
    (staged,) = _jobs(app, scim.org_id)
    assert (staged.kind, staged.state, staged.progress_total) == (
        "users.import.preview",
        "succeeded",
        62,
    )
    # A worker pass leaves a previewed import alone.
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
    assert [(j.kind, j.state) for j in _jobs(app, scim.org_id)] == [("users.import", "queued")]
    # The preview's address now leads to the import's page.
    assert client.get(preview_page).headers["Location"] == page

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
    _page, body = _preview(app, client, token, data.encode())
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
    manager = app.test_client()
    sign_in_console(app, manager, scim, "user_manager", "m@example.com")
    page, _body = _preview(app, manager, csrf_token(manager, "/admin/import/"), CSV.encode())
    sign_in_console(app, client, scim, "auditor")
    assert client.get("/admin/import/").status_code == 403
    assert client.get(page).status_code == 403
    token = csrf_token(client)
    assert _upload(client, token, CSV.encode()).status_code == 403  # type: ignore[attr-defined]
    (job,) = _jobs(app, scim.org_id)
    start = client.post(f"/admin/import/{job.id}/start", data={"csrf_token": token})
    assert start.status_code == 403 and _jobs(app, scim.org_id)[0].kind == "users.import.preview"
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
    _page, body = _preview(app, client, token, b"userName\n<script>x</script>\n")
    assert "<script>x</script>" not in body and "&lt;script&gt;x&lt;/script&gt;" in body


def test_staging_drops_stale_previews_and_old_results(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A preview left unimported for a day goes (with its rows) at the next upload; a recent one
    stays."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _preview(app, client, token, b"userName\nold@example.com\n", "old.csv")
    _preview(app, client, token, b"userName\nrecent@example.com\n", "recent.csv")
    by_name = {j.params["filename"]: j for j in _jobs(app, scim.org_id)}
    old, recent = by_name["old.csv"], by_name["recent.csv"]
    with db.reader(app)() as s:
        s.query(Job).filter_by(id=old.id).update({"created_at": old.created_at - timedelta(days=2)})
        s.commit()
    _upload(client, token, b"userName\nthird@example.com\n")
    left = {j.id for j in _jobs(app, scim.org_id)}
    assert old.id not in left and recent.id in left and len(left) == 2
    assert client.get(f"/admin/import/previews/{old.id}").status_code == 404
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
    pending = _upload(client, token, data.encode())
    assert Worker(db.writer(app)).run_jobs() == 1  # the preview
    body = client.get(pending.headers["Location"]).get_data(as_text=True)  # type: ignore[attr-defined]
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


def test_a_preview_with_nothing_to_import_offers_no_import(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Only errors and unchanged rows: no Import button, and a forced start is a 400 that
    changes nothing; a start before the preview is ready is refused too."""
    scim.create_user("same@example.com")
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    pending = _upload(client, token, b"userName\nsame@example.com\n")
    job_id = pending.headers["Location"].rsplit("/", 1)[1]  # type: ignore[attr-defined]
    early = client.post(f"/admin/import/{job_id}/start", data={"csrf_token": token})
    assert early.status_code == 400 and "not ready" in early.get_data(as_text=True)
    assert Worker(db.writer(app)).run_jobs() == 1
    body = client.get(f"/admin/import/previews/{job_id}").get_data(as_text=True)
    assert "No row would create or change anyone" in body and "/start" not in body
    forced = client.post(f"/admin/import/{job_id}/start", data={"csrf_token": token})
    assert forced.status_code == 400
    assert [(j.kind, j.state) for j in _jobs(app, scim.org_id)] == [
        ("users.import.preview", "succeeded")
    ]


def test_bad_xlsx_files_are_told_at_upload_or_on_the_preview(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An XLSX without userName, empty, or declaring too many rows: 400 at the upload. Too many
    rows in a sheet that declares no size is found by the worker: the preview says so, offers
    no Import, and the file is not kept."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    for data, message in (
        (_xlsx([["Email"], ["a@example.com"]]), "missing: userName"),
        (_xlsx([]), "The file is empty"),
        (_declared_xlsx(100_002), "More than 100,000 rows"),
    ):
        resp = _upload(client, token, data, "people.xlsx")
        assert resp.status_code == 400, message  # type: ignore[attr-defined]
        assert message in resp.get_data(as_text=True)  # type: ignore[attr-defined]
    assert _jobs(app, scim.org_id) == []
    resp = _upload(client, token, _xlsx([["userName"], ["x" * 1001]]), "long.xlsx")
    assert resp.status_code == 303  # type: ignore[attr-defined]
    assert Worker(db.writer(app)).run_jobs() == 1
    body = client.get(resp.headers["Location"]).get_data(as_text=True)  # type: ignore[attr-defined]
    assert "This file could not be previewed: Line 2: a cell is longer than 1000" in body
    assert "/start" not in body and "hx-trigger" not in body
    ((job,),) = [_jobs(app, scim.org_id)]
    assert job.state == "failed"
    with db.reader(app)() as s:
        assert s.query(ImportUpload).filter_by(job_id=job.id).count() == 0


def _declared_xlsx(rows: int) -> bytes:
    """A small workbook whose sheet declares ``rows`` rows (as Excel writes <dimension>)."""
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(_xlsx([["userName"], ["a@example.com"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*"/>', b"", data).replace(
                    b"<sheetViews>", f'<dimension ref="A1:A{rows}"/><sheetViews>'.encode(), 1
                )
            target.writestr(item, data)
    return out.getvalue()


def test_a_resumed_preview_saves_no_row_twice(
    app: Flask, client: FlaskClient, scim: Scim, monkeypatch: Any
) -> None:
    """A worker that stops after one batch of the preview's rows hands the job back (the page
    says how far it got); the next reads the file again and saves only the rest."""
    monkeypatch.setattr(import_jobs, "STAGE_BATCH", 2)
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    data = "userName\n" + "".join(f"s{n}@example.com\n" for n in range(5))
    page = _upload(client, token, data.encode()).headers["Location"]  # type: ignore[attr-defined]
    (job,) = _jobs(app, scim.org_id)
    stopping = Worker(db.writer(app), worker_id="stopping")
    stopping.run_job(job.id, on_progress=lambda done, _total: done and stopping.stop.set())
    (job,) = _jobs(app, scim.org_id)
    assert (job.state, job.progress_done, job.progress_total) == ("queued", 2, 5)
    assert "Saving the preview: 2 of 5 rows." in client.get(page).get_data(as_text=True)
    assert Worker(db.writer(app), worker_id="next").run_jobs() == 1
    body = client.get(page).get_data(as_text=True)
    assert "5 rows read" in body and "Import 5 rows" in body
    with db.reader(app)() as s:
        lines = [r.line for r in s.query(ImportRow).filter_by(job_id=job.id)]
        assert s.query(ImportUpload).filter_by(job_id=job.id).count() == 0
    assert sorted(lines) == [2, 3, 4, 5, 6]
