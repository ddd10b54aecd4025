"""The provisioning log pages: search, event, timeline, verify, export, reports; read-only."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from scim_server.db import db
from scim_server.models import AuditEvent
from tests.support import Scim
from tests.support.admin_api import make_license
from tests.support.console import sign_in_console


def _events(app: Flask, org_id: str) -> list[AuditEvent]:
    with db.reader(app)() as s:
        return list(s.query(AuditEvent).filter_by(org_id=org_id).order_by(AuditEvent.seq))


def test_auditor_searches_the_log_by_user_and_outcome(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An auditor filters by userName and outcome; other users' events are not listed."""
    scim.create_user("alice@example.com")
    scim.create_user("bob@example.com")
    sign_in_console(app, client, scim, "auditor")
    resp = client.get("/admin/log/?user=alice@example.com&outcome=success")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "alice@example.com" in body and "bob@example.com" not in body
    assert "user.create" in body


def test_search_with_a_bad_date_is_400_and_names_the_field(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A date that is not one is a message at its field, not a 500 nor an ignored filter."""
    sign_in_console(app, client, scim, "auditor")
    resp = client.get("/admin/log/?since=yesterday&outcome=maybe")
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert "Enter a date and time" in body and "One of: success, failure" in body


def test_htmx_search_gets_only_the_results_block(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Search as you type swaps the results section, not the whole page."""
    scim.create_user("carol@example.com")
    sign_in_console(app, client, scim, "auditor")
    resp = client.get("/admin/log/?user=carol@example.com", headers={"HX-Request": "true"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert body.lstrip().startswith('<section id="results"') and "<html" not in body


def test_event_page_shows_before_after_and_escapes_values(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A displayName of <script> shows as text on the event page and in the timeline."""
    user = scim.create_user("mallory@example.com", displayName="<script>alert(1)</script>")
    scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "displayName", "value": "Mal"}
    )
    sign_in_console(app, client, scim, "auditor")
    patch = [e for e in _events(app, scim.org_id) if e.action == "user.patch"][-1]
    body = client.get(f"/admin/log/events/{patch.seq}").get_data(as_text=True)
    assert "Before and after" in body and "displayName" in body
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    timeline = client.get(f"/admin/log/timeline/{user['id']}")
    assert timeline.status_code == 200
    text = timeline.get_data(as_text=True)
    assert "user.create" in text and "user.patch" in text


def test_another_organizations_event_is_not_found(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim
) -> None:
    """An event's number from another organization shows nothing of it."""
    sign_in_console(app, client, scim, "auditor")
    mine = {e.seq for e in _events(app, scim.org_id)}
    for n in range(len(mine) + 2):
        other_scim.create_user(f"secret{n}@other.example")
    seq = max(mine) + 1
    assert seq in {e.seq for e in _events(app, other_scim.org_id)}
    resp = client.get(f"/admin/log/events/{seq}")
    assert resp.status_code == 404
    assert "secret@other.example" not in resp.get_data(as_text=True)


def test_verify_reports_intact_then_the_first_broken_event(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Verify says intact; after an event is edited in the database it names that event."""
    scim.create_user("dave@example.com")
    scim.create_user("erin@example.com")
    sign_in_console(app, client, scim, "auditor")
    body = client.get("/admin/log/verify").get_data(as_text=True)
    assert "The chain is intact" in body
    target = _events(app, scim.org_id)[1]
    with db.reader(app)() as s, s.begin():
        row = s.get(AuditEvent, (scim.org_id, target.seq))
        assert row is not None
        row.detail = "tampered"
    body = client.get("/admin/log/verify").get_data(as_text=True)
    assert "The chain is broken" in body
    assert f"First broken event: <strong>#{target.seq}</strong>" in body
    assert "edited" in body


def test_export_streams_csv_and_ndjson_with_a_manifest(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The export is an attachment, filtered as the search, ending with its manifest."""
    scim.create_user("frank@example.com")
    scim.create_user("grace@example.com")
    sign_in_console(app, client, scim, "auditor")
    resp = client.get("/admin/log/export?format=ndjson&user=frank@example.com")
    assert resp.status_code == 200 and resp.is_streamed
    assert resp.mimetype == "application/x-ndjson"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    lines = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    assert lines[-1]["manifest"]["count"] == len(lines) - 1 >= 1
    assert all(doc["user_name"] == "frank@example.com" for doc in lines[:-1])
    csv_resp = client.get("/admin/log/export?format=csv&action=user.create")
    text = csv_resp.get_data(as_text=True)
    assert csv_resp.mimetype == "text/csv" and text.startswith("org_id,seq,")
    assert "grace@example.com" in text and text.splitlines()[-1].startswith("# manifest ")
    assert client.get("/admin/log/export?format=xml").status_code == 400


def test_reports_show_latency_failures_and_charts(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """The reports page lists the leaver with its latency and draws the SVG charts."""
    make_license(admin, "Engineer", seats=5)
    user = scim.create_user("henry@example.com")
    scim.patch_ops(
        f"/scim/v2/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
    )
    scim.get("/scim/v2/Users/does-not-exist")
    sign_in_console(app, client, scim, "auditor")
    resp = client.get("/admin/reports/")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "henry@example.com" in body and "user.deactivate" in body
    assert body.count("<svg") == 2 and 'class="bar-requests"' in body
    assert 'class="seat-used"' in body and "Engineer" in body
    assert " style=" not in body


def test_people_without_log_read_get_403_and_no_menu_entry(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A user_manager cannot open the log, and the menu does not offer it."""
    sign_in_console(app, client, scim, "user_manager")
    assert client.get("/admin/log/").status_code == 403
    assert client.get("/admin/log/export").status_code == 403
    assert client.get("/admin/sign-ins/").status_code == 403
    assert "Provisioning log" not in client.get("/admin/").get_data(as_text=True)


def test_event_names_the_rule_that_caused_it(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """A user placed by a mapping rule: the event says which rule matched and what it gave."""
    from tests.admin.rules import activate, catalogue
    from tests.support.admin_api import person

    catalogue(admin)
    activate(admin)
    person(scim, "sue@example.com", department="Sales")
    sign_in_console(app, client, scim, "auditor")
    create = next(
        e
        for e in _events(app, scim.org_id)
        if e.action == "user.create" and e.user_name == "sue@example.com"
    )
    body = client.get(f"/admin/log/events/{create.seq}").get_data(as_text=True)
    assert "<strong>sales</strong>" in body and "matched</span>" in body
    assert "license: Planner" in body


def _delete_head(app: Flask, org_id: str) -> None:
    with db.reader(app)() as s, s.begin():
        s.execute(text("DELETE FROM audit_heads WHERE org_id = :o"), {"o": org_id})


def test_verify_of_a_log_without_its_head_row_says_broken(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """The head row deleted, the events left: the page said "The chain is intact" (0 events
    checked); it says broken, the head missing, from the first event on."""
    sign_in_console(app, client, scim, "auditor")
    for i in range(3):
        scim.create_user(f"c{i}@example.com")
    _delete_head(app, scim.org_id)
    body = client.get("/admin/log/verify").get_data(as_text=True)
    assert "The chain is broken" in body and "The chain is intact" not in body
    assert "First broken event: <strong>#1</strong>" in body and "chain head missing" in body


def test_an_event_beyond_the_head_is_not_shown_as_part_of_the_log(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """An event inserted past the signed head (verify calls it forged): not in the search,
    its page is not found."""
    sign_in_console(app, client, scim, "auditor")
    scim.create_user("ivan@example.com")
    last = _events(app, scim.org_id)[-1]
    with db.reader(app)() as s, s.begin():
        values = {c.name: getattr(last, c.name) for c in AuditEvent.__table__.columns}
        values.update(seq=last.seq + 1, user_name="forged@example.com", hash="0" * 64)
        s.execute(AuditEvent.__table__.insert().values(**values))
    body = client.get("/admin/log/").get_data(as_text=True)
    assert "ivan@example.com" in body and "forged@example.com" not in body
    assert client.get(f"/admin/log/events/{last.seq + 1}").status_code == 404
    assert client.get(f"/admin/log/events/{last.seq}").status_code == 200
    body = client.get("/admin/log/verify").get_data(as_text=True)
    assert f"First broken event: <strong>#{last.seq + 1}</strong>" in body


def test_search_by_current_user_name_finds_events_from_before_a_rename(
    app: Flask, client: FlaskClient, scim: Scim, other_scim: Scim
) -> None:
    """The events store the userName at the time: searching the person's current name also
    finds the account's events from before the rename (its user.create was missed); another
    organization's account of that name adds nothing."""
    sign_in_console(app, client, scim, "auditor")
    user = scim.create_user("jdoe@example.com")
    resp = scim.patch_ops(
        f"/scim/v2/Users/{user['id']}",
        {"op": "replace", "path": "userName", "value": "jane.doe@example.com"},
    )
    assert resp.status_code == 200
    other_scim.create_user("jane.doe@example.com")
    page = client.get(
        "/admin/log/", query_string={"user": "Jane.Doe@example.com", "action": "user.create"}
    )
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    create = next(
        e
        for e in _events(app, scim.org_id)
        if e.action == "user.create" and e.resource_id == user["id"]
    )
    assert f"/admin/log/events/{create.seq}" in body and "jdoe@example.com" in body
    everything = client.get("/admin/log/", query_string={"user": "jane.doe@example.com"})
    shown = everything.get_data(as_text=True)
    assert "user.create" in shown and "user.patch" in shown
    export = client.get(
        "/admin/log/export", query_string={"format": "ndjson", "user": "jane.doe@example.com"}
    )
    lines = [json.loads(line) for line in export.get_data(as_text=True).splitlines()]
    assert {doc["resource_id"] for doc in lines[:-1]} == {user["id"]}
    assert {doc["org_id"] for doc in lines[:-1]} == {scim.org_id}
    assert lines[-1]["manifest"]["count"] == len(lines) - 1 >= 2


def test_auditor_can_change_nothing_in_the_console(
    app: Flask, client: FlaskClient, scim: Scim, session
) -> None:
    """Every console route that is not a read, posted by an auditor with a valid CSRF token:
    refused (the rule checks excepted: they change nothing), and the log gains only the
    refusals, each a failure event by the auditor."""
    import re

    from scim_server.models import AuditHead
    from tests.support.console import csrf_token

    sign_in_console(app, client, scim, "auditor")
    other = scim.create_user("victim@example.com")
    token = csrf_token(client)
    head0 = session.get(AuditHead, scim.org_id, populate_existing=True).seq
    accepted = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or "sign-out" in rule.rule:
            continue
        for method in (rule.methods or set()) - {"GET", "HEAD", "OPTIONS"}:
            url = re.sub(
                r"<(?:[^:>]+:)?([^>]+)>",
                lambda m: other["id"] if "id" in m.group(1) else "x",
                rule.rule,
            )
            resp = client.open(
                url,
                method=method,
                data={"csrf_token": token, "op": "lock", "user": other["id"], "confirm": "DELETE"},
                headers={"X-CSRFToken": token},
            )
            if resp.status_code < 400:
                accepted.append(rule.rule)
    assert set(accepted) <= {"/admin/rules/preview", "/admin/rules/validate"}
    from scim_server.models import AuditEvent

    since = session.scalars(
        select(AuditEvent).where(AuditEvent.org_id == scim.org_id, AuditEvent.seq > head0)
    ).all()
    assert since, "each refusal is logged"
    assert {(e.outcome, e.actor_type, e.action.split(".")[0]) for e in since} == {
        ("failure", "console", "console")
    }
