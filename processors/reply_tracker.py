"""Follows each reply out to the caller: first audio, duration, `mark`s, interruptions.

Sits after TTS. Keeps the call's inbound audio clock (input audio passes through the whole
pipeline), so `t_first_audio_ms` is on the same clock as the question's `end_ms`. Sends a
Twilio `mark` after each spoken sentence, so playback position is known, and stores each reply
through the writer when it finishes or is cut off (barge-in).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from memory.models import ReplyRecord, WriteOp
from processors.frames import ReplyFrame

log = logging.getLogger(__name__)


@dataclass
class _Open:
    frame: ReplyFrame
    ordinal: int
    first_audio_ms: int | None = None
    audio_ms: float = 0.0
    sentences_done: int = 0


class ReplyTracker(FrameProcessor):  # type: ignore[misc]
    def __init__(self, *, call_id: str, stream_sid: str, submit: Callable[[WriteOp], None]) -> None:
        super().__init__()
        self._call_id = call_id
        self._stream_sid = stream_sid
        self._submit = submit
        self._inbound_samples = 0
        self._inbound_rate = 16000
        self._open: _Open | None = None
        self._count = 0
        self.replies: list[ReplyRecord] = []

    @property
    def inbound_ms(self) -> int:
        return int(self._inbound_samples * 1000 / self._inbound_rate)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self._inbound_rate = frame.sample_rate
            self._inbound_samples += len(frame.audio) // (2 * frame.num_channels)
        elif isinstance(frame, ReplyFrame):
            self._finish(interrupted=False)
            self._open = _Open(frame=frame, ordinal=self._count)
            self._count += 1
        elif isinstance(frame, TTSAudioRawFrame) and self._open is not None:
            if self._open.first_audio_ms is None:
                self._open.first_audio_ms = self.inbound_ms
                log.debug(
                    "reply: first audio at %d ms (question ended at %d ms)",
                    self.inbound_ms,
                    self._open.frame.t_question_end_ms,
                )
            self._open.audio_ms += (
                len(frame.audio) * 1000 / (2 * frame.num_channels * frame.sample_rate)
            )
        elif isinstance(frame, TTSStoppedFrame) and self._open is not None:
            self._open.sentences_done += 1
            await self.push_frame(frame, direction)
            await self.push_frame(
                OutputTransportMessageFrame(
                    message={
                        "event": "mark",
                        "streamSid": self._stream_sid,
                        "mark": {"name": f"reply-{self._open.ordinal}-{self._open.sentences_done}"},
                    }
                )
            )
            return
        elif isinstance(frame, BotStoppedSpeakingFrame) and self._open is not None:
            if self._open.sentences_done >= self._open.frame.sentences:
                self._finish(interrupted=False)
        elif isinstance(frame, InterruptionFrame) and self._open is not None:
            log.info(
                "barge-in: reply %d cut after %d of %d sentences: %r",
                self._open.ordinal,
                self._open.sentences_done,
                self._open.frame.sentences,
                self._open.frame.answer,
            )
            self._finish(interrupted=True)
        elif isinstance(frame, EndFrame):
            self._finish(interrupted=False)
        await self.push_frame(frame, direction)

    def _finish(self, *, interrupted: bool) -> None:
        if self._open is None:
            return
        opened, self._open = self._open, None
        record = ReplyRecord(
            call_id=self._call_id,
            ordinal=opened.ordinal,
            intent=opened.frame.intent,
            question=opened.frame.question,
            answer=opened.frame.answer,
            t_question_end_ms=opened.frame.t_question_end_ms,
            t_first_audio_ms=opened.first_audio_ms,
            audio_ms=int(opened.audio_ms),
            interrupted=interrupted,
        )
        self.replies.append(record)
        self._submit(record)
