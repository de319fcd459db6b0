"""Word forms from lemminflect (core.english): cases the hand-written rules got wrong."""

from __future__ import annotations

import pytest

from core.english import base_form, past_tense, verb_lemma


@pytest.mark.parametrize(
    ("action", "done"),
    [
        ("bring the slides", "brought the slides"),  # was "finished bring the slides"
        ("ping Dana", "pinged Dana"),
        ("submit the expenses", "submitted the expenses"),  # was "submited"
        ("redo the estimate", "redid the estimate"),
        ("reset the passwords", "reset the passwords"),
        ("proofread the post", "proofread the post"),
        ("text Dana the address", "texted Dana the address"),  # a noun used as a verb
        ("dockerize the worker", "dockerized the worker"),  # unknown to the dictionary
        ("reviewing the contract", "finished reviewing the contract"),
        ("sent the deck", "finished sent the deck"),
        ("already done", "finished already done"),
        ("the pricing page", "finished the pricing page"),
        ("ship", "shipped"),
    ],
)
def test_past_tense(action: str, done: str) -> None:
    assert past_tense(action) == done


@pytest.mark.parametrize(
    ("word", "base"),
    [
        ("reviewing", "review"),
        ("Running", "run"),
        ("updating", "update"),
        ("making", "make"),
        ("caching", "cache"),  # the old rules gave "cach"
        ("timing", "time"),
        ("bring", "bring"),
        ("morning", "morning"),
        ("during", "during"),
        ("Send", "Send"),
    ],
)
def test_base_form(word: str, base: str) -> None:
    assert base_form(word) == base


def test_verb_lemma() -> None:
    assert [verb_lemma(w) for w in ("sent", "written", "sending", "went", "demo")] == [
        "send",
        "write",
        "send",
        "go",
        "demo",
    ]
