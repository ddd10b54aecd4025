"""Daily availability hours of contacts that are resources of an external system.

A contact whose ``resource_system`` names a system (a planning or booking tool) is
one of its resources; its hours are given per week parity (odd and even ISO week
numbers: two-week rotas) and ISO weekday, each day a list of ranges ``HH:MM-HH:MM``
within 00:00 to 24:00, start before end, never overlapping. The admin API and the
console replace the whole set at once (``set_availability``); the change is one
``contact.availability`` event with each changed day before and after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from scim_server.audit import record
from scim_server.db import utcnow
from scim_server.errors import ConflictError, InvalidValueError, NotFoundError
from scim_server.models import Contact, ContactAvailability

PARITIES = ("odd", "even")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_RANGES = 12  # per day
_TIME = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])")

# parity -> weekday name -> [(start minute, end minute)], every day present.
Week = dict[str, dict[str, list[tuple[int, int]]]]


def empty_week() -> Week:
    return {p: {d: [] for d in WEEKDAYS} for p in PARITIES}


def parity_of(day: date) -> str:
    """The parity of ``day``'s ISO week number: which of the two weeks applies.

    As the issue asks (ISO week numbers): a year of 53 ISO weeks ends with two odd
    weeks in a row (53, then 1), which a strict alternation would not.
    """
    return "odd" if day.isocalendar().week % 2 else "even"


def minutes(text: str, where: str) -> int:
    """``HH:MM`` (00:00 to 24:00) as minutes since midnight; a clear error otherwise."""
    found = _TIME.fullmatch(text) if isinstance(text, str) else None
    value = int(found.group(1)) * 60 + int(found.group(2)) if found else -1
    if found is None or value > 24 * 60:
        raise InvalidValueError(f"{where}: {text!r} is not a time of day HH:MM (00:00 to 24:00).")
    return value


def clock(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


def range_text(start: int, end: int) -> str:
    return f"{clock(start)}-{clock(end)}"


def check_day(ranges: list[tuple[int, int]], where: str) -> list[tuple[int, int]]:
    """The day's ranges sorted; start before end, none overlapping (touching is fine)."""
    if len(ranges) > MAX_RANGES:
        raise InvalidValueError(f"{where}: at most {MAX_RANGES} ranges a day.")
    for start, end in ranges:
        if start >= end:
            raise InvalidValueError(
                f"{where}: {range_text(start, end)} ends before it starts; "
                "a range ends after its start (24:00 at the latest)."
            )
    ordered = sorted(ranges)
    for (s1, e1), (s2, e2) in pairwise(ordered):
        if s2 < e1:
            raise InvalidValueError(f"{where}: {range_text(s2, e2)} overlaps {range_text(s1, e1)}.")
    return ordered


def parse_day_text(text: str, where: str) -> list[tuple[int, int]]:
    """A day as a person types it: ``08:00-12:00, 13:00-17:00`` (empty: no hours)."""
    ranges = []
    for part in re.split(r"[,;\s]+", text.strip()):
        if not part:
            continue
        start, sep, end = part.replace("\u2013", "-").partition("-")
        if not sep:
            raise InvalidValueError(f"{where}: {part!r} is not a range HH:MM-HH:MM.")
        ranges.append((minutes(start, where), minutes(end, where)))
    return check_day(ranges, where)


def day_text(ranges: list[tuple[int, int]]) -> str:
    return ", ".join(range_text(s, e) for s, e in ranges)


def parse_week(body: Any) -> Week:
    """The admin API's document: {"odd": {"monday": [{"start", "end"}], ...}, "even": ...}.

    Both parities are required; a weekday left out has no hours. Anything else
    (an unknown key, a bad time, an overlap) is a 400 naming where it is.
    """
    if not isinstance(body, dict):
        raise InvalidValueError("The availability is an object with 'odd' and 'even' weeks.")
    unknown = sorted(set(body) - set(PARITIES))
    if unknown:
        raise InvalidValueError(f"Unknown key(s) {', '.join(unknown)}: only 'odd' and 'even'.")
    week = empty_week()
    for parity in PARITIES:
        days = body.get(parity)
        if not isinstance(days, dict):
            raise InvalidValueError(f"'{parity}' is required: an object of weekdays.")
        bad = sorted(set(days) - set(WEEKDAYS))
        if bad:
            raise InvalidValueError(
                f"{parity}: unknown weekday(s) {', '.join(bad)}; one of: {', '.join(WEEKDAYS)}."
            )
        for day, items in days.items():
            where = f"{parity}.{day}"
            if not isinstance(items, list):
                raise InvalidValueError(f"{where}: a list of {{start, end}} ranges.")
            ranges = []
            for i, item in enumerate(items):
                at = f"{where}[{i}]"
                if not isinstance(item, dict) or set(item) != {"start", "end"}:
                    raise InvalidValueError(
                        f'{at}: a range is {{"start": "HH:MM", "end": "HH:MM"}}.'
                    )
                ranges.append((minutes(item["start"], at), minutes(item["end"], at)))
            week[parity][day] = check_day(ranges, where)
    return week


