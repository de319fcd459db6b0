"""Every Redis key and stream name Convene uses, built in one place."""

from __future__ import annotations

SEGMENTS_STREAM = "convene:segments"
COMMITMENTS_STREAM = "convene:commitments"
STREAM_MAXLEN = 10_000


def call_state(call_id: str) -> str:
    """Hash with a live call's state (working memory)."""
    return f"convene:call:{call_id}:state"
