"""The mapping rules pages: validate at lines, preview, versions and diff, activate, apply."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim_server.db import db
from scim_server.models import Contact, Job, RuleSet, User
from tests.admin.rules import RULES_YAML, catalogue
from tests.support import Scim
from tests.support.admin_api import make_license, person
from tests.support.console import console_user, csrf_token, sign_in_console


def _rule_sets(app: Flask, org_id: str) -> list[RuleSet]:
    with db.reader(app)() as s:
        return list(s.query(RuleSet).filter_by(org_id=org_id).order_by(RuleSet.version))


def test_validate_shows_each_problem_at_its_line(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """An unknown license is reported at the line that names it; a valid draft says so."""
    catalogue(admin)
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/rules/")
    bad = RULES_YAML.replace("license: Engineer", "license: Enginer")
    resp = client.post("/admin/rules/validate", data={"csrf_token": token, "text": bad})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "1 problem" in body
    assert re.search(r"Line 6:</span> <code>rules\[0\]\.then\.license</code>", body), body
    good = client.post("/admin/rules/validate", data={"csrf_token": token, "text": RULES_YAML})
    assert "Valid: every license and role" in good.get_data(as_text=True)
    syntax = client.post("/admin/rules/validate", data={"csrf_token": token, "text": "a: [\n"})
    assert "YAML syntax error" in syntax.get_data(as_text=True)
    assert _rule_sets(app, scim.org_id) == []


def test_preview_shows_who_the_seats_do_not_fit_and_contact_fields(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """The preview page says what the API's preview says: users left waiting for a seat, and
    the contact fields the rules would set (apply changes both). Four people: the three and
    the user manager signed in, whom ``always`` matches too; one seat."""
    make_license(admin, "Engineer", 1)
    for i in range(3):
        person(scim, f"e{i}@example.com", department="Eng")
    text = (
        "mode: first-match\n"
        "rules:\n"
        "  - name: eng\n"
        "    when: {always: true}\n"
        "    then: {license: Engineer, contact: {title: Engineer}}\n"
    )
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/rules/")
    page = client.post(
        "/admin/rules/preview",
        data={"csrf_token": token, "text": text},
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert "<h3>Seats</h3>" in page, page
    assert "Engineer: <strong>3</strong> would wait for a seat" in page
    assert "<h3>Contact fields</h3>" in page and "title: <strong>4</strong>" in page


def test_preview_save_diff_activate_and_apply(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """A user manager previews (counts who moves), saves two versions, sees the diff; an org
    admin activates one and applies it (the job queued)."""
    catalogue(admin)
    person(scim, "ann@example.com", department="Sales")
    sign_in_console(app, client, scim, "user_manager")
    token = csrf_token(client, "/admin/rules/")
    preview = client.post(
        "/admin/rules/preview",
        data={"csrf_token": token, "text": RULES_YAML},
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert preview.lstrip().startswith('<div id="checks"')
    assert "would change" in preview and "ann@example.com" in preview and "Planner" in preview
    first = client.post("/admin/rules/", data={"csrf_token": token, "text": RULES_YAML})
    assert first.status_code == 303
    second = client.post(
        "/admin/rules/",
        data={"csrf_token": token, "text": RULES_YAML.replace("Sales", "Marketing"), "name": "v2"},
    )
    versions = _rule_sets(app, scim.org_id)
    assert [v.version for v in versions] == [1, 2] and not any(v.active for v in versions)
    page = client.get(second.headers["Location"]).get_data(as_text=True)
    assert '<span class="del">-    equals: Sales</span>' in page
    assert '<span class="add">+    equals: Marketing</span>' in page
    client = app.test_client()
    sign_in_console(app, client, scim, "org_admin", "boss@example.com")
    token = csrf_token(client, "/admin/rules/")
    resp = client.post(
        f"/admin/rules/versions/{versions[1].id}/activate", data={"csrf_token": token}
    )
    assert resp.status_code == 303
    assert [v.active for v in _rule_sets(app, scim.org_id)] == [False, True]
    applied = client.post("/admin/rules/apply", data={"csrf_token": token})
    assert applied.status_code == 303
    job_page = client.get(applied.headers["Location"]).get_data(as_text=True)
    assert "Queued" in job_page and 'hx-trigger="every 2s"' in job_page
    with db.reader(app)() as s:
        assert s.query(Job).filter_by(org_id=scim.org_id, kind="ruleset.apply").count() == 1


def test_invalid_draft_is_not_saved(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """Saving a draft with problems stores nothing and shows them."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/rules/")
    resp = client.post("/admin/rules/", data={"csrf_token": token, "text": RULES_YAML})
    assert resp.status_code == 422 and "problem" in resp.get_data(as_text=True)
    assert _rule_sets(app, scim.org_id) == []


