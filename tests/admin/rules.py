"""A realistic organization for the rule-set tests: licenses, roles, and the rules that use them."""

from __future__ import annotations

from typing import Any

from tests.support import Scim
from tests.support.admin_api import make_license, make_role, ok

RULES: dict[str, Any] = {
    "mode": "first-match",
    "rules": [
        {
            "name": "engineering",
            "when": {"member_of": "Engineering"},
            "then": {"license": "Engineer", "roles": ["Engineer"]},
        },
        {
            "name": "sales",
            "when": {"attribute": "department", "equals": "Sales"},
            "then": {"license": "Planner"},
        },
    ],
}

RULES_YAML = """\
mode: first-match
rules:
  - name: engineering
    when: {member_of: Engineering}
    then:
      license: Engineer
      roles: [Engineer]
  - name: sales
    when: {attribute: department, equals: Sales}
    then: {license: Planner}
"""


def catalogue(admin: Scim, engineer_seats: int | None = 10, planner_seats: int | None = 10) -> None:
    """The licenses and roles the rules name."""
    make_license(admin, "Engineer", engineer_seats)
    make_license(admin, "Planner", planner_seats)
    make_role(admin, "Engineer", "task")
    make_role(admin, "Portal", "portal")


def activate(admin: Scim, document: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store ``document`` (default: RULES) and make it the active rule set."""
    created = ok(
        admin.post("/api/v1/rulesets", {"name": "main", "document": document or RULES}), 201
    )
    return ok(admin.post(f"/api/v1/rulesets/{created['id']}/activate", None))
