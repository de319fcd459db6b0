"""Silero VAD that also says when a speaker pauses, before the turn's full stop window.

Pipecat's `VADProcessor` ends a turn after `stop_secs` of silence (0.6 s here: people pause
mid-sentence in meetings). Waiting that out before transcribing a question costs the whole
window in reply latency. `PauseVADProcessor` additionally broadcasts a `SpeechPausedFrame` once
the silence has lasted `pause_secs`, and a `SpeechResumedFrame` if speech comes back before the
turn ends, so the STT can transcribe the turn speculatively while the VAD is still waiting.
"""

from __future__ import annotations

import logging
from typing import Any

from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection

from processors.frames import SpeechPausedFrame, SpeechResumedFrame

log = logging.getLogger(__name__)


class PauseVADProcessor(VADProcessor):  # type: ignore[misc]
    """`VADProcessor` plus pause/resume frames (`pause_secs` 0 turns them off)."""

    def __init__(self, *, vad_analyzer: VADAnalyzer, pause_secs: float, **kwargs: Any) -> None:
        super().__init__(vad_analyzer=vad_analyzer, **kwargs)
        self._analyzer = vad_analyzer
        self._pause_secs = pause_secs
        self._in_turn = False
        self._paused = False
        self.pauses = 0
        self.resumes = 0

    def _silent_secs(self) -> float:
        # The analyzer counts the analysis windows of silence since speech dropped (its
        # STOPPING state); Pipecat keeps that count private, so read it defensively.
        analyzer: Any = self._analyzer
        if getattr(analyzer, "_vad_state", None) != VADState.STOPPING:
            return 0.0
        windows = int(getattr(analyzer, "_vad_stopping_count", 0))
        rate = analyzer.sample_rate or 16000
        return float(windows * analyzer.num_frames_required() / rate)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame) or self._pause_secs <= 0:
            return
        state = getattr(self._analyzer, "_vad_state", VADState.QUIET)
        if state == VADState.SPEAKING:
            self._in_turn = True
            if self._paused:
                self._paused = False
                self.resumes += 1
                log.debug("vad: speech resumed after a pause")
                await self.broadcast_frame(SpeechResumedFrame)
        elif state == VADState.QUIET:
            self._in_turn = False
            self._paused = False
        elif state == VADState.STOPPING and self._in_turn and not self._paused:
            silent = self._silent_secs()
            if silent >= self._pause_secs:
                self._paused = True
                self.pauses += 1
                log.debug("vad: paused %.2f s", silent)
                await self.broadcast_frame(SpeechPausedFrame, paused_secs=round(silent, 3))
