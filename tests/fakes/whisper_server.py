"""A loopback OpenAI-compatible Whisper server (`POST /v1/audio/transcriptions`).

It really transcribes: the uploaded WAV goes through a faster-whisper model. It can be told to
fail (HTTP 500) or stall, to exercise failover. With `memo`, an upload it has transcribed
before (the same bytes) is answered from memory after `reply_secs`: a remote server that costs
the machine nothing (benchmarks/load.py); `misses` counts the uploads it had to transcribe.
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
            key = hashlib.sha256(data).hexdigest()
            if self.memo and key in self.transcripts:
                await asyncio.sleep(self.reply_secs)
                return JSONResponse({"text": self.transcripts[key]})
            self.misses += 1
            audio, rate = sf.read(io.BytesIO(data), dtype="float32")
            assert rate == 16000, rate

            def run() -> str:
                segments, _ = self.model.transcribe(np.asarray(audio), language="en", beam_size=5)
                return " ".join(s.text.strip() for s in segments)

            text = await asyncio.to_thread(run)
            if self.memo:
                self.transcripts[key] = text
            return JSONResponse({"text": text})

        return api
