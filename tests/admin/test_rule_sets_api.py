"""Admin API: rule sets — validation errors, storage, export, activation, apply, references."""

from __future__ import annotations

import json

import pytest
import yaml
from sqlalchemy import select

from scim_server.models import RuleSet
from tests.admin.rules import RULES, RULES_YAML, activate, catalogue
from tests.support import ENTERPRISE
from tests.support.admin_api import (
    account,
    apply_rules,
    events,
    licenses_by_name,
    make_license,
    ok,
    person,
)


def _rules_with(then: dict | None = None, when: dict | None = None) -> dict:
    rule = {"name": "r", "when": when or {"member_of": "Engineering"}, "then": then or {}}
    return {"mode": "first-match", "rules": [rule]}


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        (
            _rules_with(then={"license": "Enginer"}),
            "rules[0].then.license",
            'unknown license "Enginer"',
        ),
        (
            _rules_with(then={"roles": ["Wizard"]}),
            "rules[0].then.roles[0]",
            'unknown role "Wizard"',
        ),
        (
            _rules_with(when={"attribute": "departmnet", "equals": "Sales"}),
            "rules[0].when.attribute",
            'unknown attribute "departmnet"',
        ),
        (
            _rules_with(when={"attribute": "title", "matches": "(unclosed"}),
            "rules[0].when.matches",
            "is not a valid regular expression",
        ),
        ({"mode": "first-match", "rules": [], "extra": 1}, "extra", "unknown key"),
        ({"mode": "sometimes", "rules": []}, "mode", "must be one of"),
    ],
    ids=[
        "unknown-license",
        "unknown-role",
        "unknown-attribute",
        "bad-regex",
        "unknown-key",
        "bad-mode",
    ],
)
def test_validation_errors_name_the_path(admin, document, path, message):
    """Each kind of mistake is a 400 invalid_rule_set naming where it is and what is wrong."""
    catalogue(admin)
    resp = admin.post("/api/v1/rulesets/validate", document)
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == "invalid_rule_set"
    assert any(p["path"] == path and message in p["message"] for p in body["problems"]), body
    created = admin.post("/api/v1/rulesets", {"name": "bad", "document": document})
    assert created.status_code == 400 and created.get_json()["problems"] == body["problems"]


def test_every_problem_is_reported_at_once(admin, session):
    """Two mistakes, two problems; nothing is stored and the refusal is logged."""
    catalogue(admin)
    document = _rules_with(then={"license": "Ghost", "roles": ["Nobody"]})
    resp = admin.post("/api/v1/rulesets", {"name": "bad", "document": document})
    assert resp.status_code == 400
    assert {p["path"] for p in resp.get_json()["problems"]} == {
        "rules[0].then.license",
        "rules[0].then.roles[0]",
    }
    assert session.scalars(select(RuleSet)).all() == []
    (failure,) = events(admin, action="ruleset.create", outcome="failure")
    assert failure["status"] == 400 and "Ghost" in failure["detail"]


def test_valid_documents_as_json_yaml_or_text(admin):
    """A document, {"document": ...}, or YAML/JSON text all validate the same way."""
    catalogue(admin)
    for body in (
        RULES,
        {"document": RULES},
        {"format": "yaml", "text": RULES_YAML},
        {"format": "json", "text": json.dumps(RULES)},
    ):
        assert ok(admin.post("/api/v1/rulesets/validate", body)) == {"valid": True}


def test_text_syntax_errors_are_clear(admin):
    """Broken YAML, broken JSON, an unknown format and NUL characters are 400s with a reason."""
    catalogue(admin)
    broken = admin.post("/api/v1/rulesets/validate", {"format": "yaml", "text": "rules: [\n"})
    assert broken.status_code == 400
    assert "YAML syntax error" in broken.get_json()["problems"][0]["message"]
    bad_json = admin.post("/api/v1/rulesets/validate", {"format": "json", "text": "{"})
    assert "JSON syntax error" in bad_json.get_json()["problems"][0]["message"]
    assert (
        admin.post("/api/v1/rulesets/validate", {"format": "toml", "text": "x"}).status_code == 400
    )
    nul = admin.post(
        "/api/v1/rulesets",
        {
            "name": "nul",
            "format": "yaml",
            "text": 'mode: first-match\nrules:\n  - name: "a\\0"\n    when: {always: true}\n    then: {}\n',
        },
    )
    assert nul.status_code == 400 and nul.get_json()["problems"][0]["path"] == "rules[0].name"
    both = admin.post(
        "/api/v1/rulesets", {"name": "x", "document": RULES, "format": "json", "text": "{}"}
    )
    assert both.status_code == 400
    assert admin.post("/api/v1/rulesets", {"document": RULES}).status_code == 400


