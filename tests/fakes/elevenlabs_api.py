"""A loopback server speaking ElevenLabs' multi-context TTS websocket, for tests.

`/v1/text-to-speech/{voice_id}/multi-stream-input?model_id=...&output_format=...` with the key
in an `xi-api-key` header (what Pipecat's `ElevenLabsTTSService` sends; `?xi_api_key=` and
`Authorization: Bearer` also work). `output_format` is `pcm_<rate>` (16-bit little-endian PCM)
or `ulaw_8000`; `auto_mode`, `language_code` and the other query parameters are recorded. The
API reports problems in-band, as the real one does: a JSON message `{"message", "error",
"code"}` and then a close with that code (1008 for a bad key or request, 1011 for a failure of
its own).

Client messages, as the multi-context protocol defines them: `{"text": " ", "context_id",
"voice_settings"?}` opens a context; `{"text", "context_id"}` adds text to it (spoken at once
with `auto_mode=true`, otherwise when flushed); `{"context_id", "flush": true}` speaks what is
buffered; `{"context_id", "close_context": true}` closes it: what was already submitted is
still spoken, then `{"isFinal": true, "contextId"}`; `{"text": ""}` is a keepalive;
`{"close_socket": true}` flushes everything and closes. Audio comes as `{"audio": base64,
"alignment": {"chars", "charStartTimesMs", "charDurationsMs"}, "normalizedAlignment",
"contextId"}` messages (times in each restart at zero), the text spoken with Piper (real
speech), resampled and encoded as asked.

Per text submission a script says what happens: `Speak` (latency before the first chunk and
between chunks), `Fail` (an in-band error, then the close), `Disconnect` (the connection drops
after some bytes of audio). Every submission, close and handshake is recorded (never the key).
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

from fastapi import FastAPI, WebSocket

from tests.fakes.cartesia_api import encode, speech_pcm16, word_times
from tests.fakes.tts_socket import Scripted, SocketLoop, Speak

PCM_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True)
class Fail:
    """Report an error in-band, then close the socket with `code` (after `delay_secs`)."""

    code: int = 1011
    error: str = "internal_error"
    message: str = "An internal server error occurred."
    delay_secs: float = 0.0


@dataclass(frozen=True)
class Disconnect:
    """Send `after_bytes` bytes of audio, then drop the connection (close 1011)."""

    after_bytes: int = 0
    delay_secs: float = 0.0


Behavior = Speak | Fail | Disconnect


@dataclass
class Recorded:
    """One text submission as the fake saw it."""

    voice_id: str
    query: dict[str, str]
    context_id: str
    text: str
    connection: int
    at: float  # time.monotonic() on arrival


@dataclass
class Handshake:
    """One websocket handshake (the key itself is not kept)."""

    voice_id: str
    query: dict[str, str]
    auth: str  # "xi-api-key", "query", "bearer" or "none"
    accepted: bool


@dataclass
class FakeElevenLabs(Scripted[Behavior]):
    """The programmable fake. `script` is consumed per submission; `default` when empty."""

    api_key: str = "sk_" + "0" * 48
    chunk_bytes: int = 1600
    script: deque[Behavior] = field(default_factory=deque)
    default: Behavior = field(default_factory=Speak)
    requests: list[Recorded] = field(default_factory=list)
    handshakes: list[Handshake] = field(default_factory=list)
    inits: list[dict[str, Any]] = field(default_factory=list)  # context-opening messages
    closes: list[str] = field(default_factory=list)  # close_context requests, in order
    finals: list[str] = field(default_factory=list)  # contexts answered with isFinal
    completed: int = 0  # submissions spoken in full
    disconnected: int = 0  # connections the client closed
    # Set whenever something is recorded: tests wait on it, never poll.
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def reset(self) -> None:
        self.script.clear()
        self.default = Speak()
        self.requests.clear()
        self.handshakes.clear()
        self.inits.clear()
        self.closes.clear()
        self.finals.clear()
        self.completed = 0
        self.disconnected = 0

    def texts(self) -> list[str]:
        return [r.text.strip() for r in self.requests]

    def _note(self) -> None:
        self.changed.set()

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.websocket("/v1/text-to-speech/{voice_id}/multi-stream-input")
        async def multi_stream_input(ws: WebSocket, voice_id: str) -> None:
            await self._serve(ws, voice_id)

        return api

    async def _serve(self, ws: WebSocket, voice_id: str) -> None:
        query = dict(ws.query_params)
        query.pop("xi_api_key", None)
        key, auth = _presented_key(ws)
        handshake = Handshake(voice_id, query, auth, accepted=False)
        self.handshakes.append(handshake)
        await ws.accept()
        if key != self.api_key:
            await _error_and_close(ws, 1008, "invalid_api_key", "Invalid API key")
            return
        problem = _problem(query)
        if problem is not None:
            await _error_and_close(ws, 1008, "invalid_request", problem)
            return
        handshake.accepted = True
        self._note()
        number = sum(1 for h in self.handshakes if h.accepted)
        await _Connection(self, ws, voice_id, query, number).run()


def _presented_key(ws: WebSocket) -> tuple[str | None, str]:
    if ws.headers.get("xi-api-key"):
        return ws.headers["xi-api-key"], "xi-api-key"
    if ws.query_params.get("xi_api_key"):
        return ws.query_params["xi_api_key"], "query"
    scheme, _, token = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token, "bearer"
    return None, "none"


def _problem(query: dict[str, str]) -> str | None:
    """What is wrong with the connection's parameters, as the real API would say."""
    if not query.get("model_id"):
        return "model_id is required"
    if _format(query.get("output_format", "mp3_44100_128")) is None:
        return f"{query.get('output_format')}: this fake speaks pcm_<rate> and ulaw_8000"
    return None


