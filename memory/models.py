"""Plain records that travel between the pipeline, the writers and the stores."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from core import clock


@dataclass(frozen=True)
class SegmentRecord:
    """One final transcript segment of a call."""

    call_id: str
    seq: int
    start_ms: int
    end_ms: int
    text: str
    confidence: float | None = None
    speaker: str | None = None
    person: str | None = None  # who the speaker is, when known (domain/people.py)

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "seq": self.seq,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "text": self.text,
            "confidence": self.confidence,
            "speaker": self.speaker,
            "person": self.person,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentRecord:
        return cls(**data)


@dataclass(frozen=True)
class CallCreated:
    """A call's record, for a call accepted while Postgres was away (spooled, written later)."""

    call_id: str
    direction: str
    status: str
    meeting_date: dt.date
    time_zone: str
    call_sid: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    series_key: str | None = None
    created_at: dt.datetime = field(default_factory=clock.now)

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "direction": self.direction,
            "status": self.status,
            "meeting_date": self.meeting_date.isoformat(),
            "time_zone": self.time_zone,
            "call_sid": self.call_sid,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "series_key": self.series_key,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallCreated:
        return cls(
            **{
                **data,
                "meeting_date": dt.date.fromisoformat(data["meeting_date"]),
                "created_at": dt.datetime.fromisoformat(data["created_at"]),
            }
        )


@dataclass(frozen=True)
class StreamStarted:
    """A call's stream began while Postgres was away: what `Store.start_stream` records."""

    call_id: str
    stream_sid: str
    call_sid: str | None = None
    series_key: str | None = None
    meeting_title: str | None = None
    started_at: dt.datetime = field(default_factory=clock.now)

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "stream_sid": self.stream_sid,
            "call_sid": self.call_sid,
            "series_key": self.series_key,
            "meeting_title": self.meeting_title,
            "started_at": self.started_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamStarted:
        return cls(**{**data, "started_at": dt.datetime.fromisoformat(data["started_at"])})


@dataclass(frozen=True)
class CallEnded:
    """A call's end: written after all of its segments, so `completed` means complete.

    `ended_by` says what ended it when that was not the call itself (Twilio's `stop`): 'crash'
    for a call a dead process left open, 'disconnect' for a socket gone without `stop`,
    'idle-timeout' for a call nobody spoke in, 'bad-start' / 'media-format' for a stream
    refused at its `start`, 'error' for a failed pipeline, 'time-limit' for a call hung up at
    CONVENE_MAX_CALL_MINUTES (kept by its own `stop`, see Store.mark_time_limited). Such an end only closes a call that
    is still open (never overwrites one).
    """

    call_id: str
    status: str = "completed"
    ended_at: dt.datetime = field(default_factory=clock.now)
    ended_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "status": self.status,
            "ended_at": self.ended_at.isoformat(),
            "ended_by": self.ended_by,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallEnded:
        return cls(
            call_id=data["call_id"],
            status=data["status"],
            ended_at=dt.datetime.fromisoformat(data["ended_at"]),
            ended_by=data.get("ended_by"),  # absent in ops spooled by older versions
        )


@dataclass(frozen=True)
class CommitmentRecord:
    """A commitment, status update or cancellation heard in a call (extractor output)."""

    call_id: str
    seq: int
    ordinal: int
    kind: str  # "commitment" | "status_done" | "cancel"
    owner: str | None
    action: str
    due: dt.date | None
    quote: str
    confidence: float
    series: str | None = None
    # The voice label that said a first-person promise whose owner is not known yet: it
    # becomes the label's person when they are named later in the call (`SpeakerBound`).
    speaker: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "series": self.series,
            "speaker": self.speaker,
            "seq": self.seq,
            "ordinal": self.ordinal,
            "kind": self.kind,
            "owner": self.owner,
            "action": self.action,
            "due": self.due.isoformat() if self.due else None,
            "quote": self.quote,
            "confidence": self.confidence,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommitmentRecord:
        due = dt.date.fromisoformat(data["due"]) if data.get("due") else None
        return cls(**{**data, "due": due})

    def public(self) -> dict[str, Any]:
        """The `{owner, action, due, quote, confidence}` shape of the CLI and API."""
        return {
            "owner": self.owner,
            "action": self.action,
            "due": self.due.isoformat() if self.due else None,
            "quote": self.quote,
            "confidence": round(self.confidence, 3),
            "kind": self.kind,
        }


