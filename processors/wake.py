"""The addressing gate: is this utterance spoken *to* the bot, and what does it ask for?

The bot's name (and what speech recognition hears instead, from prompts/agent.yaml) must stand
at the start or the end of the utterance ("Convene, give me a progress report", "what's open,
Convene?"), matched exactly, phonetically (metaphone) or fuzzily (Jaro-Winkler). A name in
passing ("I told Convene's team…") does not count. Right after the bot spoke, a follow-up
needs no name. Everything else passes through and the bot stays silent.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import jellyfish
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import (
    AddressedFrame,
    EarlyTranscriptFrame,
    SpeechPausedFrame,
    SpeechResumedFrame,
    TranscriptSegmentFrame,
    TurnJudgedFrame,
)

_TOKEN = re.compile(r"[a-z0-9']+")
_LEAD_FILLERS = frozenset(
    {"hey", "hi", "ok", "okay", "so", "um", "uh", "and", "well", "yo", "alright"}
)
_TRAIL_FILLERS = frozenset({"please", "thanks", "thank", "you"})
FOLLOW_UP_SECS = 8.0

_INTENTS: list[tuple[str, re.Pattern[str]]] = [
    (
        "stop",
        re.compile(
            r"^(stop|that's all|thats all|that is all|be quiet|never ?mind|enough|shut up|thanks?( you)?)\b"
        ),
    ),
    (
        "person_tasks",
        re.compile(
            r"\bwhat (is|are|was|has|does) (?P<person>[a-z]+)('s)? (working on|doing|got|have|on the hook|owe)|\b(?P<person2>[a-z]+)'s (tasks|action items|to-?dos)\b"
        ),
    ),
    (
        "today",
        re.compile(
            r"\b(decided|decide|promised|agreed|action items?)\b.*\b(today|this meeting|so far)\b|\bwhat did we (decide|agree)\b"
        ),
    ),
    (
        "recall",
        re.compile(
            r"\bwhat did (we|you|they|i) (say|said|discuss|talk) about (?P<topic>.+)|\bremind (me|us) (about|of) (?P<topic2>.+)"
        ),
    ),
    (
        "progress_report",
        re.compile(
            r"\b(progress|status|report|update|where are we|what's open|whats open|open items|recap|summary)\b"
        ),
    ),
]
_NOT_PEOPLE = frozenset({"everyone", "everybody", "the", "this", "that", "it", "we", "team"})


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Addressing:
    """What an addressed utterance asks for."""

    intent: str  # progress_report | person_tasks | today | recall | stop | unknown
    question: str  # the utterance without the bot's name
    person: str | None = None
    topic: str | None = None


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class NameMatcher:
    """Matches the bot's name as heard by speech recognition."""

    def __init__(self, name: str, aliases: list[str] | tuple[str, ...] = ()) -> None:
        self.forms = {" ".join(_tokens(n)) for n in (name, *aliases) if _tokens(n)}
        self._codes = {jellyfish.metaphone(f.replace(" ", "")) for f in self.forms}
        self._max_words = max(len(f.split()) for f in self.forms)

    def is_name(self, candidate: str) -> bool:
        if candidate in self.forms:
            return True
        if candidate.endswith("'s"):  # "Convene's team": the name in passing
            return False
        joined = candidate.replace(" ", "")
        if jellyfish.metaphone(joined) in self._codes and len(joined) >= 4:
            return True
        return any(
            jellyfish.jaro_winkler_similarity(joined, form.replace(" ", "")) >= 0.92
            and abs(len(joined) - len(form.replace(" ", ""))) <= 2
            for form in self.forms
        )

    def strip(self, tokens: list[str]) -> list[str] | None:
        """The tokens without a leading or trailing name, or None when no name stands there."""
        start = 0
        while start < len(tokens) and tokens[start] in _LEAD_FILLERS:
            start += 1
        for width in range(self._max_words, 0, -1):
            head = tokens[start : start + width]
            if len(head) == width and self.is_name(" ".join(head)):
                return tokens[start + width :]
        end = len(tokens)
        while end > 0 and tokens[end - 1] in _TRAIL_FILLERS:
            end -= 1
        for width in range(self._max_words, 0, -1):
            tail = tokens[max(0, end - width) : end]
            if len(tail) == width and end - width > 0 and self.is_name(" ".join(tail)):
                return tokens[: end - width]
        return None


def classify(question: str) -> Addressing:
    text = question.lower().strip()
    for intent, pattern in _INTENTS:
        match = pattern.search(text)
        if not match:
            continue
        groups = {k: v for k, v in match.groupdict().items() if v}
        person = groups.get("person") or groups.get("person2")
        if intent == "person_tasks" and (person is None or person in _NOT_PEOPLE):
            continue
        topic = groups.get("topic") or groups.get("topic2")
        return Addressing(
            intent=intent,
            question=question,
            person=person.capitalize() if person else None,
            topic=topic.strip(" ?.!") if topic else None,
        )
    return Addressing(intent="unknown", question=question)


class WakeMatcher:
    """Decides whether an utterance is addressed to the bot, and classifies it."""

    def __init__(self, name: str, aliases: list[str] | tuple[str, ...] = ()) -> None:
        self.names = NameMatcher(name, aliases)

    def match(self, text: str, *, follow_up: bool = False) -> Addressing | None:
        tokens = _tokens(text)
        if not tokens:
            return None
        rest = self.names.strip(tokens)
        if rest is not None and rest:
            return classify(" ".join(rest))
        if follow_up:
            found = classify(" ".join(tokens))
            return found if found.intent != "unknown" else None
        return None