def _format(output_format: str) -> tuple[int, str] | None:
    """(sample rate, encoding) for an output format the fake can make; None otherwise."""
    if output_format == "ulaw_8000":
        return 8000, "pcm_mulaw"
    codec, _, rate = output_format.partition("_")
    if codec == "pcm" and rate.isdigit() and int(rate) in PCM_RATES:
        return int(rate), "pcm_s16le"
    return None


async def _error_and_close(ws: WebSocket, code: int, error: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(json.dumps({"message": message, "error": error, "code": code}))
        await ws.close(code=code, reason=error)


class _Connection(SocketLoop):
    """One accepted socket: a reader, and one task per context speaking its submissions."""

    def __init__(
        self, fake: FakeElevenLabs, ws: WebSocket, voice_id: str, query: dict[str, str], n: int
    ) -> None:
        super().__init__(ws)
        self.fake = fake
        self.voice_id = voice_id
        self.query = query
        self.number = n
        self.auto_mode = query.get("auto_mode", "false") == "true"
        self.rate, self.encoding = _format(query.get("output_format", "")) or (8000, "pcm_s16le")
        self.contexts: dict[str, _Context] = {}

    async def close(self, code: int, error: str | None = None, message: str = "") -> None:
        if self.closed:
            return
        if error is not None:
            await self.send({"message": message, "error": error, "code": code})
        self.closed = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=error or "")

    def on_client_close(self) -> None:
        self.fake.disconnected += 1
        self.fake._note()

    def stop_contexts(self) -> list[asyncio.Task[None]]:
        for context in self.contexts.values():
            context.stop()
        return [c.task for c in self.contexts.values()]

    async def on_message(self, raw: str) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            await self.close(1008, "invalid_message", "message is not valid JSON")
            return
        if not isinstance(body, dict):
            await self.close(1008, "invalid_message", "expected a JSON object")
            return
        if body.get("close_socket") is True:
            for context in self.contexts.values():
                context.close()
            await asyncio.gather(*(c.task for c in self.contexts.values()))
            await self.close(1000)
            return
        control = body.get("close_context") is True or body.get("flush") is True
        if body.get("text") == "" and not control:
            return  # a keepalive
        context_id = str(body.get("context_id") or body.get("contextId") or "default")
        context = self.contexts.get(context_id)
        if context is None or context.finished:
            if control:
                return  # nothing open by that name: nothing to do
            context = _Context(self, context_id)
            self.contexts[context_id] = context
            self.fake.inits.append(body)
            self.fake._note()
        if body.get("close_context") is True:
            self.fake.closes.append(context_id)
            self.fake._note()
            context.close()
            return
        text = body.get("text")
        if isinstance(text, str) and text.strip():
            self.fake.requests.append(
                Recorded(self.voice_id, self.query, context_id, text, self.number, time.monotonic())
            )
            self.fake._note()
            context.buffer(text, self.fake.next_behavior())
            if self.auto_mode:
                context.flush()
        if body.get("flush") is True:
            context.flush()


