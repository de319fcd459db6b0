"""Convene's custom frames: data that travels through the pipeline as frames."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from pipecat.frames.frames import DataFrame, SystemFrame

from domain.report_text import Facts


@dataclass
class TranscriptSegmentFrame(DataFrame):
    """A final transcript segment with its place in the call's audio (ms from stream start)."""

    text: str
    start_ms: int
    end_ms: int
    confidence: float | None = None
    speaker: str | None = None
    person: str | None = None  # who the speaker is, when known (processors/people.py)
    seq: int = -1  # numbered by the transcript recorder
    # The speculative transcript announced for this turn (`EarlyTranscriptFrame`), if any: the
    # wake gate knows the turn it answered early even when the stored words differ from it.
    early: str | None = None
    # Barge-in interrupts the bot's speech, never the meeting's data.
    interruptible: bool = field(default=False, init=False)


@dataclass
class SpeechPausedFrame(SystemFrame):
    """The speaker has been silent `paused_secs` mid-turn (the VAD has not ended the turn yet)."""

    paused_secs: float


@dataclass
class SpeechResumedFrame(SystemFrame):
    """The speaker went on after a `SpeechPausedFrame`: the turn is not over."""


@dataclass
class TurnJudgedFrame(SystemFrame):
    """Smart Turn's verdict on the turn so far, made at a pause (processors/pause_vad.py):
    `complete` when the speaker sounds done, with the model's probability of that."""

    complete: bool
    probability: float


@dataclass
class EarlyTranscriptFrame(DataFrame):
    """A speculative transcript of the turn so far, made during a pause before the turn ended.

    Not stored and not read for commitments: the final `TranscriptSegmentFrame` follows when
    the VAD ends the turn. The wake gate may answer from it, so the bot need not wait out the
    whole end-of-turn silence before it starts thinking.
    """

    text: str
    start_ms: int
    end_ms: int
    interruptible: bool = field(default=False, init=False)


@dataclass
class CommitmentFrame(DataFrame):
    """Someone promised something (or reported it done, or cancelled it) in this call."""

    kind: str  # "commitment" | "status_done" | "cancel"
    owner: str | None
    action: str
    due: datetime.date | None
    quote: str
    confidence: float
    seq: int
    interruptible: bool = field(default=False, init=False)


@dataclass
class AddressedFrame(DataFrame):
    """An utterance spoken to the bot: what it asks for (see processors/wake.py)."""

    intent: str
    question: str
    person: str | None
    topic: str | None
    seq: int
    end_ms: int
    interruptible: bool = field(default=False, init=False)


@dataclass
class MemoryFactsFrame(DataFrame):
    """What memory holds that answers an addressed question."""

    ask: AddressedFrame
    facts: Facts


@dataclass
class ReplyFrame(DataFrame):
    """The bot is about to answer `question` with `answer` (spoken sentence by sentence).

    `ordinal` numbers the call's replies from 0 (the marks sent after its sentences are named
    `reply-{ordinal}-{n}`). Not interruptible: a reply cut before any of it is sent is still
    recorded, as cut.
    """

    intent: str
    question: str
    answer: str
    t_question_end_ms: int
    sentences: int
    ordinal: int = 0
    interruptible: bool = field(default=False, init=False)


@dataclass
class PlaybackMarkFrame(SystemFrame):
    """Twilio echoed a `mark` the bot sent: the audio queued before it has played to the caller.

    Twilio also echoes every pending mark at once when the bot sends `clear`, so a mark that
    comes back after its reply was cut proves nothing about playback.
    """

    mark: str


@dataclass
class CallerHungUpFrame(SystemFrame):
    """The caller is gone (Twilio's `stop`, or the socket closed): nothing sent now is heard."""

    reason: str
