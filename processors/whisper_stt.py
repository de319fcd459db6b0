"""Whisper in-process (faster-whisper), sharing one model across calls, with segment timing.

Pipecat's `WhisperSTTService` loads a model in its constructor; this subclass takes the
process-wide model instead, so a second caller never waits for a load. Each transcript is
followed by a `TranscriptSegmentFrame` carrying where in the call's audio it was spoken and how
sure Whisper was. A segment still open when the call ends is transcribed, not dropped.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import numpy as np
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.utils.time import time_now_iso8601

from processors.frames import TranscriptSegmentFrame

if TYPE_CHECKING:
    from faster_whisper import WhisperModel


class SharedWhisperSTTService(WhisperSTTService):  # type: ignore[misc]
    """faster-whisper STT over VAD segments, with a shared model and segment timing."""

    def __init__(self, *, model: WhisperModel, model_name: str, **kwargs: Any) -> None:
        self._shared_model = model
        settings = kwargs.pop("settings", None) or WhisperSTTService.Settings()
        settings.model = model_name
        super().__init__(settings=settings, **kwargs)
        self._samples_seen = 0
        self._speech_start_ms = 0
        self._in_speech = False
        self._timings: deque[tuple[int, int]] = deque()

    def _load(self) -> None:
        self._model = self._shared_model

    @property
    def heard_ms(self) -> int:
        """How much of the call's audio has reached this service (ms)."""
        return self._position_ms()

    def _position_ms(self) -> int:
        rate = self.sample_rate or 16000
        return int(self._samples_seen * 1000 / rate)

    async def process_audio_frame(
        self, frame: InputAudioRawFrame, direction: FrameDirection
    ) -> None:
        self._samples_seen += len(frame.audio) // (2 * frame.num_channels)
        await super().process_audio_frame(frame, direction)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._speech_start_ms = max(0, self._position_ms() - int(frame.start_secs * 1000))
            self._in_speech = True
        await super().process_frame(frame, direction)

    async def _handle_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        if self.is_usable and self._in_speech:
            end_ms = max(self._speech_start_ms, self._position_ms() - int(frame.stop_secs * 1000))
            self._timings.append((self._speech_start_ms, end_ms))
        self._in_speech = False
        await super()._handle_user_stopped_speaking(frame)

    async def stop(self, frame: EndFrame) -> None:
        # The call ended mid-utterance: transcribe what was said instead of dropping it.
        if self._in_speech:
            await self._handle_user_stopped_speaking(VADUserStoppedSpeakingFrame(stop_secs=0.0))
        await super().stop(frame)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        start_ms, end_ms = self._timings.popleft() if self._timings else (0, 0)
        model = self._model
        if model is None:
            yield ErrorFrame("Whisper model not available")
            return
        await self.start_processing_metrics()
        samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0
        settings: Any = self._settings
        threshold = settings.no_speech_prob

        def transcribe() -> list[Any]:
            segments, _ = model.transcribe(
                samples,
                language=settings.language,
                hotwords=settings.hotwords,
                initial_prompt=settings.initial_prompt,
                beam_size=5,
                condition_on_previous_text=False,
            )
            return list(segments)

        segments = await asyncio.to_thread(transcribe)
        kept = [s for s in segments if threshold is None or s.no_speech_prob < threshold]
        text = " ".join(s.text.strip() for s in kept).strip()
        await self.stop_processing_metrics()
        if not text:
            return
        confidence = sum(math.exp(s.avg_logprob) for s in kept) / len(kept)
        yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), settings.language)
        yield TranscriptSegmentFrame(
            text=text,
            start_ms=start_ms,
            end_ms=max(end_ms, start_ms),
            confidence=round(confidence, 4),
        )
