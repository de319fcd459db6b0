"""Names the voices: sets `person` on each `TranscriptSegmentFrame` whose speaker label is
known to be someone (domain/people.py weighs the evidence).

Sits after the `SpeakerLabeler` (it reads the call's speakers, the labeler's `CallSpeakers`)
and before the transcript recorder and the commitment extractor, so a segment is stored with
its person and a first-person promise gets its owner. At the start of the call it loads, in a
task, what memory knows: the series' voiceprints and, for an inbound call, the person whose
number is calling. A segment waits for that load at most `LOAD_WAIT_SECS`; nothing else ever
waits. Each change of a label's person is submitted (`SpeakerBound`: the label's segments
already stored get it too); at the end of the call the voices of the people named are
submitted to be remembered (`VoiceprintLearned`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import CancelFrame, EndFrame, Frame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from domain.people import CALLER, INTRODUCTION, CallPeople, KnownVoice
from domain.speakers import CallSpeakers
from memory.models import SpeakerBound, VoiceprintLearned, WriteOp
from processors.frames import TranscriptSegmentFrame

log = logging.getLogger(__name__)
LOAD_WAIT_SECS = 2.0


@dataclass(frozen=True)
class KnownPeople:
    """What memory knows before the call: voiceprints, and for an inbound call its number and
    the person it belongs to (if any)."""

    voices: list[KnownVoice] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the series' people
    caller: str | None = None
    number: str | None = None


class PersonBinder(FrameProcessor):  # type: ignore[misc]
    """Sets `person` on transcript segments from their speaker label (see module doc)."""

    def __init__(
        self,
        *,
        people: CallPeople,
        speakers: CallSpeakers,
        call_id: str,
        submit: Callable[[WriteOp], None],
        known: Callable[[], Coroutine[Any, Any, KnownPeople]] | None = None,
        learn: bool = True,
        learn_min_secs: float = 2.0,
    ) -> None:
        super().__init__()
        self.people = people
        self._speakers = speakers
        self._call_id = call_id
        self._submit = submit
        self._known_loader = known
        self._loading: asyncio.Task[KnownPeople] | None = None
        self._known = KnownPeople()
        self._learn = learn
        self._learn_min_secs = learn_min_secs
        self._merges_seen = 0
        self._first_label: str | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._known_loader is not None:
            self._loading = self.create_task(self._load(self._known_loader), "people-known")
        elif isinstance(frame, TranscriptSegmentFrame) and frame.speaker:
            await self._loaded()
            self._name_person(frame)
        elif isinstance(frame, EndFrame):
            self._remember_caller()
            self._remember_voices()
        elif isinstance(frame, CancelFrame) and self._loading is not None:
            await self.cancel_task(self._loading)
        await self.push_frame(frame, direction)

    async def _load(self, loader: Callable[[], Coroutine[Any, Any, KnownPeople]]) -> KnownPeople:
        """What memory knows; nothing (voices go unnamed, nothing else changes) when memory is
        away. Caught here: a task's exception does not reach whoever awaits it."""
        try:
            return await loader()
        except Exception as exc:
            log.warning("people: could not load the series' voiceprints (%s)", type(exc).__name__)
            return KnownPeople()

    async def _loaded(self) -> None:
        loading = self._loading
        if loading is None:
            return
        try:
            async with asyncio.timeout(LOAD_WAIT_SECS):
                known = await asyncio.shield(loading)
        except TimeoutError:
            return  # not yet: this segment goes on with what is known
        if isinstance(known, KnownPeople):  # None if the task was cancelled
            self._known = known
            self.people.known_names = (*self.people.known_names, *known.names)
        self._loading = None

    def _name_person(self, frame: TranscriptSegmentFrame) -> None:
        assert frame.speaker is not None
        changed: set[str] = set()
        for gone, kept in list(self._speakers.merged.items())[self._merges_seen :]:
            kept = self._speakers.label_of(kept)
            if self.people.merge(gone, kept):
                changed.add(kept)
        self._merges_seen = len(self._speakers.merged)
        label = self._speakers.label_of(frame.speaker)
        if self._first_label is None:
            self._first_label = label
            if self._known.caller is not None and self.people.bind(
                label, self._known.caller, CALLER
            ):
                changed.add(label)
        if self.people.hear(label, frame.text):
            changed.add(label)
        heard = self._speakers.voice_of(label)
        if (
            heard is not None
            and self._known.voices
            and self.people.recognise(label, heard[0], self._known.voices)
        ):
            changed.add(label)
        frame.person = self.people.person_of(label)
        for each in sorted(changed):
            self._bound(each)

    def _bound(self, label: str, *, phone: str | None = None) -> None:
        binding = self.people.bindings.get(label)
        person = self.people.person_of(label)
        log.info(
            "call %s: %s is %s (%s, %.2f)",
            self._call_id,
            label,
            person or "nobody known",
            binding.source if binding else "conflicting evidence",
            binding.confidence if binding else 0.0,
        )
        self._submit(
            SpeakerBound(
                call_id=self._call_id,
                label=label,
                person=person,
                confidence=binding.confidence if binding else 0.0,
                source=binding.source if binding else "conflict",
                phone=phone,
            )
        )

    def _remember_caller(self) -> None:
        """An unknown number, one voice all call long, and it said who it is: the number is
        theirs (a call with several voices may come from a bridge or a speakerphone)."""
        if self._known.number is None or self._known.caller is not None:
            return
        if len(self._speakers.speakers) != 1:
            return
        label = self._speakers.speakers[0].label
        binding = self.people.bindings.get(label)
        if binding is not None and binding.source == INTRODUCTION and self.people.person_of(label):
            self._bound(label, phone=self._known.number)

    def _remember_voices(self) -> None:
        if not self._learn:
            return
        for label, binding in self.people.learned().items():
            heard = self._speakers.voice_of(label)
            if heard is None or heard[1] < self._learn_min_secs:
                continue
            voice, secs = heard
            self._submit(
                VoiceprintLearned(
                    call_id=self._call_id,
                    person=binding.person,
                    voice=tuple(float(x) for x in voice),
                    secs=secs,
                )
            )
