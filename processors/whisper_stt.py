"""Whisper STT: in-process (faster-whisper) or a remote OpenAI-compatible server with failover.

Pipecat's `WhisperSTTService` loads a model in its constructor; `SharedWhisperSTTService` takes
the process-wide model instead, so a second caller never waits for a load. Each transcript is
followed by a `TranscriptSegmentFrame` (see `processors/stt_timing.py`).

`RemoteWhisperSTTService` sends each VAD segment to a Whisper server speaking
`/v1/audio/transcriptions` (a DGX Spark running charts/stt) through the official `openai` SDK
(Pipecat's `OpenAISTTService`). A server that errors or stalls past its timeout is retried once;
then the segment is transcribed by the local model within the same call, so no speech is lost.
Every failover is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import numpy as np
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.utils.time import time_now_iso8601

from processors.stt_timing import SegmentTimingMixin

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)
WAV_HEADER_BYTES = 44


def transcribe_local(model: WhisperModel, pcm16: bytes, settings: Any) -> tuple[str, float | None]:
    """Blocking: transcribe 16-bit PCM with faster-whisper; (text, confidence)."""
    samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
    segments, _ = model.transcribe(
        samples,
        language=settings.language,
        hotwords=settings.hotwords,
        initial_prompt=settings.initial_prompt,
        beam_size=5,
        condition_on_previous_text=False,
    )
    threshold = settings.no_speech_prob
    kept = [s for s in segments if threshold is None or s.no_speech_prob < threshold]
    text = " ".join(s.text.strip() for s in kept).strip()
    confidence = sum(math.exp(s.avg_logprob) for s in kept) / len(kept) if kept else None
    return text, confidence


class SharedWhisperSTTService(SegmentTimingMixin, WhisperSTTService):  # type: ignore[misc]
    """faster-whisper STT over VAD segments, with a shared model and segment timing."""

    def __init__(self, *, model: WhisperModel, model_name: str, **kwargs: Any) -> None:
        self._shared_model = model
        settings = kwargs.pop("settings", None) or WhisperSTTService.Settings()
        settings.model = model_name
        super().__init__(settings=settings, **kwargs)
        self._timing_init()

    def _load(self) -> None:
        self._model = self._shared_model

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        timing = self.next_timing()
        model = self._model
        if model is None:
            yield ErrorFrame("Whisper model not available")
            return
        await self.start_processing_metrics()
        settings: Any = self._settings
        text, confidence = await asyncio.to_thread(transcribe_local, model, audio, settings)
        await self.stop_processing_metrics()
        if not text:
            return
        yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), settings.language)
        yield self.segment_frame(text, timing, confidence)


class RemoteWhisperSTTService(SegmentTimingMixin, OpenAISTTService):  # type: ignore[misc]
    """Whisper on a remote OpenAI-compatible server; the local model takes over on failure."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        fallback_model: WhisperModel,
        fallback_settings: Any,  # WhisperSTTService.Settings
        timeout_secs: float = 10.0,
        retries: int = 1,
        api_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            base_url=base_url.rstrip("/") + "/v1",
            api_key=api_key or "not-needed",
            settings=OpenAISTTService.Settings(
                model=model,
                language=fallback_settings.language,
                prompt=fallback_settings.initial_prompt,
            ),
            **kwargs,
        )
        self._timing_init()
        self._fallback_model = fallback_model
        self._fallback_settings = fallback_settings
        self._timeout = timeout_secs
        self._retries = retries
        self.failovers = 0
        self.remote_ok = 0

    async def _remote(self, audio: bytes) -> str:
        for attempt in range(self._retries + 1):
            try:
                async with asyncio.timeout(self._timeout):
                    response = await self._transcribe(audio)
                text: str = response.text.strip()
                return text
            except Exception as exc:  # SDK errors, timeouts, refused connections
                log.warning(
                    "whisper-remote: attempt %d failed (%s)", attempt + 1, type(exc).__name__
                )
        raise ConnectionError("whisper-remote unavailable")

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        timing = self.next_timing()
        await self.start_processing_metrics()
        confidence: float | None = None
        try:
            text = await self._remote(audio)
            self.remote_ok += 1
        except ConnectionError:
            self.failovers += 1
            log.warning(
                "whisper-remote: failover %d: local Whisper transcribes this segment",
                self.failovers,
            )
            pcm = audio[WAV_HEADER_BYTES:] if audio[:4] == b"RIFF" else audio
            text, confidence = await asyncio.to_thread(
                transcribe_local, self._fallback_model, pcm, self._fallback_settings
            )
        await self.stop_processing_metrics()
        if not text:
            return
        language: Any = self._fallback_settings.language
        yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), language)
        yield self.segment_frame(text, timing, confidence)
