"""Validating a rule-set document (parsed JSON or YAML) into a ``RuleSet``.

Admins edit these documents by hand, so ``validate`` reports every problem at
once, each at a path such as ``rules[2].when.attribute``, with a suggestion
where one is likely (``did you mean "department"?``). It raises nothing but
``RuleSetError``, whatever the document holds.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from mappings.conditions import (
    OPERATORS,
    AllOf,
    Always,
    AnyOf,
    AttributeCondition,
    Condition,
    MemberOf,
    Not,
    compile_pattern,
    nested_quantifier,
)
from mappings.formats import dump, load
from mappings.identity import VOCABULARY
from mappings.model import (
    CONTACT_FIELDS,
    DEFAULTS_NAME,
    MODES,
    STATUSES,
    Effects,
    Problem,
    Rule,
    RuleSet,
    RuleSetError,
)
from mappings.templates import TemplateError, parse_template
from mappings.text import fold, listing, suggest
from mappings.text import path_at as at

__all__ = ["Problem", "RuleSet", "RuleSetError", "dump", "load", "validate"]

MAX_DEPTH = 20
MAX_PATTERN_LENGTH = 500
MAX_RULES = 1000
MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 1000
MAX_PRIORITY = 1_000_000_000
TOP_KEYS = ("mode", "defaults", "rules")
DEFAULTS_KEYS = ("license", "roles", "username", "status")
RULE_KEYS = ("name", "description", "priority", "when", "then")
THEN_KEYS = ("license", "roles", "contact", "username", "status")
CONDITION_KINDS = ("attribute", "member_of", "all", "any", "not", "always")
PREFIXES = ("scim", "saml", "oidc")
# RFC 7643 §2.1 ATTRNAME, optionally URN-qualified (§3.3) and with one sub-attribute.
_SCIM_NAME = r"(?:\$ref|[A-Za-z][A-Za-z0-9_-]*)"
SCIM_PATH = re.compile(rf"(?:urn:[A-Za-z0-9][A-Za-z0-9.:_-]*:)?{_SCIM_NAME}(?:\.{_SCIM_NAME})?")


def validate(
    document: Any, *, licenses: Collection[str] = (), roles: Collection[str] = ()
) -> RuleSet:
    """Check a rule-set document against the organization's licenses and roles.

    Names are compared case-insensitively and returned in the organization's
    spelling. Raises ``RuleSetError`` listing every problem.
    """
    checker = _Checker(licenses, roles)
    ruleset = checker.document(document)
    if checker.problems or ruleset is None:
        raise RuleSetError(checker.problems)
    return ruleset


def _by_key(names: Collection[str]) -> dict[str, str]:
    """Folded name → the organization's spelling (the smallest, if two differ by case only)."""
    return {fold(n): n for n in sorted((n for n in names if isinstance(n, str)), reverse=True)}