@dataclass(frozen=True)
class ReplyRecord:
    """A question put to the bot and its spoken answer, with timings on the call's audio clock.

    As the caller got it: `audio_ms` is the audio sent on the socket, `audio_played_ms` the part
    Twilio confirmed played (marks; a lower bound), `t_first_audio_ms` is None when nothing was
    sent. `interrupted`: it did not play to its end (barge-in, "stop", hang-up); `hung_up`: the
    caller was gone before it had.
    """

    call_id: str
    ordinal: int
    intent: str
    question: str
    answer: str
    t_question_end_ms: int
    t_first_audio_ms: int | None
    audio_ms: int
    interrupted: bool = False
    hung_up: bool = False
    audio_played_ms: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "ordinal": self.ordinal,
            "intent": self.intent,
            "question": self.question,
            "answer": self.answer,
            "t_question_end_ms": self.t_question_end_ms,
            "t_first_audio_ms": self.t_first_audio_ms,
            "audio_ms": self.audio_ms,
            "interrupted": self.interrupted,
            "hung_up": self.hung_up,
            "audio_played_ms": self.audio_played_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplyRecord:
        return cls(**data)


@dataclass(frozen=True)
class SummaryRecord:
    """A call's summary: stored on the call and embedded (long-term memory, for recall)."""

    call_id: str
    series: str | None
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "series": self.series, "text": self.text}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SummaryRecord:
        return cls(**data)


@dataclass(frozen=True)
class SpeakersMerged:
    """Two of a call's speaker labels turned out to be one voice: its segments labelled `gone`
    are relabelled `kept` (processors/speakers.py)."""

    call_id: str
    gone: str
    kept: str

    def as_json(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "gone": self.gone, "kept": self.kept}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpeakersMerged:
        return cls(**data)


@dataclass(frozen=True)
class SpeakerBound:
    """One of a call's speaker labels is (now) `person`, on this evidence (domain/people.py):
    the person is recorded in the call's series, with `phone` when the evidence was the
    caller's number, and the label's segments say who spoke. `person` None: nobody can say
    any more (the label's segments lose their person)."""

    call_id: str
    label: str
    person: str | None
    confidence: float
    source: str
    phone: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "label": self.label,
            "person": self.person,
            "confidence": self.confidence,
            "source": self.source,
            "phone": self.phone,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpeakerBound:
        return cls(**data)


@dataclass(frozen=True)
class VoiceprintLearned:
    """A person's voice as heard in a call (the mean of their segments' voice vectors,
    L2-normed, from `secs` of speech): folded into their voiceprint in the call's series."""

    call_id: str
    person: str
    voice: tuple[float, ...]
    secs: float

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "person": self.person,
            "voice": list(self.voice),
            "secs": self.secs,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VoiceprintLearned:
        return cls(**{**data, "voice": tuple(data["voice"])})


WriteOp = (
    SegmentRecord
    | CommitmentRecord
    | ReplyRecord
    | SummaryRecord
    | SpeakersMerged
    | SpeakerBound
    | VoiceprintLearned
    | CallEnded
    | CallCreated
    | StreamStarted
)


@dataclass(frozen=True)
class TaskChange:
    """One entry of a task's history: what a meeting changed, and the words that did it."""

    change: str  # created | redated | restated | done | cancelled
    from_status: str | None
    to_status: str
    from_due: dt.date | None
    to_due: dt.date | None
    quote: str
    call_id: str | None
    seq: int | None
    meeting_date: dt.date | None
    at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "from_due": _iso(self.from_due),
            "to_due": _iso(self.to_due),
            "quote": self.quote,
            "call_id": self.call_id,
            "seq": self.seq,
            "meeting_date": _iso(self.meeting_date),
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class TaskState:
    """A task of a series as memory holds it now (dates as dates), with its history when
    asked for."""

    id: int
    owner: str | None
    action: str
    due: dt.date | None
    status: str
    created_in: dt.date | None  # the meeting that created it
    updated_in: dt.date | None  # the meeting that last changed it
    history: tuple[TaskChange, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The REST API's and `convene tasks --json`'s shape (dates as ISO strings)."""
        return {
            "id": self.id,
            "owner": self.owner,
            "action": self.action,
            "due": _iso(self.due),
            "status": self.status,
            "created_in": _iso(self.created_in),
            "updated_in": _iso(self.updated_in),
            "history": [h.as_json() for h in self.history],
        }


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None
