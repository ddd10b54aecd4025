"""Reading the log pages' query strings: times, choices, short texts, each with its own error.

A bad value is a message at its field (the page answers 400 and shows the rest),
never a 500 and never a silently dropped filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any


@dataclass
class Form:
    """The values read from a query string, and a message per field that was wrong."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def when(args: Mapping[str, str], name: str, form: Form) -> datetime | None:
    """A ``datetime-local`` or ISO 8601 value; without a zone it is UTC."""
    raw = (args.get(name) or "").strip()
    form.values[name] = raw
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        form.errors[name] = "Enter a date and time such as 2026-01-31T09:00."
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def day(args: Mapping[str, str], name: str, form: Form) -> date | None:
    """A ``date`` field's value (YYYY-MM-DD)."""
    raw = (args.get(name) or "").strip()
    form.values[name] = raw
    if not raw:
        return None
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    form.errors[name] = "Enter a date such as 2026-01-31."
    return None


def text(args: Mapping[str, str], name: str, form: Form, limit: int = 200) -> str | None:
    raw = (args.get(name) or "").strip()
    form.values[name] = raw
    if len(raw) > limit:
        form.errors[name] = f"At most {limit} characters."
        return None
    return raw or None


def choice(args: Mapping[str, str], name: str, form: Form, allowed: tuple[str, ...]) -> str | None:
    raw = (args.get(name) or "").strip()
    form.values[name] = raw
    if raw and raw not in allowed:
        form.errors[name] = f"One of: {', '.join(allowed)}."
        return None
    return raw or None


def number(args: Mapping[str, str], name: str, form: Form) -> int | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 12:
        form.errors[name] = "Not a position this page gave."
        return None
    return int(raw)


def check_range(since: datetime | None, until: datetime | None, form: Form) -> None:
    if since and until and since >= until:
        form.errors["until"] = "The end must be after the start."
