"""A NUL character in a cell (a careless export, or on purpose) is the file's error, told with
its line: no attribute may hold one, and the preview keeps each row in PostgreSQL's jsonb,
which cannot. The upload refuses it at once (``sheets.check``), the worker's read alike
(``sheets.read``), so nothing is queued, kept or written, on either engine. A file name
holding a control character is refused the same way: it is kept with the upload and shown
on its pages."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.errors import InvalidValueError
from scim_server.models import ImportUpload, Job
from scim_server.user_import import sheets
from tests.console.test_imports import _jobs, _upload
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console

NUL_CELL = b"userName,givenName\nok@example.com,fine\nn@example.com,a\x00b\n"


@pytest.mark.parametrize("reader", [sheets.check, sheets.read])
def test_a_nul_in_a_cell_is_the_files_error_with_its_line(reader) -> None:  # type: ignore[no-untyped-def]
    """Both readers name the line of the cell."""
    with pytest.raises(InvalidValueError, match=r"^Line 3: a cell contains a NUL character\.$"):
        reader("people.csv", NUL_CELL)


def test_the_upload_refuses_a_nul_in_a_cell(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """400 on the upload page with the line; no job, no kept file."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    resp = _upload(client, token, NUL_CELL)
    assert resp.status_code == 400
    assert "Line 3: a cell contains a NUL character." in resp.get_data(as_text=True)
    assert _jobs(app, scim.org_id) == []
    with db.reader(app)() as s:
        assert s.query(ImportUpload).count() == 0


@pytest.mark.parametrize("name", ["pe\x00ople.csv", "people\x7f.csv"])
def test_the_upload_refuses_a_file_name_with_a_control_character(
    app: Flask, client: FlaskClient, scim: Scim, name: str
) -> None:
    """400 with the reason; nothing queued (a NUL in the job's parameters was a 500 on
    PostgreSQL)."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    resp = _upload(client, token, b"userName\na@example.com\n", name)
    assert resp.status_code == 400
    assert "holds a control character" in resp.get_data(as_text=True)
    with db.reader(app)() as s:
        assert s.query(Job).filter_by(org_id=scim.org_id).count() == 0
