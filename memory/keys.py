"""Every Redis key and stream name Convene uses, built in one place."""

from __future__ import annotations

SEGMENTS_STREAM = "convene:segments"
COMMITMENTS_STREAM = "convene:commitments"
STREAM_MAXLEN = 10_000


WINDOW_SIZE = 8
CALL_TTL_SECS = 24 * 3600
SERIES_TTL_SECS = 30 * 24 * 3600
SERIES_RECENT_SIZE = 200


def call_window(call_id: str) -> str:
    """Working memory: the call's last utterances (a capped list)."""
    return f"convene:call:{call_id}:window"


SERIES_SUMMARIES_SIZE = 20


def series_summaries(series_key: str) -> str:
    """Short-term memory: the series' recent meeting summaries (a capped list with a TTL)."""
    return f"convene:series:{series_key}:summaries"


def series_recent(series_key: str) -> str:
    """Short-term memory: the series' recent commitments (a capped list with a TTL)."""
    return f"convene:series:{series_key}:recent"
