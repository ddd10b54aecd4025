"""A preview or an import the server failed (not the file: a database error, a bug) tells the
admin so in plain words, never the exception's text (SQL, a driver's name, values of other
rows): that detail is the worker's log's and the job's, for the operator. A file refused
for its own problem still shows why."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.models import ImportUpload, Job
from scim_server.user_import import rows as import_rows
from scim_server.worker import Worker
from tests.console.test_imports import _jobs, _preview, _upload
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console

RAW = "INSERT INTO import_rows (values) VALUES ('secret@example.com') psycopg"


def _last_attempt(app: Flask, job_id: str) -> None:
    with db.reader(app)() as s, s.begin():
        s.query(Job).filter_by(id=job_id).update({"max_attempts": 1})


def _broken(*_args: object, **_kwargs: object) -> object:
    raise RuntimeError(RAW)


def test_a_preview_the_server_failed_shows_no_exception(
    app: Flask, client: FlaskClient, scim: Scim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job fails with the exception for the log; the page says the server failed."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    resp = _upload(client, token, b"userName\na@example.com\n")
    assert resp.status_code == 303
    page = resp.headers["Location"]
    _last_attempt(app, page.rsplit("/", 1)[1])
    monkeypatch.setattr(import_rows, "plan", _broken)
    assert Worker(db.writer(app)).run_jobs() == 1
    (job,) = _jobs(app, scim.org_id)
    assert job.state == "failed" and RAW in (job.error or "")
    shown = client.get(page)
    body = shown.get_data(as_text=True)
    assert shown.status_code == 200
    assert "This file could not be previewed: the server failed while reading it." in body
    assert "INSERT INTO" not in body and "psycopg" not in body and "RuntimeError" not in body
    assert "secret@example.com" not in body and "/start" not in body


def test_a_file_refused_for_its_own_problem_shows_why(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """What the worker's read finds wrong with the file is the admin's to know and fix."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    resp = _upload(client, token, b"userName\na@example.com\n")
    page = resp.headers["Location"]
    with db.reader(app)() as s, s.begin():  # the worker finds the file gone
        s.query(ImportUpload).delete()
    assert Worker(db.writer(app)).run_jobs() == 1
    body = client.get(page).get_data(as_text=True)
    assert "This file could not be previewed: The uploaded file is gone: upload it again." in body


def test_an_import_the_server_failed_shows_no_exception(
    app: Flask, client: FlaskClient, scim: Scim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress page of a failed import says it stopped, not why in the server's words."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, b"userName\na@example.com\n")
    start = re.search(r'action="(/admin/import/([0-9a-f-]{36})/start)"', body)
    assert start, body
    resp = client.post(start.group(1), data={"csrf_token": token})
    assert resp.status_code == 303
    _last_attempt(app, start.group(2))
    monkeypatch.setattr(import_rows, "apply_row", _broken)
    assert Worker(db.writer(app)).run_jobs() == 1
    (job,) = _jobs(app, scim.org_id)
    assert job.state == "failed" and RAW in (job.error or "")
    body = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "The import stopped on a server error" in body
    assert "INSERT INTO" not in body and "psycopg" not in body and "RuntimeError" not in body