def test_store_list_get_export_activate(admin, session):
    """Versions are stored, listed, exported as YAML or JSON, and one is activated (logged)."""
    catalogue(admin)
    first = ok(
        admin.post("/api/v1/rulesets", {"name": "main", "format": "yaml", "text": RULES_YAML}), 201
    )
    assert first["version"] == 1 and first["active"] is False and first["document"] == RULES
    second = ok(admin.post("/api/v1/rulesets", {"name": "main", "document": RULES}), 201)
    assert second["version"] == 2
    listed = ok(admin.get("/api/v1/rulesets"))["rule_sets"]
    assert [(r["version"], r["active"]) for r in listed] == [(1, False), (2, False)]
    exported = admin.get(f"/api/v1/rulesets/{first['id']}/export")
    assert exported.status_code == 200 and exported.mimetype == "application/yaml"
    assert yaml.safe_load(exported.get_data(as_text=True)) == RULES
    as_json = admin.get(f"/api/v1/rulesets/{first['id']}/export", query_string={"format": "json"})
    assert json.loads(as_json.get_data(as_text=True)) == RULES
    assert (
        admin.get(
            f"/api/v1/rulesets/{first['id']}/export", query_string={"format": "xml"}
        ).status_code
        == 400
    )
    ok(admin.post(f"/api/v1/rulesets/{first['id']}/activate", None))
    active = ok(admin.post(f"/api/v1/rulesets/{second['id']}/activate", None))
    assert active["active"] is True and active["activated_at"]
    rows = session.scalars(select(RuleSet).order_by(RuleSet.version)).all()
    assert [r.active for r in rows] == [False, True]
    assert ok(admin.get(f"/api/v1/rulesets/{second['id']}"))["active"] is True
    assert admin.get("/api/v1/rulesets/nope").status_code == 404
    assert admin.post("/api/v1/rulesets/nope/activate", None).status_code == 404
    activations = events(admin, action="ruleset.activate", outcome="success")
    assert activations[-1]["changes"] == {
        "active_rule_set": {"before": first["id"], "after": second["id"]}
    }
    assert activations[-1]["actor_type"] == "admin"
    assert len(events(admin, action="ruleset.create")) == 2


def test_apply_moves_existing_users(scim, admin, session):
    """Users created before the rules get their license and roles when the rules are applied."""
    catalogue(admin)
    engineers = scim.create_group("Engineering")
    ann = person(scim, "ann@example.com")
    bob = person(scim, "bob@example.com", department="Sales")
    scim.patch_ops(
        f"/scim/v2/Groups/{engineers['id']}",
        {"op": "add", "path": "members", "value": [{"value": ann["id"]}]},
    )
    assert admin.post("/api/v1/rulesets/apply", None).status_code == 409  # nothing active yet
    activate(admin)
    job = apply_rules(admin)
    assert (job["state"], job["result"]) == (
        "succeeded",
        {"users": 2, "evaluated": 2, "changed": 2},
    )
    users = {u["userName"]: u for u in ok(admin.get("/api/v1/users"))["users"]}
    assert users["ann@example.com"]["license"] == {
        "value": "Engineer",
        "source": "rule",
        "rule": "engineering",
    }
    assert [r["value"] for r in users["ann@example.com"]["roles"]] == ["Engineer"]
    assert users["bob@example.com"]["license"]["value"] == "Planner"
    # Nothing changed since: every user is skipped, unevaluated.
    assert apply_rules(admin)["result"] == {"users": 2, "evaluated": 0, "changed": 0}
    mapping = events(admin, action="user.mapping", resource_id=bob["id"])
    assert mapping[-1]["detail"] == "rules re-applied" and mapping[-1]["explanation"]["rules"]
    applied = events(admin, action="ruleset.apply", outcome="success")
    assert [e["changes"]["users_changed"] for e in applied] == [2, 0]


def test_rules_in_use_protect_their_licenses_and_roles(admin, session):
    """A license or role the active rules name cannot be deleted or renamed away."""
    catalogue(admin)
    activate(admin)
    licenses = {lic["name"]: lic for lic in ok(admin.get("/api/v1/licenses"))["licenses"]}
    roles = {r["name"]: r for r in ok(admin.get("/api/v1/roles"))["roles"]}
    renamed = admin.patch(f"/api/v1/licenses/{licenses['Planner']['id']}", {"name": "Planning"})
    assert renamed.status_code == 409
    assert "rules[1].then.license" in renamed.get_json()["detail"]
    assert admin.delete(f"/api/v1/licenses/{licenses['Engineer']['id']}").status_code == 409
    assert admin.delete(f"/api/v1/roles/{roles['Engineer']['id']}").status_code == 409
    assert admin.delete(f"/api/v1/roles/{roles['Portal']['id']}").status_code == 204
    names = {lic["name"] for lic in ok(admin.get("/api/v1/licenses"))["licenses"]}
    assert names == {"Engineer", "Planner"}


