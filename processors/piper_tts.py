"""Piper TTS in-process with the process-wide voice (loaded once, shared by calls)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from processors.piper_voice import load_voice
from processors.tts_audio import pcm_frames

STOP_FRAME_TIMEOUT_SECS = 20.0


class SharedPiperTTSService(TTSService):  # type: ignore[misc]
    """Speaks with a Piper voice (default: the packaged en_US joe voice), streaming chunks."""

    def __init__(
        self, *, model_path: str | None = None, length_scale: float | None = None, **kwargs: Any
    ) -> None:
        settings = TTSSettings(model=model_path or "en_US-joe-medium", voice=None, language="en")
        # Piper's first audio of a sentence comes when the whole sentence is synthesised (its
        # chunks are sentences): seconds on a slow CPU. Pipecat would end the audio context
        # (and count a silent one against the service) after `stop_frame_timeout_s` without
        # audio; the context's real end comes from the base class once `run_tts` returns.
        kwargs.setdefault("stop_frame_timeout_s", STOP_FRAME_TIMEOUT_SECS)
        super().__init__(push_start_frame=True, push_stop_frames=True, settings=settings, **kwargs)
        self._voice = load_voice(model_path)
        self._length_scale = length_scale

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        from piper import SynthesisConfig

        chunks: Iterator[Any] = iter(
            self._voice.synthesize(
                text, syn_config=SynthesisConfig(length_scale=self._length_scale)
            )
        )

        def next_chunk() -> Any:
            return next(chunks, None)

        async def audio() -> AsyncIterator[bytes]:
            while (chunk := await asyncio.to_thread(next_chunk)) is not None:
                yield chunk.audio_int16_bytes

        try:
            await self.start_tts_usage_metrics(text)
            async for frame in pcm_frames(
                audio(),
                in_rate=self._voice.config.sample_rate,
                out_rate=self.sample_rate,
                context_id=context_id,
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as exc:
            yield ErrorFrame(error=f"Piper TTS failed: {exc}")
        finally:
            await self.stop_ttfb_metrics()
