"""Availability hours: week parity and the day text a person types (pure helpers)."""

from __future__ import annotations

from datetime import date

import pytest

from scim_server.errors import InvalidValueError
from scim_server.services.availability import day_text, parity_of, parse_day_text


@pytest.mark.parametrize(
    ("day", "parity"),
    [
        (date(2026, 1, 1), "odd"),  # Thursday of ISO week 1
        (date(2026, 1, 5), "even"),  # Monday of week 2
        (date(2026, 12, 7), "even"),  # week 50
        (date(2026, 12, 28), "odd"),  # week 53 (2026 has 53 ISO weeks)
        (date(2027, 1, 4), "odd"),  # week 1 of 2027: two odd weeks in a row at this turn
    ],
)
def test_parity_is_the_iso_week_numbers(day: date, parity: str) -> None:
    """The parity follows the ISO week number, so a 53-week year ends with two odd weeks."""
    assert parity_of(day) == ("odd" if day.isocalendar().week % 2 else "even") == parity


def test_day_text_round_trips_sorted() -> None:
    """Commas, spaces or semicolons separate ranges; an en dash works; output is sorted."""
    ranges = parse_day_text("13:00-17:00;  08:00\u201312:00", "Monday")
    assert ranges == [(480, 720), (780, 1020)]
    assert day_text(ranges) == "08:00-12:00, 13:00-17:00"
    assert parse_day_text("  ", "Monday") == []
    assert parse_day_text("00:00-24:00", "Monday") == [(0, 1440)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8-12", "not a time of day"),
        ("08:00", "not a range"),
        ("12:00-08:00", "ends before it starts"),
        ("08:00-12:00, 11:59-13:00", "11:59-13:00 overlaps 08:00-12:00"),
        ("24:00-24:00", "ends before it starts"),
        ("23:00-24:01", "not a time of day"),
        ("08:60-09:00", "not a time of day"),
    ],
)
def test_bad_day_text_is_a_clear_error(text: str, message: str) -> None:
    """Each mistake names the day and what is wrong."""
    with pytest.raises(InvalidValueError) as err:
        parse_day_text(text, "Odd weeks, Monday")
    assert err.value.detail.startswith("Odd weeks, Monday: ") and message in err.value.detail
