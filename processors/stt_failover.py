"""STT failover: Pipecat's `ServiceSwitcher`, and the words said while the provider was failing.

`build_stt_failover(primary, fallback)` puts the two services behind
`ServiceSwitcher(strategy_type=ServiceSwitcherStrategyFailover)`: when the primary reports an
error that leaves it unusable (a refused key, reconnects given up, a stall), the switcher sends
the call's audio to the fallback (local Whisper) from then on. The failover is decided there,
once, for every provider.

What the switcher cannot do is give the fallback the audio the primary took and never
transcribed: the utterance in flight when a socket died, a segment a server failed on. Measured
(tests/test_stt_failover.py): without it, a failover mid-utterance loses that utterance's words.
`FailoverReplay`, in front of the switcher, keeps the audio and VAD frames back to where the
active service has answered for (its `transcribed_ms`), and on a switch queues what is past that
point into the new service, a VAD start first when the cut falls inside an utterance.

It also notes the call's time of every audio and VAD frame on the `CallClock` the services
share, since each of them only sees the audio sent while it is active. At the call's end it
lets the active service settle (its last answers arrive, or it gives up and the switch happens)
before the `EndFrame` goes on, so that a failure in the last seconds still reaches the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any, Protocol, runtime_checkable

from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.service_switcher import (
    ServiceSwitcher,
    ServiceSwitcherStrategyFailover,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from core.metrics import STT_FAILOVERS
from processors.stt_timing import CallClock

log = logging.getLogger(__name__)

PREROLL_MS = 1000  # audio kept before an utterance: the VAD starts late
MAX_KEEP_MS = 120_000  # never more than this, whatever a service has not answered for
SETTLE_SAFETY_SECS = 120.0  # a safety net: settling ends on the service's own timeout

_KEPT = (InputAudioRawFrame, VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame)


@runtime_checkable
class Answers(Protocol):
    """A service that says how far into the call it has answered for, and can settle."""

    transcribed_ms: int

    async def settle(self) -> None: ...


class FailoverReplay(FrameProcessor):  # type: ignore[misc]
    """In front of a `ServiceSwitcher` of STT services: replays to the new one what the failed
    one never transcribed, and keeps the call's clock."""

    def __init__(
        self,
        switcher: ServiceSwitcher[Any],
        clock: CallClock,
        *,
        replay: bool = True,
        provider: str = "primary",
    ):
        super().__init__()
        self.switcher = switcher
        self.clock = clock
        self.replay = replay
        self.provider = provider  # what failed, for the metric (`stt.provider`)
        self.serving: FrameProcessor = switcher.strategy.active_service
        self.kept: deque[tuple[Frame, int]] = deque()
        self.speaking = False
        self.utterance_ms = 0
        self.failovers = 0
        self.replayed_ms = 0
        self.reason = ""
        self.last_kept: int | None = None  # id of the last audio or VAD frame passed on
        self.last_processed: dict[int, int] = {}  # per service: the last one it processed
        self.caught_up = asyncio.Event()
        for service in switcher.services:
            service.add_event_handler("on_error", self._on_service_error)
            service.add_event_handler("on_after_process_frame", self._on_service_processed)

    async def _on_service_error(self, service: FrameProcessor, error: ErrorFrame) -> None:
        if not service.is_usable:
            self.reason = error.error
            self.caught_up.set()

    async def _on_service_processed(self, service: FrameProcessor, frame: Frame) -> None:
        if isinstance(frame, _KEPT):
            self.last_processed[id(service)] = frame.id
            if frame.id == self.last_kept:
                self.caught_up.set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, EndFrame):
                await self._settle()
            await self._follow_switch()
            if isinstance(frame, _KEPT):
                self._keep(frame)
        await self.push_frame(frame, direction)

    def _keep(self, frame: Frame) -> None:
        at = self.clock.note(frame)
        self.last_kept = frame.id
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self.speaking, self.utterance_ms = True, at
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self.speaking = False
        self.kept.append((frame, at))
        answered = getattr(self.serving, "transcribed_ms", self.clock.heard_ms)
        keep_from = min(answered, self.clock.heard_ms) - PREROLL_MS
        if self.speaking:
            keep_from = min(keep_from, self.utterance_ms - PREROLL_MS)
        keep_from = max(keep_from, self.clock.heard_ms - MAX_KEEP_MS)
        while self.kept and self.kept[0][1] < keep_from:
            self.kept.popleft()

    async def _follow_switch(self) -> None:
        active = self.switcher.strategy.active_service
        if active is self.serving:
            return
        failed, self.serving = self.serving, active
        self.failovers += 1
        STT_FAILOVERS.labels(provider=self.provider).inc()
        frames = self._unanswered(failed) if self.replay else []
        audio_ms = sum(
            len(f.audio) * 1000 // (2 * f.num_channels * (f.sample_rate or 16000))
            for f in frames
            if isinstance(f, InputAudioRawFrame)
        )
        self.replayed_ms += audio_ms
        log.warning(
            "stt: failover: from=%s to=%s reason=%s replayed_ms=%d",
            failed.name,
            active.name,
            self.reason or "unknown",
            audio_ms,
        )
        for frame in frames:
            await active.queue_frame(frame)

    def _unanswered(self, failed: FrameProcessor) -> list[Frame]:
        """The kept frames past where `failed` had answered for, as an utterance's frames."""
        cut = getattr(failed, "transcribed_ms", 0)
        speaking = False
        out: list[Frame] = []
        for frame, at in self.kept:
            if at <= cut:
                if isinstance(frame, VADUserStartedSpeakingFrame):
                    speaking = True
                elif isinstance(frame, VADUserStoppedSpeakingFrame):
                    speaking = False
                continue
            if not out and speaking and not isinstance(frame, VADUserStartedSpeakingFrame):
                start = VADUserStartedSpeakingFrame(start_secs=0.0)  # the cut is mid-utterance
                self.clock.note(start, at_ms=cut)
                out.append(start)
            out.append(frame)
        return out

    async def _settle(self) -> None:
        """The call ends: the active service finishes (or fails over) before the EndFrame."""
        if self.speaking:  # the call ended mid-utterance: end it, so what was said is heard
            stop = VADUserStoppedSpeakingFrame(stop_secs=0.0)
            self._keep(stop)
            await self.push_frame(stop)
        serving = self.serving
        if not isinstance(serving, Answers) or self.switcher.strategy.active_service is not serving:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_SAFETY_SECS):
                # First the service takes the last frame passed on (a VAD stop: its Finalize).
                while (
                    self.last_kept is not None
                    and self.last_processed.get(id(serving)) != self.last_kept
                    and serving.is_usable
                ):
                    self.caught_up.clear()
                    await self.caught_up.wait()
                await serving.settle()


def build_stt_failover(
    primary: FrameProcessor,
    fallback: FrameProcessor,
    clock: CallClock,
    *,
    replay: bool = True,
    provider: str = "primary",
) -> Pipeline:
    """The primary STT with `fallback` behind Pipecat's failover switcher, the replay in front."""
    switcher = ServiceSwitcher(
        services=[primary, fallback], strategy_type=ServiceSwitcherStrategyFailover
    )
    replayer = FailoverReplay(switcher, clock, replay=replay, provider=provider)
    return Pipeline([replayer, switcher])
