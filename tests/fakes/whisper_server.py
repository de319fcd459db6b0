"""A loopback OpenAI-compatible Whisper server (`POST /v1/audio/transcriptions`).

It really transcribes: the uploaded WAV goes through a faster-whisper model. It can be told to
fail (HTTP 500) or stall, to exercise failover. The request's `prompt` is Whisper's initial
prompt, as OpenAI's endpoint reads it.

With `memo`, speech it has transcribed before is answered from memory after `reply_secs`: a
remote server that costs the machine nothing (benchmarks/load.py). "Before" means the same
bytes, or the same speech cut a few frames differently (the VAD of another call of the same
recording): the loudness envelopes, trimmed of silence, match. `misses` counts the uploads it
had to transcribe.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class FakeWhisperServer:
    model: Any  # faster_whisper.WhisperModel
    fail: bool = False
    stall_secs: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    memo: bool = False
    reply_secs: float = 0.05
    transcripts: dict[str, str] = field(default_factory=dict)
    misses: int = 0
    _envelopes: list[tuple[np.ndarray, str]] = field(default_factory=list)

    def remembered(self, data: bytes, audio: np.ndarray) -> str | None:
        """What this speech was transcribed as before, if it was."""
        found = self.transcripts.get(hashlib.sha256(data).hexdigest())
        if found is not None:
            return found
        envelope = _envelope(audio)
        for seen, text in self._envelopes:
            if _same_speech(envelope, seen):
                return text
        return None

    def remember(self, data: bytes, audio: np.ndarray, text: str) -> None:
        self.transcripts[hashlib.sha256(data).hexdigest()] = text
        self._envelopes.append((_envelope(audio), text))

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/v1/audio/transcriptions")
        async def transcriptions(request: Request) -> JSONResponse:
            form = await request.form()
            upload: Any = form["file"]
            data = await upload.read()
            self.requests.append(
                {"model": form.get("model"), "language": form.get("language"), "bytes": len(data)}
            )
            if self.stall_secs:
                await asyncio.sleep(self.stall_secs)
            if self.fail:
                return JSONResponse(
                    {"error": {"message": "GPU fell over", "type": "server_error"}}, status_code=500
                )
            audio, rate = sf.read(io.BytesIO(data), dtype="float32")
            assert rate == 16000, rate
            if self.memo and (text := self.remembered(data, audio)) is not None:
                await asyncio.sleep(self.reply_secs)
                return JSONResponse({"text": text})
            self.misses += 1
            prompt = form.get("prompt")

            def run() -> str:
                segments, _ = self.model.transcribe(
                    np.asarray(audio),
                    language="en",
                    beam_size=5,
                    initial_prompt=prompt if isinstance(prompt, str) and prompt else None,
                )
                return " ".join(s.text.strip() for s in segments)

            text = await asyncio.to_thread(run)
            if self.memo:
                self.remember(data, audio, text)
            return JSONResponse({"text": text})

        return api


HOP = 800  # 50 ms at 16 kHz


def _envelope(audio: np.ndarray) -> np.ndarray:
    """RMS per 50 ms, without the leading and trailing frames quieter than 1% of full scale."""
    frames = len(audio) // HOP
    rms = np.sqrt((np.asarray(audio[: frames * HOP]).reshape(frames, HOP) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms >= 0.01)
    return rms[loud[0] : loud[-1] + 1] if len(loud) else rms[:0]


def _same_speech(a: np.ndarray, b: np.ndarray) -> bool:
    """Within two frames of the same length, and the same shape (correlation >= 0.95)."""
    if not len(a) or not len(b) or abs(len(a) - len(b)) > 2:
        return False
    n = min(len(a), len(b))
    return len(a) == len(b) == 1 or float(np.corrcoef(a[:n], b[:n])[0, 1]) >= 0.95
