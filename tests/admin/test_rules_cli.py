"""``scim-server rules ...`` on a fresh SQLite file: validate, import, export, preview, apply."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from scim_server import create_app
from scim_server.admin.rules_cli import format_preview
from scim_server.cli import main
from scim_server.db import db
from scim_server.models import AuditEvent, Job, RuleSet, User
from scim_server.services import licenses, roles, tokens
from scim_server.services.organizations import find_organization
from scim_server.worker import Worker
from tests.admin.rules import RULES, RULES_YAML
from tests.support import ENTERPRISE, USER_SCHEMA
from tests.support.sqlite_race import another_write_before


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("org", "create", "acme").exit_code == 0
    return run


@pytest.fixture
def acme(cli) -> Any:
    """The organization's catalogue and two SCIM users (one in Sales); yields the app."""
    app = create_app()
    with db.reader(app)() as session:
        org_id = find_organization(session, "acme").id
        session.rollback()  # the services begin their own transactions
        licenses.create_license(session, org_id, "Engineer", 5)
        licenses.create_license(session, org_id, "Planner", 5)
        roles.create_role(session, org_id, "Engineer", "task")
        _token, secret = tokens.create_token(session, org_id, "idp")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    for name, department in (("sam@example.com", "Sales"), ("olga@example.com", "Ops")):
        body = {"schemas": [USER_SCHEMA], "userName": name, ENTERPRISE: {"department": department}}
        assert client.post("/scim/v2/Users", json=body, headers=headers).status_code == 201
    yield app
    db.engine(app).dispose()


def _write(tmp_path: Any, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_validate_ok_and_problems(cli, acme, tmp_path):
    """A good file is "valid"; a bad one exits 1 with each problem on its own line."""
    good = cli("rules", "validate", "--org", "acme", _write(tmp_path, "rules.yaml", RULES_YAML))
    assert good.exit_code == 0 and "rules.yaml: valid" in good.output
    bad_doc = {
        "rules": [
            {
                "name": "a",
                "when": {"attribute": "departmnet", "equals": "x"},
                "then": {"license": "Ghost"},
            },
            {
                "name": "b",
                "when": {"attribute": "title", "matches": "(x"},
                "then": {"roles": ["Nobody"]},
            },
        ]
    }
    bad = cli(
        "rules", "validate", "--org", "acme", _write(tmp_path, "bad.json", json.dumps(bad_doc))
    )
    assert bad.exit_code == 1
    lines = [line for line in bad.stdout.splitlines() if line]
    assert [line.split(":")[0] for line in lines] == [
        "rules[0].when.attribute",
        "rules[0].then.license",
        "rules[1].when.matches",
        "rules[1].then.roles[0]",
    ]
    assert 'unknown license "Ghost"' in bad.stdout
    syntax = cli("rules", "validate", "--org", "acme", _write(tmp_path, "broken.yml", "rules: [\n"))
    assert syntax.exit_code == 1 and "YAML syntax error" in syntax.output
    unknown = cli("rules", "validate", "--org", "acme", _write(tmp_path, "rules.txt", RULES_YAML))
    assert unknown.exit_code == 2 and "--format" in unknown.output
    as_text = cli(
        "rules", "validate", "--org", "acme", "--format", "yaml", str(tmp_path / "rules.txt")
    )
    assert as_text.exit_code == 0
    assert cli("rules", "validate", "--org", "nope", str(tmp_path / "rules.yaml")).exit_code == 1


def test_import_activate_export_apply(cli, acme, tmp_path):
    """Import stores (and activates) a version attributed to the CLI; export prints it back."""
    path = _write(tmp_path, "main.yaml", RULES_YAML)
    imported = cli("rules", "import", "--org", "acme", path, "--activate")
    assert imported.exit_code == 0, imported.output
    assert "imported 'main' as version 1" in imported.output and "is active" in imported.output
    exported = cli("rules", "export", "--org", "acme")
    assert exported.exit_code == 0 and yaml.safe_load(exported.output) == RULES
    as_json = cli("rules", "export", "--org", "acme", "--format", "json")
    assert json.loads(as_json.output) == RULES
    again = cli(
        "rules",
        "import",
        "--org",
        "acme",
        "--name",
        "draft",
        _write(tmp_path, "d.json", json.dumps(RULES)),
    )
    assert "imported 'draft' as version 2" in again.output and "active" not in again.output
    with db.reader(acme)() as session:
        stored = session.scalars(select(RuleSet).order_by(RuleSet.version)).all()
        assert [(r.name, r.active) for r in stored] == [("main", True), ("draft", False)]
        by_id = cli("rules", "export", "--org", "acme", "--id", stored[1].id, "--format", "json")
        assert json.loads(by_id.output) == RULES
        assert cli("rules", "export", "--org", "acme", "--id", "nope").exit_code == 1
        applied = cli("rules", "apply", "--org", "acme")
        assert applied.exit_code == 0 and "1 user(s) changed" in applied.output
        session.rollback()  # a new snapshot: the CLI committed in its own connection
        sam = session.scalar(select(User).where(User.user_name == "sam@example.com"))
        assert sam.license_source == "rule" and sam.license_rule == "sales"
        cli_events = session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.actor_type == "cli",
                AuditEvent.actor_name.startswith("scim-server rules "),
            )
            .order_by(AuditEvent.seq)
        ).all()
        assert [(e.action, e.actor_name) for e in cli_events] == [
            ("ruleset.create", "scim-server rules import"),
            ("ruleset.activate", "scim-server rules import"),
            ("ruleset.create", "scim-server rules import"),
            ("ruleset.apply.started", "scim-server rules apply"),
            ("user.mapping", "scim-server rules apply"),
            ("ruleset.apply", "scim-server rules apply"),
        ]


