"""Deepgram streaming STT (the official deepgram-sdk through Pipecat's service), with failover.

`DeepgramFailoverSTTService` is Pipecat's `DeepgramSTTService` (its settings, query building,
SDK client and result handling: `TranscriptionFrame` for finals, `InterimTranscriptionFrame`
for interims) with what a meeting bot needs on top:

- Each finished Deepgram utterance (`speech_final`, or the answer to the `Finalize` sent when
  the VAD says the speaker stopped) also becomes a `TranscriptSegmentFrame` with its place in
  the call's audio, so the transcript recorder, wake gate and commitments work unchanged.
  Interim results never do.
- The call's audio is kept in a buffer back to the oldest utterance Deepgram has not finalized
  yet. Audio goes to the socket from a sender task, never from `process_frame`.
- A socket that fails (handshake refused, error, disconnect) or stalls (a finished utterance
  without a final result within `timeout_secs`) is reconnected up to `retries` times in a row;
  the buffered audio is replayed into the new socket, so nothing is lost. A 4xx handshake
  (a bad key) is not retried. Then the call fails over to local Whisper for good: the buffered
  utterances are transcribed locally, and later ones are cut by the VAD frames and transcribed
  locally too. Every failover is logged (never with the key) and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from deepgram.core import ApiError
from deepgram.core.events import EventType
from deepgram.listen.v1.types import (
    ListenV1CloseStream,
    ListenV1Finalize,
    ListenV1Results,
)
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.stt_service import STTService
from pipecat.utils.time import time_now_iso8601

from core.prompts import DeepgramOptions
from processors.stt_timing import SegmentTimingMixin
from processors.whisper_stt import transcribe_local

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

PREROLL_SECS = 1.0  # audio kept before a VAD start: the VAD starts late (as SegmentedSTTService)
IDLE_KEEP_SECS = 1.0  # audio kept while nobody speaks
MAX_SEND_BYTES = 32000  # one websocket message of replayed audio (1 s at 16 kHz)
CLOSE_TIMEOUT_SECS = 2.0


class _Span(NamedTuple):
    """A VAD utterance, in bytes of call audio: speech start, speech end, and where it was cut."""

    start: int
    end: int
    cut: int


class DeepgramFailoverSTTService(DeepgramSTTService):  # type: ignore[misc]
    """Deepgram over its listen websocket; reconnects, then fails over to local Whisper."""

    def __init__(
        self,
        *,
        options: DeepgramOptions,
        language: str,
        api_key: str,
        base_url: str | None,
        keyterms: list[str],
        fallback_model: WhisperModel | None,
        fallback_settings: Any,  # WhisperSTTService.Settings
        trailing_silence_secs: float,
    ) -> None:
        terms = _unique(keyterms)
        boost: dict[str, Any] = {}
        if terms and options.model.startswith("nova-3"):
            boost["keyterm"] = terms  # nova-3: key term prompting (phrases too)
        elif terms:  # older models boost single keywords
            boost["keywords"] = [f"{t}:2" for t in terms if " " not in t] or None
        super().__init__(
            api_key=api_key,
            base_url=base_url or "",
            settings=DeepgramSTTService.Settings(
                model=options.model,
                language=language,
                interim_results=options.interim_results,
                smart_format=options.smart_format,
                endpointing=options.endpointing_ms,
                punctuate=True,
                **boost,
            ),
        )
        self._fallback_model = fallback_model
        self._fallback_settings = fallback_settings
        self._timeout = options.timeout_secs
        self._retries = options.retries
        self._trailing_silence_secs = trailing_silence_secs
        self.keyterms = terms
        # Counters: finals and interims from Deepgram, reconnects, failovers, local segments.
        self.deepgram_ok = 0
        self.interims = 0
        self.reconnects = 0
        self.failovers = 0
        self.local_segments = 0
        self.mode: Literal["deepgram", "local", "none"] = "deepgram"
        # The call's audio, in bytes of 16-bit mono PCM from the stream's start.
        self._total = 0
        self._buf = bytearray()
        self._buf_start = 0
        # The socket now open: where its audio starts, how much it has had, whether it is up.
        self._generation = 0
        self._conn_offset = 0
        self._sent = 0
        self._live = False
        self._closing = False
        self._progress = False
        self._wake = asyncio.Event()
        self._broken = asyncio.Event()
        self._broken_reason = ""
        self._socket_error: str | None = None
        self._finalize_wanted = False
        self._finalize_marks: deque[int] = deque()  # audio sent before each Finalize
        self._close_wanted = False
        # Speech: the utterance being spoken, finished ones not yet finalized by Deepgram.
        self._speaking = False
        self._cur_start: int | None = None
        self._spans: list[_Span] = []
        self._final_until = 0
        self._awaiting_since: float | None = None
        # Final results of the Deepgram utterance in progress.
        self._parts: list[str] = []
        self._confidences: list[float] = []
        self._utt_start: int | None = None
        self._utt_end = 0
        # Local Whisper after a failover.
        self._local_queue: asyncio.Queue[tuple[bytes, tuple[int, int]] | None] = asyncio.Queue()
        self._local_task: asyncio.Task[None] | None = None
        self._watchdog_task: asyncio.Task[None] | None = None

    # -- audio accounting -------------------------------------------------------------------

    @property
    def _rate(self) -> int:
        rate: int = self.sample_rate or 16000
        return rate

    def _bytes(self, secs: float) -> int:
        return int(secs * self._rate) * 2

    def _ms(self, offset: int) -> int:
        return offset * 1000 // (2 * self._rate)

    @property
    def heard_ms(self) -> int:
        """How much of the call's audio has reached this service (ms)."""
        return self._ms(self._total)

    def _keep_from(self, *, unsent: bool = True) -> int:
        starts = [s.start for s in self._spans]
        if self._cur_start is not None:
            starts.append(self._cur_start)
        keep = min(starts) - self._bytes(PREROLL_SECS) if starts else self._total
        keep = min(keep, self._total - self._bytes(IDLE_KEEP_SECS))
        keep = max(keep, self._final_until)
        if unsent and self.mode == "deepgram":
            keep = min(keep, self._sent)  # the socket has not had it yet
        return max(keep, self._buf_start)

    def _trim(self, *, unsent: bool = True) -> None:
        keep = self._keep_from(unsent=unsent)
        if keep > self._buf_start:
            del self._buf[: keep - self._buf_start]
            self._buf_start = keep

    def _audio(self, start: int, end: int) -> bytes:
        lo, hi = max(start, self._buf_start), min(end, self._total)
        return bytes(self._buf[lo - self._buf_start : hi - self._buf_start]) if hi > lo else b""

    # -- frames -----------------------------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._speaking = True
            if self._cur_start is None:
                self._cur_start = max(0, self._total - self._bytes(frame.start_secs))
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._end_utterance(frame.stop_secs)
        # STTService's handling (audio, VAD metrics, lifecycle); DeepgramSTTService's own only
        # adds a Finalize on VAD stop, which `_end_utterance` sends through the sender task.
        await STTService.process_frame(self, frame, direction)

    async def process_audio_frame(
        self, frame: InputAudioRawFrame, direction: FrameDirection
    ) -> None:
        audio = frame.audio if not self._muted else bytes(len(frame.audio))
        self._user_id = ""
        self._total += len(audio)
        if self.mode == "none":
            self._buf_start = self._total
            return
        self._buf += audio
        self._trim()
        if self.mode == "deepgram":
            self._record_stt_audio_usage(audio)
            if self._live:
                self._wake.set()

    def _end_utterance(self, stop_secs: float) -> None:
        self._speaking = False
        if self._cur_start is None:
            return
        end = max(self._cur_start, self._total - self._bytes(stop_secs))
        span = _Span(self._cur_start, end, self._total)
        self._cur_start = None
        if self.mode == "deepgram":
            final = span.end <= self._final_until  # Deepgram's endpointing was first
            if not final:
                self._spans.append(span)
            if self._live:
                self._ask_finalize(wait=not final)
        elif self.mode == "local":
            self._enqueue_local(span)

    def _ask_finalize(self, *, wait: bool = True) -> None:
        """Send `Finalize` after the audio so far; `wait`: its answer is due within the timeout."""
        self.request_finalize()  # type: ignore[no-untyped-call]
        self._finalize_wanted = True
        if wait and self._awaiting_since is None:
            self._awaiting_since = time.monotonic()
        self._wake.set()

    # -- the Deepgram socket ----------------------------------------------------------------

    async def _connect(self) -> None:
        # Never waits: audio is buffered until a socket is up, then replayed.
        if self._connection_task is None and self.mode == "deepgram":
            self._closing = False
            self._connection_task = self.create_task(  # type: ignore[assignment]
                self._connection_handler(), f"{self}::deepgram"
            )
        if self._watchdog_task is None:
            self._watchdog_task = self.create_task(self._watchdog(), f"{self}::watchdog")

    async def _disconnect(self) -> None:
        self._closing = True
        for name in ("_connection_task", "_watchdog_task"):
            task = getattr(self, name)
            if task is not None:
                setattr(self, name, None)
                await self.cancel_task(task)

    async def _connection_handler(self) -> None:
        failures = 0
        while self.mode == "deepgram" and not self._closing:
            try:
                reason, permanent = await self._run_connection()
            except Exception as exc:  # a bug must not leave the call buffering forever
                reason, permanent = f"unexpected error ({type(exc).__name__})", False
            if reason is None or self._closing or self.mode != "deepgram":
                return
            failures = 1 if self._progress else failures + 1
            log.warning(
                "deepgram: connection failed: reason=%s attempt=%d of %d",
                reason,
                failures,
                self._retries + 1,
            )
            if permanent or failures > self._retries:
                await self._failover(reason)
                return
            self.reconnects += 1
            await asyncio.sleep(min(0.2 * failures, 2.0))

    async def _run_connection(self) -> tuple[str | None, bool]:
        """One socket, until it fails (reason, permanent) or is closed on purpose (None)."""
        self._generation += 1
        generation = self._generation
        self._progress = False
        self._socket_error = None
        self._broken = asyncio.Event()
        stack = contextlib.AsyncExitStack()
        tasks: list[asyncio.Task[Any]] = []
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    connection = await stack.enter_async_context(
                        self._client.listen.v1.connect(**self._build_connect_kwargs())
                    )
            except ApiError as exc:  # its text carries the request headers: never log it
                status = exc.status_code
                permanent = status is not None and 400 <= status < 500 and status not in (408, 429)
                return f"handshake refused (HTTP {status})", permanent
            except Exception as exc:  # refused, reset, handshake timeout
                return f"connect failed ({type(exc).__name__})", False
            connection.on(EventType.MESSAGE, partial(self._on_socket_message, generation))
            connection.on(EventType.ERROR, partial(self._on_socket_error, generation))
            # Replay what Deepgram has not finalized: the new socket's audio starts there.
            self._trim(unsent=False)
            self._conn_offset = self._sent = self._buf_start
            self._finalize_wanted = self._close_wanted = False
            self._finalize_marks = deque()
            self._awaiting_since = None
            self._live = True
            self._connection = connection
            if self._spans and not self._speaking:
                self._ask_finalize()
            self._wake.set()
            log.info(
                "deepgram: connected: replaying_ms=%d pending_utterances=%d",
                self._ms(self._total - self._sent),
                len(self._spans),
            )
            listener = self.create_task(connection.start_listening(), f"{self}::listen")
            broken = self.create_task(self._broken.wait(), f"{self}::broken")
            tasks = [
                listener,
                broken,
                self.create_task(self._sender(connection), f"{self}::send"),
                self.create_task(
                    self._keepalive_handler(),  # type: ignore[no-untyped-call]
                    f"{self}::keepalive",
                ),
            ]
            await asyncio.wait([listener, broken], return_when=asyncio.FIRST_COMPLETED)
            if self._broken.is_set():
                return self._broken_reason, False
            if self._closing:
                return None, False
            return f"connection lost ({self._socket_error or 'closed by the server'})", False
        finally:
            self._live = False
            self._connection = None
            for task in tasks:
                if not task.done():
                    await self.cancel_task(task)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_SECS):
                    await stack.aclose()

    def _break(self, reason: str) -> None:
        if self._live and not self._broken.is_set():
            self._live = False
            self._broken_reason = reason
            self._broken.set()

    async def _sender(self, connection: Any) -> None:
        """Send the buffered audio in order, then a pending Finalize or CloseStream."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._live:
                    if self._sent < self._total:
                        lo = self._sent - self._buf_start
                        chunk = bytes(self._buf[lo : lo + MAX_SEND_BYTES])
                        await connection.send_media(chunk)
                        self._sent += len(chunk)
                    elif self._finalize_wanted:
                        self._finalize_wanted = False
                        self._finalize_marks.append(self._sent)
                        await connection.send_finalize(ListenV1Finalize(type="Finalize"))
                    elif self._close_wanted:
                        self._close_wanted = False
                        await connection.send_close_stream(ListenV1CloseStream(type="CloseStream"))
                    else:
                        break
        except Exception as exc:
            self._break(f"send failed ({type(exc).__name__})")

    async def _watchdog(self) -> None:
        """A finished utterance with no final result within the timeout: the socket stalled."""
        while True:
            await asyncio.sleep(0.1)
            since = self._awaiting_since
            if self.mode != "deepgram" or not self._live or since is None:
                continue
            if time.monotonic() - since > self._timeout:
                self._awaiting_since = None
                self._break(f"stalled (no final result within {self._timeout:g}s)")

    async def _on_socket_error(self, generation: int, error: Any) -> None:
        if generation == self._generation:
            self._socket_error = type(error).__name__

    async def _on_socket_message(self, generation: int, message: Any) -> None:
        if generation != self._generation or not self._live or self.mode != "deepgram":
            return  # a late message from a socket given up on: its audio is replayed
        if not isinstance(message, ListenV1Results):
            return
        try:
            await self._on_results(message)
        except Exception as exc:
            self._break(f"bad result ({type(exc).__name__})")

    async def _on_results(self, message: ListenV1Results) -> None:
        # Pipecat: a TranscriptionFrame for a final, an InterimTranscriptionFrame otherwise.
        await self._on_message(message)  # type: ignore[no-untyped-call]
        alternative = message.channel.alternatives[0] if message.channel.alternatives else None
        text = alternative.transcript.strip() if alternative is not None else ""
        if not message.is_final:
            self.interims += 1 if text else 0
            return
        self.deepgram_ok += 1
        self._progress = True
        offset = self._conn_offset
        end = offset + self._bytes(message.start + message.duration)
        self._final_until = max(self._final_until, min(end, self._sent))
        if message.from_finalize and self._finalize_marks:
            # Everything sent before that Finalize is final now.
            self._final_until = max(self._final_until, self._finalize_marks.popleft())
        if alternative is not None and text:
            words = alternative.words
            first = offset + self._bytes(words[0].start if words else message.start)
            last = offset + self._bytes(words[-1].end) if words else end
            if self._utt_start is None:
                self._utt_start = first
            self._utt_end = max(self._utt_end, last)
            self._parts.append(text)
            self._confidences.append(alternative.confidence)
        self._spans = [s for s in self._spans if s.end > self._final_until]
        self._awaiting_since = time.monotonic() if self._spans else None
        if message.speech_final or message.from_finalize:
            await self._flush_parts()

    async def _flush_parts(self) -> None:
        """The Deepgram utterance is over: one transcript segment for its final results."""
        if not self._parts or self._utt_start is None:
            return
        text = " ".join(self._parts)
        confidence = sum(self._confidences) / len(self._confidences)
        timing = (self._ms(self._utt_start), self._ms(self._utt_end))
        self._parts, self._confidences, self._utt_start, self._utt_end = [], [], None, 0
        await self.push_frame(SegmentTimingMixin.segment_frame(text, timing, confidence))

    # -- failover ---------------------------------------------------------------------------

    async def _failover(self, reason: str) -> None:
        if self.mode != "deepgram":
            return
        local = self._fallback_model is not None
        self._break(reason)  # a socket still open (the call is ending) is given up on
        self.mode = "local" if local else "none"
        self.failovers += 1
        self._live = False
        self._awaiting_since = None
        pending, self._spans = self._spans, []
        log.warning(
            "deepgram: failover: reason=%s failovers=%d fallback=%s pending_utterances=%d "
            "speaking=%s",
            reason,
            self.failovers,
            "whisper-local" if local else "none",
            len(pending),
            self._speaking,
        )
        await self._flush_parts()
        if not local:
            log.error(
                "deepgram: failover: reason=%s: stt.fallback is none, the rest of the call "
                "is not transcribed",
                reason,
            )
            self._cur_start = None
            self._buf.clear()
            self._buf_start = self._total
            return
        self._local_task = self.create_task(self._local_worker(), f"{self}::whisper")
        for span in pending:
            self._enqueue_local(span)
        self._trim()

    def _enqueue_local(self, span: _Span) -> None:
        start = max(span.start, self._final_until)
        pcm = self._audio(max(start - self._bytes(PREROLL_SECS), self._final_until), span.cut)
        if not pcm:
            return
        pcm += bytes(self._bytes(self._trailing_silence_secs))
        timing = (self._ms(start), self._ms(max(span.end, start)))
        self._final_until = max(self._final_until, span.cut)  # the next segment starts after
        self._local_queue.put_nowait((pcm, timing))

    async def _local_worker(self) -> None:
        model = self._fallback_model
        assert model is not None
        settings = self._fallback_settings
        while (item := await self._local_queue.get()) is not None:
            pcm, timing = item
            try:
                text, confidence = await asyncio.to_thread(transcribe_local, model, pcm, settings)
            except Exception as exc:
                log.error("deepgram: local Whisper failed: error=%s", type(exc).__name__)
                continue
            self.local_segments += 1
            log.debug(
                "deepgram: local Whisper: segment_ms=%d-%d chars=%d",
                timing[0],
                timing[1],
                len(text),
            )
            if not text:
                continue
            frame = TranscriptionFrame(text, self._user_id, time_now_iso8601(), settings.language)
            frame.finalized = True
            await self.push_frame(frame)
            await self.push_frame(SegmentTimingMixin.segment_frame(text, timing, confidence))

    # -- lifecycle --------------------------------------------------------------------------

    async def stop(self, frame: EndFrame) -> None:
        # The call ended mid-utterance: transcribe what was said instead of dropping it.
        if self._cur_start is not None:
            self._end_utterance(0.0)
        if self.mode == "deepgram":
            await self._settle()
        await self._flush_parts()
        if self._local_task is not None:
            await self._local_queue.put(None)
            await self._local_task
            self._local_task = None
        await super().stop(frame)

    async def _settle(self) -> None:
        """Wait for Deepgram's last finals (failing over if they never come), then close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._timeout + 1.0) * (self._retries + 2)
        while self.mode == "deepgram" and self._spans and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if self.mode == "deepgram" and self._spans:
            await self._failover("no final result before the call ended")
        if self.mode != "deepgram":
            return
        self._closing = True
        task = self._connection_task
        if self._live:
            self._connection = None  # no KeepAlive after CloseStream
            self._close_wanted = True
            self._wake.set()
        if task is not None:
            await asyncio.wait([task], timeout=CLOSE_TIMEOUT_SECS)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._cancel_local()
        await super().cancel(frame)

    async def cleanup(self) -> None:
        await self._cancel_local()
        await super().cleanup()  # type: ignore[no-untyped-call]

    async def _cancel_local(self) -> None:
        if self._local_task is not None:
            task, self._local_task = self._local_task, None
            await self.cancel_task(task)


def _unique(terms: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for term in (t.strip() for t in terms):
        if term and term.lower() not in seen:
            seen.add(term.lower())
            out.append(term)
    return out


def build_deepgram_stt(
    *,
    options: DeepgramOptions,
    language: str,
    api_key: str,
    base_url: str | None,
    keyterms: list[str],
    fallback_model: WhisperModel | None,
    fallback_settings: Any,
    trailing_silence_secs: float,
) -> STTService:
    """The `deepgram` STT provider: streaming, keyterms boosted, local Whisper as failover."""
    return DeepgramFailoverSTTService(
        options=options,
        language=language,
        api_key=api_key,
        base_url=base_url,
        keyterms=keyterms,
        fallback_model=fallback_model,
        fallback_settings=fallback_settings,
        trailing_silence_secs=trailing_silence_secs,
    )
