"""Deterministic, offline commitment extraction: who promised what, by when.

`DeterministicExtractor` reads meeting speech one utterance at a time and reports

* commitments: first-person promises ("I'll ...", "I'm going to ...", "let me ...", "action item
  for me: ...", "I can take that"), requests accepted by the person asked ("Tom, can you ...?"
  / Tom: "Yes, I'll have it ready"; "Can someone ...?" / "I can take that") and assignments
  ("Ken will send the deck", "Priya is going to review the contract");
* status updates, kind "status_done" ("the demo environment is ready", "I finished the
  migration");
* cancellations, kind "cancel" ("we're dropping the logo work", "let's cancel the offsite").

It rejects past tense ("last week I fixed ..."), questions and hypotheticals ("should we ...?",
"maybe later", "if we had time I'd ..."), refusals ("I can't take that"), reported speech
("she said she'd call the vendor") and declined requests. The owner is the speaker for
first-person speech, else the person asked or named; the bot's own names are never owners and
its own lines are ignored. Owners are people: a role ("the marketing expert will ...") is the
person who introduced themselves in it, else the role as said; work handed to someone by name
("Tom, I'd like you to ...") is theirs; a group ("we'll all", "everyone", "you two", "Poppy and
Tara will") gives one commitment listing each in `owners`; "he"/"she" is the one known person
it can mean, else nobody. The action is a short imperative phrase with fillers, hedges and
the due phrase removed, and "it"/"them" replaced by what was asked for or last mentioned; the
due date is resolved against the meeting date by `domain.dates`, a corrected date ("Monday,
no, Tuesday") winning.

Everything is precompiled regular expressions over one utterance and a rolling window of the
last `window` utterances; no model, no network.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from core.english import SENTENCE_END, base_form
from domain.dates import DueMatch, choose_due, find_due_phrases

__all__ = [
    "Commitment",
    "DeterministicExtractor",
    "KINDS",
    "accepts",
    "is_name",
    "request_addressee",
    "Kind",
    "Utterance",
    "parse_transcript_lines",
]

Kind = Literal["commitment", "status_done", "cancel"]
KINDS: tuple[Kind, ...] = get_args(Kind)


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
    # A group task's owners, one each ("Poppy", "Tara"); `owner` then joins them ("Poppy and
    # Tara"). Empty for a task of one owner or none.
    owners: tuple[str, ...] = ()


# --------------------------------------------------------------------------- transcript lines

_SPEAKER = re.compile(r"^(?P<speaker>[A-Z][\w.'-]*(?: [A-Z0-9][\w.'-]*){0,2}):\s*(?P<text>.*)$")


def parse_transcript_lines(lines: Iterable[str]) -> list[Utterance]:
    """One utterance per `Speaker: text` line (the speaker is optional); blank lines skipped."""
    out: list[Utterance] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        match = _SPEAKER.match(line)
        if match and match["text"].strip():
            out.append(Utterance(speaker=match["speaker"].strip(), text=match["text"].strip()))
        elif not match:
            out.append(Utterance(speaker=None, text=line))
    return out


# --------------------------------------------------------------------------- vocabulary

_I = re.IGNORECASE


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NAME = r"[A-Z][a-z]+(?:-[A-Z]?[a-z]+|'[A-Z][a-z]+)?"  # "Mary-Jane", "O'Neil", not "Sasha's"
_VOCATIVE = re.compile(
    rf"^(?:(?i:thanks|thank\s+you|okay|ok|so|and|great|right|alright|hi|hey|now),?\s+)?"
    rf"(?P<name>{_NAME})\s*[.!,]?$"
)
_SPEAKER_PROBE = "Xavierspeaker"  # a name nobody says: stands for "whoever said this"
NAME_PATTERN = _NAME  # for other readers of names (domain/people.py)
_NOT_NAMES = _words(
    """i we you he she they it this that these those there here the a an everyone everybody
    someone somebody anyone anybody nobody team so and but okay ok yes yeah yep no well also
    then maybe now just sure great thanks thank what why how when where who which if let lets
    let's please hey hi hello quick good right alright cool sorry actually honestly basically
    um uh oh next last first second monday tuesday wednesday thursday friday saturday sunday
    january february march april may june july august september october november december
    today tomorrow tonight legal finance marketing sales engineering product design ops
    support security staging production nothing everything something all both each one
    action item update note"""
)
_FILLERS = re.compile(
    r"(?<![\w'])(?:u+m+|u+h+m*|e+r+m*|h+m+|a+h+|(?<!let\s)(?<!do\s)(?<!if\s)you know|basically|sort of|kind of|"
    r"literally|honestly|like(?=\s*,)|(?<=,\s)like|(?<='ll\s)like|(?<=to\s)like)(?![\w'])",
    _I,
)
_SOFT = re.compile(
    r"(?<![\w'])(?:actually|i mean|just|really|probably|definitely|hopefully|quickly|also|"
    r"totally|maybe|please|go ahead and|try to|try and|be sure to|make sure to|make sure that|"
    r"get started on|start on|for sure|as well|too)(?![\w'])",
    _I,
)
_STUTTER = re.compile(
    r"\b(i'll|i will|i'm going to|i am going to|i'm gonna|let me|i can|we'll|we will|the|i)"
    r"(?:\s*,?\s+\1\b)+",
    _I,
)
_SPACES = re.compile(r"\s+")
_COMMAS = re.compile(r"\s*,(?:\s*,)+\s*|\s+,")
_LEAD_COMMA = re.compile(r"^[\s,.;:-]+")
_TAG_QUESTION = re.compile(
    r"(?:,\s*|\s+)(?:okay|ok|right|alright|yeah|yes|sound good|sounds good|does that work|"
    r"is that okay|is that ok|is that all right|if that's okay|if that works|cool|fair|"
    r"all good|good|makes sense|agreed)\s*\?\s*$",
    _I,
)

# Clause boundaries: sentences, semicolons and a conjunction or comma before a new subject.
_SUBJECT_AHEAD = (
    r"(?=(?i:i'll|i\s+will|i'm|i\s+am|i\s+can|i've|i\s+have|i\s+finished|i\s+just|i\s+already|"
    r"let\s+me|let's|we're|we\s+are|we'll|we've|action\s+item)\b"
    rf"|{_NAME}(?:\s+and\s+(?:{_NAME}|I))?(?:\s+|(?='))(?i:will|'ll|is\s+going|'s\s+going|is\s+gonna|'s\s+gonna|"
    r"are\s+going|is\s+(?:doing|taking|handling|owning|covering|leading|driving)|"
    r"can\s+you|could\s+you)\b"
    r"|(?i:the|our|my|your|their|all\s+the)\s+(?:[\w'-]+\s+){0,4}?"
    r"(?i:is|are|has\s+been|have\s+been)\s)"
)
_CLAUSES = re.compile(
    rf"{SENTENCE_END.pattern}|\s*;\s*|\s+-+\s+"
    rf"|,?\s+(?i:and|but|so|then|plus)(?:\s+(?i:then|also))?,?\s+{_SUBJECT_AHEAD}"
    rf"|,\s*{_SUBJECT_AHEAD}"
)

_PROMISE = re.compile(
    r"(?<![\w'])(?P<cue>i\s*'ll|i\s+will|i\s+shall|i'm\s+going\s+to|i\s+am\s+going\s+to|"
    r"i'm\s+gonna|i\s+am\s+gonna|let\s+me|"
    r"(?:my\s+)?action\s+items?\s+(?:for\s+me\s*)?(?:is\s*)?(?:to)?\s*[:,-]?|"
    r"(?:i'm|i\s+am)(?=\s+(?:doing|taking|handling|owning|covering|leading|driving)\b)|"
    r"(?:i'm\s+|i\s+am\s+|i'd\s+be\s+)?happy\s+to|i\s+commit\s+to|i\s+promise\s+to|i\s+can"
    r"(?=\s+(?:take|do|handle|own|cover|get|have|send|grab|pick|look|put|set|write|draft|share|"
    r"run|book|follow|check|help|reach|ping|update|review|schedule|sort|fix|prepare|make)\b))"
    r",?\s+(?P<rest>.+)$",
    _I,
)
_ACTION_ITEM_FOR = re.compile(
    rf"(?i:action\s+items?)\s+(?i:for)\s+(?P<name>{_NAME})\s*(?:(?i:is)\s+)?(?:(?i:to)\s+)?[:,-]?\s+"
    r"(?P<rest>.+)$"
)
_HEDGED = re.compile(r"\b(?:try|probably|i think|i guess|hopefully|should be able)\b", _I)
_NON_TASK = re.compile(
    r"^(?:be\s+(?:honest|quick|brief|clear|there|back|out|off|away|late|around|frank|fine|"
    r"traveling|travelling|offline|on\s+(?:vacation|leave|holiday|pto|a\s+plane))|"
    r"let\s+you|keep\s+(?:it|this)\s+(?:short|brief)|hand\s+(?:it|this)\s+(?:over|back)|"
    r"pass\s+(?:it|you)|stop\s+sharing|share\s+my\s+screen|think|see|say|know|jump|"
    r"ask$|ask\s+(?:a|one|you|something|quickly|real\s+quick)\b|"
    r"drop\s+off|talk\s+to\s+you|start\s+(?:with|by)|leave\s+it|need|want|guess|assume|"
    r"admit|go\s+first|repeat|recap|explain|clarify|interrupt|mute|unmute|pull\s+up|"
    r"pull\s+(?:it|that|this)\s+up|tell\s+you|give\s+you|miss|remember|introduce|hear|"
    r"share\s+(?:my|your|the)\s+screen|walk\s+(?:us|me|you)\s+through|"
    r"give\s+(?:us|me)\s+(?:an?\s+)?(?:quick\s+)?(?:update|overview|summary|recap|sec|second)|"
    r"take\s+(?:a\s+)?(?:second|minute|moment|look\s+now)|check$|find\s+out$|be$|"
    r"(?:grab|get|have|do)\s+(?:some\s+)?(?:lunch|coffee|a\s+coffee|food|a\s+bite|a\s+break)|"
    r"(?:run|running)\s+late|take\s+off$|take\s+it\s+from\s+here|take\s+over\s+from\s+here|"
    r"do\s+(?:great|good|well|fine|okay|ok|alright)|"
    r"get\s+back\s+to\s+you$|go$|wrap\s+up$|the\b|a\b|an\b|my\b|our\b|lunch|bed|work$|"
    r"home|church|school|the\s+office)",
    _I,
)
_REFUSAL = re.compile(
    r"\b(?:can't|cannot|can\s+not|won't|will\s+not|not\s+able|unable|no\s+time|"
    r"don't\s+have\s+(?:the\s+)?(?:time|bandwidth|capacity)|not\s+going\s+to|not\s+gonna|"
    r"pass\s+on|decline|no\s+bandwidth|not\s+me|don't\s+think\s+i\s+(?:can|will|could)|"
    r"i'd\s+love\s+to,?\s+but|i\s+wish\s+i\s+could|swamped|slammed|overloaded|"
    r"not\s+this\s+(?:week|sprint|time)|no\s+can\s+do|have\s+to\s+pass|rather\s+not)\b",
    _I,
)
_PAST = re.compile(
    r"\b(?:last\s+(?:week|month|year|quarter|time|sprint|monday|tuesday|wednesday|thursday|"
    r"friday|weekend)|yesterday|already|earlier\s+today|ago|this\s+past|back\s+then|"
    r"used\s+to|was\s+going\s+to|were\s+going\s+to|had\s+planned)\b",
    _I,
)
_HISTORY = re.compile(
    r"\b(?:last\s+(?:week|month|year|quarter|time|sprint|monday|tuesday|wednesday|thursday|"
    r"friday|weekend)|yesterday|ago|back\s+then|used\s+to|in\s+the\s+past|this\s+past)\b",
    _I,
)
_HYPOTHETICAL = re.compile(
    r"\b(?:maybe|might|perhaps|possibly|someday|some\s+day|at\s+some\s+point|"
    r"would\s+be\s+(?:nice|good|great|cool)|could|i'd\s+like\s+to|we\s+should|should\s+we|"
    r"i\s+wish|in\s+theory|one\s+day|eventually|ideally|wouldn't|i'd(?!\s+be\s+happy)|we'd|"
    r"if\s+(?:we|i)\s+(?:have|had|get|find|got)\s+(?:the\s+)?(?:time|a\s+chance|bandwidth)|"
    r"if\s+time\s+(?:permits|allows)|if\s+there's\s+time|not\s+sure\s+(?:if|whether|i|we|that))\b",
    _I,
)
_CONDITION_FIRST = re.compile(
    r"^(?:\w+,?\s+)?(?:if(?!\s+(?:that's|that\s+is|it's|that)\s+(?:okay|ok|fine|alright|all\s+right|"
    r"works))(?!\s+you\s+(?:want|like|prefer))|unless|whether)\b",
    _I,
)
_TIME_ADVERB = re.compile(
    r"\s+(?:last\s+night|this\s+morning|earlier(?:\s+today)?|just\s+now|today|"
    r"over\s+the\s+weekend|finally|again|now)\b.*$",
    _I,
)
_REPORTED = re.compile(
    r"\b(?:said|says|mentioned|told\s+(?:me|us|him|her|them)|promised|claimed|apparently|"
    r"thinks|thought|heard|wrote|emailed\s+that|according\s+to)\b(?:\s+that)?\s+"
    r"(?:he|she|they|it|\w+)\b",
    _I,
)
_QUESTION_START = re.compile(
    r"^(?:should|shall|could|would|can|do|does|did|is|are|was|were|what|why|how|when|where|"
    r"who|which|will|have|has|any|anyone|anybody)\b",
    _I,
)
_NEGATED = re.compile(
    r"\b(?:not|isn't|aren't|wasn't|weren't|never|no\s+longer|hasn't|haven't|almost|nearly|"
    r"mostly|partially|half|still|yet|close\s+to|isnt|arent)\b",
    _I,
)

_REQUEST_NAMED = re.compile(
    rf"(?:^|[,.:]\s*)(?:(?i:so|okay|ok|and|hey|hi|also|now|then|quick\s+one),?\s+)?"
    rf"(?P<name>{_NAME}),?\s+(?:(?i:would\s+you\s+mind)|(?i:can|could|would|will)\s+you|"
    r"(?i:you\s+(?:can|could))|(?i:please)|(?i:i\s+need\s+you\s+to)|(?i:i'd\s+like\s+you\s+to)|"
    r"(?i:can\s+i\s+get\s+you\s+to)),?\s+(?:(?i:please),?\s+)?(?P<rest>.+?)\s*[?.!]?$"
)
_REQUEST_NAME_MID = re.compile(
    r"^(?:(?i:so|okay|ok|and|hey|also),?\s+)?(?i:can|could|would|will)\s+you,\s*"
    rf"(?P<name>{_NAME}),\s+(?:(?i:please),?\s+)?(?P<rest>.+?)\s*[?.!]?$"
)
_REQUEST_NAME_LAST = re.compile(
    r"^(?:(?i:so|okay|ok|and|hey|also),?\s+)?(?i:would\s+you\s+mind|can\s+you|could\s+you|"
    r"would\s+you|will\s+you),?\s+"
    rf"(?:(?i:please),?\s+)?(?P<rest>.+?),\s*(?P<name>{_NAME})\s*[?.!]?$"
)
_REQUEST_OPEN = re.compile(
    r"^(?:(?:so|okay|ok|and|also|then),?\s+)?(?:(?:can|could|would|will)\s+(?:someone|somebody|"
    r"anyone|anybody|you)(?:\s+mind)?|who\s+(?:can|could|wants\s+to|will)|(?:does|would)\s+(?:anyone|"
    r"anybody|someone)\s+(?:want|like|mind)\s+to|any\s+volunteers\s+(?:to|for)|we\s+need\s+"
    r"(?:someone|somebody)\s+to|(?:someone|somebody)\s+(?:needs|has)\s+to|are\s+you\s+going\s+to)"
    r",?\s+(?:please,?\s+)?(?:(?:all|guys|everyone|folks)\s+)?(?P<rest>.+?)\s*[?.!]?$",
    _I,
)
_DIRECT = re.compile(
    rf"(?:^|[,.:]\s*)(?P<name>{_NAME}),\s+(?i:you'll|you\s+will|you're\s+going\s+to|"
    r"you\s+are\s+going\s+to|you're\s+gonna|you\s+are\s+gonna|you're\s+on),?\s+"
    r"(?P<rest>.+?)\s*[.!]?$"
)
# Real talk: the chair hands out work to "you" without a name, by role, as a request or a
# reminder, or to the group. Each is a commitment of whoever is addressed.
_YOU_WILL = r"(?:you'll|you\s+will|you're\s+(?:going\s+to|gonna)|you\s+are\s+(?:going\s+to|gonna))"
# "you'll be working on ...": an arranged task, not a prediction ("you'll see").
_YOU_ASSIGNED = re.compile(
    rf"(?:^|[,.:]\s*|\b(?:and|so|then|okay|ok|now|right)\s+){_YOU_WILL}\s+"
    r"(?P<rest>be\s+\w+ing\b.+?)\s*[.!]?$",
    _I,
)
_ROLE = (
    r"(?:[A-Za-z-]+\s+){0,2}?(?i:manager|expert|designer|engineer|developer|lead|analyst|"
    r"architect|researcher|secretary|coordinator)"
)
# "the Marketing Expert is going to work on ...", "as the industrial designer, you're gonna ..."
_ROLE_ASSIGNMENT = re.compile(
    rf"(?:^|[,.:;]\s*|\b(?i:and|so|then|okay|ok|now)\s+)(?i:the)\s+(?P<role>{_ROLE})\s+"
    r"(?i:will|'ll|is\s+going\s+to|is\s+gonna|'s\s+going\s+to|'s\s+gonna|has\s+to|needs\s+to)"
    r",?\s+(?P<rest>.+?)\s*[.!]?$"
)
_AS_ROLE = re.compile(
    rf"(?:^|[,.:;]\s*|\b(?i:and|so|then|okay|ok|now)\s+)(?i:as)\s+(?i:the|our)\s+(?P<role>{_ROLE})"
    rf",?\s+(?i:{_YOU_WILL}|you\s+have\s+to|you\s+need\s+to),?\s+(?P<rest>.+?)\s*[.!]?$"
)
# "I'd like you to ...", "if you can figure out how to ...": asked of whoever is addressed.
_DIRECTIVE = re.compile(
    r"(?:^|[,.:]\s*|\b(?:and|so|then|okay|ok|now|right)\s+)"
    r"(?:(?:i'd|i\s+would)\s+like\s+you\s+to|i\s+(?:want|need)\s+you\s+to|"
    r"(?:if\s+)?you\s+(?:can|could)\s+(?=(?:figure|find|work|look|check|research|prepare|get|"
    r"send|try)\b))\s*(?P<rest>.+?)\s*[.!]?$",
    _I,
)
_TOLD = re.compile(r"\b(?:(?:i'd|i\s+would)\s+like|i\s+(?:want|need))\s+you\s+to\b", _I)
# "don't forget to complete the final questionnaire"
_REMINDER = re.compile(
    r"(?:^|[,.:]\s*|\b(?:and|so|then|okay|ok|now|right|also|oh)\s+)"
    r"(?:(?:please\s+)?(?:don't|do\s+not)\s+forget|remember)\s+to\s+(?P<rest>.+?)\s*[.!]?$",
    _I,
)
# "everyone's gonna go finish their questionnaire", "you two are gonna work together on ..."
_GROUP = re.compile(
    r"(?:^|[,.:;]\s*|\b(?:and|so|then|okay|ok|now|right)\s+)"
    r"(?P<group>everyone|everybody|all\s+of\s+you|you\s+all|you\s+guys|you\s+two|"
    r"you\s+three|both\s+of\s+you|each\s+of\s+you)\s*"
    r"(?:will|'ll|'s\s+(?:going\s+to|gonna)|is\s+(?:going\s+to|gonna)|are\s+(?:going\s+to|gonna)|"
    r"have\s+to|has\s+to|need\s+to|needs\s+to),?\s+(?P<rest>.+?)\s*[.!]?$",
    _I,
)
_TOGETHER = re.compile(r"\btogether\b", _I)
# "we all / all of us / the three of us will ...": the speaker and everyone heard.
_WE_GROUP = re.compile(
    r"(?:^|[,.:;]\s*|\b(?:and|so|then|okay|ok|now|right)\s+)"
    r"(?P<group>we\s+(?:will|are)\s+all|we'll\s+all|we're\s+all|we\s+all|we\s+both|"
    r"all\s+of\s+us|both\s+of\s+us|each\s+of\s+us|the\s+(?:two|three|four|five)\s+of\s+us)"
    r"(?:\s*(?P<aux>will|'ll|are\s+(?:going\s+to|gonna)|have\s+to|need\s+to|going\s+to|gonna))?"
    r",?\s+(?P<rest>.+?)\s*[.!]?$",
    _I,
)
# Self-introductions that bind a role to a person: "I'm Laura, I'm the project manager",
# "I'm the marketing expert" (said by Andrew), "this is Laura, our project manager".
_INTRO_NAME = re.compile(
    rf"(?:^|[,.;!?]\s*|\b(?i:and|hi|hello|hey|morning|so|okay|ok)\s+)"
    rf"(?:(?i:I'm|I\s+am|my\s+name\s+is|my\s+name's|this\s+is))\s+(?P<name>{_NAME})(?!['’]s\b)\b"
)
_INTRO_ROLE = re.compile(
    r"(?:\b(?:i'm|i\s+am|i'll\s+be|i\s+will\s+be)\s+(?:also\s+)?(?:the|your|a|an|our)\s+|"
    r"\bmy\s+role\s+is\s+(?:the\s+)?|"
    rf"^(?:(?:hi|hello|hey|so|okay|ok),?\s+)?(?:i'm|i\s+am|this\s+is)\s+{_NAME},?\s+(?:the|your|our)\s+)"
    rf"(?P<role>{_ROLE})\b",
    _I,
)
_OTHER_INTRO = re.compile(
    rf"\b(?P<name>{_NAME})\s+(?:is|will\s+be|'s)\s+(?i:the|our|your)\s+(?P<role>{_ROLE})\b"
    r"(?!\s+(?:will|is\s+going|'s\s+going|is\s+gonna|'s\s+gonna|has\s+to|needs\s+to))"
)
# "he'll send the deck": a person named before, when only one could be meant.
_PRONOUN_ASSIGNMENT = re.compile(
    r"(?:^|[,:;]\s*|\b(?:and|so|then|okay|ok|also|now|yes|yeah|think|guess|sure)\s+)"
    r"(?P<pron>he|she)(?:\s+|(?='))"
    r"(?:will|'ll|is\s+going\s+to|'s\s+going\s+to|is\s+gonna|'s\s+gonna|"
    r"has\s+agreed\s+to|agreed\s+to|volunteered\s+to),?\s+(?P<rest>.+)$",
    _I,
)
# The name that a request or an assignment to "you" is said to: "Tom, I'd like you to ...",
# "Okay, Tom. You'll be working on ...", "... work on the casing, Tom."
_VOCATIVE_BEFORE = re.compile(
    rf"(?:^|[,.:;!?]\s*|\b(?i:and|so|now|okay|ok|right|then)\s+)(?P<name>{_NAME})\s*[,.!]?\s*$"
)
_VOCATIVE_AFTER = re.compile(rf",\s*(?P<name>{_NAME})\s*[.!]?$")
_ASSIGNMENT = re.compile(
    r"(?:^|[,:;]\s*|\b(?i:and|so|then|okay|ok|also|now|think|guess|sure|yes|yeah)\s+)"
    rf"(?P<name>{_NAME}(?:\s+and\s+(?:{_NAME}|I))?)(?:\s+|(?='))"
    r"(?P<aux>(?i:will|'ll|is\s+going\s+to|'s\s+going\s+to|is\s+gonna|'s\s+gonna|"
    r"are\s+going\s+to|are\s+gonna|is\s+(?:doing|taking|handling|owning|covering|leading|driving)|"
    r"takes|has\s+the\s+action(?:\s+item)?\s+to|owns|"
    r"is\s+responsible\s+for|can\s+take|agreed\s+to|has\s+agreed\s+to|volunteered\s+to))"
    r",?\s+(?P<rest>.+)$"
)
_AUX_VERB = {"takes": "take", "owns": "own", "can take": "take"}
_AUX_VERB |= {f"is {verb}ing": verb for verb in ("do", "handl", "own", "cover", "lead")} | {
    "is taking": "take",
    "is driving": "drive",
    "is handling": "handle",
}
_ACCEPT = re.compile(
    r"^(?:(?:then|so|okay|ok|well|oh|alright|in\s+that\s+case),?\s+)?(?:yes|yeah|yep|yup|sure(?:\s+thing)?|ok(?:ay)?|absolutely|of\s+course|will\s+do|on\s+it|"
    r"no\s+problem|no\s+worries|sounds\s+good|definitely|i\s+can(?!'t|not)|i\s+will|i\s*'ll|"
    r"can\s+do|consider\s+it\s+done|got\s+it|happy\s+to|for\s+sure|totally|alright|all\s+right|"
    r"fine|i'm\s+on\s+it|i've\s+got\s+it|i\s+got\s+it|leave\s+it\s+with\s+me|count\s+me\s+in|"
    r"i'm\s+happy\s+to|that's\s+fine|works\s+for\s+me|i'd\s+be\s+happy\s+to|let\s+me|"
    r"i'm\s+going\s+to|i'm\s+gonna|i\s+can\s+take|me|yes\s+please|certainly|roger|you\s+bet)\b",
    _I,
)
_DECLINE_START = re.compile(r"^(?:no|nope|nah|sorry|unfortunately|not\s+(?:this|right|now))\b", _I)
_GENERIC_ACTION = re.compile(
    r"^(?:do|take|handle|own|cover|grab|get|have|sort|tackle|look\s+into|pick\s+up|run|"
    r"take\s+care\s+of)\s+(?:it|that|this|them|that\s+one|this\s+one|those)"
    r"(?:\s+(?:on|one|ready|done|up|over|sorted|out))?$",
    _I,
)
_PRONOUN = re.compile(r"\b(?P<pron>it|them|this|that|these|those)\b(?:\s+one)?", _I)
_NP = re.compile(
    r"\b(?:the|our|my|your|their|his|her)\s+(?P<np>(?:[\w'-]+\s+){0,3}?[\w'-]+)"
    r"(?=\s+(?:is|are|isn't|aren't|was|were|has|have|hasn't|haven't|to|for|by|on|before|until|"
    r"from|with|in|at|and|or|but|so|will|should|needs?|done|ready|yet|over|out|up|today|"
    r"tomorrow)\b|\s*[,.?!;]|\s*$)",
    _I,
)
_CANCEL = re.compile(
    r"\b(?:we're|we\s+are|let's|let\s+us|we'll|we\s+will|i'm|i\s+am|i'll|i\s+will|we've|"
    r"we\s+have|we\s+decided\s+to|we're\s+going\s+to|we\s+are\s+going\s+to)\s+"
    r"(?:going\s+to\s+)?(?:go\s+ahead\s+and\s+)?(?:just\s+)?(?P<neg>not\s+|never\s+)?"
    r"(?:be\s+)?(?:drop|dropping|dropped|cancel|cancelling|canceling|cancelled|canceled|scrap|"
    r"scrapping|scrapped|kill|killing|killed|shelve|shelving|shelved|stop\s+working\s+on|"
    r"deprioriti[sz]\w*|park|parking|parked|pause|pausing|paused|call\s+off|calling\s+off|"
    r"called\s+off|pull\s+the\s+plug\s+on|pulling\s+the\s+plug\s+on|abandon\w*|axe|axing|"
    r"sunset\w*|descop\w*)\s+(?P<rest>.+)$",
    _I,
)
_CANCEL_HOLD = re.compile(
    r"\b(?:we're|we\s+are|let's|let\s+us|we'll|we\s+will|i'm|i\s+am|i'll|i\s+will|we've|"
    r"we\s+have|we\s+decided\s+to)\s+(?:going\s+to\s+)?(?P<neg>not\s+)?(?:put|putting)\s+"
    r"(?P<rest>.+?)\s+on\s+(?:hold|ice|pause|the\s+back\s*burner)\b",
    _I,
)
_CANCEL_PASSIVE = re.compile(
    r"(?:^|[,:]\s*)(?:(?:so|okay|ok|and|also|well|fyi|heads\s+up|update),?\s+)*"
    r"(?P<rest>(?!(?:it|that|this)\b)[\w'-]+(?:\s+[\w'-]+){0,5}?)\s+(?:is|are|has\s+been|"
    r"have\s+been|got|was|were)\s+(?:officially\s+|now\s+)?(?:cancel+ed|off\s+the\s+table|"
    r"dropped|scrapped|shelved|killed|called\s+off|on\s+hold|no\s+longer\s+needed|"
    r"not\s+happening|deprioriti[sz]ed|descoped)\b",
    _I,
)
_CANCEL_TAIL = re.compile(
    r"\s+(?:for\s+now|for\s+the\s+time\s+being|this\s+(?:quarter|year|sprint|month)|"
    r"entirely|altogether|completely|until\s+further\s+notice|from\s+(?:the|this|our)\s+"
    r"(?:release|sprint|roadmap|plan|scope|quarter)|indefinitely)\b.*$",
    _I,
)
_DONE_FIRST = re.compile(
    r"\b(?:i|we)(?:'ve|\s+have)?\s+(?:just\s+|already\s+|finally\s+|now\s+)?"
    r"(?P<verb>finished|completed|sent(?:\s+out|\s+over|\s+off)?|shipped|merged|deployed|"
    r"fixed|wrapped\s+up|submitted|closed|delivered|published|released|launched|resolved|"
    r"signed|uploaded|pushed|rolled\s+out|cleaned\s+up|finalized|finalised)\s+(?P<rest>.+)$",
    _I,
)
_DONE_SUBJECT = re.compile(
    r"(?:^|[,:]\s*)(?:(?:so|okay|ok|and|also|well|fyi|update|quick\s+update|good\s+news|"
    r"great\s+news|heads\s+up),?\s+)*(?P<subject>[\w'-]+(?:\s+[\w'-]+){0,5}?)\s+"
    r"(?:is|are|'s|has\s+been|have\s+been|was|were)\s+(?:now\s+|finally\s+|all\s+|fully\s+|"
    r"officially\s+|already\s+)?(?:done|ready|finished|complete|completed|live|merged|shipped|"
    r"deployed|sorted|fixed|sent|approved|signed|published|released|launched|resolved|"
    r"up\s+and\s+running|in\s+place|good\s+to\s+go|all\s+set|wrapped\s+up|out\s+the\s+door)\b",
    _I,
)
_SUBJECT_BAD = re.compile(
    r"^(?:it|that|this|everything|nothing|something|all|which|what|there|here|he|she|they|we|"
    r"i|you|who|one|lunch|everyone|off|out|now|him|her|them|us|me|a\s+(?:note|line|message))\b",
    _I,
)
_STATUS_QUESTION = re.compile(
    r"^(?:(?:so|okay|ok|and|also),?\s+)?(?:is|are|has|have)\s+(?P<subject>(?:the|our|your|my)\s+"
    r"[\w' -]+?)\s+(?:been\s+)?(?:done|ready|finished|complete|completed|live|merged|shipped|"
    r"deployed|sorted|fixed|sent|approved|signed|published|released|launched|up|all\s+set)\b",
    _I,
)
_STATUS_YES = re.compile(
    r"^(?:yes|yeah|yep|yup|it\s+is|they\s+are|it's\s+(?:done|ready|live|finished)|"
    r"all\s+done|done)\b",
    _I,
)
_PRIOR_VP = re.compile(
    r"\b(?:did|has|have|can|could|will|would)\s+(?:anyone|anybody|someone|somebody|you)\s+"
    r"(?:already\s+)?(?P<vp>[a-z][^?]*?)\s*\?",
    _I,
)
_DETERMINER = re.compile(r"^(?:the|our|my|your|their|his|her|all\s+the|this|that)\s+", _I)
_LEAD = re.compile(r"^(?:to|then|and|so|also|have\s+to|need\s+to|,)\s+", _I)
_TAIL_CLAUSE = re.compile(
    r"(?:\s*[,(]|\s+-+)\s*.*$|\s+(?:so\s+that|so\s+you|so\s+we|because|since|once|"
    r"as\s+soon\s+as|if\s+that|unless|while|which|and\s+get\s+back\s+to\s+you|"
    r"(?:right\s+|straight\s+)?after\s+(?:this|the)\s+(?:call|meeting|sync|standup))\b.*$",
    _I,
)
_TRAILING = re.compile(
    r"(?:\s+|^)(?:okay|ok|right|alright|then|as\s+well|too|for\s+you|for\s+everyone|for\s+us|"
    r"if\s+that\s+works|if\s+that's\s+okay|no\s+problem|first\s+thing|at\s+the\s+latest|"
    r"or\s+so|asap|as\s+soon\s+as\s+possible|again|now|by|on|for|before|until|at|in|around|"
    r"no\s+later\s+than|and|or|the|a|latest|either|then|anyway)\s*[.!?]*$",
    _I,
)
_HAVE_READY = re.compile(r"^have\s+(?P<obj>.+?)\s+(?P<adj>ready|done|finished|sorted|fixed)\b", _I)
_BE_ING = re.compile(r"^be\s+(?=\w+ing\b)", _I)
_WORD_LIMIT = 14


# --------------------------------------------------------------------------- for other readers


def request_addressee(text: str) -> str | None:
    """The person a request in `text` is put to by name ("Tom, can you ...?", "Can you ...,
    Tom?"), or None. Common words and the bot's name are not names here; the caller checks."""
    clauses = _clauses(_normalise(text))
    for here, after in zip(clauses, clauses[1:], strict=False):
        # "Thanks, Tom. Can you ...?": the name ends the sentence before the request.
        lone = _VOCATIVE.match(here)
        if lone and _REQUEST_OPEN.match(after) and lone["name"].lower() not in _NOT_NAMES:
            return str(lone["name"])
    for clause in clauses:
        named = (
            _REQUEST_NAME_MID.match(clause)
            or _REQUEST_NAMED.search(clause)
            or _REQUEST_NAME_LAST.match(clause)
        )
        if named and all(part.lower() not in _NOT_NAMES for part in named["name"].split()):
            return str(named["name"])
    return None


def accepts(text: str) -> bool:
    """`text` opens with an acceptance ("Yes, I will", "Sure", "On it"), not a refusal."""
    clauses = _clauses(_normalise(text))
    if not clauses:
        return False
    first = clauses[0]
    reply = " ".join(clauses[:2])
    if _REFUSAL.search(reply) or (_DECLINE_START.match(first) and not _ACCEPT.match(first)):
        return False
    return bool(_ACCEPT.match(first)) and not first.rstrip().endswith("?")


def is_name(word: str) -> bool:
    """A capitalised word that is no common word: "Priya", not "Okay" or "Monday"."""
    return bool(re.fullmatch(_NAME, word)) and word.lower() not in _NOT_NAMES


# --------------------------------------------------------------------------- text helpers


def _normalise(text: str) -> str:
    """Drop fillers and stutters ("I'll, I'll"), tidy commas and spaces."""
    text = _FILLERS.sub("", text)
    text = _COMMAS.sub(", ", text)
    text = _STUTTER.sub(lambda m: m.group(1), text)
    text = _SPACES.sub(" ", text)
    return _LEAD_COMMA.sub("", text).strip()


_LONE_NAME = re.compile(rf"^\s*(?:(?i:so|okay|ok|and|also|then),?\s+)?{_NAME}\s*$")


def _clauses(text: str) -> list[str]:
    """Sentences and sub-clauses with a subject of their own; "Hank and I will" stays whole."""
    parts: list[str] = []
    start = 0
    for boundary in _CLAUSES.finditer(text):
        piece = text[start : boundary.start()]
        if _LONE_NAME.match(piece) and boundary.group().strip(" ,").lower() == "and":
            continue
        parts.append(piece)
        start = boundary.end()
    parts.append(text[start:])
    return [c.strip(" ,") for c in parts if c and c.strip(" ,.")]


def _strip_tag_question(clause: str) -> str:
    """ "..., okay?" is no question: the clause becomes a statement."""
    stripped = _TAG_QUESTION.sub(".", clause)
    return stripped if stripped.strip(" .") else clause


def _is_question(clause: str) -> bool:
    return clause.rstrip().endswith("?") or bool(_QUESTION_START.match(clause))


def _due(text: str, context: _Context) -> dt.date | None:
    chosen = choose_due(_find(text, context), text)
    return chosen.due if chosen else None


def _without_due(text: str, matches: list[DueMatch]) -> str:
    """The text less its due phrases; after a correction ("Monday, no, Tuesday") it ends."""
    if not matches:
        return text
    first = matches[0]
    tail = text[first.end :]
    if re.match(r"\s*[,;]|\s*(?:no|sorry|actually|i mean|or|and then|so|because)\b", tail, _I):
        tail = ""
    else:
        for match in reversed(matches[1:]):
            start, end = match.start - first.end, match.end - first.end
            tail = tail[:start] + tail[end:]
    return text[: first.start] + tail


def _clean_action(rest: str, *, meeting_date: dt.date, next_meeting: dt.date | None = None) -> str:
    """A short imperative phrase: no due phrase, fillers, hedges or trailing chatter."""
    found = find_due_phrases(rest, meeting_date=meeting_date, next_meeting=next_meeting)
    text = _without_due(rest, found)
    text = _SOFT.sub("", text)
    text = _SPACES.sub(" ", text).strip(" ,.;:!?-")
    text = _TAIL_CLAUSE.sub("", text)
    for _ in range(3):
        text = _LEAD.sub("", text).strip(" ,.;:!?-")
        text = _TRAILING.sub("", text).strip(" ,.;:!?-")
    text = _BE_ING.sub("", text)
    first, _, remainder = text.partition(" ")
    text = f"{base_form(first)} {remainder}".strip()
    ready = _HAVE_READY.match(text)
    if ready:
        text = f"get {ready['obj']} {ready['adj']}"
    return " ".join(text.split()[:_WORD_LIMIT])


def _noun_phrase(text: str) -> str:
    """A status or cancel subject without its determiner or chatter: "demo environment"."""
    text = _SOFT.sub("", text)
    text = _SPACES.sub(" ", text).strip(" ,.;:!?-")
    text = _CANCEL_TAIL.sub("", text)
    text = _TIME_ADVERB.sub("", text)
    text = _TAIL_CLAUSE.sub("", text).strip(" ,.;:!?-")
    text = _TRAILING.sub("", text).strip(" ,.;:!?-")
    return " ".join(_DETERMINER.sub("", text).split()[:_WORD_LIMIT])


def _antecedent(texts: Iterable[str], pronoun: str) -> str | None:
    """The noun phrase "it"/"them" most likely refers to, most recent text first."""
    for text in texts:
        phrases = [m.group(0) for m in _NP.finditer(text)]
        if not phrases:
            continue
        if pronoun.lower() in ("them", "these", "those"):
            plural = [p for p in phrases if p.lower().endswith("s")]
            phrases = plural or phrases
        return phrases[-1]
    return None


def _replace_pronoun(action: str, antecedent: str | None) -> str:
    if not antecedent:
        return action
    first, _, rest = antecedent.partition(" ")
    phrase = f"{first.lower()} {rest}" if _DETERMINER.match(antecedent) else antecedent
    return _PRONOUN.sub(lambda _: phrase, action, count=1)


_RESOLVABLE = _words("it them these those")
_PARTICLES = _words("into at over up on to through for with about")


def _resolve_pronoun(action: str, before: Sequence[str]) -> str:
    """ "send it to legal" -> "send the security review to legal" when it was just mentioned."""
    pronoun = _pronoun_object(action)
    if pronoun is None or pronoun.lower() not in _RESOLVABLE:
        return action
    return _replace_pronoun(action, _antecedent(before, pronoun))


def _pronoun_object(action: str) -> str | None:
    """The pronoun a verb phrase acts on: "send it", "look into it" -> "it"."""
    words = action.split()
    for index, word in enumerate(words[1:3], start=1):
        if _PRONOUN.fullmatch(word):
            return word
        if word.lower() not in _PARTICLES or index == 2:
            return None
    return None


# --------------------------------------------------------------------------- extractor state


@dataclass
class _Request:
    addressee: str | None  # None: anyone but the asker ("Can someone ...?")
    action: str
    due: dt.date | None
    quote: str
    asker: str | None
    index: int


@dataclass
class _State:
    recent: deque[Utterance]
    requests: list[_Request] = field(default_factory=list)
    index: int = 0
    speakers: list[str] = field(default_factory=list)  # everyone heard so far, in order
    # "Is the staging environment ready?": (utterance index, subject, asker)
    status_question: tuple[int, str, str | None] | None = None
    # Roles bound to people by introductions ("I'm Laura, the project manager"): role key
    # ("project manager") -> name. Kept for the whole call, not just the window.
    roles: dict[str, str] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)  # people known to attend
    # Work just handed to someone ("I'd like you to ..."): (utterance index, owner), so that
    # their "Sure, I'll do it" is not the same task again.
    handed: tuple[int, str | None] | None = None


