"""Silero VAD that also says when a speaker pauses, before the turn's full stop window.

Pipecat's `VADProcessor` ends a turn after `stop_secs` of silence (0.6 s here: people pause
mid-sentence in meetings). Waiting that out before transcribing a question costs the whole
window in reply latency. `PauseVADProcessor` additionally broadcasts a `SpeechPausedFrame` once
the silence has lasted `pause_secs`, and a `SpeechResumedFrame` if speech comes back before the
turn ends, so the STT can transcribe the turn speculatively while the VAD is still waiting.

Given a turn analyzer (Pipecat's `LocalSmartTurnAnalyzerV3`, `turn.analyzer: smart-turn-v3`),
it also has the analyzer judge, at each pause, whether the turn so far sounds complete, and
broadcasts its verdict as a `TurnJudgedFrame` (unless the speaker went on first): the wake gate
then answers early only a complete question. Turns longer than 8 s are not judged. The judgement runs in the analyzer's own thread,
off the frame loop, beside the speculative transcription the pause starts.

Only public Pipecat API: the VAD analyzer's state comes from what `analyze_audio` returns, and
the silence is timed from the audio it was given; the turn analyzer is driven through
`BaseTurnAnalyzer`'s methods (`clear`, `append_audio`, `analyze_end_of_turn`), given the turn's
audio at once so its verdict does not depend on how fast the audio arrived.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, EndOfTurnState
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection

from processors.frames import SpeechPausedFrame, SpeechResumedFrame, TurnJudgedFrame

log = logging.getLogger(__name__)
PRE_SPEECH_SECS = 1.0  # audio kept before a turn: the VAD notices speech start_secs late
# Smart Turn v3 reads the last 8 s of a turn; a longer turn is a monologue, not a question to
# the bot, and is not judged (nor answered early): the CPU goes to the calls' transcripts.
MAX_JUDGED_SECS = 8.0


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
        self,
        *,
        vad_analyzer: PauseAwareVADAnalyzer,
        pause_secs: float,
        turn_analyzer: BaseTurnAnalyzer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(vad_analyzer=vad_analyzer, **kwargs)
        self._analyzer = vad_analyzer
        self._pause_secs = pause_secs
        self._turn_analyzer = turn_analyzer
        self._judging = asyncio.Lock()
        self._audio = bytearray()  # the turn so far, with the second before it
        self._turn_samples = 0
        self._in_turn = False
        self._paused = False
        self.pauses = 0
        self.resumes = 0
        self.judged_complete = 0
        self.judged_incomplete = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame) or self._pause_secs <= 0:
            return
        state = self._analyzer.last_state
        if self._turn_analyzer is not None:
            self._keep_audio(frame.audio, state)
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
                if self._turn_analyzer is not None and self._turn_secs() <= MAX_JUDGED_SECS:
                    self.create_task(
                        self._judge(self._turn_analyzer, bytes(self._audio)),
                        name="turn-judge",
                    )

    def _turn_secs(self) -> float:
        """How long the turn has lasted (from its VAD start to now)."""
        rate = self._analyzer.sample_rate or 16000
        return self._turn_samples / rate

    def _keep_audio(self, audio: bytes, state: VADState) -> None:
        self._turn_samples = self._turn_samples + len(audio) // 2 if self._in_turn else 0
        self._audio += audio
        rate = self._analyzer.sample_rate or 16000
        keep = MAX_JUDGED_SECS if self._in_turn or state != VADState.QUIET else PRE_SPEECH_SECS
        excess = len(self._audio) - int(keep * rate) * 2
        if excess > 0:
            del self._audio[:excess]

    async def _judge(self, analyzer: BaseTurnAnalyzer, audio: bytes) -> None:
        """Smart Turn's verdict on the turn up to this pause, broadcast while still current:
        the speaker has not gone on since (the turn may have ended meanwhile: its early
        transcript may still be on its way)."""
        pause, resumes = self.pauses, self.resumes
        async with self._judging:
            analyzer.set_sample_rate(self._analyzer.sample_rate or 16000)
            analyzer.clear()  # type: ignore[no-untyped-call]
            analyzer.append_audio(audio, True)
            state, metrics = await analyzer.analyze_end_of_turn()
            analyzer.clear()  # type: ignore[no-untyped-call]
        complete = state == EndOfTurnState.COMPLETE
        probability = float(getattr(metrics, "probability", 1.0 if complete else 0.0))
        if complete:
            self.judged_complete += 1
        else:
            self.judged_incomplete += 1
        log.debug("turn: %s (p=%.2f)", "complete" if complete else "incomplete", probability)
        if self.pauses == pause and self.resumes == resumes:
            await self.broadcast_frame(
                TurnJudgedFrame, complete=complete, probability=round(probability, 3)
            )
