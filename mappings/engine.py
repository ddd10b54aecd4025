"""Applying a rule set to an external identity: what the person gets, and why.

``resolve`` is a pure function of (identity, rules): the same inputs give the
same result and the same explanation, so a re-evaluation that changes nothing
writes nothing, and an auditor can replay any decision.

Conflicts in ``all-match`` mode are settled the same way every time:
- license, username template and initial status (one value each): the highest
  ``priority`` wins, ties go to the earlier rule;
- roles: the union of every matching rule's roles;
- contact fields: the later rule wins, field by field.
Each loser is named in its rule's explanation entry under ``overridden``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mappings.identity import ExternalIdentity
from mappings.model import DEFAULTS_NAME, Rule, RuleSet
from mappings.templates import render_username
from mappings.text import fold

__all__ = ["MappingResult", "diff", "render_username", "resolve"]

Hit = tuple[int, Rule, dict[str, Any]]  # document index, rule, its explanation entry


@dataclass(frozen=True)
class MappingResult:
    """What the rules give one identity; ``explanation`` is ready to store as JSON."""

    license: str | None = None
    license_rule: str | None = None
    roles: tuple[str, ...] = ()
    role_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    contact: Mapping[str, str] = field(default_factory=dict, hash=False)
    username_template: str | None = None
    initial_status: str | None = None
    matched: tuple[str, ...] = ()
    explanation: tuple[dict[str, Any], ...] = field(default=(), hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (lists, not tuples)."""
        return {
            "license": self.license,
            "license_rule": self.license_rule,
            "roles": list(self.roles),
            "role_rules": {role: list(names) for role, names in self.role_rules.items()},
            "contact": dict(self.contact),
            "username_template": self.username_template,
            "initial_status": self.initial_status,
            "matched": list(self.matched),
            "explanation": list(self.explanation),
        }


def resolve(identity: ExternalIdentity, rules: RuleSet) -> MappingResult:
    """Evaluate the rules in order (stopping at the first match in ``first-match`` mode)."""
    explanation: list[dict[str, Any]] = []
    hits: list[Hit] = []
    for index, rule in enumerate(rules.rules):
        matched, because = rule.when.evaluate(identity)
        entry: dict[str, Any] = {"rule": rule.name, "matched": matched, "because": because}
        entry["effects"] = rule.then.to_document() if matched else {}
        explanation.append(entry)
        if matched:
            hits.append((index, rule, entry))
            if rules.mode == "first-match":
                break

    license_hit = _by_priority(hits, "license")
    username_hit = _by_priority(hits, "username")
    status_hit = _by_priority(hits, "status")
    role_rules: dict[str, list[str]] = {}
    for _, rule, _ in hits:
        for role in rule.then.roles:
            role_rules.setdefault(role, []).append(rule.name)
    contact = _contact(hits)

    defaults = rules.defaults
    applied: dict[str, Any] = {}
    license_ = license_hit[1].then.license if license_hit else defaults.license
    license_rule = license_hit[1].name if license_hit else None
    if license_hit is None and defaults.license is not None:
        applied["license"], license_rule = defaults.license, DEFAULTS_NAME
    if not role_rules and defaults.roles:
        applied["roles"] = list(defaults.roles)
        role_rules = {role: [DEFAULTS_NAME] for role in defaults.roles}
    username = username_hit[1].then.username if username_hit else defaults.username
    if username_hit is None and defaults.username is not None:
        applied["username"] = defaults.username
    status = status_hit[1].then.status if status_hit else defaults.status
    if status_hit is None and defaults.status is not None:
        applied["status"] = defaults.status
    if applied:
        because = "no matching rule assigns " + _join(list(applied))
        explanation.append(
            {"rule": DEFAULTS_NAME, "matched": True, "because": because, "effects": applied}
        )

    return MappingResult(
        license=license_,
        license_rule=license_rule,
        roles=tuple(sorted(role_rules, key=lambda r: (fold(r), r))),
        role_rules={role: tuple(names) for role, names in role_rules.items()},
        contact=contact,
        username_template=username,
        initial_status=status,
        matched=tuple(rule.name for _, rule, _ in hits),
        explanation=tuple(explanation),
    )


def _by_priority(hits: list[Hit], effect: str) -> Hit | None:
    """The winning rule for a single-valued effect; the others are told why they lost."""
    candidates = [hit for hit in hits if getattr(hit[1].then, effect) is not None]
    if not candidates:
        return None
    winner = min(candidates, key=lambda hit: (-hit[1].priority, hit[0]))
    won = winner[1]
    for hit in candidates:
        if hit is winner:
            continue
        rule = hit[1]
        if won.priority > rule.priority:
            why = f'rule "{won.name}" has higher priority ({won.priority} > {rule.priority})'
        else:
            why = f'rule "{won.name}" has the same priority and comes first'
        hit[2].setdefault("overridden", {})[effect] = why
    return winner


def _contact(hits: list[Hit]) -> dict[str, str]:
    """Contact fields, field by field, the later rule winning."""
    contact: dict[str, str] = {}
    setter: dict[str, Hit] = {}
    for hit in hits:
        for name, value in hit[1].then.contact.items():
            previous = setter.get(name)
            if previous is not None:
                why = f'later rule "{hit[1].name}" sets it too'
                previous[2].setdefault("overridden", {})[f"contact.{name}"] = why
            contact[name], setter[name] = value, hit
    return contact


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def diff(before: MappingResult | None, after: MappingResult) -> dict[str, Any]:
    """License, role and contact changes from ``before`` (None: a new user) to ``after``.

    Made for re-evaluation: when a group change moves someone, the log says
    what changed and which rule caused it.
    """
    old_license = before.license if before else None
    old_roles = set(before.roles) if before else set()
    old_contact = dict(before.contact) if before else {}
    license_change = None
    if old_license != after.license:
        license_change = {"from": old_license, "to": after.license, "rule": after.license_rule}
    added = [
        {"role": role, "rules": list(after.role_rules.get(role, ()))}
        for role in after.roles
        if role not in old_roles
    ]
    removed = sorted(old_roles - set(after.roles), key=lambda r: (fold(r), r))
    contact = {
        name: {"from": old_contact.get(name), "to": after.contact.get(name)}
        for name in sorted({*old_contact, *after.contact})
        if old_contact.get(name) != after.contact.get(name)
    }
    return {
        "changed": bool(license_change or added or removed or contact),
        "license": license_change,
        "roles": {"added": added, "removed": removed},
        "contact": contact,
    }