@dataclass
class _Context:
    """One utterance being read: who speaks, what was said before it, the meeting date."""

    utterance: Utterance
    owner: str | None
    before: list[str]
    meeting_date: dt.date
    next_meeting: dt.date | None  # the series' next meeting, when its cadence is known
    state: _State
    conditional: bool = False  # the clause before set a condition: "If it's approved, I'll ..."


class DeterministicExtractor:
    """Rule-based extractor: `extract` for a whole transcript, `feed` for a live call.

    `feed` keeps the last `window` utterances: a request stays open for an answer that long,
    and "it" may refer to something said in it. `extract` runs the same rules over a
    transcript with a state of its own, so it never disturbs a stream being fed.
    """

    def __init__(self, *, window: int = 4, bot_names: tuple[str, ...] = ("convene",)) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.bot_names = tuple(name.lower() for name in bot_names)
        self._state = self._new_state()

    def _new_state(self) -> _State:
        return _State(recent=deque(maxlen=self.window))

    def reset(self) -> None:
        """Forget the streaming window and any open request."""
        self._state = self._new_state()

    def extract(
        self,
        utterances: Sequence[Utterance],
        *,
        meeting_date: dt.date,
        next_meeting: dt.date | None = None,
        participants: Sequence[str] = (),
    ) -> list[Commitment]:
        """Everything found in a whole transcript, in order. `next_meeting` (the series' next
        meeting, `domain.dates.next_meeting_date`) dates "for the next meeting";
        `participants` (names of people known to attend) lets "he"/"she" name one of them."""
        state = self._new_state()
        state.participants.extend(p for p in participants if self._is_person(p))
        found: list[Commitment] = []
        for utterance in utterances:
            found.extend(self._read(utterance, (meeting_date, next_meeting), state))
        return found

    def speakers_own(self, text: str, *, meeting_date: dt.date) -> set[str]:
        """The actions `text` commits its own speaker to ("I will send ..."), read alone:
        what becomes the speaker's once we know who they are."""
        found = self.extract([Utterance(_SPEAKER_PROBE, text)], meeting_date=meeting_date)
        return {c.action for c in found if c.owner == _SPEAKER_PROBE and c.kind == "commitment"}

    def add_participants(self, names: Iterable[str]) -> None:
        """People known to attend the call being fed (for "he"/"she")."""
        for name in names:
            if self._is_person(name) and name not in self._state.participants:
                self._state.participants.append(name)

    def feed(
        self, utterance: Utterance, *, meeting_date: dt.date, next_meeting: dt.date | None = None
    ) -> list[Commitment]:
        """What this utterance completes, given the ones fed before it."""
        return self._read(utterance, (meeting_date, next_meeting), self._state)

    # ----------------------------------------------------------------- one utterance

    def _is_bot(self, name: str | None) -> bool:
        return bool(name) and (name or "").lower() in self.bot_names

    def _is_person(self, name: str | None) -> bool:
        if not name or self._is_bot(name):
            return False
        if _is_role(name):
            return True  # a voice labelled by its role ("Marketing Expert") is a person
        return all(part.lower() not in _NOT_NAMES for part in name.split())

    def _read(
        self, utterance: Utterance, dates: tuple[dt.date, dt.date | None], state: _State
    ) -> list[Commitment]:
        state.index += 1
        state.requests = [r for r in state.requests if state.index - r.index <= self.window]
        if self._is_bot(utterance.speaker) or not utterance.text.strip():
            return []
        text = _normalise(utterance.text)
        clauses = [_strip_tag_question(c) for c in _clauses(text)]
        owner = utterance.speaker if self._is_person(utterance.speaker) else None
        if owner is not None and owner not in state.speakers:
            state.speakers.append(owner)
        self._note_introductions(text, owner, state)
        context = _Context(
            utterance=utterance,
            owner=owner,
            before=[u.text for u in reversed(state.recent)],
            meeting_date=dates[0],
            next_meeting=dates[1],
            state=state,
        )
        found: list[Commitment] = []
        answered, used = self._answer(clauses, context)
        if answered is not None:
            found.append(answered)
        confirmed = self._confirmed_status(clauses, context)
        if confirmed is not None:
            found.append(confirmed)
            used.add(0)
        self._note_status_question(clauses, context)
        for index, clause in enumerate(clauses):
            if index in used:
                continue
            context.before.insert(0, " ".join(clauses[:index]))
            context.conditional = index > 0 and bool(_CONDITION_FIRST.match(clauses[index - 1]))
            found.extend(self._clause(clause, context))
            context.before.pop(0)
        state.recent.append(utterance)
        return _dedupe(_drop_generic(found))

    # ----------------------------------------------------------------- requests and answers

    def _request(self, clause: str, context: _Context) -> bool:
        """Record a request made in `clause`; True when the clause was one."""
        named = (
            _REQUEST_NAME_MID.match(clause)
            or _REQUEST_NAMED.search(clause)
            or _REQUEST_NAME_LAST.match(clause)
        )
        addressee: str | None = None
        if named and _TOLD.search(clause) and not clause.rstrip().endswith("?"):
            return False  # "Tom, I'd like you to ...": handed to Tom, no answer awaited
        if named and self._is_person(named["name"]):
            addressee, rest = named["name"], named["rest"]
        elif named and self._is_bot(named["name"]):
            return True  # asked of the bot: nobody's commitment
        else:
            open_request = _REQUEST_OPEN.match(clause)
            if open_request is None:
                return False
            rest = open_request["rest"]
        if _HYPOTHETICAL.search(rest) or _PAST.search(rest):
            return True
        action = _clean_action(
            rest, meeting_date=context.meeting_date, next_meeting=context.next_meeting
        )
        if action and not _NON_TASK.match(action):
            context.state.requests.append(
                _Request(
                    addressee=addressee,
                    action=action,
                    due=_due(rest, context),
                    quote=context.utterance.text,
                    asker=context.utterance.speaker,
                    index=context.state.index,
                )
            )
        return True

    def _pending_for(self, context: _Context) -> _Request | None:
        """The open request this utterance may answer, most recent first."""
        speaker = context.utterance.speaker
        for request in reversed(context.state.requests):
            if request.index >= context.state.index:
                continue
            if speaker is None:
                if context.state.index - request.index == 1:
                    return request
            elif request.addressee is None:
                if request.asker is None or speaker.lower() != request.asker.lower():
                    return request
            elif speaker.lower() == request.addressee.lower():
                return request
        return None

    def _answer(self, clauses: list[str], context: _Context) -> tuple[Commitment | None, set[int]]:
        """An acceptance of an open request: the commitment and the clauses it used."""
        request = self._pending_for(context)
        if request is None or not clauses:
            return None, set()
        reply = " ".join(clauses[:2])
        first = clauses[0]
        if _REFUSAL.search(reply) or (_DECLINE_START.match(first) and not _ACCEPT.match(first)):
            context.state.requests.remove(request)
            return None, set()
        if not _ACCEPT.match(first) or first.rstrip().endswith("?"):
            return None, set()
        context.state.requests.remove(request)
        owner = request.addressee or context.owner
        due, used = request.due, {0}
        # The answer may restate or narrow the task ("I'll send them tonight"); what was
        # asked for names it best, the answer's date (if any) wins.
        for index, clause in enumerate(clauses[:2]):
            if _PROMISE.search(clause) is not None:
                used.add(index)
                due = _due(clause, context) or due
                break
        quote = f"{request.quote} / {context.utterance.text}"
        confidence = 0.85 if owner else 0.6
        return Commitment(owner, request.action, due, quote, confidence), used

    def _confirmed_status(self, clauses: list[str], context: _Context) -> Commitment | None:
        """ "Is the staging environment ready?" / "Yes, it's ready.": a status update."""
        asked = context.state.status_question
        if asked is None or not clauses or context.state.index - asked[0] != 1:
            return None
        speaker = context.utterance.speaker
        if speaker is not None and asked[2] is not None and speaker.lower() == asked[2].lower():
            return None
        if not _STATUS_YES.match(clauses[0]) or _NEGATED.search(" ".join(clauses[:2])):
            return None
        quote = context.utterance.text
        return Commitment(context.owner, asked[1], None, quote, 0.7, "status_done")

    def _note_status_question(self, clauses: list[str], context: _Context) -> None:
        context.state.status_question = None
        for clause in clauses:
            match = _STATUS_QUESTION.match(clause)
            if match and clause.rstrip().endswith("?"):
                subject = _noun_phrase(match["subject"])
                if subject:
                    speaker = context.utterance.speaker
                    context.state.status_question = (context.state.index, subject, speaker)

    # ----------------------------------------------------------------- one clause

    def _clause(self, clause: str, context: _Context) -> list[Commitment]:
        if self._request(clause, context):
            return []
        if _is_question(clause):
            return []
        if _REPORTED.search(clause):
            return []
        directed = self._directed(clause, context)
        if directed is not None:
            return [directed]
        if _HYPOTHETICAL.search(clause) or context.conditional:
            return []
        cancel = self._cancel(clause, context)
        if cancel is not None:
            return [cancel]
        assigned = self._assignment(clause, context)
        if assigned and len(assigned) > 1:
            return assigned  # "Hank and I will ...": both own it
        promise = self._promise(clause, context)
        if promise is not None:
            return [promise]
        if assigned:
            return assigned
        pronoun = self._pronoun(clause, context)
        if pronoun is not None:
            return [pronoun]
        status = self._status(clause, context)
        return [status] if status is not None else []

    def _promise(self, clause: str, context: _Context) -> Commitment | None:
        promise = _PROMISE.search(clause)
        if promise is None or _REFUSAL.search(clause) or _PAST.search(clause):
            return None
        if _CONDITION_FIRST.match(clause[: promise.start()].strip()):
            return None
        action = _clean_action(
            promise["rest"], meeting_date=context.meeting_date, next_meeting=context.next_meeting
        )
        if not action or _NON_TASK.match(action):
            return None
        handed = context.state.handed
        if (
            _GENERIC_ACTION.match(action)
            and handed is not None
            and context.state.index - handed[0] == 1
            and (handed[1] is None or handed[1] == context.owner)
        ):
            return None  # "I'd like you to draft the budget." / "Sure, I'll do it."
        confidence = 0.6 if _HEDGED.search(clause) else 0.9
        asked = _prior_question(context.before[1:2], context.meeting_date)
        if _GENERIC_ACTION.match(action) and asked:
            action = asked  # "Did anyone send the notes?" / "Not yet, I'll do it"
        else:
            action = _resolve_pronoun(action, context.before[:2])
        if _GENERIC_ACTION.match(action):
            confidence = 0.5  # "I can take that" with nothing asked: "that" is unknown
        due = _due(clause, context)
        return Commitment(context.owner, action, due, context.utterance.text, confidence)

    def _assignment(self, clause: str, context: _Context) -> list[Commitment] | None:
        match = (
            _DIRECT.search(clause) or _ACTION_ITEM_FOR.search(clause) or _ASSIGNMENT.search(clause)
        )
        if match is None or _REFUSAL.search(clause) or _PAST.search(clause):
            return None
        names = [n.strip() for n in match["name"].split(" and ")]
        owners: list[str | None] = [context.owner if n == "I" else n for n in names]
        if not all(n == "I" or self._is_person(n) for n in names):
            return None
        rest = match["rest"]
        aux = _SPACES.sub(" ", match.groupdict().get("aux") or "").lower()
        if aux in _AUX_VERB:
            rest = f"{_AUX_VERB[aux]} {rest}"
        action = _resolve_pronoun(
            _clean_action(
                rest, meeting_date=context.meeting_date, next_meeting=context.next_meeting
            ),
            context.before[:2],
        )
        if not action or _NON_TASK.match(action):
            return None
        due = _due(clause, context)
        quote = context.utterance.text
        if len(names) > 1 and (_TOGETHER.search(rest) or "I" not in names):
            # One joint task, not one per owner: "Poppy and Tara will work together on ...",
            # "Poppy and Tara will draw the prototype". ("Hank and I will pair on ...": each.)
            return [_group_commitment([o for o in owners if o], action, due, quote, 0.8)]
        return [Commitment(owner, action, due, quote, 0.8) for owner in owners]

    def _directed(self, clause: str, context: _Context) -> Commitment | None:
        """Work handed to someone not speaking: by role, to "you", to the group, a reminder."""
        if _REFUSAL.search(clause) or _PAST.search(clause):
            return None
        people: list[str]
        role = _AS_ROLE.search(clause) or _ROLE_ASSIGNMENT.search(clause)
        group = _GROUP.search(clause)
        we = _WE_GROUP.search(clause)
        you = _YOU_ASSIGNED.search(clause) or _DIRECTIVE.search(clause) or _REMINDER.search(clause)
        if role is not None:
            people, rest = [self._role_owner(role["role"], context.state)], role["rest"]
        elif group is not None:
            people, rest = self._group(group["group"], context), group["rest"]
        elif we is not None and _we_will(we):
            people, rest = self._everyone(context), we["rest"]
        elif you is not None and not context.conditional:
            named, rest = self._vocative(clause[: you.start()], you["rest"], context)
            addressee = named or self._addressee(context)
            people = [addressee] if addressee else []
        else:
            return None
        if _HYPOTHETICAL.search(rest) or _CONDITION_FIRST.match(rest):
            return None
        action = _resolve_pronoun(
            _clean_action(
                rest, meeting_date=context.meeting_date, next_meeting=context.next_meeting
            ),
            context.before[:2],
        )
        if not action or _NON_TASK.match(action) or _GENERIC_ACTION.match(action):
            return None
        due = _due(clause, context)
        confidence = 0.7 if people else 0.5
        if len(people) <= 1:
            context.state.handed = (context.state.index, people[0] if people else None)
        return _group_commitment(people, action, due, context.utterance.text, confidence)

    def _addressee(self, context: _Context) -> str | None:
        """Whom "you" means: the last other person who spoke in the window."""
        speaker = (context.utterance.speaker or "").lower()
        for earlier in reversed(context.state.recent):
            name = earlier.speaker
            if name and self._is_person(name) and name.lower() != speaker:
                return name
        return None

    def _group(self, group: str, context: _Context) -> list[str]:
        """ "everyone" is every person heard; "you two", "all of you" leaves the speaker out."""
        people = self._everyone(context)
        if group.lower().startswith(("you", "all of you", "both", "each")) and context.owner:
            people = [p for p in people if p != context.owner]
        said = _GROUP_SIZE.get(group.lower().split()[-1])
        if group.lower().startswith("both"):
            said = 2
        if said is not None and len(people) != said:
            # "you two" with three others heard, or one: not sure who (the one heard may be
            # the third person, not one of the two)
            return []
        return people  # "everyone": all of them, or those heard so far

    def _everyone(self, context: _Context) -> list[str]:
        """Everyone heard or known to attend, the speaker included."""
        people = list(context.state.speakers)
        people += [p for p in context.state.participants if p not in people]
        return people

    def _vocative(self, head: str, rest: str, context: _Context) -> tuple[str | None, str]:
        """The person a request or an assignment to "you" is said to by name, if any:
        "Tom, I'd like you to ..." (`head`: what comes before "I'd like you"), "Okay, Tom. You'll
        be working on ..." (the sentence before), "... look at the costs, Tom" (end of `rest`,
        then dropped from it)."""
        speaker = (context.utterance.speaker or "").lower()
        for text in (head, context.before[0] if context.before else ""):
            match = _VOCATIVE_BEFORE.search(text.strip())
            if match is None:
                continue
            name = match["name"]
            if is_name(name) and self._is_person(name) and name.lower() != speaker:
                return name, rest
        tail = _VOCATIVE_AFTER.search(rest)
        if tail is not None:
            name = tail["name"]
            if is_name(name) and self._is_person(name) and name.lower() != speaker:
                return name, rest[: tail.start()]
        return None, rest

    # ----------------------------------------------------------------- roles and pronouns

    def _note_introductions(self, text: str, owner: str | None, state: _State) -> None:
        """Bind roles to people: "I'm Laura, I'm the project manager", "I'm the marketing
        expert" (said by a voice known as a person), "Tom is our industrial designer"."""
        role = _INTRO_ROLE.search(text)
        if role is not None:
            named = _INTRO_NAME.search(text)
            name = named["name"] if named is not None and is_name(named["name"]) else None
            if name is None and owner is not None and not _is_role(owner):
                name = owner  # "I'm the marketing expert" said by Andrew
            if name is not None and self._is_person(name):
                self._bind_role(role["role"], name, state)
        for other in _OTHER_INTRO.finditer(text):
            if is_name(other["name"]) and self._is_person(other["name"]):
                self._bind_role(other["role"], other["name"], state)

    @staticmethod
    def _bind_role(role: str, name: str, state: _State) -> None:
        state.roles[_role_key(role)] = name
        if name not in state.participants:
            state.participants.append(name)

    @staticmethod
    def _role_owner(role: str, state: _State) -> str:
        """The person introduced in `role`, else the role as said ("Marketing Expert")."""
        key = _role_key(role)
        if key in state.roles:
            return state.roles[key]
        # "the designer" names the one bound role ending so, only when there is one.
        ending = [name for bound, name in state.roles.items() if bound.endswith(" " + key)]
        if len(ending) == 1:
            return ending[0]
        return _role_name(role)

    def _pronoun(self, clause: str, context: _Context) -> Commitment | None:
        """ "He'll send the contract": the one person it can mean, else no owner."""
        match = _PRONOUN_ASSIGNMENT.search(clause)
        if match is None or _REFUSAL.search(clause) or _PAST.search(clause):
            return None
        action = _resolve_pronoun(
            _clean_action(
                match["rest"], meeting_date=context.meeting_date, next_meeting=context.next_meeting
            ),
            context.before[:2],
        )
        if not action or _NON_TASK.match(action) or _GENERIC_ACTION.match(action):
            return None
        owner = self._third_person(context)
        due = _due(clause, context)
        return Commitment(owner, action, due, context.utterance.text, 0.6 if owner else 0.4)

    def _third_person(self, context: _Context) -> str | None:
        """Whom "he"/"she" means: the one person (heard, introduced or known to attend) named
        in this utterance or the one before, not the speaker; None when no one or several
        could be meant. A name nobody knows is no owner, but it makes "he" ambiguous."""
        speaker = (context.utterance.speaker or "").lower()
        known = self._everyone(context)
        candidates: set[str] = set()
        for text in context.before[:2]:
            for person in known:
                if person.lower() != speaker and re.search(rf"\b{re.escape(person)}\b", text):
                    candidates.add(person)
            for word in _ANY_NAME.finditer(text):
                name = word["name"]
                known_already = any(name in p.split() for p in known)
                if is_name(name) and name.lower() != speaker and not known_already:
                    candidates.add(name)  # someone nobody knows: "he" may be them
        if len(candidates) == 1 and (only := candidates.pop()) in known:
            return only
        return None

    def _cancel(self, clause: str, context: _Context) -> Commitment | None:
        match = _CANCEL.search(clause) or _CANCEL_HOLD.search(clause)
        if match is not None and match["neg"]:
            return None
        target = match["rest"] if match else None
        if target is None:
            passive = _CANCEL_PASSIVE.search(clause)
            if passive is None or re.search(r"\bnot\b", clause, _I):
                return None
            target = passive["rest"]
        subject = _noun_phrase(target)
        if not subject or _SUBJECT_BAD.match(subject) or re.match(r"^(?:here|there)\b", subject):
            return None
        return Commitment(context.owner, subject, None, context.utterance.text, 0.75, "cancel")

    def _status(self, clause: str, context: _Context) -> Commitment | None:
        if _NEGATED.search(clause) or _HISTORY.search(clause):
            return None
        done = _DONE_FIRST.search(clause)
        if done is not None:
            subject = _noun_phrase(_without_due(done["rest"], _find(done["rest"], context)))
        else:
            match = _DONE_SUBJECT.search(clause)
            if match is None:
                return None
            subject = _noun_phrase(match["subject"])
        if not subject or _SUBJECT_BAD.match(subject) or len(subject.split()) > 6:
            return None
        quote = context.utterance.text
        return Commitment(context.owner, subject, None, quote, 0.75, "status_done")