def week_to_dict(week: Week) -> dict[str, Any]:
    return {
        p: {d: [{"start": clock(s), "end": clock(e)} for s, e in week[p][d]] for d in WEEKDAYS}
        for p in PARITIES
    }


@dataclass(frozen=True)
class Availability:
    contact_id: str
    resource_system: str
    week: Week


def _resource(session: Session, org_id: str, contact_id: str, *, lock: bool) -> Contact:
    stmt = select(Contact).where(Contact.org_id == org_id, Contact.id == contact_id)
    contact = session.scalar(stmt.with_for_update() if lock else stmt)
    if contact is None:
        raise NotFoundError(f"Contact {contact_id!r} not found.")
    if not contact.resource_system:
        raise ConflictError(
            f"{contact.name} is not a resource of an external system, so it has no "
            "availability hours: set its resource_system first."
        )
    return contact


def _read(session: Session, org_id: str, contact_id: str) -> Week:
    week = empty_week()
    rows = session.execute(
        select(
            ContactAvailability.week_parity,
            ContactAvailability.weekday,
            ContactAvailability.start_minute,
            ContactAvailability.end_minute,
        )
        .where(ContactAvailability.org_id == org_id, ContactAvailability.contact_id == contact_id)
        .order_by(ContactAvailability.start_minute)
    )
    for parity, weekday, start, end in rows:
        week[parity][WEEKDAYS[weekday - 1]].append((start, end))
    return week


def read_availability(session: Session, org_id: str, contact_id: str) -> Availability:
    """The resource contact's hours (409 for a contact that is not a resource)."""
    with session.begin():
        contact = _resource(session, org_id, contact_id, lock=False)
        assert contact.resource_system is not None
        return Availability(contact.id, contact.resource_system, _read(session, org_id, contact.id))


def hours_of(session: Session, org_id: str, contact_id: str) -> Week:
    """The stored hours in the caller's transaction (empty for any contact without)."""
    return _read(session, org_id, contact_id)


def set_availability(session: Session, org_id: str, contact_id: str, week: Week) -> Availability:
    """Replace the hours (``week`` already checked: ``parse_week``); one event with the
    days that changed, nothing written when none did."""
    for parity in PARITIES:  # a Week built elsewhere (the console's form) is checked too
        for day in WEEKDAYS:
            week[parity][day] = check_day(week[parity][day], f"{parity}.{day}")
    with session.begin():
        contact = _resource(session, org_id, contact_id, lock=True)
        before = _read(session, org_id, contact.id)
        changes = {
            f"{p}.{d}": {
                "before": [range_text(*r) for r in before[p][d]],
                "after": [range_text(*r) for r in week[p][d]],
            }
            for p in PARITIES
            for d in WEEKDAYS
            if before[p][d] != week[p][d]
        }
        if changes:
            session.execute(
                delete(ContactAvailability).where(
                    ContactAvailability.org_id == org_id,
                    ContactAvailability.contact_id == contact.id,
                )
            )
            session.add_all(
                ContactAvailability(
                    org_id=org_id,
                    contact_id=contact.id,
                    week_parity=p,
                    weekday=WEEKDAYS.index(d) + 1,
                    start_minute=s,
                    end_minute=e,
                )
                for p in PARITIES
                for d in WEEKDAYS
                for s, e in week[p][d]
            )
            contact.updated_at = utcnow()
            record(
                session,
                org_id,
                "contact.availability",
                resource_type="Contact",
                resource_id=contact.id,
                detail=f"{contact.name} ({contact.resource_system})",
                changes=changes,
            )
        assert contact.resource_system is not None
        return Availability(contact.id, contact.resource_system, week)


def clear_if_not_resource(session: Session, contact: Contact) -> dict[str, Any]:
    """A contact no longer a resource keeps no hours (they would mean nothing): removed in
    the caller's transaction; returns the change for its event."""
    if contact.resource_system:
        return {}
    removed = len(
        session.execute(
            delete(ContactAvailability)
            .where(
                ContactAvailability.org_id == contact.org_id,
                ContactAvailability.contact_id == contact.id,
            )
            .returning(ContactAvailability.start_minute)
        ).all()
    )
    return {"availability": {"before": f"{removed} range(s)", "after": None}} if removed else {}
