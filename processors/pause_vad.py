"""Silero VAD that also says when a speaker pauses, before the turn's full stop window.

Pipecat's `VADProcessor` ends a turn after `stop_secs` of silence (0.6 s here: people pause
mid-sentence in meetings). Waiting that out before transcribing a question costs the whole
window in reply latency. `PauseVADProcessor` additionally broadcasts a `SpeechPausedFrame` once
the silence has lasted `pause_secs`, and a `SpeechResumedFrame` if speech comes back before the
turn ends, so the STT can transcribe the turn speculatively while the VAD is still waiting.

Only public Pipecat API: the analyzer's state comes from what `analyze_audio` returns, and the
silence is timed from the audio it was given.
"""

from __future__ import annotations

import logging
from typing import Any

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection

from processors.frames import SpeechPausedFrame, SpeechResumedFrame

log = logging.getLogger(__name__)


class PauseAwareVADAnalyzer(SileroVADAnalyzer):  # type: ignore[misc]
    """Silero, remembering its last state and how long the current silence has lasted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_state = VADState.QUIET
        self.silent_secs = 0.0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        state: VADState = await super().analyze_audio(buffer)
        if state == VADState.STOPPING:
            rate = self.sample_rate or 16000
            before = self.silent_secs if self.last_state == VADState.STOPPING else 0.0
            self.silent_secs = before + len(buffer) / (2 * rate)
        else:
            self.silent_secs = 0.0
        self.last_state = state
        return state


class PauseVADProcessor(VADProcessor):  # type: ignore[misc]
    """`VADProcessor` plus pause/resume frames (`pause_secs` 0 turns them off)."""

    def __init__(
        self, *, vad_analyzer: PauseAwareVADAnalyzer, pause_secs: float, **kwargs: Any
    ) -> None:
        super().__init__(vad_analyzer=vad_analyzer, **kwargs)
        self._analyzer = vad_analyzer
        self._pause_secs = pause_secs
        self._in_turn = False
        self._paused = False
        self.pauses = 0
        self.resumes = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame) or self._pause_secs <= 0:
            return
        state = self._analyzer.last_state
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
            silent = self._analyzer.silent_secs
            if silent >= self._pause_secs:
                self._paused = True
                self.pauses += 1
                log.debug("vad: paused %.2f s", silent)
                await self.broadcast_frame(SpeechPausedFrame, paused_secs=round(silent, 3))
