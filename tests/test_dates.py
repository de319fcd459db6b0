"""Due dates resolved against the meeting date (Tuesday 2026-11-24), never today's date."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.dates import find_due_phrase, find_due_phrases, next_meeting_date, resolve_due

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

MEETING = dt.date(2026, 11, 24)  # a Tuesday
FRIDAY_MEETING = dt.date(2026, 11, 27)


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        # a bare weekday: the next one strictly after the meeting day
        ("by Friday", "2026-11-27"),
        ("Friday", "2026-11-27"),
        ("by Tuesday", "2026-12-01"),
        ("Monday morning", "2026-11-30"),
        ("on Thursday afternoon", "2026-11-26"),
        ("tomorrow", "2026-11-25"),
        ("first thing tomorrow", "2026-11-25"),
        ("the day after tomorrow", "2026-11-26"),
        ("end of the month", "2026-11-30"),
        ("by the end of this month", "2026-11-30"),
        ("end of next month", "2026-12-31"),
        ("end of the quarter", "2026-12-31"),
        # "this week" and "end of the week": the Friday of the meeting's week
        ("end of the week", "2026-11-27"),
        ("this week", "2026-11-27"),
        ("by EOW", "2026-11-27"),
        # "next <weekday>": that weekday in the following week
        ("next Tuesday", "2026-12-01"),
        ("next Friday", "2026-12-04"),
        ("next Monday", "2026-11-30"),
        # the meeting day itself
        ("EOD", "2026-11-24"),
        ("by end of day", "2026-11-24"),
        ("today", "2026-11-24"),
        ("tonight", "2026-11-24"),
        ("by 5pm", "2026-11-24"),
        ("right after this call", "2026-11-24"),
        ("in two days", "2026-11-26"),
        ("in 3 days", "2026-11-27"),
        ("in a week", "2026-12-01"),
        ("in a couple of days", "2026-11-26"),
        ("in two weeks' time", "2026-12-08"),
        ("in 3 business days", "2026-11-27"),
        # the next 3rd of a month on or after the meeting day
        ("by the 3rd", "2026-12-03"),
        ("by the 24th", "2026-11-24"),
        ("by the 30th", "2026-11-30"),
        ("by the first", "2026-12-01"),
        ("by Wednesday the 25th", "2026-11-25"),
        ("Thursday the 3rd", "2026-12-03"),
        # calendar dates, through dateparser
        ("by December 3", "2026-12-03"),
        ("December 3rd", "2026-12-03"),
        ("the 3rd of December", "2026-12-03"),
        ("3 December", "2026-12-03"),
        ("December third", "2026-12-03"),
        ("by January 15th", "2027-01-15"),
        ("by November 2", "2027-11-02"),
        ("by March 1, 2028", "2028-03-01"),
        # "next week": the Friday of next week; "early next week": its Monday
        ("next week", "2026-12-04"),
        ("by the end of next week", "2026-12-04"),
        ("early next week", "2026-11-30"),
        ("this weekend", "2026-11-29"),
        # real talk: the same day
        ("after lunch", "2026-11-24"),
        ("in half an hour", "2026-11-24"),
        ("within the next twenty minutes", "2026-11-24"),
        ("in a couple of hours", "2026-11-24"),
        ("later today", "2026-11-24"),
        ("later on today", "2026-11-24"),
        ("by the end of the meeting", "2026-11-24"),
        # real talk: the next day, a weekday's first thing
        ("tomorrow morning", "2026-11-25"),
        ("first thing in the morning", "2026-11-25"),
        ("first thing Monday", "2026-11-30"),
        ("by first thing on Thursday", "2026-11-26"),
    ],
)
def test_phrases(phrase: str, expected: str) -> None:
    assert resolve_due(phrase, meeting_date=MEETING) == dt.date.fromisoformat(expected)


def test_a_weekday_said_on_that_weekday_is_the_following_one() -> None:
    assert resolve_due("by Friday", meeting_date=FRIDAY_MEETING) == dt.date(2026, 12, 4)
    assert resolve_due("this week", meeting_date=FRIDAY_MEETING) == FRIDAY_MEETING
    assert resolve_due("next Friday", meeting_date=FRIDAY_MEETING) == dt.date(2026, 12, 4)


def test_a_calendar_date_on_the_meeting_day_stays_that_day() -> None:
    assert resolve_due("by December 3", meeting_date=dt.date(2026, 12, 3)) == dt.date(2026, 12, 3)
    assert resolve_due("by December 3", meeting_date=dt.date(2026, 12, 4)) == dt.date(2027, 12, 3)


def test_relative_to_the_meeting_not_today() -> None:
    assert resolve_due("by Friday", meeting_date=dt.date(2025, 3, 3)) == dt.date(2025, 3, 7)
    assert resolve_due("end of the month", meeting_date=dt.date(2024, 2, 10)) == dt.date(
        2024, 2, 29
    )
    assert resolve_due("tomorrow", meeting_date=dt.date(2026, 12, 31)) == dt.date(2027, 1, 1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sometime",
        "soon",
        "when I can",
        "today's meeting",
        "in May we grew",
        "the Thursday sync",
        "Monday's retro",
        "last Friday",
        "this past Monday",
        "by the first draft",
        "February 30",
        "by the 45th",
        "one second, may I ask",
        "Mondays are busy",
        "\x00\ufffd",
    ],
)
def test_unparseable_is_none(text: str) -> None:
    assert resolve_due(text, meeting_date=MEETING) is None


def test_odd_input_never_raises() -> None:
    for text in ["by the 31st", "by the 0th", "in 99 days", "December 32", "by the 29th"]:
        resolve_due(text, meeting_date=dt.date(2027, 2, 1))
    assert resolve_due("by the 31st", meeting_date=dt.date(2027, 2, 1)) == dt.date(2027, 3, 31)
    assert resolve_due("by the 29th", meeting_date=dt.date(2027, 2, 1)) == dt.date(2027, 3, 29)


def test_a_correction_takes_the_later_date() -> None:
    found = find_due_phrase("I'll send it Monday, no, Tuesday.", meeting_date=MEETING)
    assert found == ("Tuesday", dt.date(2026, 12, 1))
    found = find_due_phrase("on Monday, sorry, I mean Wednesday", meeting_date=MEETING)
    assert found is not None and found[1] == dt.date(2026, 11, 25)


def test_without_a_correction_the_first_date_wins_and_a_time_of_day_gives_way() -> None:
    text = "I'll send it tomorrow and we can review it on Friday"
    assert resolve_due(text, meeting_date=MEETING) == dt.date(2026, 11, 25)
    assert resolve_due("end of day Friday", meeting_date=MEETING) == dt.date(2026, 11, 27)
    assert resolve_due("Friday EOD", meeting_date=MEETING) == dt.date(2026, 11, 27)


def test_the_phrase_is_found_inside_an_utterance() -> None:
    found = find_due_phrase("Ken will send the invoice by Monday.", meeting_date=MEETING)
    assert found == ("by Monday", dt.date(2026, 11, 30))
    phrases = find_due_phrases("cancel the Thursday sync by Friday", meeting_date=MEETING)
    assert [(p.text, p.due) for p in phrases] == [("by Friday", dt.date(2026, 11, 27))]
    assert find_due_phrase("no date here at all", meeting_date=MEETING) is None


NEXT_MEETING = dt.date(2026, 12, 1)  # the series meets weekly


@pytest.mark.parametrize(
    "text",
    [
        "I'll have the prototype ready for the next meeting.",
        "send me the figures before the next meeting",
        "by our next meeting",
        "we'll look at it next time",
        "try to finish it before we meet again",
    ],
)
def test_the_next_meeting_is_the_series_next_meeting_date(text: str) -> None:
    assert resolve_due(text, meeting_date=MEETING, next_meeting=NEXT_MEETING) == NEXT_MEETING


def test_the_next_meeting_unknown_is_no_date_and_keeps_its_words() -> None:
    text = "I'll have the prototype ready for the next meeting."
    assert resolve_due(text, meeting_date=MEETING) is None
    assert find_due_phrases(text, meeting_date=MEETING) == []
    # a "next meeting" on or before this one is no next meeting
    assert resolve_due(text, meeting_date=MEETING, next_meeting=MEETING) is None


def test_a_date_named_before_the_next_meeting_wins() -> None:
    text = "I'll send it Friday, before the next meeting"
    assert resolve_due(text, meeting_date=MEETING, next_meeting=NEXT_MEETING) == dt.date(
        2026, 11, 27
    )


def test_a_time_of_day_gives_way_to_a_date() -> None:
    assert resolve_due("in an hour, no, tomorrow", meeting_date=MEETING) == dt.date(2026, 11, 25)
    assert resolve_due("end of day tomorrow", meeting_date=MEETING) == dt.date(2026, 11, 25)


@pytest.mark.parametrize(
    ("previous", "cadence", "expected"),
    [
        ("2026-11-17", None, "2026-12-01"),  # weekly
        ("2026-11-10", None, "2026-12-08"),  # fortnightly
        ("2026-11-23", None, "2026-11-25"),  # daily
        ("2026-11-20", None, None),  # four days: no cadence
        ("2026-08-24", None, None),  # three months: no cadence
        ("2026-11-24", None, None),  # the same day: no cadence
        (None, None, None),  # the series' first meeting
        (None, 10, "2026-12-04"),  # configured
        ("2026-11-17", 14, "2026-12-08"),  # configured wins over the gap
    ],
)
def test_next_meeting_date_from_the_series_cadence(
    previous: str | None, cadence: int | None, expected: str | None
) -> None:
    before = dt.date.fromisoformat(previous) if previous else None
    found = next_meeting_date(MEETING, previous=before, cadence_days=cadence)
    assert found == (dt.date.fromisoformat(expected) if expected else None)


def test_a_daily_series_skips_the_weekend() -> None:
    friday, monday = dt.date(2026, 11, 27), dt.date(2026, 11, 30)
    assert next_meeting_date(friday, previous=dt.date(2026, 11, 26)) == monday
    assert next_meeting_date(monday, previous=friday) == dt.date(2026, 12, 1)
