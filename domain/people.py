"""Who a voice is: one call's speaker labels (S1, S2, ...) bound to people, from evidence.

Evidence, each with a confidence:
- a self-introduction ("this is Priya", "I'm Laura, the project manager", "Tom here"): 0.9;
- an answer to a request put to someone by name ("Tom, can you get the demo ready?" asked by
  one voice, "Yes, I will" said by another: that voice is Tom): 0.75;
- the inbound caller's number, known as a person's (the first voice of the call): 0.7, the
  weakest (someone else may speak first on a speakerphone);
- a voiceprint remembered from earlier meetings of the series: the similarity of the label's
  mean voice to it, when it is at least `voiceprint_threshold` and clearly nearer than the
  next person's (`voiceprint_margin`).

A label named twice by introductions with different names (one voice for two people: a
recording, a shared phone) is never named again in the call; weaker evidence never overrides
an introduction. `person_of` answers only above `min_confidence`: unsure means None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz

from domain.extraction import NAME_PATTERN, accepts, is_name, request_addressee
from domain.speakers import Vector

INTRODUCTION = "introduction"
ANSWER = "answer"
CALLER = "caller"
VOICEPRINT = "voiceprint"
# Stronger evidence first: a binding is only replaced by evidence at least as strong.
# The caller's number is the weakest: a speakerphone or a bridge puts other voices first.
STRENGTH = {INTRODUCTION: 3, ANSWER: 2, VOICEPRINT: 1, CALLER: 0}
CONFIDENCE = {INTRODUCTION: 0.9, ANSWER: 0.75, CALLER: 0.7}

SAME_NAME_RATIO = 80  # rapidfuzz ratio: "Pria" / "Priya", not "Tom" / "Tim"
_NOT_POSSESSIVE = r"(?!['’]s\b)\b"
_INTRODUCTIONS = (
    # "this is Priya", "hi, it's Tom" near the start of a sentence
    re.compile(
        rf"(?:^|[.!?]\s+)(?:[\w',]+\s+){{0,4}}?(?i:this\s+is|it's|it\s+is)\s+(?P<name>{NAME_PATTERN}){_NOT_POSSESSIVE}"
    ),
    # "I'm Laura", "my name is Laura", "I am Laura"
    re.compile(
        rf"(?:^|[,.;!?]\s*|\b(?i:and|hi|hello|hey|morning)\s+)"
        rf"(?:I'm|I\s+am|(?i:my\s+name\s+is|my\s+name's))\s+(?P<name>{NAME_PATTERN}){_NOT_POSSESSIVE}"
    ),
    # "Tom here"
    re.compile(rf"^(?:(?i:hi|hello|hey|yes|yeah),?\s+)?(?P<name>{NAME_PATTERN})\s+(?i:here)\b"),
)


def introduced_name(text: str, *, not_names: Sequence[str] = ()) -> str | None:
    """The name a speaker gives as their own in `text`, if any ("this is Priya" -> Priya)."""
    excluded = {n.lower() for n in not_names}
    for pattern in _INTRODUCTIONS:
        match = pattern.search(text.strip())
        if match is None:
            continue
        name = match["name"]
        if is_name(name) and name.lower() not in excluded:
            return str(name)
    return None


@dataclass(frozen=True)
class Binding:
    person: str
    confidence: float
    source: str


@dataclass(frozen=True)
class KnownVoice:
    """A person's voiceprint from earlier meetings of the series (L2-normed)."""

    person: str
    voice: Vector