def test_import_refuses_an_invalid_file(cli, acme, tmp_path):
    """An invalid file is not stored; the problems are listed and the exit code is 1."""
    bad = {"rules": [{"name": "x", "when": {"member_of": "Eng"}, "then": {"license": "Ghost"}}]}
    result = cli("rules", "import", "--org", "acme", _write(tmp_path, "bad.json", json.dumps(bad)))
    assert result.exit_code == 1 and "rules[0].then.license" in result.output
    with db.reader(acme)() as session:
        assert session.scalars(select(RuleSet)).all() == []
    none_active = cli("rules", "export", "--org", "acme")
    assert none_active.exit_code == 1 and "no active rule set" in none_active.output


def test_preview_prints_a_summary_and_changes_nothing(cli, acme, tmp_path):
    """Preview names the users, the moves and examples, and leaves the database as it was."""
    with db.reader(acme)() as session:
        before = session.execute(select(User.id, User.license_id, User.version)).all()
        events_before = len(session.scalars(select(AuditEvent)).all())
    result = cli("rules", "preview", "--org", "acme", _write(tmp_path, "r.yaml", RULES_YAML))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "users: 2, would change: 1",
        "license moves:",
        "  - -> Planner: 1",
        "roles added: none",
        "roles removed: none",
        "examples:",
        "  sam@example.com: license - -> Planner",
    ]
    with db.reader(acme)() as session:
        assert session.execute(select(User.id, User.license_id, User.version)).all() == before
        assert len(session.scalars(select(AuditEvent)).all()) == events_before


def test_apply_wait_follows_the_job_a_worker_runs(cli, acme, tmp_path):
    """``rules apply --wait`` only queues; a running worker does it and the command reports it."""
    assert (
        cli(
            "rules", "import", "--org", "acme", "--activate", _write(tmp_path, "r.yaml", RULES_YAML)
        ).exit_code
        == 0
    )
    worker = Worker(db.writer(acme), worker_id="background")
    thread = threading.Thread(target=worker.serve, args=(0.1,))
    thread.start()
    try:
        applied = cli("rules", "apply", "--org", "acme", "--wait", "--poll-interval", "0.1")
    finally:
        worker.stop.set()
        thread.join(10)
    assert applied.exit_code == 0 and "1 user(s) changed" in applied.output
    assert "applying rules" in applied.output  # the progress bar
    with db.reader(acme)() as session:
        (job,) = session.scalars(select(Job)).all()
        assert (job.state, job.claimed_by, job.result) == (
            "succeeded",
            "background",
            {"users": 2, "evaluated": 2, "changed": 1},
        )


@pytest.mark.parametrize("command", ["import", "apply"])
def test_import_and_apply_hold_the_write_lock_from_their_first_read(cli, acme, tmp_path, command):
    """A write committed by another process between the command's first read and its
    INSERT (a worker claiming a job, the server taking a request) does not fail the command:
    it takes SQLite's write lock at BEGIN. A read that then wrote failed at once with
    "database is locked" (its snapshot stale, no busy wait)."""
    rules = _write(tmp_path, "r.yaml", RULES_YAML)
    if command == "apply":
        assert cli("rules", "import", "--org", "acme", "--activate", rules).exit_code == 0
    target = "INSERT INTO jobs" if command == "apply" else "INSERT INTO rule_sets"
    args = ["--activate", rules] if command == "import" else []
    with another_write_before(target, str(db.engine(acme).url.database)) as other:
        result = cli("rules", command, "--org", "acme", *args)
    assert other == ["database is locked"]  # it waits for the command, not the reverse
    assert result.exit_code == 0, result.output


