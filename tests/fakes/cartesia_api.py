"""A loopback server speaking Cartesia's TTS websocket (`/tts/websocket`), for tests.

The handshake is checked like the real API: the key as an `X-API-Key` header (what Pipecat's
`CartesiaTTSService` sends; `Authorization: Bearer <key>` and `?api_key=` also work) and an API
version (`Cartesia-Version` header or `?cartesia_version=`); a bad key is refused with HTTP 401,
a missing version with 400.

Client messages are JSON: generation requests (`context_id`, `model_id`, `transcript`,
`voice` (an ID, or `{"mode": "id", "id": ...}`), `output_format` {`container`: raw,
`encoding`, `sample_rate`}, `continue`, `language`, `add_timestamps`, `max_buffer_delay_ms`,
...) and cancellations (`{"context_id", "cancel": true}`). Each transcript is spoken with Piper
(real speech), resampled and encoded as asked, and sent back as `chunk` events (base64 `data`,
`done`, `status_code` 206, `step_time`), with `timestamps` events (`word_timestamps` {`words`,
`start`, `end`}, seconds from the context's start) for the words each chunk begins when the
request asked for them; then `done` once the context got `continue: false` (Pipecat sends each
sentence with `continue: true`, then an empty transcript with `continue: false` to close the
context). A bad request gets an `error` event. Contexts on one connection run concurrently; a
cancelled one sends nothing more.

Per generation request with text a script says what happens (`Speak` with latency before the first chunk
and between chunks, `Fail` with an error event, `Disconnect` after some chunks); handshakes
can be refused (`refuse_connections`). Every request, cancellation and handshake is recorded
(never the key).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse

from processors.piper_voice import synthesize
from server.audio import pcm16_to_ulaw
from tests.fakes.tts_socket import Scripted, SocketLoop, Speak

SAMPLE_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
ENCODINGS = ("pcm_s16le", "pcm_f32le", "pcm_mulaw", "pcm_alaw")


@dataclass(frozen=True)
class Fail:
    """Answer the context with an `error` event (after `delay_secs`)."""

    status_code: int = 500
    title: str = "Internal Server Error"
    message: str = "The model failed to generate audio."
    delay_secs: float = 0.0


@dataclass(frozen=True)
class Disconnect:
    """Send `after_chunks` chunks, then close the connection with 1011 (an internal error)."""

    after_chunks: int = 0
    delay_secs: float = 0.0


Behavior = Speak | Fail | Disconnect


@dataclass
class Recorded:
    """One generation request as the fake saw it."""

    body: dict[str, Any]
    connection: int
    at: float  # time.monotonic() on arrival


@dataclass
class Handshake:
    """One websocket handshake (the key itself is not kept)."""

    version: str | None
    auth: str  # "x-api-key", "bearer", "query" or "none"
    user_agent: str | None
    accepted: bool


def speech_pcm16(text: str, sample_rate: int) -> np.ndarray:
    """`text` spoken by Piper, as int16 samples at `sample_rate`."""
    import soxr

    audio, rate = synthesize(text)
    if rate != sample_rate and len(audio):
        resampled = soxr.resample(audio.astype(np.float32) / 32768.0, rate, sample_rate)
        audio = np.clip(np.round(resampled * 32768.0), -32768, 32767).astype(np.int16)
    return audio


def word_times(text: str, offset: float, seconds: float) -> list[tuple[str, float, float]]:
    """(word, start, end) for `text` spoken in `seconds` from `offset`: each word's share of
    the time is its share of the characters (a fake's alignment, not a model's)."""
    words = text.split()
    total = sum(len(w) + 1 for w in words) or 1
    out: list[tuple[str, float, float]] = []
    at = offset
    for word in words:
        span = seconds * (len(word) + 1) / total
        out.append((word, at, at + span))
        at += span
    return out


def encode(samples: np.ndarray, encoding: str) -> bytes:
    if encoding == "pcm_s16le":
        return samples.astype("<i2").tobytes()
    if encoding == "pcm_f32le":
        return (samples.astype("<f4") / 32768.0).tobytes()
    if encoding == "pcm_mulaw":
        return pcm16_to_ulaw(samples.astype("<i2").tobytes())
    raise ValueError(f"{encoding} is not spoken by this fake")


def _error_event(
    context_id: str | None, status_code: int, title: str, message: str
) -> dict[str, Any]:
    return {
        "type": "error",
        "context_id": context_id,
        "done": True,
        "status_code": status_code,
        "title": title,
        "message": message,
        "error_code": title.lower().replace(" ", "_"),
        "request_id": "req_fake",
    }


def _validate(body: dict[str, Any]) -> str | None:
    """What is wrong with a generation request, as the real API would say; None: fine."""
    for key in ("context_id", "model_id", "transcript", "voice", "output_format"):
        if key not in body:
            return f"{key} is required"
    voice = body["voice"]
    voice_id = voice.get("id") if isinstance(voice, dict) else voice
    if not isinstance(voice_id, str) or not voice_id:
        return "voice must be a voice ID or {'id': ...}"
    fmt = body["output_format"]
    if not isinstance(fmt, dict) or fmt.get("container") != "raw":
        return "output_format.container must be raw on the websocket"
    if fmt.get("encoding") not in ENCODINGS:
        return f"output_format.encoding must be one of {', '.join(ENCODINGS)}"
    if fmt.get("sample_rate") not in SAMPLE_RATES:
        return f"output_format.sample_rate must be one of {SAMPLE_RATES}"
    if not isinstance(body["transcript"], str):
        return "transcript must be a string"
    return None


@dataclass
class FakeCartesia(Scripted[Behavior]):
    """The programmable fake. `script` is consumed per request; `default` when it is empty."""

    api_key: str = "sk_car_test_" + "0" * 20
    chunk_ms: int = 40
    script: deque[Behavior] = field(default_factory=deque)
    default: Behavior = field(default_factory=Speak)
    requests: list[Recorded] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    # Set whenever a cancel or disconnect is recorded: tests wait on it, never poll.
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    handshakes: list[Handshake] = field(default_factory=list)
    refuse_connections: deque[int] = field(default_factory=deque)  # HTTP statuses, in order
    chunks_sent: int = 0
    closed_by_client: int = 0

    def reset(self) -> None:
        self.script.clear()
        self.default = Speak()
        self.requests.clear()
        self.cancels.clear()
        self.handshakes.clear()
        self.refuse_connections.clear()
        self.chunks_sent = 0
        self.closed_by_client = 0

    def transcripts(self) -> list[str]:
        return [r.body["transcript"] for r in self.requests if r.body.get("transcript")]

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.websocket("/tts/websocket")
        async def tts_websocket(ws: WebSocket) -> None:
            await self._serve(ws)

        return api

    async def _serve(self, ws: WebSocket) -> None:
        key, auth = _presented_key(ws)
        version = ws.headers.get("cartesia-version") or ws.query_params.get("cartesia_version")
        handshake = Handshake(version, auth, ws.headers.get("user-agent"), accepted=False)
        self.handshakes.append(handshake)
        if key != self.api_key:
            await ws.send_denial_response(
                JSONResponse(
                    {"error": "Invalid API key"} if key else {"error": "Missing API key"}, 401
                )
            )
            return
        if not version:
            await ws.send_denial_response(
                JSONResponse({"error": "Cartesia-Version header is required"}, 400)
            )
            return
        if self.refuse_connections:
            status = self.refuse_connections.popleft()
            await ws.send_denial_response(JSONResponse({"error": "refused by the fake"}, status))
            return
        handshake.accepted = True
        await ws.accept()
        connection = sum(1 for h in self.handshakes if h.accepted)
        await _Connection(self, ws, connection).run()


def _presented_key(ws: WebSocket) -> tuple[str | None, str]:
    if ws.headers.get("x-api-key"):
        return ws.headers["x-api-key"], "x-api-key"
    scheme, _, token = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token, "bearer"
    if ws.query_params.get("api_key"):
        return ws.query_params["api_key"], "query"
    return None, "none"


class _Connection(SocketLoop):
    """One accepted socket: a reader, and one task per context."""

    def __init__(self, fake: FakeCartesia, ws: WebSocket, number: int) -> None:
        super().__init__(ws)
        self.fake = fake
        self.number = number
        self.contexts: dict[str, _Context] = {}

    async def send(self, message: dict[str, Any]) -> bool:
        if not await super().send(message):
            return False
        self.fake.chunks_sent += message.get("type") == "chunk"
        return True

    async def drop(self) -> None:
        """Close with 1011, as the real API does on an internal failure."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.close(code=1011, reason="internal error")

    def on_client_close(self) -> None:
        self.fake.closed_by_client += 1

    def stop_contexts(self) -> list[asyncio.Task[None]]:
        for context in self.contexts.values():
            context.cancel()
        return [c.task for c in self.contexts.values() if c.task]

    async def on_message(self, raw: str) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            await self.send(_error_event(None, 400, "Invalid JSON", "message is not valid JSON"))
            return
        if not isinstance(body, dict):
            await self.send(_error_event(None, 400, "Invalid request", "expected a JSON object"))
            return
        context_id = body.get("context_id")
        if body.get("cancel") is True:
            if isinstance(context_id, str):
                self.fake.cancels.append(context_id)
                self.fake.changed.set()
                context = self.contexts.get(context_id)
                if context is not None:
                    context.cancel()
            return
        self.fake.requests.append(Recorded(body, self.number, time.monotonic()))
        problem = _validate(body)
        if problem is not None:
            await self.send(
                _error_event(
                    context_id if isinstance(context_id, str) else None,
                    400,
                    "Invalid request",
                    problem,
                )
            )
            return
        assert isinstance(context_id, str)
        context = self.contexts.get(context_id)
        if context is None or context.finished:
            context = _Context(self, context_id)
            self.contexts[context_id] = context
        # A script step is used by a request with something to say, not by the empty
        # `continue: false` that closes a context.
        behavior = self.fake.next_behavior() if body["transcript"].strip() else Speak()
        context.add(body, behavior)