def test_preview_reports_the_contact_fields_apply_then_changes(scim, admin):
    """A rule that sets a contact field (``then.contact.title``): the preview says who would
    change and how, as the apply then changes them."""
    make_license(admin, "Viewer", None)
    users = [person(scim, f"c{i}@example.com", department="Partners") for i in range(3)]
    document = {
        "mode": "first-match",
        "rules": [
            {
                "name": "contractors",
                "when": {"attribute": "department", "equals": "partners"},
                "then": {"contact": {"title": "External contractor", "organization": "Acme"}},
            }
        ],
    }
    summary = ok(admin.post("/api/v1/rulesets/preview", document))
    assert summary["contact_changes"] == {"title": 3, "organization": 3}
    assert summary["examples"][0]["contact"] == {
        "title": {"before": None, "after": "External contractor"},
        "organization": {"before": None, "after": "Acme"},
    }
    activate(admin, document)
    job = apply_rules(admin)
    assert job["result"]["changed"] == len(users)
    assert summary["would_change"] == job["result"]["changed"], summary
    # Applied: a second preview finds nothing to change (the company exists now).
    again = ok(admin.post("/api/v1/rulesets/preview", document))
    assert (again["would_change"], again["contact_changes"]) == (0, {})


@pytest.mark.parametrize("written", ["0123", "1:30", "0x1F"])
def test_a_yaml_rule_value_is_compared_as_written(scim, admin, written):
    """``{attribute: costCenter, equals: 0123}`` unquoted in YAML (the README's style): YAML
    1.1 read 83 (1:30 as 90, 0x1F as 31), validate said valid, and the rule never matched
    the user whose costCenter is "0123". It compares with the text written: the preview
    finds the user, the stored version keeps the text, the apply gives the license."""
    make_license(admin, "Engineer")
    user = person(scim, "cc@example.com", **{ENTERPRISE: {"costCenter": written}})
    text = (
        "mode: first-match\n"
        "rules:\n"
        "  - name: cost-center\n"
        f"    when: {{attribute: costCenter, equals: {written}}}\n"
        "    then: {license: Engineer}\n"
    )

    preview = ok(admin.post("/api/v1/rulesets/preview", {"format": "yaml", "text": text}))
    assert preview["would_change"] == 1, preview

    stored = ok(admin.post("/api/v1/rulesets", {"name": "cc", "format": "yaml", "text": text}), 201)
    assert stored["document"]["rules"][0]["when"] == {"attribute": "costCenter", "equals": written}
    ok(admin.post(f"/api/v1/rulesets/{stored['id']}/activate", None))
    apply_rules(admin)
    assert account(admin, user["id"])["license"]["value"] == "Engineer"


def test_preview_license_moves_match_what_apply_gives_with_seats(scim, admin):
    """Five users, a rule giving the three-seat Engineer license: the preview moves three and
    reports two shortages (lenient), as the apply then gives three seats and leaves two waiting."""
    make_license(admin, "Engineer", 3)
    for i in range(5):
        person(scim, f"e{i}@example.com", department="Eng")
    document = {
        "mode": "first-match",
        "rules": [{"name": "eng", "when": {"always": True}, "then": {"license": "Engineer"}}],
    }
    summary = ok(admin.post("/api/v1/rulesets/preview", document))
    assert summary["license_moves"] == {"- -> Engineer": 3}
    assert summary["license_shortages"] == {"Engineer": 2}
    assert summary["license_refusals"] == {}
    assert summary["would_change"] == 5
    activate(admin, document)
    apply_rules(admin)
    engineer = licenses_by_name(admin)["Engineer"]
    assert (engineer["used"], engineer["shortage"]) == (3, 2)
    # The two waiting: nothing changes for them while no seat is free.
    again = ok(admin.post("/api/v1/rulesets/preview", document))
    assert (again["would_change"], again["license_moves"], again["license_shortages"]) == (
        0,
        {},
        {},
    )


def test_preview_in_strict_seat_mode_counts_refusals_apart(scim, admin):
    """Strict seats: the users the seats cannot fit are refusals (they keep what they hold),
    not moves, not changes; the apply refuses the same number."""
    make_license(admin, "Engineer", 2)
    ok(admin.put("/api/v1/settings", {"strict_seats": True}))
    for i in range(4):
        person(scim, f"s{i}@example.com")
    document = {
        "mode": "first-match",
        "rules": [{"name": "eng", "when": {"always": True}, "then": {"license": "Engineer"}}],
    }
    summary = ok(admin.post("/api/v1/rulesets/preview", document))
    assert summary["license_moves"] == {"- -> Engineer": 2}
    assert summary["license_refusals"] == {"Engineer": 2}
    assert summary["license_shortages"] == {}
    assert summary["would_change"] == 2
    activate(admin, document)
    assert apply_rules(admin)["result"]["refused"] == 2
