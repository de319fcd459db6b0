"""Segment timing for STT services (shared by the Whisper services and Deepgram's).

Counts the call's audio as it reaches the service, notes where each VAD segment starts and
ends (ms from stream start), transcribes a segment still open when the call ends instead of
dropping it, and turns a transcript into the `TranscriptSegmentFrame` the recorder stores.

Behind a `ServiceSwitcher` a service sees only the audio sent while it is the active one, so
its own count is not the call's time. `CallClock` is: the processor in front of the switcher
(processors/stt_failover.py) notes the call time of every audio and VAD frame it passes, and a
service given the clock reads a frame's time from it instead of counting.
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


class CallClock:
    """The call's time (ms of audio from the stream's start) at each audio or VAD frame noted.

    A frame's time is where the call's audio stood once it had passed: an audio frame's end,
    or the instant of a VAD event. Only the last `keep_secs` of frames are remembered.
    """

    def __init__(self, keep_secs: float = 300.0) -> None:
        self.heard_ms = 0
        self._heard = 0.0
        self._at: dict[int, int] = {}
        self._order: deque[tuple[int, int]] = deque()
        self._keep_ms = int(keep_secs * 1000)

    def note(self, frame: Frame, at_ms: int | None = None) -> int:
        """Note `frame` (an audio frame advances the clock); returns its time."""
        if isinstance(frame, InputAudioRawFrame):
            rate = frame.sample_rate or 16000
            self._heard += len(frame.audio) * 1000 / (2 * frame.num_channels * rate)
            self.heard_ms = int(self._heard)
        at = self.heard_ms if at_ms is None else at_ms
        self._at[frame.id] = at
        self._order.append((frame.id, at))
        while self._order and self._order[0][1] < self.heard_ms - self._keep_ms:
            self._at.pop(self._order.popleft()[0], None)
        return at

    def at(self, frame: Frame) -> int | None:
        """The time noted for `frame`, or None if it was not noted (or is forgotten)."""
        return self._at.get(frame.id)


class SegmentTimingMixin:
    """Mix in before a `SegmentedSTTService` subclass."""

    _timing_samples = 0
    _timing_start_ms = 0
    _timing_in_speech = False
    _timings: deque[tuple[int, int, int]]
    _timing_specs: deque[Any]
    _turn: bytearray
    _call_clock: CallClock | None = None
    _timing_cut_ms = 0
    transcribed_ms = 0

    sample_rate: int
    is_usable: bool

    def _timing_init(self, clock: CallClock | None = None) -> None:
        self._timings = deque()
        self._timing_specs = deque()
        self._turn = bytearray()
        self._speaker = ""
        self._call_clock = clock

    def _time_of(self, frame: Frame) -> int:
        """The call time at `frame` (the clock's, else this service's own count)."""
        at = self._call_clock.at(frame) if self._call_clock is not None else None
        return self.heard_ms if at is None else at

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
        rate = self.sample_rate or 16000
        at = self._call_clock.at(frame) if self._call_clock is not None else None
        if at is None:
            self._timing_samples += len(frame.audio) // (2 * frame.num_channels)
        else:
            self._timing_samples = at * rate // 1000
        await super().process_audio_frame(frame, direction)  # type: ignore[misc]
        self._turn += frame.audio
        self._speaker = frame.user_id if isinstance(frame, UserAudioRawFrame) else ""
        one_second = (self.sample_rate or 16000) * 2
        if not self._timing_in_speech and len(self._turn) > one_second:
            del self._turn[: len(self._turn) - one_second]

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._timing_start_ms = max(0, self._time_of(frame) - int(frame.start_secs * 1000))
            self._timing_in_speech = True
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            # Noted before the base class queues the segment, so the segment finds its timing.
            if self.is_usable and self._timing_in_speech:
                cut_ms = self._time_of(frame)
                end_ms = max(self._timing_start_ms, cut_ms - int(frame.stop_secs * 1000))
                self._timings.append((self._timing_start_ms, end_ms, cut_ms))
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
        start, end, self._timing_cut_ms = self._timings.popleft() if self._timings else (0, 0, 0)
        return start, end

    def segment_done(self) -> None:
        """The segment from `next_timing` is transcribed: the call's audio up to where the VAD
        cut it needs no other recogniser (`transcribed_ms`, read by the failover)."""
        self.transcribed_ms = max(self.transcribed_ms, self._timing_cut_ms)

    @property
    def pending_segments(self) -> int:
        """Segments cut by the VAD and not yet taken up for transcription."""
        return len(self._timings)

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
