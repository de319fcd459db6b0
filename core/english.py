"""English word forms shared by extraction, reports and memory, from maintained libraries.

Verb inflection comes from `lemminflect` (a dictionary of English word forms with rules for
words it does not know), so no module keeps its own irregular-verb table or spelling rules;
ordinals and spoken lists come from `inflect`.
"""

from __future__ import annotations

import re

import inflect
from lemminflect import getAllLemmas, getInflection

__all__ = [
    "SCHEDULE_WORDS",
    "SENTENCE_END",
    "STOP_WORDS",
    "base_form",
    "ordinal",
    "ordinal_word",
    "past_tense",
    "spoken_list",
    "verb_lemma",
]


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Schedule talk, which says when something is due, not what it is ("ready by Friday").
SCHEDULE_WORDS = _wordset(
    """
    get got going gonna ready today tomorrow week day month end
    monday tuesday wednesday thursday friday saturday sunday
    """
)

#: The space after a sentence's ".", "!" or "?": `SENTENCE_END.split(text)` gives sentences.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

#: Function words (and a few conversational ones) that say nothing about what is done.
STOP_WORDS = _wordset(
    """
    a an the this that these those it its it's there here their them they we us our you your
    he she him her his hers i me my mine who whom whose which what when where why how
    and or but nor so yet if then than as of at by for from in into on onto to up down out
    off over under with without about after before since until till via per across between
    is are was were be been being am do does did done doing have has had having will would
    shall should can could may might must need needs ought let lets let's
    not no none nothing nobody noone everyone everybody everything anyone anything someone
    somebody something all any both each either neither every some many much more most few
    other others another such same own just only also too very really quite still already
    yet again ever never now then soon once here's there's that's what's who's it'll we'll
    they'll he'll she'll i'll you'll isn't aren't wasn't weren't hasn't haven't hadn't won't
    doesn't don't didn't can't cannot couldn't shouldn't wouldn't
    one two three four five six seven eight nine ten first second third last next
    ok okay yes hi hello thanks thank please sure well right alright meanwhile finally lastly
    however otherwise plus overall currently also besides though although because while
    else like bit little lot around almost nearly whole rest further rather instead
    """
)

_INFLECT = inflect.engine()


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st, ..."""
    return str(_INFLECT.ordinal(str(n)))


def ordinal_word(n: int) -> str:
    """ "first", "twelfth", "twenty-first", ..."""
    return str(_INFLECT.number_to_words(_INFLECT.ordinal(str(n))))


def spoken_list(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c" (no serial comma, and "," even when items hold commas)."""
    return str(_INFLECT.join(items, sep=",", final_sep=""))


# Function words that can start an action phrase but are never verbs ("the pricing page").
# lemminflect's dictionary holds open-class words only, so these are unknown to it.
_NOT_VERBS = frozenset(
    ["the", "a", "an", "our", "my", "your", "their", "his", "her", "its", "during"]
)


def _verb_lemmas(word: str) -> tuple[str, ...]:
    """The base forms of `word` read as a verb ("sent" -> ("send",)); () if it is not one."""
    lemmas: tuple[str, ...] = getAllLemmas(word, upos="VERB").get("VERB", ())
    return lemmas


def verb_lemma(word: str) -> str:
    """ "sent" -> "send", "written" -> "write", "sending" -> "send"; other words unchanged."""
    lemmas = _verb_lemmas(word)
    return lemmas[0] if lemmas else word


def base_form(word: str) -> str:
    """ "reviewing" -> "review", "running" -> "run", "updating" -> "update"; else unchanged.

    Only -ing forms of verbs in the dictionary change: "morning", "bring" and words the
    dictionary does not know stay as they are. The result is lower case when it changed.
    """
    lower = word.lower()
    if not lower.endswith("ing"):
        return word
    lemma = verb_lemma(lower)
    return word if lemma == lower else lemma


def past_tense(action: str) -> str:
    """ "get the demo environment ready" -> "got the demo environment ready", for done items.

    Actions are imperative phrases; their first word is put in the past tense. An action that
    does not start with a verb's base form ("the pricing page", "reviewing the contract")
    becomes "finished the pricing page".
    """
    verb, _, rest = action.partition(" ")
    lower = verb.lower()
    forms = getInflection(lower, tag="VBD") if lower.isalpha() and _is_base_verb(lower) else ()
    if not forms:
        return f"finished {action}"
    past = next((form for form in forms if form.isalpha()), forms[0])  # not "proof read"
    return f"{past} {rest}" if rest else past


def _is_base_verb(word: str) -> bool:
    """Whether an action's first word can be its verb: "send", "text" (a noun, verbed), not
    "sent", "reviewing", "the" or "already"."""
    readings = getAllLemmas(word)
    if not readings:  # unknown to the dictionary: a verb unless it looks inflected already
        return word not in _NOT_VERBS and not word.endswith(("ing", "ed"))
    if "VERB" in readings:
        return word in readings["VERB"]
    return "NOUN" in readings
