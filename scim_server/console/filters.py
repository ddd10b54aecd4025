"""Reading the log pages' query strings: times, choices, short texts, each with its own error.

A bad value is a message at its field (the page answers 400 and shows the rest),
never a 500 and never a silently dropped filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from scim_server.text import MAX_INT, small_int

# The pages reckon from the times asked for (a report's week before its end, a chart's
# hour after it, a billing period's next day): a time near datetime's own ends would
# overflow there, and one whose UTC form is past them cannot be compared at all
# (9999-12-31T23:59-14:00 is in year 10000 at UTC). No log reaches so far: a year of
# margin at each end.
EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_OUT_OF_RANGE = f"Enter a date between {EARLIEST.date()} and {LATEST.date()}."


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
    moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        in_range = EARLIEST <= moment.astimezone(UTC) <= LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        form.errors[name] = _OUT_OF_RANGE
        return None
    return moment


def day(args: Mapping[str, str], name: str, form: Form) -> date | None:
    """A ``date`` field's value (YYYY-MM-DD)."""
    raw = (args.get(name) or "").strip()
    form.values[name] = raw
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        value = None
    if value is None:
        form.errors[name] = "Enter a date such as 2026-01-31."
    elif not EARLIEST.date() <= value <= LATEST.date():
        form.errors[name] = _OUT_OF_RANGE
    else:
        return value
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
    """A position a page gave (a log ``seq``): at most ``MAX_INT``, the column's own bound
    (PostgreSQL's int4 refuses a larger one in a comparison too)."""
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    position = small_int(raw, len(str(MAX_INT)))
    if position is None or position > MAX_INT:
        form.errors[name] = "Not a position this page gave."
        return None
    return position


def check_range(since: datetime | None, until: datetime | None, form: Form) -> None:
    if since and until and since >= until:
        form.errors["until"] = "The end must be after the start."
