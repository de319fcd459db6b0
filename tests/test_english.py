"""Word forms from lemminflect and inflect (core.english): past tense, base forms, ordinals, lists."""

from __future__ import annotations

import pytest

from core.english import base_form, ordinal, ordinal_word, past_tense, spoken_list, verb_lemma


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


def test_ordinals() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st", "111th",
    ]  # fmt: skip
    assert [ordinal_word(n) for n in (1, 12, 20, 21, 30, 31)] == [
        "first", "twelfth", "twentieth", "twenty-first", "thirtieth", "thirty-first",
    ]  # fmt: skip


def test_spoken_list() -> None:
    assert spoken_list([]) == ""
    assert spoken_list(["a"]) == "a"
    assert spoken_list(["a", "b"]) == "a and b"
    assert spoken_list(["a", "b", "c"]) == "a, b and c"
    # inflect would switch to ";" when an item holds a comma; a spoken list keeps ",".
    assert spoken_list(["Tom, by Friday", "b", "c"]) == "Tom, by Friday, b and c"