_ANY_NAME = re.compile(rf"\b(?P<name>{_NAME})\b")
_GROUP_SIZE = {"two": 2, "three": 3, "four": 4, "five": 5}
_ROLE_ONLY = re.compile(rf"^{_ROLE}$")


def _is_role(label: str) -> bool:
    """A speaker label that is a role ("Project Manager"), not a person's name."""
    return bool(_ROLE_ONLY.match(label.strip()))


def _role_key(role: str) -> str:
    """ "the User Interface Designer" and "interface designer" -> "interface designer"."""
    words = role.lower().split()
    return " ".join(words[-2:])


def _we_will(match: re.Match[str]) -> bool:
    """ "we'll all ..." / "we all need to ..." is a group task; "we all agreed" is not."""
    group = match["group"].lower()
    if match["aux"]:
        return not group.startswith(("we're", "we are")) or "go" in match["aux"].lower()
    return group.startswith(("we'll", "we will"))


def _group_commitment(
    people: Sequence[str], action: str, due: dt.date | None, quote: str, confidence: float
) -> Commitment:
    """One commitment for one owner, none, or a group (each in `owners`)."""
    owners = tuple(dict.fromkeys(people))
    joined = _join_owners(list(owners))
    return Commitment(
        joined, action, due, quote, confidence, owners=owners if len(owners) > 1 else ()
    )


