"""Labels each transcript segment with its voice: S1, S2, ... per call (`speaker` on the frame).

Sits after the STT, which passes the call's audio on once it has taken it, and before the
transcript recorder, so the label is stored with the segment. It keeps the last minutes of
audio, counted in the same way as the STT counts it (ms from the stream's start), and notes
each VAD turn the way the STT does (start - `start_secs`, stop - `stop_secs`). When a turn
ends it starts embedding that turn's audio in a thread (domain/voice_encoder.py), while the
STT is still transcribing it; when the turn's `TranscriptSegmentFrame` comes, the voice is
usually ready, is clustered (domain/speakers.py) and the frame goes on with its label. A
segment that matches no turn (a provider with its own segmentation) is embedded from its own
span. System frames (the audio) never wait; only the segment waits for its own voice. When
two labels turn out to be one voice, `submit` gets a `SpeakersMerged` write, so the segments
already stored under the label that went are relabelled.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    StartFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from core.prompts import SpeakerKnobs
from domain.speakers import CallSpeakers, Vector
from domain.voice_encoder import VoiceEncoder
from memory.models import SpeakersMerged, WriteOp
from processors.frames import TranscriptSegmentFrame

log = logging.getLogger(__name__)
KEEP_SECS = 300.0
# A segment and a turn whose edges are this close are the same speech.
SAME_TURN_MS = 80


_loading = threading.Lock()


def shared_encoder() -> VoiceEncoder:
    """One speaker encoder per process (its ONNX session is safe to share between threads)."""
    with _loading:
        return _encoder()


@lru_cache(maxsize=1)
def _encoder() -> VoiceEncoder:
    return VoiceEncoder()


@dataclass
class _Turn:
    start_ms: int
    end_ms: int
    voice: asyncio.Task[Vector]


class SpeakerLabeler(FrameProcessor):  # type: ignore[misc]
    """Sets `speaker` on each `TranscriptSegmentFrame` from its voice (see module doc)."""

    def __init__(
        self,
        *,
        knobs: SpeakerKnobs | None = None,
        encoder: VoiceEncoder | None = None,
        call_id: str | None = None,
        submit: Callable[[WriteOp], None] | None = None,
    ) -> None:
        super().__init__()
        self._call_id = call_id
        self._submit = submit
        knobs = knobs or SpeakerKnobs()
        self.speakers = CallSpeakers(
            threshold=knobs.threshold,
            merge_threshold=knobs.merge_threshold,
            min_new_secs=knobs.min_new_secs,
        )
        self._encoder = encoder
        self._audio = bytearray()
        self._first_sample = 0  # the call's sample index of _audio[0]
        self._samples = 0
        self._rate = 16000
        self._turn_start_ms: int | None = None
        self._turns: deque[_Turn] = deque()
        self._ready: asyncio.Task[VoiceEncoder] | None = None

    @property
    def heard_ms(self) -> int:
        return self._samples * 1000 // self._rate

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            # Load the encoder off the event loop before the first turn needs it.
            self._ready = self.create_task(asyncio.to_thread(self._load), "speaker-encoder")
        elif isinstance(frame, InputAudioRawFrame):
            self._hear(frame)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._turn_start_ms = max(0, self.heard_ms - int(frame.start_secs * 1000))
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._turn_ended(max(0, self.heard_ms - int(frame.stop_secs * 1000)))
        elif isinstance(frame, TranscriptSegmentFrame):
            await self._label(frame)
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        for turn in self._turns:
            await self.cancel_task(turn.voice)
        self._turns.clear()
        if self._ready is not None and not self._ready.done():
            await self.cancel_task(self._ready)
        await super().cleanup()  # type: ignore[no-untyped-call]

    def _load(self) -> VoiceEncoder:
        if self._encoder is None:
            self._encoder = shared_encoder()
        return self._encoder

    def _hear(self, frame: InputAudioRawFrame) -> None:
        if frame.sample_rate and frame.sample_rate != self._rate and not self._samples:
            self._rate = frame.sample_rate
        audio = frame.audio
        if frame.num_channels > 1:  # keep the first channel
            width = 2 * frame.num_channels
            audio = b"".join(audio[i : i + 2] for i in range(0, len(audio), width))
        self._audio += audio
        self._samples += len(audio) // 2
        excess = len(self._audio) // 2 - int(KEEP_SECS * self._rate)
        if excess > 0:
            del self._audio[: 2 * excess]
            self._first_sample += excess

    def _span(self, start_ms: int, end_ms: int) -> bytes:
        lo = max(0, start_ms * self._rate // 1000 - self._first_sample)
        hi = max(lo, end_ms * self._rate // 1000 - self._first_sample)
        return bytes(self._audio[2 * lo : 2 * hi])

    def _embed(self, pcm: bytes) -> asyncio.Task[Vector]:
        rate = self._rate

        def run() -> Vector:
            return self._load().embed(pcm, rate)

        return self.create_task(asyncio.to_thread(run), "speaker-embed")

    def _turn_ended(self, end_ms: int) -> None:
        start_ms, self._turn_start_ms = self._turn_start_ms, None
        if start_ms is None or end_ms <= start_ms:
            return
        pcm = self._span(start_ms, end_ms)
        if pcm:
            self._turns.append(_Turn(start_ms, end_ms, self._embed(pcm)))

    async def _voice_of(self, frame: TranscriptSegmentFrame) -> Vector | None:
        # Turns that ended before this segment began got no transcript: forget them.
        while self._turns and self._turns[0].end_ms + SAME_TURN_MS < frame.start_ms:
            await self.cancel_task(self._turns.popleft().voice)
        turn = self._turns[0] if self._turns else None
        if (
            turn is not None
            and abs(turn.start_ms - frame.start_ms) <= SAME_TURN_MS
            and abs(turn.end_ms - frame.end_ms) <= SAME_TURN_MS
        ):
            self._turns.popleft()
            return await turn.voice
        pcm = self._span(frame.start_ms, frame.end_ms)
        return await self._embed(pcm) if pcm else None

    async def _label(self, frame: TranscriptSegmentFrame) -> None:
        try:
            voice = await self._voice_of(frame)
        except Exception as exc:  # a label is a nicety: the segment goes on without one
            log.warning("speaker embedding failed: %s", exc)
            return
        if voice is None:
            return
        secs = (frame.end_ms - frame.start_ms) / 1000
        merged_before = len(self.speakers.merged)
        assignment = self.speakers.assign(voice, secs)
        frame.speaker = assignment.label
        for gone in list(self.speakers.merged)[merged_before:]:
            kept = self.speakers.label_of(gone)
            log.info("speakers %s and %s are one voice: %s stays", kept, gone, kept)
            if self._submit is not None and self._call_id is not None:
                self._submit(SpeakersMerged(call_id=self._call_id, gone=gone, kept=kept))
        log.debug(
            "segment [%d-%d ms]: %s (similarity %.2f%s)",
            frame.start_ms,
            frame.end_ms,
            assignment.label,
            assignment.similarity,
            ", new" if assignment.new else "",
        )
