"""Due dates resolved against the meeting date (Tuesday 2026-11-24), not today's date."""

from __future__ import annotations

import datetime as dt

import pytest

from processors.dates import find_due_phrase, resolve_due

MEETING = dt.date(2026, 11, 24)  # a Tuesday


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("by Friday", "2026-11-27"),
        ("by Tuesday", "2026-12-01"),  # a bare weekday is the next one after the meeting day
        ("tomorrow", "2026-11-25"),
        ("the day after tomorrow", "2026-11-26"),
        ("end of the month", "2026-11-30"),
        ("next Tuesday", "2026-12-01"),
        ("next Friday", "2026-12-04"),
        ("this week", "2026-11-27"),
        ("by the end of the week", "2026-11-27"),
        ("EOD", "2026-11-24"),
        ("by end of day", "2026-11-24"),
        ("in two days", "2026-11-26"),
        ("in 3 days", "2026-11-27"),
        ("in a week", "2026-12-01"),
        ("by the 3rd", "2026-12-03"),
        ("by the 30th", "2026-11-30"),
        ("by Wednesday the 25th", "2026-11-25"),
        ("by December 3", "2026-12-03"),
        ("the 3rd of December", "2026-12-03"),
        ("by January 15th", "2027-01-15"),
        ("next week", "2026-12-04"),
        ("Monday morning", "2026-11-30"),
        ("tonight", "2026-11-24"),
    ],
)
def test_phrases(phrase: str, expected: str) -> None:
    assert resolve_due(phrase, meeting_date=MEETING) == dt.date.fromisoformat(expected)


def test_relative_to_the_meeting_not_today() -> None:
    assert resolve_due("by Friday", meeting_date=dt.date(2025, 3, 3)) == dt.date(2025, 3, 7)
    assert resolve_due("end of the month", meeting_date=dt.date(2024, 2, 10)) == dt.date(
        2024, 2, 29
    )


@pytest.mark.parametrize(
    "text", ["sometime", "soon", "when I can", "", "today's meeting", "in May we grew"]
)
def test_unparseable_is_none(text: str) -> None:
    assert resolve_due(text, meeting_date=MEETING) is None


def test_correction_takes_the_last_date_and_phrase_is_found_in_text() -> None:
    found = find_due_phrase("I'll send it Monday, no, Tuesday.", meeting_date=MEETING)
    assert found is not None and found[1] == dt.date(2026, 12, 1)
    found = find_due_phrase("Ken will send the invoice by Monday.", meeting_date=MEETING)
    assert found == ("by Monday", dt.date(2026, 11, 30))
