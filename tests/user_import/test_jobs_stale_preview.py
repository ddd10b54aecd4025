"""The console's import applies what the admin approved in the preview (``jobs.run_import``,
``rows.apply_row(planned=...)``): a row whose account the directory changed since the preview
(deleted, replaced, deactivated, created) is refused with a reason, never re-decided."""

from __future__ import annotations

import csv
import io
import re
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from scim_server.db import db
from scim_server.models import ImportRow
from scim_server.user_import import rows as import_rows
from scim_server.worker import Worker
from tests.console.test_imports import _jobs, _preview, _users
from tests.support import Scim
from tests.support.console import csrf_token, sign_in_console
from tests.support.pg_locks import LIMIT_SECONDS, backend_pid, ended_or_waiting

AGAIN = "The directory changed since the preview"


def _start(app: Flask, client: FlaskClient, token: str, body: str) -> str:
    """Press Import on a preview page and let the worker run the import; its page."""
    start = re.search(r'action="(/admin/import/[0-9a-f-]{36}/start)"', body)
    assert start, body
    resp = client.post(start.group(1), data={"csrf_token": token})
    assert resp.status_code == 303
    assert Worker(db.writer(app)).run_jobs() == 1
    return str(resp.headers["Location"])


def _rows(app: Flask, org_id: str) -> list[ImportRow]:
    with db.reader(app)() as s:
        return list(s.query(ImportRow).filter_by(org_id=org_id).order_by(ImportRow.line))


def test_a_row_previewed_as_an_update_of_a_user_deleted_since_is_refused(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The IdP deletes the account the preview planned to update: the row is refused (the
    preview planned no create), the leaver stays gone, the reason is on the progress page
    and in the results CSV; the file's other row is imported."""
    leaver = scim.create_user("leaver@example.com", name={"givenName": "Old"})
    scim.create_user("stays@example.com", name={"givenName": "Old"})
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(
        app,
        client,
        token,
        b"userName,givenName\nleaver@example.com,New\nstays@example.com,New\n",
    )
    assert re.findall(r'<td class="plan-(\w+)">', body) == ["update", "update"]
    assert scim.delete(f"/scim/v2/Users/{leaver['id']}").status_code == 204

    page = _start(app, client, token, body)

    (job,) = _jobs(app, scim.org_id)
    assert job.state == "succeeded"
    assert job.result == {"create": 0, "update": 1, "unchanged": 0, "error": 1}
    users = _users(app, scim.org_id)
    assert "leaver@example.com" not in users
    assert users["stays@example.com"].data["name"]["givenName"] == "New"
    refused, applied = _rows(app, scim.org_id)
    assert (refused.action, applied.action) == ("error", "update")
    assert refused.reason is not None and refused.reason.startswith(AGAIN)
    assert "deleted" in refused.reason and "preview the file again" in refused.reason
    shown = client.get(page).get_data(as_text=True)
    assert f"{AGAIN} (the account was deleted or renamed): preview the file again" in shown
    listed = list(csv.DictReader(io.StringIO(client.get(f"{page}/results.csv").text)))
    assert listed[0]["result"] == "error" and listed[0]["reason"] == refused.reason


def test_a_row_previewed_as_unchanged_of_a_user_deleted_since_is_refused(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A row the preview found unchanged is not turned into a create once its account is gone."""
    gone = scim.create_user("gone@example.com", name={"givenName": "Same"})
    scim.create_user("other@example.com")
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(
        app, client, token, b"userName,givenName\ngone@example.com,Same\nnew@example.com,New\n"
    )
    assert re.findall(r'<td class="plan-(\w+)">', body) == ["unchanged", "create"]
    assert scim.delete(f"/scim/v2/Users/{gone['id']}").status_code == 204

    _start(app, client, token, body)

    assert "gone@example.com" not in _users(app, scim.org_id)
    assert [r.action for r in _rows(app, scim.org_id)] == ["error", "create"]


def test_a_row_previewed_as_an_update_of_a_user_replaced_since_is_refused(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The account is deleted and another created with the same userName: not the account the
    preview planned to change, so the row is refused and the new account kept as it is."""
    old = scim.create_user("reused@example.com", name={"givenName": "Old"})
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, b"userName,givenName\nreused@example.com,New\n")
    assert scim.delete(f"/scim/v2/Users/{old['id']}").status_code == 204
    new = scim.create_user("reused@example.com", name={"givenName": "Someone"})

    _start(app, client, token, body)

    after = scim.get(f"/scim/v2/Users/{new['id']}").get_json()
    assert after["name"]["givenName"] == "Someone"
    (row,) = _rows(app, scim.org_id)
    assert row.action == "error" and row.reason is not None and row.reason.startswith(AGAIN)
    assert "another account" in row.reason


def test_import_does_not_reactivate_a_user_the_idp_deactivated_after_the_preview(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The preview changes the name only (the file's active=true is the account's state); the
    IdP then deactivates the person: applying the row would also reactivate it, beyond what
    the preview showed, so the row is refused and the account stays deactivated."""
    user = scim.create_user("mover@example.com", name={"givenName": "Old"}, active=True)
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(
        app, client, token, b"userName,givenName,active\nmover@example.com,New,true\n"
    )
    with db.reader(app)() as s:
        (planned,) = s.query(ImportRow).filter_by(org_id=scim.org_id).all()
        assert (planned.plan, planned.plan_reason) == ("update", "changes name")
        assert (planned.user_id, planned.plan_changes) == (user["id"], ["name"])
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
    )
    assert resp.status_code == 200

    _start(app, client, token, body)

    after = scim.get(f"/scim/v2/Users/{user['id']}").get_json()
    assert after["active"] is False and after["name"]["givenName"] == "Old"
    assert _users(app, scim.org_id)["mover@example.com"].status == "DEACTIVATED"
    (row,) = _rows(app, scim.org_id)
    assert row.action == "error"
    assert row.reason == f"{AGAIN} (the account was deactivated): preview the file again."


def test_a_row_whose_previewed_change_was_made_meanwhile_is_unchanged(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A change the IdP already made is no drift: the row is done, unchanged."""
    user = scim.create_user("same@example.com", name={"givenName": "Old"})
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, b"userName,givenName\nsame@example.com,New\n")
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "name.givenName", "value": "New"}
    )
    assert resp.status_code == 200

    _start(app, client, token, body)

    (row,) = _rows(app, scim.org_id)
    assert (row.action, row.reason, row.user_id) == ("unchanged", None, user["id"])


