"""The one wall clock app code reads, and the meeting date derived from it.

Everything that needs "now" or "today" asks this module, never `datetime.now()` or
`date.today()` directly, so tests (and the CI date-shift step) can move time in one place.
Durations inside a call are measured on the call's audio clock instead (milliseconds of the
caller's audio), which runs the same at real time and at `--speed 0`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["clock_at", "meeting_date_at", "now", "set_source", "time_zone"]


def _system_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_source: Callable[[], dt.datetime] = _system_now


def now() -> dt.datetime:
    """The current instant, time-zone aware (UTC)."""
    value = _source()
    if value.tzinfo is None:
        raise ValueError("the clock source must return an aware datetime")
    return value.astimezone(dt.UTC)


def set_source(source: Callable[[], dt.datetime] | None) -> None:
    """Replace the clock (None: the system clock again)."""
    global _source
    _source = source or _system_now


@contextmanager
def clock_at(instant: dt.datetime) -> Iterator[None]:
    """Freeze the clock at `instant` (aware) for the duration of the block."""
    previous = _source
    set_source(lambda: instant)
    try:
        yield
    finally:
        set_source(previous)


def time_zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; a clear error for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Berlin)") from exc


def meeting_date_at(instant: dt.datetime, zone: str) -> dt.date:
    """The calendar date of `instant` where the meeting is held (`zone`, an IANA name)."""
    return instant.astimezone(time_zone(zone)).date()
