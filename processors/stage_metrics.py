"""Pipecat's own service metrics (TTFB, processing time), gathered per call.

`PipelineParams(enable_metrics=True)` makes each service emit `MetricsFrame`s: Whisper's
processing time per segment, Piper's time to first audio per sentence, and so on. This observer
collects them for the call, logs a one-line summary when the call ends, and keeps the last few
hundred values process-wide so benchmarks/voice_to_voice.py can print them beside its own
socket-level timings.
"""

from __future__ import annotations

import logging
import statistics
from collections import defaultdict, deque

from pipecat.frames.frames import MetricsFrame
from pipecat.metrics.metrics import ProcessingMetricsData, TTFBMetricsData
from pipecat.observers.base_observer import BaseObserver, FramePushed

log = logging.getLogger(__name__)

# (kind, processor class name) -> recent values in seconds, across calls (for benchmarks).
RECENT: defaultdict[tuple[str, str], deque[float]] = defaultdict(lambda: deque(maxlen=500))


class StageMetricsObserver(BaseObserver):  # type: ignore[misc]
    """Collects TTFB and processing metrics of one call's services."""

    def __init__(self, call_id: str) -> None:
        super().__init__()
        self._call_id = call_id
        self._seen: set[int] = set()
        self.values: defaultdict[tuple[str, str], list[float]] = defaultdict(list)

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if not isinstance(frame, MetricsFrame) or frame.id in self._seen:
            return
        self._seen.add(frame.id)
        for item in frame.data:
            if isinstance(item, TTFBMetricsData):
                kind = "ttfb"
            elif isinstance(item, ProcessingMetricsData):
                kind = "processing"
            else:
                continue
            if item.value <= 0:
                continue
            key = (kind, item.processor.split("#")[0])
            self.values[key].append(item.value)
            RECENT[key].append(item.value)

    def summary(self) -> dict[str, float]:
        """Median seconds per (kind, processor), e.g. {"processing SharedWhisperSTTService": 0.31}."""
        return {
            f"{kind} {name}": round(statistics.median(values), 4)
            for (kind, name), values in sorted(self.values.items())
        }

    def log_summary(self) -> None:
        if self.values:
            log.info("call %s: service metrics (median s) %s", self._call_id, self.summary())
