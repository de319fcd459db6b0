"""The process's Prometheus metrics, served at `GET /metrics` (README: Metrics).

One registry per process (not multiprocess-safe: each `convene serve` process is scraped on
its own). Counters and the histogram are moved where the event happens (processors); the
gauges that describe a state kept elsewhere (calls streaming, spooled writes, LLM windows
waiting) are set from that state each time `/metrics` is read (server/routes_metrics.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = [
    "ACTIVE_CALLS",
    "CONTENT_TYPE",
    "EXTRACTION_BACKLOG",
    "REGISTRY",
    "SPOOL_DEPTH",
    "STT_DROPPED",
    "STT_FAILOVERS",
    "STT_QUEUE_DEPTH",
    "STT_WAITING",
    "TTS_FAILOVERS",
    "VOICE_TO_VOICE",
    "WRITES_HELD",
    "exposition",
    "transcribing",
]

T = TypeVar("T")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes…

ACTIVE_CALLS = Gauge(
    "convene_active_calls",
    "Calls this process is streaming now (media stream attached, pipeline running).",
    registry=REGISTRY,
)
STT_QUEUE_DEPTH = Gauge(
    "convene_stt_queue_depth",
    "Local Whisper transcriptions (turns and speculations) asked for and not finished yet: "
    "waiting for the shared model or running on it.",
    registry=REGISTRY,
)
STT_WAITING = Gauge(
    "convene_stt_waiting",
    "Local Whisper transcriptions queued for a worker and not started yet (the part of "
    "convene_stt_queue_depth that is waiting; stt.workers run at once).",
    registry=REGISTRY,
)
VOICE_TO_VOICE = Histogram(
    "convene_voice_to_voice_seconds",
    "Stored replies: from the question's end to the reply's first audio written to the "
    "socket (t_first_audio_ms - t_question_end_ms); replies with no audio sent or cut by a "
    "hang-up are not counted.",
    buckets=(0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0),
    registry=REGISTRY,
)
STT_DROPPED = Counter(
    "convene_stt_dropped",
    "Speculative transcriptions dropped because the Whisper queue was full (stt.max_queue "
    "waiting); the turn's own transcription follows each.",
    registry=REGISTRY,
)
STT_FAILOVERS = Counter(
    "convene_stt_failovers",
    "Calls whose STT provider failed and was replaced by the fallback (local Whisper).",
    ["provider"],
    registry=REGISTRY,
)
TTS_FAILOVERS = Counter(
    "convene_tts_failovers",
    "Calls whose cloud voice failed and was replaced by the fallback (Piper).",
    ["provider"],
    registry=REGISTRY,
)
SPOOL_DEPTH = Gauge(
    "convene_spool_depth",
    "Writes spooled on disk (CONVENE_HOME/spool.sqlite3) waiting for Postgres.",
    registry=REGISTRY,
)
WRITES_HELD = Gauge(
    "convene_writes_held",
    "Writes held in memory by the writer: not yet in Postgres or the spool.",
    registry=REGISTRY,
)
EXTRACTION_BACKLOG = Gauge(
    "convene_extraction_backlog",
    "Transcript windows the LLM extractor failed on, waiting in CONVENE_HOME/llm-spool.sqlite3 "
    "for a retry.",
    registry=REGISTRY,
)


async def transcribing(work: Awaitable[T]) -> T:
    """Await one transcription, counted in `convene_stt_queue_depth` until it is done."""
    with STT_QUEUE_DEPTH.track_inprogress():
        return await work


def exposition() -> bytes:
    """Every metric in Prometheus' text format."""
    return generate_latest(REGISTRY)
