"""Deterministic, offline commitment extraction: who promised what, by when.

Finds first-person promises ("I'll", "I will", "I'm going to", "let me", "action item for me"),
requests accepted by the addressee in a following turn ("Tom, can you …?" / "Yes, I'll have it
ready"), assignments ("Ken will …", "Priya is going to …"), status updates ("the demo is
ready", "I finished the migration") and cancellations ("we're dropping the logo work"). Rejects
past tense, questions and hypotheticals, refusals and reported speech. The action is a short
imperative phrase; the due date is resolved against the meeting date.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from processors.dates import find_due_phrases


@dataclass(frozen=True)
class Utterance:
    speaker: str | None
    text: str


@dataclass(frozen=True)
class Commitment:
    owner: str | None
    action: str
    due: dt.date | None
    quote: str
    confidence: float
    kind: str = "commitment"  # "commitment" | "status_done" | "cancel"


def parse_transcript_lines(lines: Iterable[str]) -> list[Utterance]:
    """`Speaker: text` per line (speaker optional); blank lines skipped."""
    out: list[Utterance] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        match = _SPEAKER.match(line)
        if match:
            out.append(Utterance(speaker=match["speaker"].strip(), text=match["text"].strip()))
        else:
            out.append(Utterance(speaker=None, text=line))
    return out


_SPEAKER = re.compile(r"^(?P<speaker>[A-Z][\w.'-]*(?: [A-Z][\w.'-]*){0,2}):\s*(?P<text>.+)$")
_SENTENCES = re.compile(
    r"(?<=[.!?])\s+|\s*;\s*|,?\s+and\s+(?=(?:i'll|i will|i'm going to|i am going to)\b)",
    re.IGNORECASE,
)
_FILLERS = re.compile(
    r"\b(?:um+|uh+|er+|you know|i mean|basically|actually|like,|kind of|sort of|honestly|"
    r"definitely|probably|hopefully|just|totally|really)\b,?\s*",
    re.IGNORECASE,
)
_NOT_NAMES = frozenset(
    [
        "i",
        "we",
        "you",
        "he",
        "she",
        "they",
        "it",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "the",
        "a",
        "an",
        "everyone",
        "everybody",
        "someone",
        "somebody",
        "nobody",
        "team",
        "so",
        "and",
        "but",
        "okay",
        "ok",
        "yes",
        "yeah",
        "no",
        "well",
        "also",
        "then",
        "maybe",
    ]
)

_QUESTION_START = re.compile(
    r"^(?:should|shall|could|would|can|do|does|did|is|are|was|were|what|why|how|when|where|who|"
    r"which|will|have|has)\b",
    re.IGNORECASE,
)
_HYPOTHETICAL = re.compile(
    r"\b(?:maybe|might|perhaps|if (?:we|i|you|there)|someday|some day|at some point|"
    r"would be nice|could (?:look|try|do|maybe)|i'd like to|we should|i wish|in theory|"
    r"one day|eventually)\b",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:can't|cannot|can not|won't|will not|not able|unable|no time|don't have (?:the )?time|"
    r"not going to|i'm not gonna|pass on|decline|no bandwidth|not me)\b",
    re.IGNORECASE,
)
_REPORTED = re.compile(
    r"\b(?:said|says|mentioned|told (?:me|us|him|her)|promised|claimed|apparently)\b(?: that)?\s+"
    r"(?:he|she|they|it|\w+)\b",
    re.IGNORECASE,
)
_PAST = re.compile(
    r"\b(?:last (?:week|month|time|night|friday|monday|tuesday|wednesday|thursday)|yesterday|"
    r"already|earlier today|ago)\b",
    re.IGNORECASE,
)
_FIRST_PERSON = re.compile(
    r"\b(?:i'll|i will|i shall|i'm going to|i am going to|i'm gonna|i am gonna|let me|"
    r"i can take|i'll take|i will take|i'm on it|i can do|i'll make sure to|i will make sure to|"
    r"i'll make sure|i commit to|action item for me(?: is)?(?: to)?:?|i'll try to|i will try to|"
    r"i can get|i can have)\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_ASSIGNMENT = re.compile(
    r"(?:^|[,;]\s*|\band\s+)(?P<name>[A-Z][a-z]+)(?: will|'ll| is going to|'s going to| is gonna|"
    r"'s gonna| is taking| takes| has the action(?: item)? to)\s+(?P<rest>.+)$"
)
_REQUEST = re.compile(
    r"^(?:(?:so|okay|ok|and|hey),?\s+)?(?P<name>[A-Z][a-z]+),?\s+(?:can|could|would|will) you\s+"
    r"(?:please\s+)?(?P<rest>.+?)\??$"
    r"|^(?:[Cc]an|[Cc]ould|[Ww]ould|[Ww]ill) you\s+(?:please\s+)?(?P<rest2>.+?),\s*(?P<name2>[A-Z][a-z]+)\??$"
    r"|^(?P<name3>[A-Z][a-z]+),\s+please\s+(?P<rest3>.+?)[.!]?$"
)
_ACCEPT = re.compile(
    r"^(?:yes|yeah|yep|yup|sure|ok|okay|absolutely|of course|will do|on it|no problem|"
    r"sounds good|definitely|i can|i will|i'll|can do|consider it done|got it|happy to|for sure)\b",
    re.IGNORECASE,
)
_CANCEL = re.compile(
    r"\b(?:we're|we are|let's|let us|we'll|we will|i'm|i am)\s+(?:be\s+)?(?:going to\s+)?"
    r"(?:dropping|drop|cancel|cancelling|canceling|scrap|scrapping|kill|killing|shelve|shelving|"
    r"stop working on|deprioritiz\w+|park|parking)\s+(?P<rest>.+)$"
    r"|^(?P<subject>.+?)\s+(?:is|are)\s+(?:cancel+ed|off the table|dropped|scrapped|no longer needed)\b",
    re.IGNORECASE,
)
_DONE_SUBJECT = re.compile(
    r"^(?:(?:so|okay|ok|quick update|update|good news|and|also|well),?\s+)*(?P<subject>.+?)\s+"
    r"(?:is|are|'s)\s+(?:now\s+|finally\s+|all\s+|fully\s+)?"
    r"(?:done|ready|finished|complete|completed|live|merged|shipped|deployed|sorted|fixed|"
    r"out|sent|up and running)\b",
    re.IGNORECASE,
)
_DONE_FIRST = re.compile(
    r"\b(?:i|we)(?:'ve| have)?\s+(?:just\s+|already\s+|finally\s+)?"
    r"(?P<verb>finished|completed|sent|shipped|merged|deployed|fixed|wrapped up|submitted|"
    r"closed|delivered|published|done)\s+(?P<rest>.+)$",
    re.IGNORECASE,
)
_HISTORY = re.compile(
    r"\b(?:last (?:week|month|year|quarter|time)|ago|back then|in the past|used to)\b",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"\b(?:not|isn't|aren't|n't|never|no longer|hasn't|haven't)\b", re.IGNORECASE)
_HAVE_READY = re.compile(
    r"^have (?P<obj>.+?) (?P<adj>ready|done|finished|sorted|fixed)\b", re.IGNORECASE
)
_TRAILING = re.compile(
    r"[\s,]*(?:okay|ok|right|alright|then|as well|too|for you|for everyone|for us|"
    r"if that works|if that's okay|no problem|first thing)?[\s,.!?]*$",
    re.IGNORECASE,
)
_PRONOUN_OBJECT = re.compile(r"^\w+ (?:it|that|this|them)\b", re.IGNORECASE)
_SUBJECT_PRONOUNS = re.compile(r"^(?:the|our|my|your|their|his|her)\s+", re.IGNORECASE)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCES.split(text) if s and s.strip()]


def _clean_action(rest: str, *, meeting_date: dt.date) -> str:
    text = rest
    phrases = find_due_phrases(text, meeting_date=meeting_date)
    if phrases:
        # Correction or not, the action ends where the first due phrase starts.
        text = text[: phrases[0][2]]
    text = _FILLERS.sub("", text)
    text = re.sub(r"\s+", " ", text).strip(" ,.;:!?-")
    text = _TRAILING.sub("", text).strip(" ,.;:!?-")
    text = re.sub(
        r"^(?:to|also|then|go ahead and|get started on)\s+", "", text, flags=re.IGNORECASE
    )
    ready = _HAVE_READY.match(text)
    if ready:
        text = f"get {ready['obj']} {ready['adj']}"
    words = text.split()
    return " ".join(words[:14])


def _due(text: str, meeting_date: dt.date) -> dt.date | None:
    found = find_due_phrases(text, meeting_date=meeting_date)
    return found[-1][1] if found else None


def _is_owner_name(name: str | None, bot_names: tuple[str, ...]) -> bool:
    return bool(name) and name.lower() not in _NOT_NAMES and name.lower() not in bot_names  # type: ignore[union-attr]


@dataclass
class _Request:
    addressee: str
    action: str
    due: dt.date | None
    quote: str
    speaker: str | None
    age: int = 0


class DeterministicExtractor:
    """Rule-based extractor. `extract` for a whole transcript, `feed` for a live call."""

    def __init__(self, *, window: int = 4, bot_names: tuple[str, ...] = ("convene",)) -> None:
        self.window = window
        self.bot_names = tuple(n.lower() for n in bot_names)
        self._recent: deque[Utterance] = deque(maxlen=window)
        self._requests: list[_Request] = []

    def reset(self) -> None:
        self._recent.clear()
        self._requests.clear()

    def extract(
        self, utterances: Sequence[Utterance], *, meeting_date: dt.date
    ) -> list[Commitment]:
        self.reset()
        found: list[Commitment] = []
        for utterance in utterances:
            found.extend(self.feed(utterance, meeting_date=meeting_date))
        self.reset()
        return found

    def feed(self, utterance: Utterance, *, meeting_date: dt.date) -> list[Commitment]:
        found: list[Commitment] = []
        for request in self._requests:
            request.age += 1
        self._requests = [r for r in self._requests if r.age < self.window]
        sentences = _sentences(utterance.text)
        for index, sentence in enumerate(sentences):
            first = index == 0
            found.extend(
                self._sentence(sentence, utterance, first=first, meeting_date=meeting_date)
            )
        self._recent.append(utterance)
        return found

    def _sentence(
        self, sentence: str, utterance: Utterance, *, first: bool, meeting_date: dt.date
    ) -> list[Commitment]:
        speaker = utterance.speaker if _is_owner_name(utterance.speaker, self.bot_names) else None
        request = _REQUEST.match(sentence)
        if request:
            name = request["name"] or request["name2"] or request["name3"]
            rest = request["rest"] or request["rest2"] or request["rest3"]
            if _is_owner_name(name, self.bot_names) and not _HYPOTHETICAL.search(rest):
                self._requests.append(
                    _Request(
                        addressee=name,
                        action=_clean_action(rest, meeting_date=meeting_date),
                        due=_due(rest, meeting_date),
                        quote=sentence,
                        speaker=utterance.speaker,
                    )
                )
            return []
        if first and self._requests:
            accepted = self._acceptance(sentence, utterance, meeting_date=meeting_date)
            if accepted is not None:
                return [accepted]
        lowered = sentence.lower()
        if sentence.rstrip().endswith("?") or _QUESTION_START.match(lowered):
            return []
        if _REPORTED.search(sentence) or _HYPOTHETICAL.search(sentence):
            return []
        cancel = _CANCEL.search(sentence)
        if cancel:
            target = cancel["rest"] or cancel["subject"]
            action = _SUBJECT_PRONOUNS.sub("", _clean_action(target, meeting_date=meeting_date))
            if action:
                return [Commitment(speaker, action, None, sentence, 0.8, "cancel")]
        promise = _FIRST_PERSON.search(sentence)
        if promise and not _REFUSAL.search(sentence) and not _PAST.search(sentence):
            action = _clean_action(promise["rest"], meeting_date=meeting_date)
            if (
                action
                and len(action.split()) >= 2
                or (action and not _PRONOUN_OBJECT.match(action))
            ):
                confidence = 0.9 if not re.search(r"\b(?:try|probably)\b", lowered) else 0.6
                # "send it to legal": the whole utterance says what "it" is.
                quote = utterance.text if _PRONOUN_OBJECT.match(action) else sentence
                return [
                    Commitment(speaker, action, _due(sentence, meeting_date), quote, confidence)
                ]
        assignment = _ASSIGNMENT.search(sentence)
        if assignment and not _REFUSAL.search(sentence) and not _PAST.search(sentence):
            name = assignment["name"]
            if _is_owner_name(name, self.bot_names):
                action = _clean_action(assignment["rest"], meeting_date=meeting_date)
                if action:
                    return [Commitment(name, action, _due(sentence, meeting_date), sentence, 0.85)]
        return self._status(sentence, speaker)

    def _acceptance(
        self, sentence: str, utterance: Utterance, *, meeting_date: dt.date
    ) -> Commitment | None:
        if not _ACCEPT.match(sentence) or _REFUSAL.search(sentence):
            if _REFUSAL.search(sentence) and self._requests:
                self._requests.pop()  # declined: the request is settled, no commitment
            return None
        request = self._requests[-1]
        if utterance.speaker is not None and utterance.speaker == request.speaker:
            return None  # the asker talking on, not the addressee answering
        self._requests.pop()
        own = _FIRST_PERSON.search(sentence)
        action = request.action
        if own:
            candidate = _clean_action(own["rest"], meeting_date=meeting_date)
            if candidate and not _PRONOUN_OBJECT.match(candidate) and len(candidate.split()) >= 3:
                action = candidate
        due = _due(sentence, meeting_date) or request.due
        quote = f"{request.quote} / {sentence}"
        return Commitment(request.addressee, action, due, quote, 0.9)

    def _status(self, sentence: str, speaker: str | None) -> list[Commitment]:
        done = _DONE_FIRST.search(sentence)
        if done and not _NEGATED.search(sentence) and not _HISTORY.search(sentence):
            action = _SUBJECT_PRONOUNS.sub(
                "", _clean_action(done["rest"], meeting_date=dt.date.min)
            )
            if action:
                return [Commitment(speaker, action, None, sentence, 0.75, "status_done")]
        done = _DONE_SUBJECT.match(sentence)
        if done and not _NEGATED.search(sentence) and not _QUESTION_START.match(sentence.lower()):
            subject = _SUBJECT_PRONOUNS.sub("", _FILLERS.sub("", done["subject"]).strip(" ,"))
            if subject and subject.lower() not in _NOT_NAMES and len(subject.split()) <= 8:
                return [Commitment(speaker, subject, None, sentence, 0.75, "status_done")]
        return []
