"""Matching what is said this week to last week's tasks, when either transcript misheard a word."""

from __future__ import annotations

import pytest

from memory.embeddings import shared_embedder
from memory.models import CommitmentRecord
from memory.tracking import (
    MATCH_THRESHOLD,
    SOUND_ALIKE_CREDIT,
    TaskRow,
    match_score,
    word_credit,
)

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run


def score(task_action: str, task_owner: str | None, quote: str, action: str) -> float:
    embed = shared_embedder().embed_one
    task = TaskRow(
        id=1,
        owner=task_owner,
        action=task_action,
        due=None,
        status="open",
        embedding=embed(task_action),
    )
    update = CommitmentRecord(
        call_id="00000000-0000-0000-0000-000000000000",
        seq=0,
        ordinal=0,
        kind="status_done",
        owner=None,
        action=action,
        due=None,
        quote=quote,
        confidence=0.9,
    )
    return match_score(update, embed(action), embed(quote), task)


def test_an_update_closes_a_task_whose_transcript_misheard_a_word() -> None:
    # Whisper heard "demo" as "Dumbo" last week (seen on an AVX2 machine); this week it did not.
    misheard = score(
        "get the Dumbo environment ready",
        "Tom",
        "Quick update, the demo environment is ready.",
        "the demo environment",
    )
    assert misheard >= MATCH_THRESHOLD


@pytest.mark.parametrize(
    ("task", "quote", "action"),
    [
        ("update the pricing page", "The printing is done.", "the printing"),
        ("send the security review to legal", "The security cameras are in.", "security cameras"),
        ("book the venue for the team dinner", "The vendor contract is signed.", "vendor contract"),
    ],
)
def test_words_that_only_sound_alike_do_not_close_a_different_task(
    task: str, quote: str, action: str
) -> None:
    assert score(task, None, quote, action) < MATCH_THRESHOLD


def test_sound_alike_credit_needs_the_same_start_and_most_letters() -> None:
    assert word_credit("demo", {"demo"}) == 1.0
    assert 0 < word_credit("dumbo", {"demo"}) < 1.0
    assert word_credit("demo", {"memo"}) == 0.0  # another first sound
    assert word_credit("bug", {"bag"}) == 0.0  # too short to tell
    assert word_credit("pricing", {"page"}) == 0.0
    assert word_credit("deploy", {"demo"}) == 0.0
    assert word_credit("review", {"rewrite"}) == 0.0
    # rapidfuzz's ratio counts the longest common subsequence, difflib's only greedy blocks, so
    # it is never lower: "besides"/"business" share "bsies" (10 of 15 letters) and match now.
    assert word_credit("besides", {"business"}) == SOUND_ALIKE_CREDIT
