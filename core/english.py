"""English word forms shared by extraction, reports and memory, from maintained libraries.

Verb inflection comes from `lemminflect` (a dictionary of English word forms with rules for
words it does not know), so no module keeps its own irregular-verb table or spelling rules;
ordinals and spoken lists come from `inflect`.
"""

from __future__ import annotations

import inflect
from lemminflect import getAllLemmas, getInflection

__all__ = ["base_form", "ordinal", "ordinal_word", "past_tense", "spoken_list", "verb_lemma"]

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
