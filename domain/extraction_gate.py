"""A cheap, high-recall gate: may this window of meeting talk hold a commitment?

The LLM extractor (`domain/llm_extraction.py`) asks its model only about windows the gate
passes; the rules (`domain/extraction.py`) still read every line. The gate is tuned for recall,
not precision: a window it passes that holds nothing costs one model request; a window it drops
that held a commitment is left to the rules, which find far fewer on real talk. So it passes
anything with a cue of future work, however weak:

* promises and plans in any person: "I'll", "we're gonna", "you will", "Kate will be looking
  at", "is going to", "have to", "need to", "should", "let me", "let's";
* requests and hand-offs: "can you", "I'd like you to", "if you could", "I want you to", "you
  two", "is for Kate", "Steph gets the user interface", "your assignments", "instructions";
* work words: "work on", "look at", "focus on", "find out", "prepare", "send", "email",
  "check", "ask", "research", "take care of", "in charge of", "action item", "to do";
* reminders ("don't forget", "remember to", "make sure"), deadlines and the next meeting (any
  due phrase `domain.dates` finds, "next meeting", "next time", "before we meet");
* status and cancellations ("done", "finished", "ready", "cancel", "drop");
* an acceptance ("sure", "yes", "will do", "okay") of a request in the window's context.

Measured on the AMI dev split (`benchmarks/extraction.py --gate-report`): see the README. All
regular expressions, no model; a few microseconds a line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from domain.extraction import Utterance

__all__ = ["has_commitment_cue", "may_hold_commitment", "window_may_hold_commitment"]

_I = re.IGNORECASE

_SUBJECT = r"(?:i|we|you|he|she|they|it|this|that|[a-z]+)"
_CUES = re.compile(
    r"|".join(
        (
            # future and obligation, any person
            r"\b(?:i|we|you|he|she|they|who|someone|somebody|everyone|everybody)'ll\b",
            r"\b[a-z]+'ll\b",
            r"\bwill\b",
            r"\bshall\b",
            r"\bgonna\b",
            r"\bgoing\s+to\b",
            r"\bwanna\b",
            r"\b(?:have|has|had)\s+(?:got\s+)?to\b",
            r"\bgot\s+to\b|\bgotta\b",
            r"\bneeds?\s+to\b",
            r"\bshould\b",
            r"\bmust\b",
            r"\blet\s+me\b|\blet's\b|\blets\b",
            r"\bi'd\b|\bi\s+would\b|\bwe'd\b",
            # requests, offers and hand-offs
            r"\b(?:can|could|would|will|won't|wouldn't)\s+(?:you|someone|somebody|anyone|we)\b",
            r"\b(?:you|we|i)\s+(?:can|could|might|may)\b",
            r"\b(?:i|we)\s+(?:want|need|like)\s+(?:you|him|her|them|everyone|everybody)\b",
            r"\bif\s+you\b",
            r"\byou\s+(?:two|both|guys|all)\b|\bthe\s+two\s+of\s+you\b|\btogether\b",
            r"\b(?:is|are)\s+for\s+(?:you|[a-z]+)\b",
            r"\b(?:you|he|she|[a-z]+)\s+gets?\s+(?:the|to)\b",
            r"\bassign(?:ment|ments|ed)?\b|\binstructions?\b|\bindividual\s+(?:work|action)",
            r"\baction\s+items?\b|\bto-?do\b|\btasks?\b|\bresponsib",
            r"\bin\s+charge\s+of\b|\btake\s+care\s+of\b|\b(?:i|we)\s+can\s+take\b",
            r"\bdelegat|\brecommend|\bplease\b|\bfor\s+you\b|\b(?:my|your|our)\s+department\b",
            # the work itself
            r"\b(?:work|working|works|worked)\s+(?:on|together|out)\b",
            r"\b(?:look|looking)\s+(?:at|into|for|on)\b",
            r"\bfocus(?:ed|ing)?\s+on\b",
            r"\bfind(?:ing)?\s+out\b|\bfigure\s+out\b",
            r"\b(?:prepare|preparing|present|presenting|research|researching|send|sending|sent|"
            r"e-?mail|mail|check|checking|ask|asking|inquire|contact|call|write|writing|draw|"
            r"drawing|design|designing|build|building|finish|finishing|complete|completing|"
            r"fill|review|follow\s+up|get\s+back|come\s+up\s+with|think\s+about|"
            r"consult|evaluate|produce|producing)\b",
            # reminders, deadlines, the next meeting
            r"\bdon't\s+forget\b|\bremember\s+to\b|\bmake\s+sure\b|\bbe\s+sure\s+to\b",
            r"\bnext\s+(?:meeting|time|session|week|call)\b|\bbefore\s+we\s+meet\b|\bmeet\s+again\b",
            r"\b(?:by|before|until|till)\s+(?:the\s+)?(?:end|next|monday|tuesday|wednesday|"
            r"thursday|friday|tomorrow|tonight|today|noon|lunch)\b",
            r"\btomorrow\b|\btonight\b|\beod\b|\bend\s+of\s+(?:the\s+)?(?:day|week|month)\b",
            r"\bin\s+(?:a|an|half|\d+|one|two|three|five|ten|fifteen|twenty|thirty)\s+"
            r"(?:an\s+)?(?:minutes?|hours?|days?|weeks?)\b",
            # status and cancellations
            r"\b(?:done|finished|ready|completed|sorted|shipped|fixed|merged|live|signed|"
            r"deployed|launched|released|doing|handling|up\s+and\s+running|off\s+the\s+table)\b",
            r"\b(?:cancel|cancell?ed|drop|dropping|scrap|scrapping|postpone|shelve|"
            r"call\s+off)\b",
        )
    ),
    _I,
)
_ACCEPT = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|sure|okay|ok|alright|all\s+right|will\s+do|on\s+it|no\s+problem|"
    r"fine|of\s+course|absolutely|sounds\s+good|got\s+it|consider\s+it\s+done|i\s+can|"
    r"i'll|i\s+will|mm-?hmm|uh-?huh|on\s+it)\b",
    _I,
)
_REQUEST = re.compile(
    r"\b(?:can|could|would|will)\s+(?:you|someone|somebody|anyone)\b|\bwho\s+(?:can|will|wants)"
    r"\b|\b(?:i|we)\s+(?:want|need|like)\s+you\b|\bif\s+you\s+(?:can|could)\b|\bplease\b",
    _I,
)
del _SUBJECT


def may_hold_commitment(text: str) -> bool:
    """Whether one utterance has any cue of a commitment (high recall, low precision)."""
    return bool(text) and _CUES.search(text) is not None


def window_may_hold_commitment(lines: Sequence[Utterance], *, new_from: int = 0) -> bool:
    """Whether a window may hold a commitment made in its new lines (`lines[new_from:]`): a new
    line with a cue, or a new line that accepts a request made in the lines before it."""
    for index in range(max(0, new_from), len(lines)):
        text = lines[index].text
        if may_hold_commitment(text):
            return True
        if _ACCEPT.match(text) and any(_REQUEST.search(u.text) for u in lines[:index]):
            return True
    return False


# Stricter than the gate: the line an LLM quotes for an item must put work on someone (a
# promise, a hand-off, a request, a group task, a reminder, the next meeting) or report one
# finished or called off. Without it (a plan for this meeting, an opinion, what the product
# should do) a small model's item is dropped (domain.llm_extraction_tool).
_PERSONAL = re.compile(
    r"|".join(
        (
            r"\b(?:i|you|he|she|they|someone|somebody)(?:'ll|\s+will|\s+shall)\b",
            r"\b(?:i'm|i\s+am|you're|you\s+are|he's|she's|they're|we're)\s+(?:gonna|going\s+to)\b",
            r"\b(?:i|you)\s+(?:can|could|should|need\s+to|have\s+to|must|might|may)\b",
            r"\b(?:can|could|would|will)\s+(?:you|someone|somebody|anyone)\b",
            r"\bif\s+you\b|\b(?:like|want|need)\s+(?:you|him|her|them)\b|\blet\s+me\b",
            r"\bdon't\s+forget\b|\bremember\s+to\b|\bmake\s+sure\b|\bbe\s+sure\s+to\b",
            r"\b(?:everyone|everybody|each\s+of\s+you|all\s+of\s+you|you\s+two|you\s+both|"
            r"we\s+all|we'll\s+all|the\s+two\s+of\s+you)\b",
            r"\b(?:designer|expert|manager|engineer|lead|team)\s+(?:will|should|is\s+going\s+to|"
            r"is\s+gonna|to|can|could|has\s+to)\b",
            r"\b(?:is|are)\s+for\s+(?:you|[A-Z][a-z]+)\b|\bfor\s+you\b",
            r"\b(?:for|before|until|by)\s+(?:the\s+)?next\s+(?:meeting|time|session|one)\b",
            r"\bbefore\s+we\s+meet\b|\bwork(?:ing)?\s+together\b",
            r"\b(?:sure|okay|ok|yes|yeah|will\s+do|no\s+problem|on\s+it)\b",
            r"\b(?:done|finished|ready|sent|completed|fixed|shipped|merged|signed|booked|"
            r"deployed|launched|released|updated|sorted)\b",
            r"\b(?:cancel|cancell?ed|drop|dropping|scrap|scrapping|postpone|shelve|call\s+off|"
            r"forget\s+(?:the|about)|won't|no\s+longer|not\s+needed)\b",
        )
    ),
    _I,
)
# Someone named: "Sebastian should have a look", "Tom will", "Anna to work on" (case kept).
_NAMED = re.compile(
    r"\b(?!(?:We|It|This|That|They|You|He|She|There|What|Which|Who|So|And|But|Then|Okay|"
    r"Yeah|Well|Maybe|One|Nobody|Something|Everything|Anything)\b)[A-Z][a-z]+\s+(?:will|should|is\s+going\s+to|is\s+gonna|can|could|has\s+to|"
    r"needs\s+to|to\s+(?:work|look|do|prepare|make|check|find)|gets)\b"
)


def has_commitment_cue(text: str) -> bool:
    """The line puts work on someone, or reports work finished or called off."""
    return bool(_PERSONAL.search(text) or _NAMED.search(text))