def test_auditor_may_check_but_not_change_rules(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """An auditor validates and previews; save, activate and apply are 403."""
    catalogue(admin)
    created = admin.post("/api/v1/rulesets", {"name": "main", "document": {"rules": []}})
    rule_set_id = created.get_json()["id"]
    sign_in_console(app, client, scim, "auditor")
    token = csrf_token(client, "/admin/rules/")
    page = client.get("/admin/rules/").get_data(as_text=True)
    assert "Save as new version" not in page
    ok = client.post("/admin/rules/validate", data={"csrf_token": token, "text": RULES_YAML})
    assert ok.status_code == 200
    for path in (
        "/admin/rules/",
        f"/admin/rules/versions/{rule_set_id}/activate",
        "/admin/rules/apply",
    ):
        resp = client.post(path, data={"csrf_token": token, "text": RULES_YAML})
        assert resp.status_code == 403, path
    assert [v.active for v in _rule_sets(app, scim.org_id)] == [False]


def test_rule_text_is_escaped(app: Flask, client: FlaskClient, scim: Scim) -> None:
    """A rule named <script> is shown as text in the editor and the problems."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/rules/")
    text = "rules:\n  - name: <script>alert(1)</script>\n    when: {}\n    then: {license: Nope}\n"
    body = client.post("/admin/rules/validate", data={"csrf_token": token, "text": text}).get_data(
        as_text=True
    )
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


def test_user_manager_cannot_change_an_org_admins_email_through_a_mapping_rule(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """Active rules act on every account, org admins' included: a rule ``when userName
    equals boss@example.com then contact.email: mallory@...``, activated and applied, would
    hand the org admin's password reset (/sso/forgot) to whoever wrote it. A user manager
    drafts and saves rules; activating and applying them is an org admin's (``rules.activate``,
    as ``tokens.create``). Found by a probe: the worker wrote the org admin's e-mail."""
    from scim_server.worker import Worker

    boss = console_user(app, scim, "boss@example.com", "org_admin")
    with db.reader(app)() as s:
        boss_user = s.get(User, (scim.org_id, boss))
        assert boss_user is not None
        contact_id = boss_user.contact_id
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    token = csrf_token(client, "/admin/rules/")
    rules = (
        "mode: first-match\n"
        "rules:\n"
        "  - name: takeover\n"
        "    when: {attribute: userName, equals: boss@example.com}\n"
        "    then:\n"
        "      contact: {email: mallory@evil.example}\n"
    )
    saved = client.post("/admin/rules/", data={"csrf_token": token, "text": rules})
    assert saved.status_code == 303, saved.get_data(as_text=True)  # a draft: acts on nobody
    version = saved.headers["Location"].rsplit("/", 1)[-1]
    activated = client.post(f"/admin/rules/versions/{version}/activate", data={"csrf_token": token})
    applied = client.post("/admin/rules/apply", data={"csrf_token": token})
    Worker(db.writer(app)).run_jobs()
    with db.reader(app)() as s:
        contact = s.get(Contact, (scim.org_id, contact_id))
        assert contact is not None
        email = contact.email
        jobs = s.query(Job).filter_by(org_id=scim.org_id, kind="ruleset.apply").count()
    assert (activated.status_code, applied.status_code) == (403, 403)
    assert [v.active for v in _rule_sets(app, scim.org_id)] == [False] and jobs == 0
    assert email == "boss@example.com"


def test_a_user_manager_is_told_who_activates_and_offered_no_button_for_it(
    app: Flask, client: FlaskClient, scim: Scim, admin: Scim
) -> None:
    """The rules page and a version's page say an org admin activates and applies rules, and
    why; Activate and Apply are not offered. An org admin sees the buttons, not the hint."""
    catalogue(admin)
    created = admin.post("/api/v1/rulesets", {"name": "main", "document": {"rules": []}})
    rule_set_id = created.get_json()["id"]
    assert admin.post(f"/api/v1/rulesets/{rule_set_id}/activate", None).status_code == 200
    admin.post("/api/v1/rulesets", {"name": "next", "document": {"rules": []}})
    draft_id = _rule_sets(app, scim.org_id)[-1].id
    hint = "activated and applied by an organization admin"
    sign_in_console(app, client, scim, "user_manager", "manager@example.com")
    pages = [
        client.get(p).get_data(as_text=True)
        for p in (
            "/admin/rules/",
            f"/admin/rules/versions/{rule_set_id}",
            f"/admin/rules/versions/{draft_id}",
        )
    ]
    for body in pages:
        assert hint in body
        assert "Activate</button>" not in body and "to everyone</button>" not in body
    assert "Save as new version" in pages[0]
    boss = app.test_client()
    sign_in_console(app, boss, scim, "org_admin", "boss@example.com")
    body = boss.get("/admin/rules/").get_data(as_text=True)
    assert hint not in body and "Apply active rules to everyone</button>" in body
    assert "Activate</button>" in boss.get(f"/admin/rules/versions/{draft_id}").get_data(
        as_text=True
    )


DEEP_DRAFTS = ["rules:\n" + "  - " * 500 + "x\n", "[" * 600]


def test_deeply_nested_draft_is_reported_not_a_500(
    app: Flask, client: FlaskClient, scim: Scim
) -> None:
    """A draft nested past the parser's recursion: Validate and Preview show "nested too
    deeply" (200, no line), Save refuses it with 422 and stores nothing; never a 500."""
    sign_in_console(app, client, scim, "org_admin")
    token = csrf_token(client, "/admin/rules/")
    for text in DEEP_DRAFTS:
        for url, status in (
            ("/admin/rules/validate", 200),
            ("/admin/rules/preview", 200),
            ("/admin/rules/", 422),
        ):
            resp = client.post(url, data={"csrf_token": token, "text": text})
            body = resp.get_data(as_text=True)
            assert resp.status_code == status, (url, resp.status_code)
            assert "document is nested too deeply" in body and "Line " not in body, url
    assert _rule_sets(app, scim.org_id) == []


def test_a_problem_whose_line_cannot_be_found_is_shown_without_one(
    app: Flask, client: FlaskClient, scim: Scim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locating a problem's line is a help, not a check: if it fails the problem is
    still reported, without a line."""

    def broken(text: str, path: str, message: str = "") -> int | None:
        raise ValueError("cannot locate")

    monkeypatch.setattr("scim_server.console.rules.line_of", broken)
    sign_in_console(app, client, scim, "auditor")
    token = csrf_token(client, "/admin/rules/")
    resp = client.post("/admin/rules/validate", data={"csrf_token": token, "text": "rules: 1\n"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "1 problem" in body and "Line " not in body
