"""Due dates in meeting speech, resolved against the MEETING date (never today's date).

`find_due_phrases` finds every due phrase in an utterance, `find_due_phrase` picks the one that
counts and `resolve_due` returns just its date. Nothing here raises on odd input: a phrase that
cannot be resolved is None.

Rules (a "meeting day" is `meeting_date`):

* a bare weekday ("by Friday", "Monday morning") is its next occurrence strictly AFTER the
  meeting day, so "by Friday" said on a Friday means the following Friday;
* "next <weekday>" is that weekday in the following calendar week (Monday-based);
* "this week" / "end of the week" is the Friday of the meeting's week (the meeting day itself
  when the meeting is on a weekend); "next week" is the Friday of next week (a deadline reading:
  done by the end of next week), "early next week" its Monday;
* "today", "later today", "tonight", "EOD", "end of day", "by 5pm", "after lunch", "in half an
  hour", "in two hours", "by the end of the meeting", "right after this call" are the meeting
  day;
* "first thing in the morning" is the next day, "first thing Monday" that Monday;
* "for the next meeting", "before we meet again" is the series' next meeting when its cadence
  is known (`next_meeting_date`: a configured cadence, else the gap since the last meeting),
  else no date (the words stay in the action);
* "tomorrow" +1, "the day after tomorrow" +2, "in two days" / "in 3 days" / "in a week" add;
* "end of the month" / "end of next month" / "end of the quarter" / "end of the year" are the
  last day of that period;
* "by the 3rd" is the next 3rd of a month on or after the meeting day; "Wednesday the 25th" the
  next 25th that falls on a Wednesday (else the next 25th);
* calendar dates ("December 3", "the 3rd of December", "Dec 3rd 2027") go to `dateparser`,
  anchored the day before the meeting with PREFER_DATES_FROM=future, so a date on the meeting
  day itself is kept rather than pushed a year ahead.

`dateparser` was evaluated on all of these with RELATIVE_BASE at the meeting and
PREFER_DATES_FROM=future: it is right for weekdays, "tomorrow", "next Tuesday", "in N days" and
calendar dates, but returns None for "end of the month", "end of the week" and "EOD", returns
the meeting day for "this week", an unrelated date for "by the 3rd" (same day, three months on)
and Tuesday+7 for "next week". Only calendar dates are delegated to it; the rest are the small
explicit rules above (faster, and they never call it for utterances without a date word).

Where one utterance has several due phrases, a later one replaces an earlier one only after a
correction marker ("Monday, no, Tuesday", "Monday, sorry, I mean Tuesday"); otherwise the first
phrase wins, except that a time-of-day qualifier ("EOD", "by 5pm") gives way to a date
("Friday EOD", "end of day Friday").
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
from dataclasses import dataclass

from core.english import ordinal_word

__all__ = ["DueMatch", "find_due_phrase", "find_due_phrases", "next_meeting_date", "resolve_due"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = tuple(m.lower() for m in calendar.month_name[1:])
_MONTH_INDEX = {name: i + 1 for i, name in enumerate(_MONTHS)} | {
    name[:3]: i + 1 for i, name in enumerate(_MONTHS)
}
_MONTH_INDEX["sept"] = 9
_MONTH_ALT = "|".join(sorted(_MONTH_INDEX, key=len, reverse=True))
_ORDINALS = {ordinal_word(n): n for n in range(1, 32)}  # "first" .. "thirty-first"
_ORDINALS |= {word.replace("-", " "): n for word, n in _ORDINALS.items()}  # "twenty first"
_ORDINAL_ALT = "|".join(sorted(_ORDINALS, key=len, reverse=True))
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
    "a couple of": 2,
    "couple of": 2,
    "a couple": 2,
    "a few": 3,
    "few": 3,
}
_NUM_ALT = "|".join([r"\d{1,2}"] + sorted(_NUMBERS, key=len, reverse=True))
_DAY = rf"(?P<day>\d{{1,2}}(?:st|nd|rd|th)?|{_ORDINAL_ALT})"
_DAY_ORD = rf"(?P<day>\d{{1,2}}(?:st|nd|rd|th)|{_ORDINAL_ALT})"
_WD = "|".join(WEEKDAYS)
_PREP = r"(?:(?:by|on|before|until|till|no later than)\s+)"
_PART = r"(?:\s+(?:morning|afternoon|evening|night|eod|end of day))"
# A bare weekday followed by one of these words is still a due date ("Monday at 10", "Friday
# and"); followed by any other word it names a thing ("the Thursday sync", "the Monday report").
_AFTER_DUE = (
    r"and|or|at|about|with|to|for|so|if|then|because|latest|no|actually|sorry|i|we|he|she|they|"
    r"you|it|first|please|okay|ok|but|as|after|before|noon|works?|is|should|too|the|that|this|"
    r"when|once|ideally|hopefully|maybe|right|yeah|yes|cool|alright"
)

# "by the first draft", "on the second day": an ordinal followed by these is not a date.
_NOT_A_DAY = (
    "of|day|week|month|time|thing|draft|pass|round|half|quarter|sprint|phase|step|part|version|"
    "iteration|item|one|point|milestone|batch|release|meeting|call"
)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern, re.IGNORECASE))
    for kind, pattern in (
        (
            "calendar",
            rf"\b{_PREP}?(?P<month>{_MONTH_ALT})\.?\s+(?:the\s+)?{_DAY}(?:,?\s+(?P<year>20\d\d))?\b",
        ),
        (
            "calendar_of",
            rf"\b{_PREP}?(?:the\s+)?(?:(?P<day>\d{{1,2}}(?:st|nd|rd|th)?)\s+(?:of\s+)?|"
            rf"(?P<dayw>{_ORDINAL_ALT})\s+of\s+)(?P<month>{_MONTH_ALT})\b(?:,?\s+(?P<year>20\d\d)\b)?",
        ),
        (
            "weekday_day",
            rf"\b{_PREP}?(?:this\s+|next\s+)?(?P<wd>{_WD}),?\s+(?P<the>the\s+)?{_DAY}\b",
        ),
        ("day_of_month", rf"\b{_PREP}the\s+{_DAY_ORD}\b(?!\s+(?:{_NOT_A_DAY})\b)"),
        ("day_after", r"\b(?:by\s+)?the\s+day\s+after\s+tomorrow\b"),
        ("tomorrow", rf"\b(?:(?:by|before|until)\s+)?(?:first thing\s+)?tomorrow\b(?!'s){_PART}?"),
        ("tomorrow", r"\b(?:(?:by|before)\s+)?first\s+thing\s+in\s+the\s+morning\b"),
        (
            "next_meeting",
            r"\b(?:(?:by|for|before|until|till|at|in|ahead\s+of)\s+)?(?:the\s+)?(?:next\s+"
            r"(?:meeting|session|sync|call|time)|our\s+next\s+(?:meeting|session))\b"
            r"|\bbefore\s+we\s+(?:meet|next\s+meet|get\s+together)(?:\s+again)?\b",
        ),
        (
            "within_day",
            rf"\b(?:in|within)\s+(?:about\s+|another\s+|the\s+next\s+)?(?:half\s+an\s+hour|"
            rf"an?\s+(?:hour|minute|sec(?:ond)?)|(?:{_NUM_ALT}|twenty|thirty|forty|fifteen)\s+"
            r"(?:minutes?|mins?|hours?))\b|\blater\s+(?:on\s+)?today\b",
        ),
        ("eonm", r"\b(?:by\s+)?(?:the\s+)?end\s+of\s+next\s+month\b"),
        (
            "eom",
            r"\b(?:by\s+)?(?:the\s+)?(?:end\s+of\s+(?:the\s+|this\s+)?month|eom|month[- ]end)\b",
        ),
        ("eoq", r"\b(?:by\s+)?(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?quarter\b"),
        ("eoy", r"\b(?:by\s+)?(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?year\b"),
        ("weekend", r"\b(?:by\s+|over\s+)?(?:this|the)\s+weekend\b"),
        (
            "eow",
            r"\b(?:by\s+)?(?:the\s+)?(?:end\s+of\s+(?:the\s+|this\s+)?week\b(?!end)|eow\b|"
            r"(?:later\s+)?this\s+week\b(?!end))",
        ),
        ("early_next_week", r"\bearly\s+next\s+week\b"),
        (
            "next_week",
            r"\b(?:by\s+|sometime\s+|later\s+)?(?:the\s+)?(?:end\s+of\s+)?next\s+week\b(?!end)",
        ),
        (
            "in_n",
            rf"\b(?:in|within)\s+(?:about\s+|another\s+|the\s+next\s+)?(?P<n>{_NUM_ALT})\s+"
            r"(?P<unit>(?:business\s+|working\s+)?days?|weeks?)\b(?:'?\s*time)?",
        ),
        (
            "time",
            r"\b(?:(?:by|before|at|around)\s+(?:noon|lunch(?:time)?|midnight|"
            r"\d{1,2}(?::\d{2})?\s*(?:am\b|pm\b|a\.m\.|p\.m\.|o'clock\b))|"
            r"(?:right\s+|straight\s+)?after\s+(?:(?:this|the)\s+(?:call|meeting|sync|standup)|"
            r"lunch)\b)",
        ),
        (
            "eod",
            r"\b(?:(?:by|before)\s+)?(?:the\s+)?(?:end\s+of\s+(?:the\s+)?(?:day|business)\b|"
            r"eod\b|close\s+of\s+(?:business|play)\b|cob\b|today\b(?!'s)|tonight\b|"
            r"this\s+(?:morning|afternoon|evening)\b|"
            r"end\s+of\s+(?:the\s+|this\s+)?(?:meeting|call)\b)",
        ),
        ("next_weekday", rf"\b(?:(?:by|on|before|until)\s+)?next\s+(?P<wd>{_WD})\b(?!'s){_PART}?"),
        (
            "weekday",
            rf"(?<!last )(?<!past )\b(?:(?P<prep>by|on|before|until|till|for|this|coming|"
            rf"this\s+coming|no later than|(?:by\s+)?first\s+thing(?:\s+on)?)\s+)?"
            rf"(?P<wd>{_WD})\b(?!s\b)(?P<poss>'s)?{_PART}?"
            rf"(?P<next>\s+[a-z][\w-]*)?",
        ),
    )
)
_QUALIFIERS = frozenset(("eod", "time", "within_day"))
_AFTER_DUE_RE = re.compile(rf"\s+(?:{_AFTER_DUE})$", re.IGNORECASE)
_CORRECTION = re.compile(
    r"\b(?:no|nope|sorry|actually|i mean|rather|make (?:that|it)|scratch that|wait|"
    r"correction|let's say|change (?:that|it) to)\b",
    re.IGNORECASE,
)
# Cheap pre-check: no due phrase can match a text without one of these words.
_DATE_WORDS = re.compile(
    rf"\b(?:{_WD}|{_MONTH_ALT}|tomorrow|today|tonight|eod|eow|eom|cob|end|weeks?|weekend|days?|"
    rf"noon|lunch|lunchtime|midnight|this|after|\d{{1,2}}(?:st|nd|rd|th)|{_ORDINAL_ALT}|"
    r"\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.|o'clock)|close|next|meet|hours?|minutes?|mins?|"
    r"first|later)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DueMatch:
    """One due phrase found in a text: its words, resolved date and span."""

    text: str
    due: dt.date
    start: int
    end: int
    kind: str

    @property
    def is_qualifier(self) -> bool:
        """A time of day ("EOD", "by 5pm") that gives way to a date in the same utterance."""
        return self.kind in _QUALIFIERS


def _next_weekday(start: dt.date, weekday: int) -> dt.date:
    """The next `weekday` strictly after `start`."""
    ahead = (weekday - start.weekday()) % 7 or 7
    return start + dt.timedelta(days=ahead)


def _monday_of_next_week(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=7 - day.weekday())


def _friday_of(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=max(0, 4 - day.weekday()))


def _last_of_month(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def _day_number(raw: str) -> int:
    word = raw.lower()
    if word in _ORDINALS:
        return _ORDINALS[word]
    return int(re.sub(r"\D", "", word))


def _next_day_of_month(start: dt.date, day: int, weekday: int | None = None) -> dt.date | None:
    """The first date on/after `start` whose day is `day`.

    With a `weekday` ("Wednesday the 3rd"), the next-but-one such date is taken when only it
    falls on that weekday; a weekday that fits neither is taken as a slip of the tongue.
    """
    year, month = start.year, start.month
    found: list[dt.date] = []
    for _ in range(13):
        if day <= calendar.monthrange(year, month)[1] and dt.date(year, month, day) >= start:
            found.append(dt.date(year, month, day))
            if len(found) == 2:
                break
        month += 1
        if month == 13:
            year, month = year + 1, 1
    if not found:
        return None
    matching = [d for d in found if weekday is None or d.weekday() == weekday]
    return matching[0] if matching else found[0]


@functools.lru_cache(maxsize=1024)
def _calendar(month: int, day: int, year: int | None, meeting_date: dt.date) -> dt.date | None:
    """A month-name date through dateparser, anchored at the meeting (on or after it)."""
    text = f"{calendar.month_name[month]} {day}" + (f" {year}" if year else "")
    try:
        import dateparser

        parsed = dateparser.parse(
            text,
            languages=["en"],
            settings={
                # The day before, so "December 3" said on December 3 stays this year.
                "RELATIVE_BASE": dt.datetime.combine(
                    meeting_date - dt.timedelta(days=1), dt.time(12)
                ),
                "PREFER_DATES_FROM": "future",
                "REQUIRE_PARTS": ["day", "month"],
            },
        )
    except (ValueError, OverflowError, LookupError):
        return None
    return parsed.date() if parsed else None


def _resolve_calendar(groups: dict[str, str | None], meeting_date: dt.date) -> dt.date | None:
    month = _MONTH_INDEX[(groups["month"] or "").lower()]
    raw_year = groups.get("year")
    year = int(raw_year) if raw_year else None
    day = _day_number(groups["day"] or groups.get("dayw") or "0")
    return _calendar(month, day, year, meeting_date) if 1 <= day <= 31 else None


def _resolve_weekday(match: re.Match[str], meeting_date: dt.date) -> dt.date | None:
    """A bare weekday, unless it names a thing ("the Thursday sync", "Monday's meeting")."""
    prep, following = match["prep"], match["next"]
    if not prep and (match["poss"] or (following and not _AFTER_DUE_RE.match(following))):
        return None
    if prep and prep.lower() in ("for", "this", "coming") and match["poss"]:
        return None
    return _next_weekday(meeting_date, WEEKDAYS.index(match["wd"].lower()))


def _resolve_in_n(groups: dict[str, str | None], meeting_date: dt.date) -> dt.date:
    raw = (groups["n"] or "1").lower()
    n = int(raw) if raw.isdigit() else _NUMBERS[raw]
    unit = (groups["unit"] or "days").lower()
    if unit.startswith("week"):
        return meeting_date + dt.timedelta(weeks=n)
    if unit.startswith(("business", "working")):
        day = meeting_date
        while n > 0:
            day += dt.timedelta(days=1)
            n -= day.weekday() < 5
        return day
    return meeting_date + dt.timedelta(days=n)


def _resolve_period(kind: str, meeting_date: dt.date) -> dt.date | None:
    """The phrases whose date depends on the meeting date alone."""
    year, month = meeting_date.year, meeting_date.month
    offsets = {"day_after": 2, "tomorrow": 1, "eod": 0, "time": 0, "within_day": 0}
    if kind in offsets:
        return meeting_date + dt.timedelta(days=offsets[kind])
    if kind == "eom":
        return _last_of_month(year, month)
    if kind == "eonm":
        return _last_of_month(year + month // 12, month % 12 + 1)
    if kind == "eoq":
        return _last_of_month(year, (month - 1) // 3 * 3 + 3)
    if kind == "eoy":
        return dt.date(year, 12, 31)
    if kind == "weekend":
        return meeting_date + dt.timedelta(days=6 - meeting_date.weekday())
    if kind == "eow":
        return _friday_of(meeting_date)
    if kind == "early_next_week":
        return _monday_of_next_week(meeting_date)
    if kind == "next_week":
        return _monday_of_next_week(meeting_date) + dt.timedelta(days=4)
    return None


def _resolve(
    kind: str, match: re.Match[str], meeting_date: dt.date, next_meeting: dt.date | None
) -> dt.date | None:
    groups = match.groupdict()
    if kind == "next_meeting":
        return next_meeting if next_meeting is not None and next_meeting > meeting_date else None
    if kind in ("calendar", "calendar_of"):
        return _resolve_calendar(groups, meeting_date)
    if kind == "weekday_day":
        if not groups["the"] and (groups["day"] or "").isdigit():
            return None  # "Friday 3 people": a bare number is no day of the month
        weekday = WEEKDAYS.index((groups["wd"] or "").lower())
        return _next_day_of_month(meeting_date, _day_number(groups["day"] or "0"), weekday)
    if kind == "day_of_month":
        return _next_day_of_month(meeting_date, _day_number(groups["day"] or "0"))
    if kind == "in_n":
        return _resolve_in_n(groups, meeting_date)
    if kind == "next_weekday":
        monday = _monday_of_next_week(meeting_date)
        return monday + dt.timedelta(days=WEEKDAYS.index((groups["wd"] or "").lower()))
    if kind == "weekday":
        return _resolve_weekday(match, meeting_date)
    return _resolve_period(kind, meeting_date)


def _span(kind: str, match: re.Match[str]) -> tuple[int, int]:
    if kind == "weekday" and match["next"]:
        return match.start(), match.start("next")  # the look-ahead word is not part of it
    return match.span()


def _candidates(text: str, meeting_date: dt.date, next_meeting: dt.date | None) -> list[DueMatch]:
    found: list[DueMatch] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            try:
                due = _resolve(kind, match, meeting_date, next_meeting)
            except (ValueError, OverflowError, KeyError):
                due = None
            if due is not None:
                start, end = _span(kind, match)
                found.append(DueMatch(text[start:end].strip(), due, start, end, kind))
    return found


def find_due_phrases(
    text: str, *, meeting_date: dt.date, next_meeting: dt.date | None = None
) -> list[DueMatch]:
    """Every due phrase in `text`, resolved against `meeting_date`, in order of appearance.

    "For the next meeting" is `next_meeting` (the series' next meeting, `next_meeting_date`);
    without one it is no due phrase: the date stays unknown and the words stay in the action.

    Where phrases overlap the longest wins ("Friday EOD" over "EOD", "next Tuesday" over
    "Tuesday").
    """
    if not text or not _DATE_WORDS.search(text):
        return []
    kept: list[DueMatch] = []
    for match in sorted(
        _candidates(text, meeting_date, next_meeting), key=lambda m: m.start - m.end
    ):
        if not any(match.start < k.end and k.start < match.end for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)


def choose_due(matches: list[DueMatch], text: str) -> DueMatch | None:
    """The phrase that counts: the first date, replaced by a later one after a correction."""
    if not matches:
        return None
    chosen = next((m for m in matches if not m.is_qualifier), matches[0])
    for later in matches:
        if later.start <= chosen.start:
            continue
        if _CORRECTION.search(text, chosen.end, later.start) or (
            chosen.is_qualifier and not later.is_qualifier
        ):
            chosen = later
    return chosen


def find_due_phrase(
    text: str, *, meeting_date: dt.date, next_meeting: dt.date | None = None
) -> tuple[str, dt.date] | None:
    """The due phrase of an utterance and its date, or None when there is none."""
    found = find_due_phrases(text, meeting_date=meeting_date, next_meeting=next_meeting)
    chosen = choose_due(found, text)
    return (chosen.text, chosen.due) if chosen else None


def resolve_due(
    phrase_or_text: str, *, meeting_date: dt.date, next_meeting: dt.date | None = None
) -> dt.date | None:
    """The due date of a phrase ("by Friday") or of a whole utterance; None if there is none."""
    found = find_due_phrase(phrase_or_text, meeting_date=meeting_date, next_meeting=next_meeting)
    return found[1] if found else None


def next_meeting_date(
    meeting_date: dt.date, *, previous: dt.date | None = None, cadence_days: int | None = None
) -> dt.date | None:
    """The series' next meeting after `meeting_date`, when its cadence is known.

    A configured `cadence_days` wins. Else the gap since the `previous` meeting says it: a
    whole number of weeks (weekly, fortnightly, every three or four weeks) repeats; a daily
    series (one day apart, or Friday to Monday) meets the next working day. Any other gap is no
    cadence: None, and "for the next meeting" keeps no date.
    """
    if cadence_days is not None:
        return meeting_date + dt.timedelta(days=cadence_days) if cadence_days > 0 else None
    if previous is None or previous >= meeting_date:
        return None
    gap = (meeting_date - previous).days
    if gap % 7 == 0 and gap <= 28:
        return meeting_date + dt.timedelta(days=gap)
    daily = gap == 1 or (gap == 3 and previous.weekday() == 4 and meeting_date.weekday() == 0)
    if daily and meeting_date.weekday() < 5:
        return meeting_date + dt.timedelta(days=3 if meeting_date.weekday() == 4 else 1)
    return None
