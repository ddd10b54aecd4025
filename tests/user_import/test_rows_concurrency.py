"""A console import creating a userName while a SCIM POST creates it (``user_import.rows``,
PostgreSQL): exactly one account, made by one of the two, the other refused."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from scim_server.db import db
from scim_server.models import User
from scim_server.user_import import rows as import_rows
from tests.console.test_imports import _preview
from tests.support import USER_SCHEMA
from tests.support.console import csrf_token, sign_in_console
from tests.support.holds import Hold, client_like, main_thread_only, postgresql_only
from tests.user_import.test_jobs_stale_preview import _rows, _start


def test_an_import_row_and_a_scim_create_of_one_user_name(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import's row (planned: create dup@example.com) is held before it applies while a
    SCIM POST creates DUP@example.com: one account; the POST's 201 and the row's create
    are never both."""
    app, scim = live
    postgresql_only(app)
    client = app.test_client()
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, b"userName,givenName\ndup@example.com,Imp\n")

    def scim_create() -> int:
        doc = {"schemas": [USER_SCHEMA], "userName": "DUP@example.com"}
        return int(client_like(app, scim).post("/scim/v2/Users", doc).status_code)

    hold = Hold(
        monkeypatch,
        app,
        import_rows,
        "apply_row",
        scim_create,
        when=main_thread_only(),
        before=True,
    )
    _start(app, client, token, body)
    hold.join()
    with db.reader(app)() as s:
        names = s.scalars(select(User.user_name).where(User.org_id == scim.org_id)).all()
    rows = [(r.action, r.reason) for r in _rows(app, scim.org_id)]
    names = [n for n in names if n.lower() == "dup@example.com"]
    assert len(names) == 1, (names, rows, hold.results)
    assert (hold.results == [201]) != (rows[0][0] == "create"), (names, rows, hold.results)
