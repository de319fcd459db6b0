"""The deterministic extractor over positive and negative meeting-speech patterns."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pytest

from processors.extraction import DeterministicExtractor, Utterance, parse_transcript_lines

MEETING = dt.date(2026, 11, 24)


def extract(*lines: str) -> list[tuple[str, str | None, str, str | None]]:
    found = DeterministicExtractor().extract(parse_transcript_lines(lines), meeting_date=MEETING)
    return [(c.kind, c.owner, c.action, c.due.isoformat() if c.due else None) for c in found]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["Maya: I'll send the security review to legal by Friday."],
            ("commitment", "Maya", "send the security review to legal", "2026-11-27"),
        ),
        (
            ["Ben: I will update the onboarding docs tomorrow."],
            ("commitment", "Ben", "update the onboarding docs", "2026-11-25"),
        ),
        (
            ["Lena: I'm going to reach out to the vendor this week."],
            ("commitment", "Lena", "reach out to the vendor", "2026-11-27"),
        ),
        (
            ["Omar: Let me check with finance on the budget."],
            ("commitment", "Omar", "check with finance on the budget", None),
        ),
        (
            ["Sara: Action item for me: schedule the design review."],
            ("commitment", "Sara", "schedule the design review", None),
        ),
        (
            ["Lead: Ken will send the invoice by Monday."],
            ("commitment", "Ken", "send the invoice", "2026-11-30"),
        ),
        (
            ["Lead: Priya is going to update the pricing page next week."],
            ("commitment", "Priya", "update the pricing page", "2026-12-04"),
        ),
        (
            ["Tom: Quick update, the demo environment is ready."],
            ("status_done", "Tom", "demo environment", None),
        ),
        (["Ken: I finished the migration."], ("status_done", "Ken", "migration", None)),
        (["Lead: We're dropping the logo work."], ("cancel", "Lead", "logo work", None)),
    ],
)
def test_positive_patterns(
    lines: list[str], expected: tuple[str, str | None, str, str | None]
) -> None:
    assert extract(*lines) == [expected]


def test_request_accepted_in_the_next_turn_belongs_to_the_addressee() -> None:
    assert extract(
        "Ana: Tom, can you get the demo ready by Wednesday?", "Tom: Yes, I'll have it ready."
    ) == [("commitment", "Tom", "get the demo ready", "2026-11-25")]
    assert extract("Ana: Can you send me the numbers by EOD, Rita?", "Rita: Sure.") == [
        ("commitment", "Rita", "send me the numbers", "2026-11-24")
    ]


@pytest.mark.parametrize(
    "lines",
    [
        ["Tom: Last week I fixed the login bug."],
        ["Ana: Should we migrate to the new CI?"],
        ["Ben: Maybe later we could look at the caching layer."],
        ["Omar: If we had time I'd refactor the auth module."],
        ["Ken: I can't take that, sorry."],
        ["Maya: She said she'd call the vendor."],
        ["Jo: Tom mentioned he will look at the logs."],
        ["Ana: Tom, can you cover on-call?", "Tom: No, I won't have time this week."],
        ["Ana: The demo is not ready yet."],
        ["Olga: Are you going to send the slides?"],
    ],
)
def test_rejections(lines: list[str]) -> None:
    assert extract(*lines) == []


def test_fillers_hedges_and_corrections() -> None:
    [(kind, owner, action, due)] = extract(
        "Eva: Um, I'll, uh, send the report Monday, no, actually Tuesday."
    )
    assert (owner, action, due) == ("Eva", "send the report", "2026-12-01")


def test_two_promises_in_one_turn_and_unknown_speaker() -> None:
    assert extract(
        "Ruth: I'll update the roadmap, and I will also share it with the board on Friday."
    ) == [
        ("commitment", "Ruth", "update the roadmap", None),
        ("commitment", "Ruth", "share it with the board", "2026-11-27"),
    ]
    assert extract("I will send the deck tomorrow.") == [
        ("commitment", None, "send the deck", "2026-11-25")
    ]


def test_bot_name_is_never_an_owner() -> None:
    assert extract("Convene will send the summary tomorrow.") == []


def test_empty_and_parse_lines() -> None:
    assert extract() == []
    assert parse_transcript_lines(["", "Tom: hi", "no speaker here", "  "]) == [
        Utterance("Tom", "hi"),
        Utterance(None, "no speaker here"),
    ]


def test_streaming_feed_matches_extract() -> None:
    lines = parse_transcript_lines(
        [
            "Ana: Tom, can you get the demo ready by Wednesday?",
            "Tom: Yes.",
            "Ken: I'll send the invoice Monday.",
        ]
    )
    streaming = DeterministicExtractor()
    fed = [c for u in lines for c in streaming.feed(u, meeting_date=MEETING)]
    assert fed == DeterministicExtractor().extract(lines, meeting_date=MEETING)


def test_labelled_set_f1_and_throughput() -> None:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "extraction.py"
    spec = importlib.util.spec_from_file_location("bench_extraction", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_extraction"] = bench
    spec.loader.exec_module(bench)
    rows = bench.load(bench.DEFAULT_DATA)
    assert len(rows) >= 60
    score, _ = bench.evaluate(rows)
    assert score.f1 >= 0.9