def test_the_preview_names_what_other_rules_would_give() -> None:
    """A user who keeps a license and a role given by a renamed rule: counted and shown."""
    from scim_server.admin.rules_cli import format_preview

    summary = {
        "users": 2,
        "would_change": 1,
        "given_by_other_rules": 1,
        "license_moves": {},
        "roles_added": {},
        "roles_removed": {},
        "examples": [
            {
                "userName": "sam@acme.example",
                "license_given_by": {"before": "sales", "after": "sellers"},
                "roles_given_by": {"Seller": {"before": "sales", "after": None}},
            }
        ],
    }
    lines = format_preview(summary).splitlines()
    assert "keep a license or role given by other rules: 1" in lines
    assert lines[-1] == (
        "  sam@acme.example: license by rule sales -> sellers; Seller by rule sales -> -"
    )


IDEMPOTENT_RULES = """\
mode: all-match
defaults: {license: Viewer}
rules:
  - name: engineering
    when: {member_of: engineering}
    then: {license: Engineer, roles: [Engineer], contact: {title: Engineer}}
  - name: sales
    when: {attribute: department, equals: SALES}
    then: {license: Planner, roles: [Seller]}
  - name: partners
    priority: 5
    when: {attribute: email, matches: '.*@partner\\.example'}
    then: {license: Viewer, contact: {organization: Partner Inc}}
"""


def test_apply_on_thousands_of_users_is_idempotent(tmp_path, monkeypatch):
    """``scim-server rules apply`` twice on 1,200 users (more than two batches), some of
    them waiting for a seat: the second changes nothing and records no ``user.mapping``
    event."""
    monkeypatch.setenv("SCIM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert cli("org", "create", "acme").exit_code == 0
    app = create_app()
    with db.reader(app)() as session:
        org_id = find_organization(session, "acme").id
        session.rollback()
        licenses.create_license(session, org_id, "Engineer", 1000)
        licenses.create_license(session, org_id, "Planner", 100)
        licenses.create_license(session, org_id, "Viewer", None)
        roles.create_role(session, org_id, "Engineer", "task")
        roles.create_role(session, org_id, "Seller", "task")
        _token, secret = tokens.create_token(session, org_id, "idp")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    group = client.post(
        "/scim/v2/Groups",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
        },
        headers=headers,
    ).get_json()
    members = []
    for i in range(1200):
        domain = "partner.example" if i % 7 == 0 else "example.com"
        body = {
            "schemas": [USER_SCHEMA],
            "userName": f"u{i}@{domain}",
            "emails": [{"value": f"u{i}@{domain}", "primary": True}],
            ENTERPRISE: {"department": "sales" if i % 3 == 0 else "ops"},
        }
        resp = client.post("/scim/v2/Users", json=body, headers=headers)
        assert resp.status_code == 201
        if i % 4 == 0:
            members.append({"value": resp.get_json()["id"]})
    resp = client.patch(
        f"/scim/v2/Groups/{group['id']}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": members}],
        },
        headers=headers,
    )
    assert resp.status_code == 204
    path = tmp_path / "rules.yaml"
    path.write_text(IDEMPOTENT_RULES, encoding="utf-8")
    assert cli("rules", "import", "--org", "acme", str(path), "--activate").exit_code == 0
    first = cli("rules", "apply", "--org", "acme")
    assert first.exit_code == 0, first.output

    def mapped() -> int:
        with db.reader(app)() as s:
            return s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "user.mapping")
            )

    before = mapped()
    second = cli("rules", "apply", "--org", "acme")
    assert second.exit_code == 0, second.output
    assert "rules re-applied: 0 user(s) changed" in second.output, second.output
    assert mapped() == before
    db.engine(app).dispose()


def test_the_cli_preview_names_who_the_seats_do_not_fit_and_contact_fields() -> None:
    """``rules preview`` prints the seats and contact lines only when there is something."""
    summary = {
        "users": 5,
        "would_change": 5,
        "given_by_other_rules": 0,
        "license_moves": {"- -> Engineer": 3},
        "roles_added": {},
        "roles_removed": {},
        "license_shortages": {"Engineer": 2},
        "license_refusals": {},
        "contact_changes": {"title": 5},
        "examples": [],
    }
    out = format_preview(summary)
    assert "waiting for a seat: Engineer (2)" in out
    assert "contact fields: title (5)" in out
    assert "refused" not in out
