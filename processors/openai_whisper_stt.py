"""`stt.provider: openai-whisper`: OpenAI's reference `openai-whisper` package, in-process.

An optional extra (`uv sync --extra openai-whisper`): it pulls PyTorch, so it is never in the
default install; start-up checks it is importable (server/runtime.py) before any call. The model
is a Whisper name ("base", "small", "large-v3", downloaded once by the package into its cache)
or a path to a `.pt` checkpoint, loaded once per process and shared by calls.

Segments come from the VAD like the faster-whisper service's, with the same timing frames, so
the rest of the pipeline cannot tell the recognisers apart.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import threading
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.utils.time import time_now_iso8601

from core.errors import ConfigError
from core.metrics import transcribing
from core.prompts import OpenAIWhisperOptions
from processors.stt_timing import SegmentTimingMixin
from processors.whisper_stt import WAV_HEADER_BYTES

_models: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def load_openai_whisper(name: str, device: str) -> Any:
    """The process-wide `whisper` model for (name, device); loads it on first use."""
    try:
        whisper = importlib.import_module("whisper")
    except ImportError as exc:
        raise ConfigError(
            "stt.provider: openai-whisper needs the optional extra "
            "(uv sync --extra openai-whisper; it pulls PyTorch)"
        ) from exc
    with _lock:
        key = (name, device)
        if key not in _models:
            _models[key] = whisper.load_model(name, device=device)
        return _models[key]


def transcribe_openai_whisper(
    model: Any, pcm16: bytes, settings: Any, *, fp16: bool
) -> tuple[str, float | None]:
    """Blocking: transcribe 16 kHz 16-bit PCM; (text, confidence) like `transcribe_local`."""
    samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
    result = model.transcribe(
        samples,
        language=settings.language,
        initial_prompt=settings.initial_prompt,
        condition_on_previous_text=False,
        fp16=fp16,
    )
    threshold = settings.no_speech_prob
    kept = [
        s
        for s in result.get("segments", [])
        if threshold is None or s.get("no_speech_prob", 0.0) < threshold
    ]
    text = " ".join(str(s["text"]).strip() for s in kept).strip()
    confidence = sum(math.exp(s["avg_logprob"]) for s in kept) / len(kept) if kept else None
    return text, confidence


class OpenAIWhisperSTTService(SegmentTimingMixin, SegmentedSTTService):  # type: ignore[misc]
    """The `openai-whisper` package over VAD segments, with segment timing."""

    def __init__(
        self,
        *,
        options: OpenAIWhisperOptions,
        settings: Any,  # WhisperSTTService.Settings: language, prompt, no_speech_prob
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._timing_init()
        self._options = options
        self._whisper_settings = settings
        self._model = load_openai_whisper(options.model, options.device)

    def can_generate_metrics(self) -> bool:
        return True

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        timing = self.next_timing()
        pcm = audio[WAV_HEADER_BYTES:] if audio[:4] == b"RIFF" else audio
        await self.start_processing_metrics()
        try:
            text, confidence = await transcribing(
                asyncio.to_thread(
                    transcribe_openai_whisper,
                    self._model,
                    pcm,
                    self._whisper_settings,
                    fp16=self._options.device != "cpu",
                )
            )
        except Exception as exc:  # a model error must not end the call
            yield ErrorFrame(f"openai-whisper failed: {type(exc).__name__}")
            return
        finally:
            await self.stop_processing_metrics()
        if not text:
            return
        language: Any = self._whisper_settings.language
        yield TranscriptionFrame(text, self.speaker_id, time_now_iso8601(), language)
        yield self.segment_frame(text, timing, confidence)
