"""`stt.provider: deepgram`: Pipecat's own `DeepgramSTTService`, configured from prompts.

Pipecat's service does the work: the official deepgram-sdk's listen websocket, interims
(`InterimTranscriptionFrame`) and finals (`TranscriptionFrame`), a `Finalize` on each VAD stop,
KeepAlive, and reconnection with backoff (a 4xx handshake, or three quick failures in a row,
leave it unusable, which is what `ServiceSwitcher` fails over on: processors/stt_failover.py).

This subclass adds, on public hooks only (`push_frame`, `process_frame`, `process_audio_frame`,
`request_finalize`, `confirm_finalize`, `push_error_frame`):

- a `TranscriptSegmentFrame` for each finished Deepgram utterance (`speech_final`, or the
  answer to a `Finalize`), with its place in the call, for the recorder, wake gate and
  commitments; interims never become segments;
- `transcribed_ms`: how far into the call Deepgram has answered for, so a failover hands the
  fallback only what Deepgram never finalized;
- a stall: a `Finalize` not answered within `deepgram.timeout_secs`, or an utterance ending
  while the socket is down (its audio went nowhere), leaves the service unusable;
- `deepgram.retries`: connection errors tolerated in a row (Pipecat reconnects them) before
  the service gives up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from deepgram.listen.v1.types import ListenV1Results
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.deepgram.stt import DeepgramSTTService, DeepgramSTTSettings
from pydantic import SecretStr

from core.prompts import DeepgramOptions
from processors.stt_timing import CallClock, SegmentTimingMixin

log = logging.getLogger(__name__)


def deepgram_settings(
    options: DeepgramOptions, language: str, keyterms: list[str]
) -> DeepgramSTTSettings:
    """Pipecat's Deepgram settings from `stt.deepgram`: model, language, boosted terms."""
    boost: dict[str, Any] = {}
    if keyterms and options.model.startswith("nova-3"):
        boost["keyterm"] = keyterms  # nova-3: key term prompting (phrases too)
    elif keyterms:  # older models boost single keywords
        boost["keywords"] = [f"{t}:2" for t in keyterms if " " not in t] or None
    return DeepgramSTTSettings(
        model=options.model,
        language=language,
        interim_results=options.interim_results,
        smart_format=options.smart_format,
        endpointing=options.endpointing_ms,
        punctuate=True,
        **boost,
    )


