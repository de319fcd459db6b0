"""A loopback server speaking Deepgram's streaming listen API (`wss://…/v1/listen`), for tests.

The handshake is checked like the real API: `Authorization: Token <key>` (401 otherwise), the
path, and the query (`model`, `encoding=linear16`, `sample_rate`, `channels`, repeated
`keyterm`s…), all recorded per connection. Binary messages are 16-bit PCM; text messages are
the control messages `KeepAlive`, `Finalize` and `CloseStream`.

It really transcribes: a simple energy detector finds utterances in the received audio, and a
faster-whisper model transcribes them. While someone speaks, an interim `Results` message
(`is_final: false`) comes every `interim_every_secs` of speech (at most
`interims_per_utterance`); after `endpointing` ms of
silence a final one (`is_final` and `speech_final: true`); on `Finalize`, what is pending is
finalized at once (`from_finalize: true`; empty when nothing is). `start`/`duration` and the
words' times are seconds from the start of the connection's audio. `CloseStream` finalizes,
sends `Metadata` and closes the socket normally.

Faults to inject: `latency_secs` before every result, `reject_status` (an HTTP status answered
to the handshake), `drop_after_bytes` (the TCP connection is aborted, no close frame, once that
much audio has arrived, on the first `drops` connections), and `stall` (audio is read, nothing
is ever answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

FRAME_SECS = 0.02
MODEL_INFO = {"name": "general-nova-3", "version": "2024-12-20.0", "arch": "nova-3"}


@dataclass
class Connection:
    """One accepted or refused handshake, as the fake saw it (the API key is not kept)."""

    params: dict[str, list[str]]
    status: int  # 101 when accepted
    audio_bytes: int = 0
    controls: list[str] = field(default_factory=list)  # KeepAlive, Finalize, CloseStream
    results: list[dict[str, Any]] = field(default_factory=list)  # what was sent
    dropped: bool = False

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None

    @property
    def finals(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("is_final")]

    @property
    def interims(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("type") == "Results" and not r.get("is_final")]


@dataclass
class FakeDeepgram:
    model: Any  # faster_whisper.WhisperModel
    api_key: str = "dg-test-" + "0" * 32
    latency_secs: float = 0.0
    reject_status: int | None = None
    drop_after_bytes: int | None = None
    drops: int = 1_000_000  # how many connections `drop_after_bytes` applies to
    stall: bool = False
    interim_every_secs: float = 1.0
    interims_per_utterance: int = 1  # each costs a Whisper run: keep tests fast
    voice_rms: float = 300.0  # 16-bit RMS above which a 20 ms frame is speech
    connections: list[Connection] = field(default_factory=list)
    _dropped: int = field(default=0, init=False, repr=False)
    _by_socket: dict[ServerConnection, Connection] = field(
        default_factory=dict, init=False, repr=False
    )

    @property
    def accepted(self) -> list[Connection]:
        return [c for c in self.connections if c.status == 101]

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Listen on a free loopback port until the block exits; yields `http://127.0.0.1:PORT`."""
        async with serve(
            self._session, "127.0.0.1", 0, process_request=self._handshake, max_size=2**24
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            yield f"http://127.0.0.1:{port}"

    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        conn = Connection(params=parse_qs(url.query), status=101)
        self.connections.append(conn)
        self._by_socket[connection] = conn
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        status: int | None = None
        if url.path != "/v1/listen":
            status, text = 404, "Not Found"
        elif scheme.lower() not in ("token", "bearer") or token != self.api_key:
            status, text = 401, "INVALID_AUTH: Invalid credentials."
        elif self.reject_status is not None:
            status, text = self.reject_status, "injected failure"
        elif conn.param("encoding") not in (None, "linear16") or not conn.param("model"):
            status, text = 400, "UNSUPPORTED: encoding must be linear16 and model is required"
        if status is None:
            return None
        conn.status = status
        body = json.dumps({"err_code": HTTPStatus(status).phrase, "err_msg": text}).encode()
        headers = Headers({"Content-Type": "application/json", "dg-error": text})
        return Response(status, HTTPStatus(status).phrase, headers, body)

    async def _session(self, ws: ServerConnection) -> None:
        conn = self._by_socket.pop(ws)
        rate = int(conn.param("sample_rate") or 16000)
        stream = _Stream(self, ws, conn, rate)
        inbox: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        worker = asyncio.create_task(stream.run(inbox))
        drop = self.drop_after_bytes is not None and self._dropped < self.drops
        if drop:
            self._dropped += 1
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    conn.audio_bytes += len(message)
                    if drop and conn.audio_bytes >= (self.drop_after_bytes or 0):
                        conn.dropped = True
                        ws.transport.abort()  # mid-stream, no close frame: a network failure
                        return
                else:
                    conn.controls.append(str(json.loads(message).get("type")))
                await inbox.put(message)
        except ConnectionClosed:
            pass
        finally:
            await inbox.put(None)
            if conn.dropped or self.stall:
                worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await worker


class _Stream:
    """One connection's audio: utterance detection, transcription, results."""

    def __init__(self, fake: FakeDeepgram, ws: ServerConnection, conn: Connection, rate: int):
        self.fake, self.ws, self.conn, self.rate = fake, ws, conn, rate
        self.samples = np.zeros(0, dtype=np.int16)
        self.analyzed = 0  # samples looked at by the detector
        self.finalized = 0  # samples covered by final results
        self.utterance: int | None = None  # start of the speech not yet finalized
        self.last_voice = 0
        self.last_interim = 0
        self.interims_sent = 0
        endpointing = conn.param("endpointing")
        self.endpointing = (
            int(endpointing) * rate // 1000
            if endpointing and endpointing.isdigit() and int(endpointing) > 0
            else None
        )
        self.interims = (conn.param("interim_results") or "false").lower() == "true"
        self.language = (conn.param("language") or "en").split("-")[0]
        self.request_id = secrets.token_hex(16)

    async def run(self, inbox: asyncio.Queue[bytes | str | None]) -> None:
        while (message := await inbox.get()) is not None:
            if self.fake.stall:
                continue
            if isinstance(message, bytes):
                chunk = np.frombuffer(message[: len(message) // 2 * 2], dtype=np.int16)
                self.samples = np.concatenate([self.samples, chunk])
                await self.detect()
                continue
            kind = json.loads(message).get("type")
            if kind == "Finalize":
                await self.final(len(self.samples), speech_final=False, from_finalize=True)
            elif kind == "CloseStream":
                await self.final(len(self.samples), speech_final=False, from_finalize=False)
                await self.send(self.metadata())
                await self.ws.close(1000)
                return

    async def detect(self) -> None:
        frame = int(self.rate * FRAME_SECS)
        while self.analyzed + frame <= len(self.samples):
            chunk = self.samples[self.analyzed : self.analyzed + frame].astype(np.float64)
            self.analyzed += frame
            if float(np.sqrt(np.mean(chunk**2))) > self.fake.voice_rms:
                if self.utterance is None:
                    self.utterance = max(self.finalized, self.analyzed - frame - self.rate // 10)
                    self.last_interim = self.utterance
                    self.interims_sent = 0
                self.last_voice = self.analyzed
                every = int(self.fake.interim_every_secs * self.rate)
                if (
                    self.interims
                    and self.interims_sent < self.fake.interims_per_utterance
                    and self.analyzed - self.last_interim >= every
                ):
                    self.last_interim = self.analyzed
                    self.interims_sent += 1
                    await self.interim(self.analyzed)
            elif (
                self.utterance is not None
                and self.endpointing is not None
                and self.analyzed - self.last_voice >= self.endpointing
            ):
                await self.final(self.analyzed, speech_final=True, from_finalize=False)

    async def interim(self, end: int) -> None:
        assert self.utterance is not None
        text, words, confidence = await self.transcribe(
            self.utterance, end, beam_size=1, word_timestamps=False
        )
        await self.send(self.result(self.utterance, end, text, words, confidence, final=False))

    async def final(self, end: int, *, speech_final: bool, from_finalize: bool) -> None:
        start = self.finalized
        text, words, confidence = "", [], 0.0
        if self.utterance is not None:
            text, words, confidence = await self.transcribe(
                self.utterance, end, beam_size=5, word_timestamps=True
            )
        self.finalized, self.utterance = end, None
        if end <= start and not from_finalize:
            return
        message = self.result(start, end, text, words, confidence, final=True)
        message["speech_final"] = speech_final and bool(text)
        message["from_finalize"] = from_finalize
        await self.send(message)

    async def transcribe(
        self, start: int, end: int, *, beam_size: int, word_timestamps: bool
    ) -> tuple[str, list[dict[str, Any]], float]:
        """(transcript, words, confidence); interims skip the word alignment (it is slow)."""
        audio = self.samples[start:end].astype(np.float32) / 32768.0
        offset = start / self.rate

        def run() -> tuple[str, list[dict[str, Any]], float]:
            segments, _ = self.fake.model.transcribe(
                audio,
                language=self.language,
                beam_size=beam_size,
                word_timestamps=word_timestamps,
                condition_on_previous_text=False,
            )
            kept = [s for s in segments if s.no_speech_prob < 0.6]
            if not word_timestamps:
                text = " ".join(s.text.strip() for s in kept)
                confidence = sum(float(np.exp(s.avg_logprob)) for s in kept) / max(1, len(kept))
                return text, [], round(confidence, 4)
            words = [
                {
                    "word": w.word.strip().strip(".,!?;:").lower(),
                    "punctuated_word": w.word.strip(),
                    "start": round(offset + w.start, 3),
                    "end": round(offset + w.end, 3),
                    "confidence": round(w.probability, 4),
                }
                for s in kept
                for w in s.words or []
            ]
            text = " ".join(w["punctuated_word"] for w in words)
            confidence = sum(w["confidence"] for w in words) / len(words) if words else 0.0
            return text, words, round(confidence, 4)

        return await asyncio.to_thread(run)

    def result(
        self,
        start: int,
        end: int,
        text: str,
        words: list[dict[str, Any]],
        confidence: float,
        *,
        final: bool,
    ) -> dict[str, Any]:
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "start": round(start / self.rate, 3),
            "duration": round((end - start) / self.rate, 3),
            "is_final": final,
            "speech_final": False,
            "channel": {
                "alternatives": [{"transcript": text, "confidence": confidence, "words": words}]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": MODEL_INFO,
                "model_uuid": "00000000-0000-4000-8000-000000000003",
            },
        }

    def metadata(self) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": secrets.token_hex(32),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "duration": round(len(self.samples) / self.rate, 3),
            "channels": 1,
            "models": [MODEL_INFO["name"]],
            "model_info": {MODEL_INFO["name"]: MODEL_INFO},
        }

    async def send(self, message: dict[str, Any]) -> None:
        if self.fake.latency_secs and message.get("type") == "Results":
            await asyncio.sleep(self.fake.latency_secs)
        await self.ws.send(json.dumps(message))
        self.conn.results.append(message)