def _role_name(role: str) -> str:
    """ "industrial designer" -> "Industrial Designer": a role named as its owner."""
    return " ".join(word[:1].upper() + word[1:] for word in role.split())


def _join_owners(people: Sequence[str]) -> str | None:
    """Several owners of one task as one owner: "Poppy and Tara", "Ann, Ben and Cy"."""
    if not people:
        return None
    if len(people) == 1:
        return people[0]
    return f"{', '.join(people[:-1])} and {people[-1]}"


def _find(text: str, context: _Context) -> list[DueMatch]:
    return find_due_phrases(
        text, meeting_date=context.meeting_date, next_meeting=context.next_meeting
    )


def _prior_question(texts: Iterable[str], meeting_date: dt.date) -> str | None:
    """The task a question asked about: "Did anyone send the notes?" -> "send the notes"."""
    for text in texts:
        match = _PRIOR_VP.search(text)
        if match:
            action = _clean_action(match["vp"], meeting_date=meeting_date)
            return action if action and not _NON_TASK.match(action) else None
    return None


def _drop_generic(found: list[Commitment]) -> list[Commitment]:
    """ "I can take that, I'll write the test plan": the generic half is the same promise."""
    specific = [c for c in found if c.kind == "commitment" and not _GENERIC_ACTION.match(c.action)]
    if not specific:
        return found
    return [c for c in found if c.kind != "commitment" or not _GENERIC_ACTION.match(c.action)]


def _dedupe(found: list[Commitment]) -> list[Commitment]:
    seen: set[tuple[str, str | None, str]] = set()
    out: list[Commitment] = []
    for item in found:
        key = (item.kind, (item.owner or "").lower(), item.action.lower())
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out
