"""Segment timing for segmented STT services (shared by the local and remote Whisper services).

Counts the call's audio as it reaches the service, notes where each VAD segment starts and
ends (ms from stream start), transcribes a segment still open when the call ends instead of
dropping it, and turns a transcript into the `TranscriptSegmentFrame` the recorder stores.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    UserAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection

from processors.frames import TranscriptSegmentFrame


class SegmentTimingMixin:
    """Mix in before a `SegmentedSTTService` subclass."""

    _timing_samples = 0
    _timing_start_ms = 0
    _timing_in_speech = False
    _timings: deque[tuple[int, int]]
    _timing_specs: deque[Any]
    _turn: bytearray

    sample_rate: int
    is_usable: bool

    def _timing_init(self) -> None:
        self._timings = deque()
        self._timing_specs = deque()
        self._turn = bytearray()
        self._speaker = ""

    @property
    def in_speech(self) -> bool:
        """Between the VAD's start and stop of a turn."""
        return self._timing_in_speech

    @property
    def speaker_id(self) -> str:
        """The user id of the audio (transports that carry one); "" for a phone call."""
        return self._speaker

    @property
    def turn_audio(self) -> bytes:
        """The turn so far (16-bit PCM), with the second of audio before it the VAD needed to
        notice speech: the audio the segment will be transcribed from. Kept here, from the
        frames this service sees, by the same rule `SegmentedSTTService` keeps its own."""
        return bytes(self._turn)

    def silence(self, secs: float) -> bytes:
        """`secs` of 16-bit PCM silence at this service's sample rate."""
        return bytes(int((self.sample_rate or 16000) * secs) * 2)

    def _take_speculation(self) -> Any:
        """The speculative transcription of the turn now ending, if any (see subclasses)."""
        return None

    @property
    def heard_ms(self) -> int:
        """How much of the call's audio has reached this service (ms)."""
        rate = self.sample_rate or 16000
        return int(self._timing_samples * 1000 / rate)

    async def process_audio_frame(
        self, frame: InputAudioRawFrame, direction: FrameDirection
    ) -> None:
        self._timing_samples += len(frame.audio) // (2 * frame.num_channels)
        await super().process_audio_frame(frame, direction)  # type: ignore[misc]
        self._turn += frame.audio
        self._speaker = frame.user_id if isinstance(frame, UserAudioRawFrame) else ""
        one_second = (self.sample_rate or 16000) * 2
        if not self._timing_in_speech and len(self._turn) > one_second:
            del self._turn[: len(self._turn) - one_second]

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._timing_start_ms = max(0, self.heard_ms - int(frame.start_secs * 1000))
            self._timing_in_speech = True
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            # Noted before the base class queues the segment, so the segment finds its timing.
            if self.is_usable and self._timing_in_speech:
                end_ms = max(self._timing_start_ms, self.heard_ms - int(frame.stop_secs * 1000))
                self._timings.append((self._timing_start_ms, end_ms))
                self._timing_specs.append(self._take_speculation())
            self._timing_in_speech = False
            self._turn.clear()
        await super().process_frame(frame, direction)  # type: ignore[misc]

    async def stop(self, frame: EndFrame) -> None:
        # The call ended mid-utterance: end the turn so what was said is transcribed, not dropped.
        if self._timing_in_speech:
            await self.process_frame(
                VADUserStoppedSpeakingFrame(stop_secs=0.0), FrameDirection.DOWNSTREAM
            )
        await super().stop(frame)  # type: ignore[misc]

    def next_timing(self) -> tuple[int, int]:
        """(start_ms, end_ms) of the segment now being transcribed (segments run in order)."""
        return self._timings.popleft() if self._timings else (0, 0)

    def next_speculation(self) -> Any:
        """The speculation made for that segment (call after `next_timing`), or None."""
        return self._timing_specs.popleft() if self._timing_specs else None

    @staticmethod
    def segment_frame(
        text: str, timing: tuple[int, int], confidence: Any
    ) -> TranscriptSegmentFrame:
        start_ms, end_ms = timing
        return TranscriptSegmentFrame(
            text=text,
            start_ms=start_ms,
            end_ms=max(end_ms, start_ms),
            confidence=round(float(confidence), 4) if confidence is not None else None,
        )