class DeepgramSegmentsSTTService(DeepgramSTTService):  # type: ignore[misc]
    """Pipecat's Deepgram service, with transcript segments and a stall watchdog."""

    def __init__(
        self,
        *,
        options: DeepgramOptions,
        language: str,
        api_key: SecretStr,
        base_url: str | None,
        keyterms: list[str],
        clock: CallClock | None = None,
    ) -> None:
        self.keyterms = _unique(keyterms)
        super().__init__(
            api_key=api_key.get_secret_value(),
            base_url=base_url or "",
            settings=deepgram_settings(options, language, self.keyterms),
        )
        self.stall_secs = options.timeout_secs
        self.retries = options.retries
        self.transcribed_ms = 0
        # Counters: final and interim results, connection errors in a row, stalls.
        self.finals = 0
        self.interims = 0
        self.errors_in_a_row = 0
        self.stalls = 0
        self.call_clock = clock
        self.heard_at_ms = 0  # the call's time at the last audio frame received
        self.speaking = False
        self.finalize_sent = False
        # The call's time at each Finalize sent, with the event its answer sets.
        self.awaiting: deque[tuple[int, asyncio.Event]] = deque()
        self.watchdog: asyncio.Task[None] | None = None
        # Where the current socket's audio starts in the call (Deepgram's times are the socket's).
        self.socket_id: str | None = None
        self.socket_offset_ms = 0
        # The Deepgram utterance in progress: its finals' text, confidences and span.
        self.parts: list[str] = []
        self.confidences: list[float] = []
        self.span: tuple[int, int] | None = None

    # -- the call's time --------------------------------------------------------------------

    async def process_audio_frame(
        self, frame: InputAudioRawFrame, direction: FrameDirection
    ) -> None:
        at = self.call_clock.at(frame) if self.call_clock is not None else None
        if at is None:
            rate = self.sample_rate or 16000
            at = self.heard_at_ms + len(frame.audio) * 1000 // (2 * rate)
        self.heard_at_ms = at
        await super().process_audio_frame(frame, direction)

    def _call_ms(self, socket_secs: float) -> int:
        return self.socket_offset_ms + int(socket_secs * 1000)

    def _follow_socket(self, result: ListenV1Results) -> None:
        """A result from a new socket: where its audio started in the call.

        The first socket is up before the call's first audio (Pipecat connects in `setup`). A
        reconnected one started when it came up, which no hook tells: it is estimated from the
        result itself (its audio ends about now), to within Deepgram's latency.
        """
        socket_id = result.metadata.request_id if result.metadata is not None else None
        if socket_id == self.socket_id:
            return
        if self.socket_id is not None:
            estimate = self.heard_at_ms - int((result.start + result.duration) * 1000)
            self.socket_offset_ms = max(self.transcribed_ms, estimate, 0)
        self.socket_id = socket_id

    # -- results ----------------------------------------------------------------------------

    async def push_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        await super().push_frame(frame, direction)
        result = getattr(frame, "result", None)
        if isinstance(frame, InterimTranscriptionFrame):
            self.interims += 1
        elif isinstance(frame, TranscriptionFrame) and isinstance(result, ListenV1Results):
            await self._on_final(frame.text, result)

    async def _on_final(self, text: str, result: ListenV1Results) -> None:
        self.finals += 1
        self.errors_in_a_row = 0  # Deepgram answers: the socket works
        self._follow_socket(result)
        alternative = result.channel.alternatives[0]
        words = alternative.words
        first = self._call_ms(words[0].start if words else result.start)
        last = self._call_ms(words[-1].end if words else result.start + result.duration)
        self.transcribed_ms = max(
            self.transcribed_ms, self._call_ms(result.start + result.duration)
        )
        self.parts.append(text.strip())
        self.confidences.append(alternative.confidence)
        self.span = (first, last) if self.span is None else (self.span[0], max(self.span[1], last))
        if result.speech_final or result.from_finalize:
            await self._flush()

    async def _flush(self) -> None:
        """The Deepgram utterance is over: one transcript segment for its finals."""
        if not self.parts or self.span is None:
            return
        text = " ".join(self.parts)
        confidence = sum(self.confidences) / len(self.confidences)
        segment = SegmentTimingMixin.segment_frame(text, self.span, confidence)
        self.parts, self.confidences, self.span = [], [], None
        await super().push_frame(segment)

    # -- Finalize, answered or not ----------------------------------------------------------

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self.speaking = True
        stopped = isinstance(frame, VADUserStoppedSpeakingFrame) and self.speaking
        self.finalize_sent = False
        await super().process_frame(frame, direction)  # sends Finalize on a VAD stop
        if stopped:
            self.speaking = False
            if not self.finalize_sent and self.is_usable:
                # The socket is down (Pipecat is reconnecting): this utterance reached nobody.
                await self._give_up("an utterance ended while the socket was down")

    def request_finalize(self) -> None:
        super().request_finalize()  # type: ignore[no-untyped-call]
        self.finalize_sent = True
        self.awaiting.append((self.heard_at_ms, asyncio.Event()))
        if self.watchdog is None or self.watchdog.done():
            self.watchdog = self.create_task(self._watch(), f"{self}::finalize-watch")

    def confirm_finalize(self) -> None:
        super().confirm_finalize()  # type: ignore[no-untyped-call]
        if self.awaiting:
            sent_at, answered = self.awaiting.popleft()
            self.transcribed_ms = max(self.transcribed_ms, sent_at)
            answered.set()

    async def _watch(self) -> None:
        """While a `Finalize` waits for its answer: a stall is `stall_secs` without any result."""
        while self.awaiting:
            seen = self.finals + self.interims
            try:
                async with asyncio.timeout(self.stall_secs):
                    await self.awaiting[0][1].wait()
            except TimeoutError:
                if self.finals + self.interims == seen:
                    await self._give_up(f"stalled: no result within {self.stall_secs:g}s")
                    return

    async def _give_up(self, reason: str) -> None:
        if not self.is_usable:
            return
        self.stalls += 1
        log.warning("deepgram: giving up: reason=%s", reason)
        await self.push_error(f"Deepgram {reason}", force_treat_as_permanent=True)

    async def push_error_frame(
        self, error: ErrorFrame, force_treat_as_permanent: bool = False
    ) -> None:
        if not force_treat_as_permanent and self.is_usable:
            self.errors_in_a_row += 1
            force_treat_as_permanent = self.errors_in_a_row > self.retries
            log.warning(
                "deepgram: connection error %d in a row (%d tolerated)%s",
                self.errors_in_a_row,
                self.retries,
                ": giving up" if force_treat_as_permanent else ": Pipecat reconnects",
            )
        await super().push_error_frame(error, force_treat_as_permanent=force_treat_as_permanent)

    async def settle(self) -> None:
        """Wait until every `Finalize` sent is answered, or Deepgram has been given up on."""
        if self.watchdog is not None and not self.watchdog.done():
            await asyncio.wait([self.watchdog])  # it ends once none is awaited, or on a stall

    async def stop(self, frame: EndFrame) -> None:
        await self.settle()
        await self._flush()
        await super().stop(frame)

    async def cleanup(self) -> None:
        if self.watchdog is not None:
            await self.cancel_task(self.watchdog)
        await super().cleanup()  # type: ignore[no-untyped-call]


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
    api_key: SecretStr,
    base_url: str | None,
    keyterms: list[str],
    clock: CallClock | None = None,
) -> DeepgramSegmentsSTTService:
    """The `deepgram` STT provider: streaming, keyterms boosted (the key revealed only here)."""
    return DeepgramSegmentsSTTService(
        options=options,
        language=language,
        api_key=api_key,
        base_url=base_url,
        keyterms=keyterms,
        clock=clock,
    )
