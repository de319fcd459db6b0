"""Commitment extraction after STT: who promised what, by when.

Final transcript segments go to a queue; a task runs the extractor over a rolling window of
the last few utterances (a request and its acceptance are often two turns) and pushes a
`CommitmentFrame` per commitment, and hands each to the writer. A slow extractor never delays
frames: audio and transcripts pass straight through.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from pipecat.frames.frames import CancelFrame, EndFrame, Frame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from domain.extraction import Commitment, Utterance
from memory.models import CommitmentRecord
from processors.frames import CommitmentFrame, TranscriptSegmentFrame

log = logging.getLogger(__name__)

# Bounded: a slow or failing memory lookup leaves "for the next meeting" undated, it never
# holds up extraction.
NEXT_MEETING_LOOKUP_SECS = 2.0


def commitment_record(
    item: Commitment,
    *,
    call_id: str,
    seq: int,
    ordinal: int,
    series: str | None,
    speaker: str | None = None,
) -> CommitmentRecord:
    """What the writer stores for one extracted commitment."""
    return CommitmentRecord(
        call_id=call_id,
        seq=seq,
        ordinal=ordinal,
        kind=item.kind,
        owner=item.owner,
        action=item.action,
        due=item.due,
        quote=item.quote,
        confidence=item.confidence,
        series=series,
        speaker=speaker,
    )


class StreamingExtractor(Protocol):
    """Deterministic extractors are plain functions; LLM ones are coroutines."""

    def feed(
        self, utterance: Utterance, *, meeting_date: dt.date, next_meeting: dt.date | None = None
    ) -> list[Commitment] | Awaitable[list[Commitment]]: ...


class CommitmentExtractor(FrameProcessor):  # type: ignore[misc]
    """Runs a streaming extractor over a call's final segments, off the frame path."""

    def __init__(
        self,
        *,
        call_id: str,
        series: str | None,
        meeting_date: dt.date,
        extractor: StreamingExtractor,
        submit: Callable[[CommitmentRecord], None],
        next_meeting: Callable[[], Awaitable[dt.date | None]] | None = None,
        first_person: Callable[[str, dt.date], set[str]] | None = None,
    ) -> None:
        """`next_meeting` looks up the series' next meeting (for "for the next meeting"),
        once, in the extraction task: the call starts without waiting for it. `first_person`
        says which actions of a text its speaker commits themselves to (read by the rules):
        those of a voice not yet named keep its label, to become its person's later."""
        super().__init__()
        self._first_person = first_person
        self._call_id = call_id
        self._series = series
        self._meeting_date = meeting_date
        self._lookup_next_meeting = next_meeting
        self._next_meeting: dt.date | None = None
        self._extractor = extractor
        self._submit = submit
        self._queue: asyncio.Queue[TranscriptSegmentFrame | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.found: list[CommitmentRecord] = []
        self._unprocessed = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._task = self.create_task(self._run())
        elif isinstance(frame, TranscriptSegmentFrame):
            await self.push_frame(frame, direction)
            self._unprocessed += 1
            self._idle.clear()
            self._queue.put_nowait(frame)
        elif isinstance(frame, EndFrame):
            # Finish what was heard before the call ends, then let the end through.
            if self._task is not None:
                self._queue.put_nowait(None)
                await self._task
                self._task = None
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            if self._task is not None:
                await self.cancel_task(self._task)
                self._task = None
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def settled(self, timeout: float) -> bool:
        """Wait (at most `timeout`) until every segment heard so far has been through the
        extractor; True when it has. Memory lookups call this so that a status update said
        just before a question is part of the answer."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def _processed_one(self) -> None:
        self._unprocessed -= 1
        if self._unprocessed <= 0:
            self._unprocessed = 0
            self._idle.set()

    async def _feed(self, utterance: Utterance) -> list[Commitment]:
        feed = self._extractor.feed
        if inspect.iscoroutinefunction(feed):
            # An LLM is told how far behind the call it is (it may let the rules answer).
            llm_feed = cast(Callable[..., Awaitable[list[Commitment]]], feed)
            result: list[Commitment] = await llm_feed(
                utterance,
                meeting_date=self._meeting_date,
                next_meeting=self._next_meeting,
                backlog=self._queue.qsize(),
            )
            return result
        # A plain extractor runs in a thread: even a slow one never stalls the event loop.
        found = await asyncio.to_thread(
            feed, utterance, meeting_date=self._meeting_date, next_meeting=self._next_meeting
        )
        return found  # type: ignore[return-value]

    async def _run(self) -> None:
        if self._lookup_next_meeting is not None:
            try:
                async with asyncio.timeout(NEXT_MEETING_LOOKUP_SECS):
                    self._next_meeting = await self._lookup_next_meeting()
            except Exception as exc:  # no next meeting date: "for the next meeting" stays undated
                log.warning("call %s: the series' next meeting is unknown: %s", self._call_id, exc)
        while (segment := await self._queue.get()) is not None:
            try:
                await self._extract(segment)
            finally:
                self._processed_one()

    def _speakers_own(self, segment: TranscriptSegmentFrame) -> set[str]:
        """What an unnamed voice promised for itself: kept with its label, to become its
        person's when they are named (processors/people.py)."""
        if self._first_person is None or segment.speaker is None or segment.person is not None:
            return set()
        return self._first_person(segment.text, self._meeting_date)

    async def _extract(self, segment: TranscriptSegmentFrame) -> None:
        # A voice label (S1, S2, ...) is not a name: it never becomes an owner. Until a label
        # is bound to a person (processors/people.py), a first-person promise's owner stays
        # unknown.
        utterance = Utterance(speaker=segment.person, text=segment.text)
        try:
            found = await self._feed(utterance)
        except Exception as exc:  # one bad utterance must not stop extraction
            await self.push_error(f"commitment extraction failed: {exc}", exception=exc)
            return
        unnamed = self._speakers_own(segment) if any(i.owner is None for i in found) else set()
        for ordinal, item in enumerate(found):
            record = commitment_record(
                item,
                call_id=self._call_id,
                seq=segment.seq,
                ordinal=ordinal,
                series=self._series,
                speaker=segment.speaker if item.owner is None and item.action in unnamed else None,
            )
            self.found.append(record)
            self._submit(record)
            log.info(
                "call %s: %s %s: %s (due %s)",
                self._call_id,
                item.kind,
                item.owner,
                item.action,
                item.due,
            )
            await self.push_frame(
                CommitmentFrame(
                    kind=item.kind,
                    owner=item.owner,
                    action=item.action,
                    due=item.due,
                    quote=item.quote,
                    confidence=item.confidence,
                    seq=segment.seq,
                )
            )
