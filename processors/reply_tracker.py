"""Follows each reply out to the caller and records what the caller actually got.

Two processors around the output transport:

- `ReplyMarks` (before it) sends a Twilio `mark` after each spoken sentence, named
  `reply-{ordinal}-{n}`. Twilio echoes a mark once the audio queued before it has played.
- `ReplyTracker` (after it) sees only what the transport really wrote to the socket: Pipecat's
  output transport passes an audio frame on downstream once it has sent it, and drops what it
  could not send (socket gone) or what an interruption flushed. So `audio_ms` is the reply's
  audio that was sent. Reply audio goes out ahead of real time (`call.audio_lead_secs`), so
  sent is not played: `audio_played_ms` is all of it for a reply whose last mark came back;
  for a reply cut short, what was sent less what the caller's end still held unplayed when it
  was cut (`SocketClock.unplayed_ms`: Twilio plays in real time and drops the rest on
  `clear`), and never less than the audio up to the last sentence whose mark came back.

Its latency is the caller's, read on the call's clock at the socket (`SocketClock`, kept by the
serializer): `t_question_end_ms` is the end of the question's last voiced frame (core/voice.py),
not the VAD's end of the turn, which comes ~100-150 ms later; `t_first_audio_ms` is the instant
the reply's first voiced chunk was written to the socket (null when nothing was sent), not when
the TTS made it or when it passed this processor.

A reply is stored once its last mark comes back (played in full), or when it is cut: by an
interruption (barge-in or "stop": Twilio gets `clear`), by the caller hanging up
(`CallerHungUpFrame`; the open reply is then cut too, so the bot stops talking to nobody), or
by the end of the pipeline. `interrupted` means it did not play to its end; `hung_up` that the
caller was gone before it had.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputTransportMessageFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from core.metrics import VOICE_TO_VOICE
from core.voice import voiced_pcm16
from memory.models import ReplyRecord, WriteOp
from processors.frames import CallerHungUpFrame, PlaybackMarkFrame, ReplyFrame

log = logging.getLogger(__name__)
_MARK = re.compile(r"^reply-(\d+)-(\d+)$")


class SocketTimes(Protocol):
    """The call's clock at the socket (processors/socket_clock.py `SocketClock`)."""

    def now_ms(self) -> float: ...

    def written_at(self, audio: bytes) -> int | None: ...

    def unplayed_ms(self, since_ms: float) -> float: ...

    def voice_end(self, vad_end_ms: int) -> int: ...


def mark_name(ordinal: int, sentence: int) -> str:
    return f"reply-{ordinal}-{sentence}"


class ReplyMarks(FrameProcessor):  # type: ignore[misc]
    """Before the output transport: a `mark` after each sentence of a reply."""

    def __init__(self, *, stream_sid: str) -> None:
        super().__init__()
        self._stream_sid = stream_sid
        self._ordinal: int | None = None
        self._sentences = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, ReplyFrame):
            self._ordinal, self._sentences = frame.ordinal, 0
        elif isinstance(frame, InterruptionFrame):
            self._ordinal = None  # what is left of the reply is not spoken
        elif isinstance(frame, TTSStoppedFrame) and self._ordinal is not None:
            self._sentences += 1
            mark = OutputTransportMessageFrame(
                message={
                    "event": "mark",
                    "streamSid": self._stream_sid,
                    "mark": {"name": mark_name(self._ordinal, self._sentences)},
                }
            )
            # A sentence cut by an interruption gets no mark (Pipecat keeps transport
            # messages through interruptions unless they say otherwise).
            mark.interruptible = True
            await self.push_frame(mark)


@dataclass
class _Reply:
    frame: ReplyFrame
    question_end_ms: int
    first_sent_ms: int | None = None  # the first chunk's write, voiced or not
    first_audio_ms: int | None = None  # the first voiced chunk's write
    sent_ms: float = 0.0
    # Audio sent by the end of each sentence (index n-1 for sentence n).
    sentence_end_ms: list[float] = field(default_factory=list)
    played_sentences: int = 0
    # Cut short: the audio sent that the caller's end had not played when it was cut.
    unplayed_ms: float | None = None

    @property
    def sent_all(self) -> bool:
        return len(self.sentence_end_ms) >= self.frame.sentences

    @property
    def played_ms(self) -> int:
        marked = self.sentence_end_ms[self.played_sentences - 1] if self.played_sentences else 0.0
        if self.unplayed_ms is None:
            return int(marked)
        return int(max(marked, self.sent_ms - self.unplayed_ms))


