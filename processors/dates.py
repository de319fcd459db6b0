"""Due dates in meeting speech, resolved against the MEETING date (not today's).

Relative forms ("by Friday", "tomorrow", "end of the month", "next Tuesday", "this week",
"EOD", "in two days", "by the 3rd") follow the explicit rules below; calendar dates
("December 3rd", "the 3rd of December") go to `dateparser` anchored at the meeting date.
Rules: a bare weekday means its next occurrence strictly after the meeting day; "next <weekday>"
is that weekday in the following week; "this week"/"end of the week" is the week's Friday;
"next week" is next week's Friday; anything unparseable is None, never an error.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import warnings

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [m.lower() for m in calendar.month_name[1:]]
_MONTH_ALT = "|".join(MONTHS + [m[:3] for m in MONTHS] + ["sept"])
_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "couple of": 2,
    "a couple of": 2,
    "few": 3,
}
_NUM_ALT = r"\d{1,2}|a couple of|couple of|an?|one|two|three|four|five|six|seven|eight|nine|ten|few"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_WD = "|".join(WEEKDAYS)

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("calendar", re.compile(rf"\b(?:by |on |before |until )?(?P<month>{_MONTH_ALT})\.? {_DAY}\b")),
    (
        "calendar_of",
        re.compile(rf"\b(?:by |on |before )?(?:the )?{_DAY} of (?P<month>{_MONTH_ALT})\b"),
    ),
    ("weekday_day", re.compile(rf"\b(?:by |on |before |until )?(?:{_WD}),? the {_DAY}\b")),
    ("day_of_month", re.compile(rf"\b(?:by|on|before|until) the {_DAY}\b")),
    ("day_after", re.compile(r"\b(?:by )?the day after tomorrow\b")),
    ("tomorrow", re.compile(r"\b(?:by )?tomorrow(?: morning| afternoon| evening| night)?\b")),
    (
        "eod",
        re.compile(
            r"\b(?:by )?(?:the )?(?:end of (?:the )?day|eod|close of business|cob|today(?!')|tonight|this (?:afternoon|evening))\b"
        ),
    ),
    ("eom", re.compile(r"\b(?:by )?(?:the )?(?:end of (?:the |this )?month|eom)\b")),
    ("eow", re.compile(r"\b(?:by )?(?:the )?(?:end of (?:the |this )?week|eow|this week)\b")),
    ("next_week", re.compile(r"\b(?:by |sometime |early |later )?next week\b")),
    ("in_n", re.compile(rf"\bin (?P<n>{_NUM_ALT}) (?P<unit>days?|weeks?)\b")),
    ("next_weekday", re.compile(rf"\b(?:by |on )?next (?P<wd>{_WD})\b")),
    (
        "weekday",
        re.compile(
            rf"\b(?:by |on |before |until |this |coming )?(?P<wd>{_WD})(?: morning| afternoon| evening| night)?\b"
        ),
    ),
]


def _next_weekday(start: dt.date, weekday: int) -> dt.date:
    """The next `weekday` strictly after `start`."""
    ahead = (weekday - start.weekday()) % 7 or 7
    return start + dt.timedelta(days=ahead)


def _friday_of(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=max(0, 4 - day.weekday()))


def _next_day_of_month(start: dt.date, day: int) -> dt.date | None:
    year, month = start.year, start.month
    for _ in range(13):
        if day <= calendar.monthrange(year, month)[1]:
            candidate = dt.date(year, month, day)
            if candidate >= start:
                return candidate
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return None


def _calendar(text: str, meeting_date: dt.date) -> dt.date | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dateparser

        parsed = dateparser.parse(
            text,
            languages=["en"],
            settings={
                "RELATIVE_BASE": dt.datetime.combine(meeting_date, dt.time(12)),
                "PREFER_DATES_FROM": "future",
                "REQUIRE_PARTS": ["day", "month"],
            },
        )
    return parsed.date() if parsed else None


def _resolve(kind: str, match: re.Match[str], meeting_date: dt.date) -> dt.date | None:
    groups = match.groupdict()
    if kind in ("calendar", "calendar_of"):
        return _calendar(f"{groups['month']} {groups['day']}", meeting_date)
    if kind in ("weekday_day", "day_of_month"):
        return _next_day_of_month(meeting_date, int(groups["day"]))
    if kind == "day_after":
        return meeting_date + dt.timedelta(days=2)
    if kind == "tomorrow":
        return meeting_date + dt.timedelta(days=1)
    if kind == "eod":
        return meeting_date
    if kind == "eom":
        return meeting_date.replace(
            day=calendar.monthrange(meeting_date.year, meeting_date.month)[1]
        )
    if kind == "eow":
        return _friday_of(meeting_date)
    if kind == "next_week":
        return _friday_of(meeting_date + dt.timedelta(days=7 - meeting_date.weekday()))
    if kind == "in_n":
        raw = groups["n"]
        n = int(raw) if raw.isdigit() else _NUMBERS[raw]
        return meeting_date + dt.timedelta(days=n * (7 if groups["unit"].startswith("week") else 1))
    if kind == "next_weekday":
        monday_next = meeting_date + dt.timedelta(days=7 - meeting_date.weekday())
        return monday_next + dt.timedelta(days=WEEKDAYS.index(groups["wd"]))
    if kind == "weekday":
        return _next_weekday(meeting_date, WEEKDAYS.index(groups["wd"]))
    return None


def find_due_phrases(text: str, *, meeting_date: dt.date) -> list[tuple[str, dt.date, int, int]]:
    """Every due phrase in `text`: (phrase, date, start, end), in order of appearance."""
    lowered = text.lower()
    taken: list[tuple[int, int]] = []
    found: list[tuple[str, dt.date, int, int]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(lowered):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            due = _resolve(kind, match, meeting_date)
            if due is None:
                continue
            taken.append((start, end))
            found.append((text[start:end], due, start, end))
    return sorted(found, key=lambda item: item[2])


def find_due_phrase(text: str, *, meeting_date: dt.date) -> tuple[str, dt.date] | None:
    """The due phrase of an utterance; with a correction ("Monday, no, Tuesday") the last one."""
    found = find_due_phrases(text, meeting_date=meeting_date)
    if not found:
        return None
    phrase, due, _, _ = found[-1]
    return phrase, due


def resolve_due(phrase_or_text: str, *, meeting_date: dt.date) -> dt.date | None:
    found = find_due_phrase(phrase_or_text, meeting_date=meeting_date)
    return found[1] if found else None
