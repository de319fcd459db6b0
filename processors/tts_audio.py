"""PCM from a synthesiser, as the TTS service's output frames: resampled, whole samples."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import TTSAudioRawFrame


async def pcm_frames(
    chunks: AsyncIterator[bytes], *, in_rate: int, out_rate: int, context_id: str | None
) -> AsyncGenerator[TTSAudioRawFrame, None]:
    """16-bit mono PCM chunks at `in_rate` -> `TTSAudioRawFrame`s at `out_rate`, one per chunk
    as it comes (a chunk's odd last byte waits for the next), so audio flows while the
    synthesiser is still working."""
    resampler = create_stream_resampler()
    pending = bytearray()

    async def converted(pcm: bytes) -> bytes:
        if in_rate == out_rate:
            return pcm
        return await resampler.resample(pcm, in_rate, out_rate)

    async for chunk in chunks:
        pending.extend(chunk)
        whole = len(pending) & ~1
        if whole:
            audio = await converted(bytes(pending[:whole]))
            del pending[:whole]
            if audio:
                yield TTSAudioRawFrame(audio, out_rate, 1, context_id=context_id)
    if pending:
        pending.extend(b"\x00")  # an odd trailing byte: pad it to a whole sample
        yield TTSAudioRawFrame(await converted(bytes(pending)), out_rate, 1, context_id=context_id)