class ReplyTracker(FrameProcessor):  # type: ignore[misc]
    """After the output transport: records each reply as the caller got it."""

    def __init__(
        self, *, call_id: str, submit: Callable[[WriteOp], None], clock: SocketTimes
    ) -> None:
        super().__init__()
        self._call_id = call_id
        self._submit = submit
        self._clock = clock
        self._sending: _Reply | None = None  # the reply whose audio is going out
        self._playing: dict[int, _Reply] = {}  # sent in full, last mark not back yet
        self._hung_up = False
        self.replies: list[ReplyRecord] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, ReplyFrame):
            self._on_reply(frame)
        elif isinstance(frame, TTSAudioRawFrame):
            written_ms = self._clock.written_at(frame.audio)
            if self._sending is not None:
                self._on_audio(self._sending, frame, written_ms)
        elif isinstance(frame, TTSStoppedFrame) and self._sending is not None:
            reply = self._sending
            reply.sentence_end_ms.append(reply.sent_ms)
            log.debug(
                "reply %d: sentence %d of %d sent (%d ms)",
                reply.frame.ordinal,
                len(reply.sentence_end_ms),
                reply.frame.sentences,
                reply.sent_ms,
            )
            if reply.sent_all:
                self._sending = None
                self._playing[reply.frame.ordinal] = reply
        elif isinstance(frame, PlaybackMarkFrame):
            self._on_mark(frame.mark)
        elif isinstance(frame, InterruptionFrame):
            self._cut_all("interrupted")
        elif isinstance(frame, CallerHungUpFrame) and not self._hung_up:
            self._hung_up = True
            sending = self._sending is not None
            self._cut_all(f"caller hung up ({frame.reason})")
            await self.push_frame(frame, direction)
            if sending:
                # Stop synthesising and sending what nobody will hear.
                await self.broadcast_interruption()  # type: ignore[no-untyped-call]
            return
        elif isinstance(frame, (EndFrame, CancelFrame)):
            self._cut_all("the call ended")
        await self.push_frame(frame, direction)

    def _on_reply(self, frame: ReplyFrame) -> None:
        if self._sending is not None:
            # Its audio stopped short and a new reply began: it was cut (its interruption
            # was passed on before it reached us).
            self._finish(self._sending, interrupted=True, why="cut before the next reply")
            self._sending = None
        reply = _Reply(frame=frame, question_end_ms=self._clock.voice_end(frame.t_question_end_ms))
        if self._hung_up:
            self._finish(reply, interrupted=True, why="the caller had hung up")
        elif frame.sentences == 0:
            self._finish(reply, interrupted=False, why="nothing to say")
        else:
            self._sending = reply

    def _on_audio(self, reply: _Reply, frame: TTSAudioRawFrame, written_ms: int | None) -> None:
        if written_ms is None:  # not seen at the serializer: the clock now, a little late
            written_ms = round(self._clock.now_ms())
        if reply.first_sent_ms is None:
            reply.first_sent_ms = written_ms
        if reply.first_audio_ms is None and voiced_pcm16(frame.audio):
            reply.first_audio_ms = written_ms
            log.debug(
                "reply %d: first audio written at %d ms (question's voice ended at %d ms,"
                " the VAD's turn at %d ms)",
                reply.frame.ordinal,
                written_ms,
                reply.question_end_ms,
                reply.frame.t_question_end_ms,
            )
        reply.sent_ms += len(frame.audio) * 1000 / (2 * frame.num_channels * frame.sample_rate)

    def _on_mark(self, name: str) -> None:
        log.debug("mark %s played", name)
        match = _MARK.match(name)
        if match is None:
            return
        ordinal, sentence = int(match[1]), int(match[2])
        reply = self._playing.get(ordinal)
        if reply is None and self._sending is not None and self._sending.frame.ordinal == ordinal:
            reply = self._sending
        if reply is None:
            return  # a reply already stored (a mark echoed after `clear` proves nothing)
        reply.played_sentences = max(reply.played_sentences, sentence)
        if reply is not self._sending and reply.played_sentences >= reply.frame.sentences:
            del self._playing[ordinal]
            self._finish(reply, interrupted=False, why="played in full")

    def _cut_all(self, why: str) -> None:
        hung_up = why.startswith("caller hung up")
        cut = [self._playing.pop(ordinal) for ordinal in sorted(self._playing)]
        if self._sending is not None:
            cut.append(self._sending)
            self._sending = None
        # What the caller's end held unplayed is the tail of what was sent: the newest reply's.
        starts = [reply.first_sent_ms for reply in cut if reply.first_sent_ms is not None]
        unplayed = self._clock.unplayed_ms(min(starts)) if starts else 0.0
        for reply in reversed(cut):
            reply.unplayed_ms = min(reply.sent_ms, unplayed)
            unplayed -= reply.unplayed_ms
        for reply in cut:
            self._finish(reply, interrupted=True, why=why, hung_up=hung_up)

    def _finish(
        self, reply: _Reply, *, interrupted: bool, why: str, hung_up: bool | None = None
    ) -> None:
        frame = reply.frame
        hung_up = self._hung_up if hung_up is None else hung_up
        if interrupted:
            # The sentence the caller was hearing: the one after the last that played.
            log.info(
                "reply %d cut (%s) in sentence %d of %d: %d ms sent, %d ms known played: %r",
                frame.ordinal,
                why,
                min(reply.played_sentences + 1, frame.sentences),
                frame.sentences,
                int(reply.sent_ms),
                reply.played_ms,
                frame.answer,
            )
        record = ReplyRecord(
            call_id=self._call_id,
            ordinal=frame.ordinal,
            intent=frame.intent,
            question=frame.question,
            answer=frame.answer,
            t_question_end_ms=reply.question_end_ms,
            # Nothing voiced was sent (only silence): when the first chunk went out.
            t_first_audio_ms=reply.first_sent_ms
            if reply.first_audio_ms is None
            else reply.first_audio_ms,
            audio_ms=int(reply.sent_ms),
            interrupted=interrupted,
            hung_up=hung_up and interrupted,
            audio_played_ms=reply.played_ms,
        )
        self.replies.append(record)
        self._submit(record)
        if record.t_first_audio_ms is not None and not record.hung_up:
            # A reply cut by a hang-up is left out: nobody was there to hear it start.
            latency_ms = record.t_first_audio_ms - record.t_question_end_ms
            VOICE_TO_VOICE.observe(max(0, latency_ms) / 1000)
