"""Convene's custom frames: data that travels through the pipeline as frames."""

from __future__ import annotations

from dataclasses import dataclass

from pipecat.frames.frames import DataFrame


@dataclass
class TranscriptSegmentFrame(DataFrame):
    """A final transcript segment with its place in the call's audio (ms from stream start)."""

    text: str
    start_ms: int
    end_ms: int
    confidence: float | None = None
    speaker: str | None = None
