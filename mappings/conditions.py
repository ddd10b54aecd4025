"""Conditions of a rule, each able to say in a few words why it held or not.

``evaluate`` returns ``(matched, because)``; the reason names the attribute
values that decided, so an audit entry answers "why did Bob get Engineer?"
without re-running anything. Multi-valued attributes match if any value does.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from mappings.identity import ExternalIdentity
from mappings.text import cut, fold, quote, quote_all

Verdict = tuple[bool, str]
OPERATORS = ("equals", "contains", "matches", "present")
# Longer values never match a regex: bounds the time a pattern can take.
MAX_MATCHED_LENGTH = 1024
MAX_REASON_LENGTH = 400


class Condition(ABC):
    """Base of all conditions (a closed set: the classes below)."""

    @abstractmethod
    def evaluate(self, identity: ExternalIdentity) -> Verdict: ...

    @abstractmethod
    def to_document(self) -> dict[str, Any]: ...

    def groups_named(self) -> tuple[str, ...]:
        """The groups its ``member_of`` conditions name, at any depth (a group's rename
        changes what the rules say only when they name it: ``RuleSet.names_group``)."""
        return ()


@dataclass(frozen=True)
class AttributeCondition(Condition):
    """``{attribute: NAME, equals|contains|matches|present: VALUE}``."""

    attribute: str
    operator: str
    value: str | bool
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.operator == "matches" and self.pattern is None:
            object.__setattr__(self, "pattern", compile_pattern(str(self.value)))

    def evaluate(self, identity: ExternalIdentity) -> Verdict:
        values = identity.values(self.attribute)
        name = self.attribute
        if self.operator == "present":
            state = f"{name} is present" if values else f"{name} is absent"
            return bool(values) is self.value, state
        if not values:
            return False, f"{name} is absent"
        expected = str(self.value)
        if self.operator == "equals":
            hit = next((v for v in values if fold(v) == fold(expected)), None)
            if hit is not None:
                return True, f"{name} is {quote(hit)}"
            return False, f"{name} is {quote_all(values)}, not {quote(expected)}"
        if self.operator == "contains":
            hit = next((v for v in values if fold(expected) in fold(v)), None)
            if hit is not None:
                return True, f"{name} {quote(hit)} contains {quote(expected)}"
            return False, f"{name} {quote_all(values)} does not contain {quote(expected)}"
        assert self.pattern is not None
        pattern = self.pattern
        hit = next(
            (v for v in values if len(v) <= MAX_MATCHED_LENGTH and pattern.fullmatch(v)), None
        )
        if hit is not None:
            return True, f"{name} {quote(hit)} matches {quote(expected)}"
        return False, f"{name} {quote_all(values)} does not match {quote(expected)}"

    def to_document(self) -> dict[str, Any]:
        return {"attribute": self.attribute, self.operator: self.value}


@dataclass(frozen=True)
class MemberOf(Condition):
    """``{member_of: NAME}``: a group's display name or external id, case-insensitively."""

    group: str

    def evaluate(self, identity: ExternalIdentity) -> Verdict:
        wanted = fold(self.group)
        for group in identity.groups:
            for handle in (group.display_name, group.external_id):
                if handle is not None and fold(handle) == wanted:
                    return True, f"member of {quote(self.group)}"
        return False, f"not a member of {quote(self.group)}"

    def to_document(self) -> dict[str, Any]:
        return {"member_of": self.group}

    def groups_named(self) -> tuple[str, ...]:
        return (self.group,)


@dataclass(frozen=True)
class AllOf(Condition):
    """``{all: [...]}``: every condition holds (stops at the first that does not)."""

    conditions: tuple[Condition, ...]

    def evaluate(self, identity: ExternalIdentity) -> Verdict:
        reasons = []
        for condition in self.conditions:
            matched, because = condition.evaluate(identity)
            if not matched:
                return False, because
            reasons.append(because)
        return True, cut(" and ".join(reasons), MAX_REASON_LENGTH)

    def to_document(self) -> dict[str, Any]:
        return {"all": [c.to_document() for c in self.conditions]}

    def groups_named(self) -> tuple[str, ...]:
        return tuple(name for c in self.conditions for name in c.groups_named())


@dataclass(frozen=True)
class AnyOf(Condition):
    """``{any: [...]}``: at least one condition holds (stops at the first that does)."""

    conditions: tuple[Condition, ...]

    def evaluate(self, identity: ExternalIdentity) -> Verdict:
        reasons = []
        for condition in self.conditions:
            matched, because = condition.evaluate(identity)
            if matched:
                return True, because
            reasons.append(because)
        return False, cut(" and ".join(reasons), MAX_REASON_LENGTH)

    def to_document(self) -> dict[str, Any]:
        return {"any": [c.to_document() for c in self.conditions]}

    def groups_named(self) -> tuple[str, ...]:
        return tuple(name for c in self.conditions for name in c.groups_named())


@dataclass(frozen=True)
class Not(Condition):
    """``{not: {...}}``. The reason is the inner one: it already states the fact."""

    condition: Condition

    def evaluate(self, identity: ExternalIdentity) -> Verdict:
        matched, because = self.condition.evaluate(identity)
        return not matched, because

    def to_document(self) -> dict[str, Any]:
        return {"not": self.condition.to_document()}

    def groups_named(self) -> tuple[str, ...]:
        return self.condition.groups_named()


@dataclass(frozen=True)
class Always(Condition):
    """``{always: true}``: a catch-all rule."""

    def evaluate(self, identity: ExternalIdentity) -> Verdict:
        return True, "always applies"

    def to_document(self) -> dict[str, Any]:
        return {"always": True}


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a ``matches`` pattern: case-insensitive, like every other comparison."""
    return re.compile(pattern, re.IGNORECASE)


def nested_quantifier(pattern: str) -> bool:
    """True if a repeated group holds a variable repeat, as in ``(a+)+`` or ``(\\w+\\s?)*``.

    Such patterns can backtrack exponentially on a crafted value, and rules are
    evaluated on every provisioning request of a shared server. Possessive
    repeats (``\\w++``) and atomic groups (``(?>...)``) never backtrack, so
    they are the way to write these patterns safely.
    """
    try:
        from re import _constants, _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern, re.IGNORECASE)
    except Exception:  # pragma: no cover - a Python without these internals: skip the check
        return False
    repeats = {_constants.MAX_REPEAT, _constants.MIN_REPEAT}

    def walk(items: Any, inside_repeat: bool) -> bool:
        for op, av in items:
            if op in repeats:
                low, high, item = av
                if inside_repeat and low != high:
                    return True
                if walk(item, inside_repeat or high > 1):
                    return True
            elif op == _constants.ATOMIC_GROUP or op == _constants.POSSESSIVE_REPEAT:
                continue
            elif any(walk(sub, inside_repeat) for sub in _subpatterns(av, _parser.SubPattern)):
                return True
        return False

    return walk(parsed, False)


def _subpatterns(av: Any, kind: type) -> list[Any]:
    if isinstance(av, kind):
        return [av]
    if isinstance(av, list | tuple):
        return [sub for item in av for sub in _subpatterns(item, kind)]
    return []