class _Context:
    """One context: its transcripts are spoken in order; `done` after `continue: false`."""

    def __init__(self, connection: _Connection, context_id: str) -> None:
        self.connection = connection
        self.context_id = context_id
        self.queue: asyncio.Queue[tuple[dict[str, Any], Behavior] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False
        self.finished = False
        self.offset = 0.0  # seconds of audio the context has sent so far

    def add(self, body: dict[str, Any], behavior: Behavior) -> None:
        self.queue.put_nowait((body, behavior))
        if body.get("continue") is False:
            self.queue.put_nowait(None)
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=f"fake-cartesia-{self.context_id}")

    def cancel(self) -> None:
        self.cancelled = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while (item := await self.queue.get()) is not None:
                body, behavior = item
                if not await self._speak(body, behavior):
                    return
            self.finished = True
            await self.connection.send(
                {"type": "done", "context_id": self.context_id, "done": True, "status_code": 206}
            )

    async def _speak(self, body: dict[str, Any], behavior: Behavior) -> bool:
        fake = self.connection.fake
        await asyncio.sleep(behavior.delay_secs)
        if isinstance(behavior, Fail):
            self.finished = True
            await self.connection.send(
                _error_event(
                    self.context_id, behavior.status_code, behavior.title, behavior.message
                )
            )
            return False
        fmt = body["output_format"]
        rate, encoding = int(fmt["sample_rate"]), str(fmt["encoding"])
        text = body["transcript"].strip()
        if not text:
            return True
        started = time.monotonic()
        try:
            samples = await asyncio.to_thread(speech_pcm16, text, rate)
            audio = encode(samples, encoding)
        except ValueError as exc:
            self.finished = True
            await self.connection.send(
                _error_event(self.context_id, 400, "Invalid request", str(exc))
            )
            return False
        step_ms = (time.monotonic() - started) * 1000
        width = 1 if encoding == "pcm_mulaw" else 4 if encoding == "pcm_f32le" else 2
        size = max(width, rate * fake.chunk_ms // 1000 * width)
        seconds = len(samples) / rate
        words = word_times(text, self.offset, seconds) if body.get("add_timestamps") else []
        for n, start in enumerate(range(0, len(audio), size)):
            if isinstance(behavior, Disconnect) and n >= behavior.after_chunks:
                await self.connection.drop()
                return False
            if n and isinstance(behavior, Speak) and behavior.chunk_delay_secs:
                await asyncio.sleep(behavior.chunk_delay_secs)
            chunk_end = self.offset + (start + size) / width / rate
            begun = [w for w in words if w[1] < chunk_end]
            words = words[len(begun) :]
            if begun and not await self.connection.send(
                {
                    "type": "timestamps",
                    "context_id": self.context_id,
                    "done": False,
                    "status_code": 206,
                    "word_timestamps": {
                        "words": [w for w, _, _ in begun],
                        "start": [round(t, 3) for _, t, _ in begun],
                        "end": [round(t, 3) for _, _, t in begun],
                    },
                }
            ):
                return False
            sent = await self.connection.send(
                {
                    "type": "chunk",
                    "context_id": self.context_id,
                    "data": base64.b64encode(audio[start : start + size]).decode(),
                    "done": False,
                    "status_code": 206,
                    "step_time": round(step_ms, 3),
                }
            )
            if not sent:
                return False
            await asyncio.sleep(0)
        if isinstance(behavior, Disconnect):
            await self.connection.drop()
            return False
        self.offset += seconds
        return True