@dataclass
class CallPeople:
    """One call's labels -> people. Not thread-safe: one task feeds it."""

    min_confidence: float = 0.6
    voiceprint_threshold: float = 0.75
    voiceprint_margin: float = 0.05
    # The bot's names (and aliases): never a person.
    not_names: tuple[str, ...] = ()
    # Names known before the call (agent.yaml's participants, the series' people): a name
    # heard that sounds like one of them is that person, spelled as they are known.
    known_names: tuple[str, ...] = ()
    bindings: dict[str, Binding] = field(default_factory=dict)
    # Labels introduced under two names: nobody can say who they are.
    conflicted: set[str] = field(default_factory=set)
    _last: tuple[str, str] | None = None  # (label, text) of the previous segment

    def person_of(self, label: str | None) -> str | None:
        if label is None or label in self.conflicted:
            return None
        binding = self.bindings.get(label)
        if binding is None or binding.confidence < self.min_confidence:
            return None
        return binding.person

    def hear(self, label: str, text: str) -> bool:
        """Evidence in what `label` said (after the previous segment); True if its binding
        changed."""
        previous, self._last = self._last, (label, text)
        changed = False
        name = introduced_name(text, not_names=self.not_names)
        if name is not None:
            changed = self.bind(label, name, INTRODUCTION)
        if previous is not None and previous[0] != label and accepts(text):
            asked = request_addressee(previous[1])
            if asked is not None and asked.lower() not in {n.lower() for n in self.not_names}:
                changed = self.bind(label, asked, ANSWER) or changed
        return changed

    def recognise(self, label: str, voice: Vector, known: Sequence[KnownVoice]) -> bool:
        """Name `label` from the series' voiceprints when its voice is clearly one of them;
        True if its binding changed. Never overrides stronger evidence."""
        current = self.bindings.get(label)
        if current is not None and STRENGTH[current.source] > STRENGTH[VOICEPRINT]:
            return False
        scored = sorted(
            ((float(np.dot(voice, k.voice)), k.person) for k in known),
            reverse=True,
        )
        if not scored:
            return False
        best, person = scored[0]
        runner_up = next((s for s, p in scored[1:] if p.lower() != person.lower()), -1.0)
        if best < self.voiceprint_threshold or best - runner_up < self.voiceprint_margin:
            if current is not None and current.source == VOICEPRINT:
                # the voice drifted away from the print it matched
                del self.bindings[label]
                return True
            return False
        return self.bind(label, person, VOICEPRINT, confidence=min(best, 0.95))

    def canonical(self, name: str) -> str:
        """`name` as it is known: "Pria" heard, "Priya" among the known names."""
        best = max(
            self.known_names,
            key=lambda known: fuzz.ratio(known.lower(), name.lower()),
            default=None,
        )
        if best is not None and fuzz.ratio(best.lower(), name.lower()) >= SAME_NAME_RATIO:
            return best
        return name

    def bind(
        self, label: str, person: str, source: str, *, confidence: float | None = None
    ) -> bool:
        """Record evidence that `label` is `person`; True if the label's binding changed."""
        if label in self.conflicted:
            return False
        person = self.canonical(person)
        confidence = CONFIDENCE.get(source, 0.0) if confidence is None else confidence
        current = self.bindings.get(label)
        new = Binding(person, confidence, source)
        if current is None:
            self.bindings[label] = new
            return True
        if current.person.lower() == person.lower():
            if STRENGTH[source] > STRENGTH[current.source] or (
                source == current.source and confidence > current.confidence
            ):
                self.bindings[label] = Binding(current.person, confidence, source)
                return True
            return False
        if source == INTRODUCTION and current.source == INTRODUCTION:
            # One voice, two names: say nothing rather than the wrong one.
            del self.bindings[label]
            self.conflicted.add(label)
            return True
        if STRENGTH[source] > STRENGTH[current.source] or (
            source == VOICEPRINT == current.source and confidence > current.confidence
        ):
            self.bindings[label] = new
            return True
        return False

    def merge(self, gone: str, kept: str) -> bool:
        """Two labels were one voice: `gone`'s evidence goes to `kept`."""
        binding = self.bindings.pop(gone, None)
        if gone in self.conflicted:
            self.conflicted.discard(gone)
            self.conflicted.add(kept)
            self.bindings.pop(kept, None)
            return True
        if binding is None:
            return False
        if self._last is not None and self._last[0] == gone:
            self._last = (kept, self._last[1])
        return self.bind(kept, binding.person, binding.source, confidence=binding.confidence)

    def learned(self) -> dict[str, Binding]:
        """The labels whose voices may be remembered as their person's voiceprint."""
        return {
            label: binding
            for label, binding in self.bindings.items()
            if label not in self.conflicted and binding.confidence >= self.min_confidence
        }