class _Context:
    """One context: its flushed submissions are spoken in order; isFinal once closed."""

    def __init__(self, connection: _Connection, context_id: str) -> None:
        self.connection = connection
        self.context_id = context_id
        self.pending: list[tuple[str, Behavior]] = []
        self.queue: asyncio.Queue[tuple[str, Behavior] | None] = asyncio.Queue()
        self.finished = False
        self.task = asyncio.create_task(self._run(), name=f"fake-elevenlabs-{context_id}")

    def buffer(self, text: str, behavior: Behavior) -> None:
        self.pending.append((text, behavior))

    def flush(self) -> None:
        for item in self.pending:
            self.queue.put_nowait(item)
        self.pending.clear()

    def close(self) -> None:
        """No more text: what was submitted is still spoken, then isFinal."""
        self.flush()
        self.queue.put_nowait(None)

    def stop(self) -> None:
        if not self.task.done():
            self.task.cancel()

    async def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while (item := await self.queue.get()) is not None:
                if not await self._speak(*item):
                    return
            self.finished = True
            if await self.connection.send({"isFinal": True, "contextId": self.context_id}):
                self.connection.fake.finals.append(self.context_id)
                self.connection.fake._note()

    async def _speak(self, text: str, behavior: Behavior) -> bool:
        connection, fake = self.connection, self.connection.fake
        await asyncio.sleep(behavior.delay_secs)
        if isinstance(behavior, Fail):
            await connection.close(behavior.code, behavior.error, behavior.message)
            return False
        rate, encoding = connection.rate, connection.encoding
        samples = await asyncio.to_thread(speech_pcm16, text.strip(), rate)
        audio = encode(samples, encoding)
        width = 1 if encoding == "pcm_mulaw" else 2
        seconds = len(samples) / rate
        chars = _char_times(text.strip(), seconds)
        size = fake.chunk_bytes
        for n, start in enumerate(range(0, len(audio), size)):
            if isinstance(behavior, Disconnect) and start >= behavior.after_bytes:
                await connection.close(1011)
                return False
            if n and isinstance(behavior, Speak) and behavior.chunk_delay_secs:
                await asyncio.sleep(behavior.chunk_delay_secs)
            begin = start / width / rate
            end = (start + size) / width / rate
            mine = [c for c in chars if begin <= c[1] < end]
            alignment = {
                "chars": [c for c, _, _ in mine],
                "charStartTimesMs": [round((t - begin) * 1000) for _, t, _ in mine],
                "charDurationsMs": [round(d * 1000) for _, _, d in mine],
            }
            sent = await connection.send(
                {
                    "audio": base64.b64encode(audio[start : start + size]).decode(),
                    "alignment": alignment,
                    "normalizedAlignment": alignment,
                    "contextId": self.context_id,
                }
            )
            if not sent:
                return False
            await asyncio.sleep(0)
        if isinstance(behavior, Disconnect):
            await connection.close(1011)
            return False
        fake.completed += 1
        fake._note()
        return True


def _char_times(text: str, seconds: float) -> list[tuple[str, float, float]]:
    """(character, start, duration) for `text` spoken in `seconds`, spread by words."""
    out: list[tuple[str, float, float]] = []
    words = word_times(text, 0.0, seconds)
    for i, (word, start, end) in enumerate(words):
        chars = word + (" " if i < len(words) - 1 else "")
        step = (end - start) / len(chars)
        out.extend((c, start + k * step, step) for k, c in enumerate(chars))
    return out