def test_a_row_previewed_as_a_create_is_refused_once_the_idp_created_the_account(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The preview plans a create; the IdP provisions that userName before Import: the row is
    refused, the IdP's account keeps its own e-mail and name."""
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(
        app,
        client,
        token,
        b"userName,email,givenName\nnew@example.com,attacker@evil.example,Sheet\n",
    )
    assert re.findall(r'<td class="plan-(\w+)">', body) == ["create"]
    idp = scim.create_user(
        "new@example.com",
        name={"givenName": "Idp"},
        emails=[{"value": "real@example.com", "type": "work", "primary": True}],
    )

    _start(app, client, token, body)

    after = scim.get(f"/scim/v2/Users/{idp['id']}").get_json()
    assert [e["value"] for e in after["emails"]] == ["real@example.com"]
    assert after["name"]["givenName"] == "Idp"
    (row,) = _rows(app, scim.org_id)
    assert row.action == "error" and row.user_id is None
    assert row.reason == f"{AGAIN} (the account was created): preview the file again."


def test_a_row_staged_without_its_target_is_refused(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A row previewed by an older release (no target account or changes kept) cannot be
    checked against its preview: it is refused, to be previewed again, not re-decided."""
    scim.create_user("old@example.com", name={"givenName": "Old"})
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(app, client, token, b"userName,givenName\nold@example.com,New\n")
    with db.writer(app)() as s, s.begin():
        s.query(ImportRow).filter_by(org_id=scim.org_id).update(
            {"user_id": None, "plan_changes": None}
        )

    _start(app, client, token, body)

    assert _users(app, scim.org_id)["old@example.com"].data["name"]["givenName"] == "Old"
    (row,) = _rows(app, scim.org_id)
    assert row.action == "error" and row.reason is not None and row.reason.startswith(AGAIN)


def test_a_deactivation_between_the_rows_check_and_its_write_is_not_undone(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import reads the account for its row's check (active, a name change as
    previewed) and holds its transaction there while the IdP's PATCH active=false runs
    (PostgreSQL: no database lock between them). Either the PATCH waits for the row's
    write and lands after it, or the row sees the deactivation and is refused: the leaver
    stays deactivated either way."""
    app, scim = live
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("SQLite's writers take the database lock at BEGIN: no write between")
    user = scim.create_user("leaving@example.com", name={"givenName": "Old"}, active=True)
    url = f"/scim/v2/Users/{user['id']}"
    client = app.test_client()
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/import/")
    _page, body = _preview(
        app, client, token, b"userName,givenName,active\nleaving@example.com,New,true\n"
    )
    real_apply, real_drift = import_rows.apply_row, import_rows._drift
    holder: list[int] = []
    waited: list[bool] = []
    patched: list[int] = []
    racers: list[threading.Thread] = []

    def apply_row(session: Session, *args: Any) -> import_rows.Outcome:
        holder.append(backend_pid(session.get_bind()))  # the import step's connection
        return real_apply(session, *args)

    def deactivate() -> None:
        idp = Scim(app.test_client(), scim.token, scim.org_id)
        op = {"op": "replace", "path": "active", "value": False}
        patched.append(idp.patch_ops(url, op).status_code)

    def drift(*args: Any) -> str | None:
        if not racers:  # the row's account is read: the IdP's PATCH runs now
            racer = threading.Thread(target=deactivate)
            racer.start()
            racers.append(racer)
            waited.append(ended_or_waiting(racer, db.engine(app), holder[-1]))
        return real_drift(*args)

    monkeypatch.setattr(import_rows, "apply_row", apply_row)
    monkeypatch.setattr(import_rows, "_drift", drift)
    _start(app, client, token, body)
    racers[0].join(LIMIT_SECONDS)

    assert patched == [200]
    after = scim.get(url).get_json()
    assert after["active"] is False
    assert _users(app, scim.org_id)["leaving@example.com"].status == "DEACTIVATED"
    (row,) = _rows(app, scim.org_id)
    if waited == [True]:  # the PATCH waited for the row's write: the name changed before it
        assert (row.action, after["name"]["givenName"]) == ("update", "New")
    else:  # the PATCH committed first: the row's check saw it
        assert row.action == "error"
        assert row.reason == f"{AGAIN} (the account was deactivated): preview the file again."