class _Checker:
    """Walks a document, collecting problems and building the model where it can."""

    def __init__(self, licenses: Collection[str], roles: Collection[str]) -> None:
        self.problems: list[Problem] = []
        self.licenses = _by_key(licenses)
        self.roles = _by_key(roles)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path or "$", message))

    def keys(self, doc: Mapping[Any, Any], allowed: Collection[str], path: str) -> None:
        for key in doc:
            if key in allowed:
                continue
            key = key if isinstance(key, str) else str(key)
            close = suggest(key, allowed)
            hint = f'; did you mean "{close}"?' if close else f" (allowed: {listing(allowed)})"
            self.problem(at(path, key), f"unknown key{hint}")

    def text(self, value: Any, path: str, limit: int = MAX_TEXT_LENGTH) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, "must be a non-empty string")
            return None
        if len(value) > limit:
            self.problem(path, f"must be at most {limit} characters")
            return None
        return value

    # -- the document -------------------------------------------------------

    def document(self, doc: Any) -> RuleSet | None:
        if not isinstance(doc, Mapping):
            self.problem("$", "must be an object with mode, defaults and rules")
            return None
        self.keys(doc, TOP_KEYS, "")
        mode = self.mode(doc.get("mode", MODES[0]))
        defaults = self.defaults(doc.get("defaults", {}))
        rules = self.rules(doc.get("rules", []))
        if mode is None or defaults is None or rules is None:
            return None
        return RuleSet(mode=mode, defaults=defaults, rules=rules)

    def mode(self, value: Any) -> str | None:
        if isinstance(value, str) and fold(value) in MODES:
            return fold(value)
        self.problem("mode", f"must be one of {', '.join(MODES)}")
        return None

    def defaults(self, value: Any) -> Effects | None:
        if not isinstance(value, Mapping):
            self.problem("defaults", "must be an object with license, roles, username or status")
            return None
        self.keys(value, DEFAULTS_KEYS, "defaults")
        return self.effects_of({k: v for k, v in value.items() if k in DEFAULTS_KEYS}, "defaults")

    def rules(self, value: Any) -> tuple[Rule, ...] | None:
        if not isinstance(value, list):
            self.problem("rules", "must be a list of rules")
            return None
        if len(value) > MAX_RULES:
            self.problem("rules", f"must hold at most {MAX_RULES} rules")
            return None
        built = [self.rule(item, f"rules[{i}]") for i, item in enumerate(value)]
        self.duplicate_names(value)
        if any(rule is None for rule in built):
            return None
        return tuple(rule for rule in built if rule is not None)

    def duplicate_names(self, rules: list[Any]) -> None:
        first: dict[str, int] = {}
        for i, rule in enumerate(rules):
            name = rule.get("name") if isinstance(rule, Mapping) else None
            if not isinstance(name, str) or not name.strip():
                continue
            if fold(name) in first:
                where = f"rules[{first[fold(name)]}]"
                self.problem(f"rules[{i}].name", f'duplicate rule name "{name}" (also {where})')
            else:
                first[fold(name)] = i

    # -- one rule -----------------------------------------------------------

    def rule(self, value: Any, path: str) -> Rule | None:
        if not isinstance(value, Mapping):
            self.problem(path, "must be an object with name, when and then")
            return None
        self.keys(value, RULE_KEYS, path)
        for required in ("name", "when", "then"):
            if required not in value:
                self.problem(at(path, required), "is required")
        name = self.rule_name(value.get("name"), at(path, "name")) if "name" in value else None
        description = None
        if "description" in value:
            description = self.text(value["description"], at(path, "description"))
        priority = self.priority(value.get("priority", 0), at(path, "priority"))
        when = self.condition(value["when"], at(path, "when"), 1) if "when" in value else None
        then = self.then(value["then"], at(path, "then")) if "then" in value else None
        if name is None or when is None or then is None or priority is None:
            return None
        if "description" in value and description is None:
            return None
        return Rule(name=name, when=when, then=then, priority=priority, description=description)

    def rule_name(self, value: Any, path: str) -> str | None:
        name = self.text(value, path, MAX_NAME_LENGTH)
        if name is not None and fold(name) == DEFAULTS_NAME:
            self.problem(path, f'"{DEFAULTS_NAME}" is reserved for the defaults')
            return None
        return name

    def priority(self, value: Any, path: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, "must be an integer (higher wins)")
            return None
        if abs(value) > MAX_PRIORITY:
            self.problem(path, f"must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
            return None
        return value

    def then(self, value: Any, path: str) -> Effects | None:
        if not isinstance(value, Mapping):
            self.problem(path, "must be an object with license, roles, contact, username or status")
            return None
        self.keys(value, THEN_KEYS, path)
        return self.effects_of(value, path)

    def effects_of(self, value: Mapping[str, Any], path: str) -> Effects | None:
        before = len(self.problems)
        license_ = (
            self.license(value["license"], at(path, "license")) if "license" in value else None
        )
        roles = self.role_list(value["roles"], at(path, "roles")) if "roles" in value else ()
        contact = self.contact(value["contact"], at(path, "contact")) if "contact" in value else {}
        username = (
            self.template(value["username"], at(path, "username")) if "username" in value else None
        )
        status = self.status(value["status"], at(path, "status")) if "status" in value else None
        if len(self.problems) > before:
            return None
        return Effects(license_, roles, contact or {}, username, status)

    # -- effects ------------------------------------------------------------

    def license(self, value: Any, path: str) -> str | None:
        return self.known(value, path, self.licenses, "license")

    def role_list(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.problem(path, "must be a list of role names")
            return ()
        found = [self.known(v, at(path, i), self.roles, "role") for i, v in enumerate(value)]
        return tuple(dict.fromkeys(name for name in found if name is not None))

    def known(self, value: Any, path: str, names: dict[str, str], what: str) -> str | None:
        name = self.text(value, path, MAX_NAME_LENGTH)
        if name is None:
            return None
        if fold(name) in names:
            return names[fold(name)]
        close = suggest(name, names.values())
        if close:
            hint = f'; did you mean "{close}"?'
        else:
            hint = f" (this organization has {listing(names.values()) if names else 'none'})"
        self.problem(path, f'unknown {what} "{name}"{hint}')
        return None

    def contact(self, value: Any, path: str) -> dict[str, str] | None:
        if not isinstance(value, Mapping):
            self.problem(path, f"must be an object with any of {', '.join(CONTACT_FIELDS)}")
            return None
        self.keys(value, CONTACT_FIELDS, path)
        fields = {k: self.text(v, at(path, k)) for k, v in value.items() if k in CONTACT_FIELDS}
        return {k: v for k, v in fields.items() if v is not None}

    def template(self, value: Any, path: str) -> str | None:
        template = self.text(value, path)
        if template is None:
            return None
        try:
            parse_template(template)
        except TemplateError as exc:
            self.problem(path, f"template {exc}")
            return None
        return template

    def status(self, value: Any, path: str) -> str | None:
        if isinstance(value, str) and value.strip().upper() in STATUSES:
            return value.strip().upper()
        self.problem(path, f"must be one of {', '.join(STATUSES)}")
        return None

    # -- conditions ---------------------------------------------------------

    def condition(self, value: Any, path: str, depth: int) -> Condition | None:
        if depth > MAX_DEPTH:
            self.problem(path, f"conditions are nested deeper than {MAX_DEPTH} levels")
            return None
        if not isinstance(value, Mapping):
            self.problem(path, "must be a condition object, such as {member_of: NAME}")
            return None
        kinds = [k for k in CONDITION_KINDS if k in value]
        if len(kinds) != 1:
            self.keys(value, (*CONDITION_KINDS, *OPERATORS), path)
            found = f"has both {kinds[0]} and {kinds[1]}" if kinds else "has no condition"
            self.problem(path, f"{found}; use exactly one of {', '.join(CONDITION_KINDS)}")
            return None
        kind = kinds[0]
        if kind == "attribute":
            return self.attribute_condition(value, path)
        self.keys(value, (kind,), path)
        operand, where = value[kind], at(path, kind)
        if kind == "member_of":
            group = self.text(operand, where)
            return MemberOf(group) if group is not None else None
        if kind == "not":
            inner = self.condition(operand, where, depth + 1)
            return Not(inner) if inner is not None else None
        if kind == "always":
            if operand is not True:
                self.problem(where, "must be true (leave the rule out to disable it)")
                return None
            return Always()
        if not isinstance(operand, list) or not operand:
            self.problem(where, "must be a non-empty list of conditions")
            return None
        items = [self.condition(c, at(where, i), depth + 1) for i, c in enumerate(operand)]
        if any(item is None for item in items):
            return None
        children = tuple(item for item in items if item is not None)
        return AllOf(children) if kind == "all" else AnyOf(children)

    def attribute_condition(self, value: Mapping[str, Any], path: str) -> Condition | None:
        self.keys(value, ("attribute", *OPERATORS), path)
        name = self.attribute_name(value["attribute"], at(path, "attribute"))
        operators = [op for op in OPERATORS if op in value]
        if len(operators) != 1:
            found = f"has both {operators[0]} and {operators[1]}" if operators else "has no test"
            self.problem(path, f"{found}; use exactly one of {', '.join(OPERATORS)}")
            return None
        op = operators[0]
        operand = self.operand(op, value[op], at(path, op))
        if name is None or operand is None:
            return None
        return AttributeCondition(name, op, operand)

    def attribute_name(self, value: Any, path: str) -> str | None:
        name = self.text(value, path, MAX_TEXT_LENGTH)
        if name is None:
            return None
        prefix, colon, rest = name.partition(":")
        if not colon:
            canonical = {fold(v): v for v in VOCABULARY}.get(fold(name))
            if canonical is None:
                close = suggest(name, VOCABULARY)
                hint = (
                    f'did you mean "{close}"?'
                    if close
                    else f"use one of {', '.join(VOCABULARY)}, or a scim:, saml: or oidc: prefix"
                )
                self.problem(path, f'unknown attribute "{name}"; {hint}')
            return canonical
        if fold(prefix) not in PREFIXES:
            self.problem(path, f'unknown attribute source "{prefix}"; use scim:, saml: or oidc:')
            return None
        if not rest:
            self.problem(path, f'needs an attribute name after "{prefix}:"')
            return None
        if fold(prefix) == "scim" and not SCIM_PATH.fullmatch(rest):
            self.problem(
                path,
                f'"{rest}" is not a SCIM attribute path (such as title, name.givenName '
                "or urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter)",
            )
            return None
        return f"{fold(prefix)}:{rest}"

    def operand(self, op: str, value: Any, path: str) -> str | bool | None:
        if op == "present":
            if isinstance(value, bool):
                return value
            self.problem(path, "must be true or false")
            return None
        if isinstance(value, int | float) and not isinstance(value, bool) and op != "matches":
            value = str(value)
        elif isinstance(value, bool) and op == "equals":
            value = "true" if value else "false"  # as JSON booleans reach attributes
        if op != "matches":
            return self.text(value, path)
        if not isinstance(value, str) or not value:
            self.problem(path, "must be a non-empty regular expression")
            return None
        if len(value) > MAX_PATTERN_LENGTH:
            self.problem(path, f"must be at most {MAX_PATTERN_LENGTH} characters")
            return None
        try:
            compile_pattern(value)
        except (re.error, RecursionError, OverflowError, Warning) as exc:
            self.problem(path, f"is not a valid regular expression: {exc}")
            return None
        if nested_quantifier(value):
            self.problem(
                path,
                "has a quantifier inside a repeated group, such as (a+)+, which can take "
                "exponential time; use a possessive quantifier (a++) or an atomic group (?>...)",
            )
            return None
        return value
