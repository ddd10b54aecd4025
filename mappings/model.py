"""The validated rule set: immutable values the engine can trust without checking again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mappings.conditions import Condition
from mappings.text import fold

MODES = ("first-match", "all-match")
STATUSES = ("PROVISIONED", "ACTIVE", "DEACTIVATED")
CONTACT_FIELDS = (
    "givenName",
    "familyName",
    "email",
    "phone",
    "title",
    "department",
    "organization",
)
DEFAULTS_NAME = "defaults"  # how results and explanations name the defaults; no rule may


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a rule-set document, located by a JSON-path-like ``path``."""

    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RuleSetError(ValueError):
    """A rule-set document that cannot be used; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "; ".join(str(p) for p in self.problems[:5])
        more = f" (+{count - 5} more)" if count > 5 else ""
        super().__init__(f"{count} problem{'s' * (count != 1)} in rule set: {lines}{more}")


@dataclass(frozen=True)
class Effects:
    """What a rule (or the defaults) assigns. Unset fields assign nothing."""

    license: str | None = None
    roles: tuple[str, ...] = ()
    contact: Mapping[str, str] = field(default_factory=dict, hash=False)
    username: str | None = None
    status: str | None = None

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.license is not None:
            doc["license"] = self.license
        if self.roles:
            doc["roles"] = list(self.roles)
        if self.contact:
            doc["contact"] = dict(self.contact)
        if self.username is not None:
            doc["username"] = self.username
        if self.status is not None:
            doc["status"] = self.status
        return doc


@dataclass(frozen=True)
class Rule:
    """A named condition and its effects; ``priority`` settles single-valued conflicts."""

    name: str
    when: Condition
    then: Effects
    priority: int = 0
    description: str | None = None

    def to_document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            doc["description"] = self.description
        if self.priority:
            doc["priority"] = self.priority
        doc["when"] = self.when.to_document()
        doc["then"] = self.then.to_document()
        return doc


@dataclass(frozen=True)
class RuleSet:
    """An organization's rules, ready for ``resolve``. Build it with ``validate``."""

    mode: str = "first-match"
    defaults: Effects = field(default_factory=Effects)
    rules: tuple[Rule, ...] = ()

    def names_group(self, *handles: str | None) -> bool:
        """Whether a ``member_of`` condition names a group by one of ``handles`` (display
        names, external ids), compared as ``MemberOf`` compares them (case-insensitively)."""
        wanted = {fold(h) for h in handles if h is not None}
        return any(fold(name) in wanted for rule in self.rules for name in rule.when.groups_named())

    def to_document(self) -> dict[str, Any]:
        """The canonical document: canonical spellings, no default values; validates again."""
        doc: dict[str, Any] = {"mode": self.mode}
        defaults = self.defaults.to_document()
        if defaults:
            doc["defaults"] = defaults
        doc["rules"] = [rule.to_document() for rule in self.rules]
        return doc
