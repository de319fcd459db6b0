"""A loopback server speaking ElevenLabs' streaming TTS endpoint, for tests.

`POST /v1/text-to-speech/{voice_id}/stream?output_format=...` with the key in `xi-api-key`
(what the elevenlabs SDK sends) and a JSON body (`text`, `model_id`, `language_code`,
`voice_settings`, ...), as the real API takes it: a missing or wrong key is a 401 with the
real `{"detail": {"status", "message"}}` envelope, a body without `text` a 422, an output
format the fake cannot make a 400. The answer is a chunked stream of audio: the text spoken
with Piper (real speech), resampled and encoded as `output_format` asks (`pcm_<rate>`: 16-bit
little-endian PCM; `ulaw_8000`: mu-law), with `request-id` and `x-character-count` headers.

Per request a script says what happens: `Speak` (latency before the response, and between
chunks), `HttpError` (a status with the real envelope), `Disconnect` (the connection drops
after some bytes of audio). Every request is recorded (never the key); `disconnected`
counts streams the client closed early (a timeout, a barge-in).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.fakes.cartesia_api import encode, speech_pcm16

PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True)
class Speak:
    """Stream the speech: `delay_secs` before the response, `chunk_delay_secs` between chunks."""

    delay_secs: float = 0.0
    chunk_delay_secs: float = 0.0


@dataclass(frozen=True)
class HttpError:
    """Answer with `status` and the API's error envelope (after `delay_secs`)."""

    status: int = 500
    code: str = "internal_server_error"
    message: str = "An internal server error occurred."
    delay_secs: float = 0.0


@dataclass(frozen=True)
class Disconnect:
    """Start the stream, then drop the connection after `after_bytes` bytes of audio."""

    after_bytes: int = 0
    delay_secs: float = 0.0


Behavior = Speak | HttpError | Disconnect


class DroppedByFake(Exception):
    """Raised inside a response body: the server drops the connection mid-stream."""


@dataclass
class Recorded:
    """One request as the fake saw it (the key is not kept)."""

    voice_id: str
    query: dict[str, str]
    body: dict[str, Any]
    user_agent: str | None
    at: float  # time.monotonic() on arrival


@dataclass
class FakeElevenLabs:
    """The programmable fake. `script` is consumed per request; `default` when it is empty."""

    api_key: str = "sk_" + "0" * 48
    chunk_bytes: int = 1600
    script: deque[Behavior] = field(default_factory=deque)
    default: Behavior = field(default_factory=Speak)
    requests: list[Recorded] = field(default_factory=list)
    disconnected: int = 0
    # Set whenever a cancel or disconnect is recorded: tests wait on it, never poll.
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    completed: int = 0

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    def push(self, *behaviors: Behavior) -> None:
        self.script.extend(behaviors)

    def reset(self) -> None:
        self.script.clear()
        self.default = Speak()
        self.requests.clear()
        self.disconnected = 0
        self.completed = 0

    def texts(self) -> list[str]:
        return [str(r.body.get("text")) for r in self.requests]

    def next_behavior(self) -> Behavior:
        return self.script.popleft() if self.script else self.default

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/v1/text-to-speech/{voice_id}/stream")
        async def stream(voice_id: str, request: Request) -> Response:
            key = request.headers.get("xi-api-key")
            if key is None:
                return _error(
                    401,
                    "needs_authorization",
                    "Neither authorization header nor xi-api-key received, please provide one.",
                )
            if key != self.api_key:
                return _error(401, "invalid_api_key", "Invalid API key")
            output_format = request.query_params.get("output_format", "mp3_44100_128")
            fmt = _format(output_format)
            if fmt is None:
                return _error(
                    400,
                    "invalid_output_format",
                    f"{output_format}: this fake speaks pcm_<rate> and ulaw_8000",
                )
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse(
                    {"detail": [{"loc": ["body"], "msg": "Invalid JSON", "type": "json_invalid"}]},
                    status_code=422,
                )
            text = body.get("text") if isinstance(body, dict) else None
            if not isinstance(text, str):
                return JSONResponse(
                    {
                        "detail": [
                            {"loc": ["body", "text"], "msg": "Field required", "type": "missing"}
                        ]
                    },
                    status_code=422,
                )
            self.requests.append(
                Recorded(
                    voice_id,
                    dict(request.query_params),
                    body,
                    request.headers.get("user-agent"),
                    time.monotonic(),
                )
            )
            behavior = self.next_behavior()
            if behavior.delay_secs and await _wait_or_disconnect(request, behavior.delay_secs):
                self.disconnected += 1
                self.changed.set()
                return Response(status_code=499)
            if isinstance(behavior, HttpError):
                return _error(behavior.status, behavior.code, behavior.message)
            rate, encoding = fmt
            samples = await asyncio.to_thread(speech_pcm16, text.strip(), rate)
            audio = encode(samples, encoding)
            return StreamingResponse(
                self._body(audio, behavior),
                media_type="audio/basic" if encoding == "pcm_mulaw" else "audio/pcm",
                headers={
                    "request-id": secrets.token_hex(10),
                    "history-item-id": secrets.token_hex(10),
                    "x-character-count": str(len(text)),
                },
            )

        return api

    async def _body(self, audio: bytes, behavior: Speak | Disconnect) -> AsyncIterator[bytes]:
        size = self.chunk_bytes
        finished = False
        try:
            for n, start in enumerate(range(0, len(audio), size)):
                if isinstance(behavior, Disconnect) and start >= behavior.after_bytes:
                    break
                if n and isinstance(behavior, Speak) and behavior.chunk_delay_secs:
                    await asyncio.sleep(behavior.chunk_delay_secs)
                yield audio[start : start + size]
            else:
                finished = isinstance(behavior, Speak)
        finally:
            if finished:
                self.completed += 1
            elif isinstance(behavior, Speak):
                self.disconnected += 1  # the client closed the stream early
                self.changed.set()
        if not finished:
            raise DroppedByFake("the fake drops the connection mid-stream")


def _format(output_format: str) -> tuple[int, str] | None:
    """(sample rate, encoding) for an output format the fake can make; None otherwise."""
    if output_format == "ulaw_8000":
        return 8000, "pcm_mulaw"
    codec, _, rate = output_format.partition("_")
    if codec == "pcm" and rate.isdigit() and int(rate) in PCM_RATES:
        return int(rate), "pcm_s16le"
    return None


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"detail": {"status": code, "message": message}},
        status_code=status,
        headers={"request-id": secrets.token_hex(10)},
    )


async def _wait_or_disconnect(request: Request, seconds: float) -> bool:
    """Sleep `seconds`; True if the client went away first (it timed out)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    return False
