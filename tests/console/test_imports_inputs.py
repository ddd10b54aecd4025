"""The import's upload with a file its readers cannot make sense of: 400 with the file's
reason on the upload page (as for any other broken file), and no job, no kept upload."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scim_server.db import db
from scim_server.models import ImportUpload, Job
from tests.console.test_imports import _upload
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console
from tests.user_import.workbooks import shared_header


@pytest.mark.parametrize(
    "name,data,reason",
    [
        # A cell over the csv module's field limit (128 KiB).
        (
            "people.csv",
            b"userName,email\n" + b"a" * 200_000 + b",a@example.com\n",
            "Line 2: not readable as CSV",
        ),
        # A header cell naming shared string 5 of a table of one.
        ("people.xlsx", shared_header("5", "userName"), "not a readable .xlsx workbook"),
    ],
)
def test_a_file_the_readers_refuse_is_400_with_its_reason(
    app: Flask, client: FlaskClient, scim: Scim, name: str, data: bytes, reason: str
) -> None:
    """The person sees why the file was refused; nothing is staged for the worker."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    resp = _upload(client, token, data, name)
    assert resp.status_code == 400
    assert reason in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        for model in (Job, ImportUpload):
            count = select(func.count()).select_from(model).where(model.org_id == scim.org_id)
            assert s.scalar(count) == 0, model.__name__