class WakeGate(FrameProcessor):  # type: ignore[misc]
    """Pushes an `AddressedFrame` after each transcript spoken to the bot; passes all frames.

    With `answer_early`, a speculative `EarlyTranscriptFrame` (the turn so far, transcribed
    during a pause) that is addressed to the bot with a known intent is answered at once; the final transcript of
    that same turn is then not answered again. If the speaker went on instead, the final
    transcript differs and is judged on its own (barge-in has already cut the early answer).

    With `judged` (a turn analyzer runs at pauses, `turn.analyzer`), an early transcript is
    answered only once the pause's `TurnJudgedFrame` says the turn is complete, whichever of
    the two comes first; a turn judged incomplete is answered from its final transcript.
    """

    def __init__(
        self,
        matcher: WakeMatcher,
        *,
        follow_up_secs: float = FOLLOW_UP_SECS,
        answer_early: bool = True,
        judged: bool = False,
    ) -> None:
        super().__init__()
        self._judged = judged
        # This pause's verdict (None: not yet) and its early transcript awaiting one.
        self._verdict: bool | None = None
        self._held: EarlyTranscriptFrame | None = None
        self._matcher = matcher
        self._follow_up_secs = follow_up_secs
        self._answer_early = answer_early
        self._bot_speaking = False
        # The call's audio clock: ms of caller audio heard so far. The follow-up window is
        # measured on it (against the utterance's own start), so a call streamed at --speed 0
        # and one in real time judge the same words the same way.
        self._heard_ms = 0.0
        self._bot_started_ms = 0.0
        self._bot_started_mono = 0.0
        self._bot_stopped_ms: float | None = None
        self._answered_early: str | None = None
        self.early_answers = 0
        self.early_cancelled = 0
        self.early_held_back = 0  # early transcripts not answered: the turn sounded unfinished
        self.early_unknown = 0  # nor those that ask for nothing known: the turn's end decides

    def _in_follow_up(self, start_ms: int) -> bool:
        """Said while the bot spoke, or within `follow_up_secs` of the end of its speech."""
        if self._bot_speaking:
            return True
        if self._bot_stopped_ms is None:
            return False
        return start_ms - self._bot_stopped_ms < self._follow_up_secs * 1000

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self._heard_ms += 1000 * len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            self._bot_started_ms = self._heard_ms
            self._bot_started_mono = time.monotonic()
        elif isinstance(frame, BotStoppedSpeakingFrame) and self._bot_speaking:
            self._bot_speaking = False
            # The output transport plays the reply at its real pace whatever the input's pace,
            # so its length is how long it played; on the audio clock it ends that much after
            # it started.
            spoken_ms = 1000 * (time.monotonic() - self._bot_started_mono)
            self._bot_stopped_ms = self._bot_started_ms + spoken_ms
        await self.push_frame(frame, direction)
        if isinstance(frame, SpeechPausedFrame | SpeechResumedFrame):
            self._verdict, self._held = None, None
        if isinstance(frame, SpeechResumedFrame) and self._answered_early is not None:
            # The asker was not done: the early answer (speaking or still being prepared) is
            # cut, and the whole turn is judged when it really ends.
            log.info("wake: the asker went on; cutting the early answer")
            self._answered_early = None
            self.early_cancelled += 1
            await self.broadcast_interruption()  # type: ignore[no-untyped-call]
        elif isinstance(frame, TurnJudgedFrame):
            self._verdict = frame.complete
            held, self._held = self._held, None
            if held is not None:
                await self._early(held)
        elif isinstance(frame, EarlyTranscriptFrame) and self._answer_early:
            if self._judged and self._verdict is None:
                self._held = frame  # answered (or not) when the verdict comes
            else:
                await self._early(frame)
        elif isinstance(frame, TranscriptSegmentFrame):
            self._verdict, self._held = None, None
            early, self._answered_early = self._answered_early, None
            if early is not None and early in (frame.text, frame.early):
                return  # this turn was answered from its early transcript already
            found = self._matcher.match(frame.text, follow_up=self._in_follow_up(frame.start_ms))
            if found is not None:
                await self._addressed(found, seq=frame.seq, end_ms=frame.end_ms)

    async def _early(self, frame: EarlyTranscriptFrame) -> None:
        """Answer an early transcript addressed to the bot (if its turn is not judged unfinished)."""
        found = self._matcher.match(frame.text, follow_up=self._in_follow_up(frame.start_ms))
        log.debug("wake: early transcript: intent=%s", found and found.intent)
        if found is None:
            return
        if found.intent == "unknown":
            # The name and words no intent knows: most often a question cut at its first
            # pause ("Convene, what ..."), which sounds like a finished turn. Its end decides.
            self.early_unknown += 1
            return
        if self._judged and not self._verdict:
            self.early_held_back += 1
            log.debug("wake: the turn sounds unfinished; waiting for its end")
            return
        self._answered_early = frame.text
        self.early_answers += 1
        await self._addressed(found, seq=-1, end_ms=frame.end_ms)

    async def _addressed(self, found: Addressing, *, seq: int, end_ms: int) -> None:
        await self.push_frame(
            AddressedFrame(
                intent=found.intent,
                question=found.question,
                person=found.person,
                topic=found.topic,
                seq=seq,
                end_ms=end_ms,
            )
        )
