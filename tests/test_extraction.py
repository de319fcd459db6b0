"""The deterministic extractor over positive and negative meeting-speech patterns."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from domain.extraction import (
    Commitment,
    DeterministicExtractor,
    Utterance,
    parse_transcript_lines,
)

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

MEETING = dt.date(2026, 11, 24)  # a Tuesday
Row = tuple[str, str | None, str, str | None]


def found(*lines: str, bot_names: tuple[str, ...] = ("convene",)) -> list[Commitment]:
    extractor = DeterministicExtractor(bot_names=bot_names)
    return extractor.extract(parse_transcript_lines(lines), meeting_date=MEETING)


def extract(*lines: str) -> list[Row]:
    return [
        (c.kind, c.owner, c.action, c.due.isoformat() if c.due else None) for c in found(*lines)
    ]


# --------------------------------------------------------------------------- positives


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "Maya: I'll send the security review to legal by Friday.",
            ("commitment", "Maya", "send the security review to legal", "2026-11-27"),
        ),
        (
            "Ben: I will update the onboarding docs tomorrow.",
            ("commitment", "Ben", "update the onboarding docs", "2026-11-25"),
        ),
        (
            "Lena: I'm going to reach out to the vendor this week.",
            ("commitment", "Lena", "reach out to the vendor", "2026-11-27"),
        ),
        (
            "Kim: Okay, I'm gonna write the release notes tonight.",
            ("commitment", "Kim", "write the release notes", "2026-11-24"),
        ),
        (
            "Omar: Let me check with finance on the budget.",
            ("commitment", "Omar", "check with finance on the budget", None),
        ),
        (
            "Sara: Action item for me: schedule the design review for next Tuesday.",
            ("commitment", "Sara", "schedule the design review", "2026-12-01"),
        ),
        (
            "Priya: So my action item is to write up the incident timeline by tomorrow.",
            ("commitment", "Priya", "write up the incident timeline", "2026-11-25"),
        ),
        (
            "Mo: Going forward I'll be running the weekly standups.",
            ("commitment", "Mo", "run the weekly standups", None),
        ),
        (
            "Rae: I can do the Monday handoff, no problem.",
            ("commitment", "Rae", "do the Monday handoff", None),
        ),
    ],
)
def test_first_person_promises(line: str, expected: Row) -> None:
    assert extract(line) == [expected]


def test_i_can_take_that_and_i_will_have_it_ready_without_context() -> None:
    [taken] = found("Raj: I can take that.")
    assert (taken.kind, taken.owner, taken.action) == ("commitment", "Raj", "take that")
    assert taken.confidence < 0.9  # what "that" is was never said
    [ready] = found("Tom: I'll have it ready by Thursday.")
    assert (ready.owner, ready.due) == ("Tom", dt.date(2026, 11, 26))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "Lead: Ken will send the deck by Monday.",
            [("commitment", "Ken", "send the deck", "2026-11-30")],
        ),
        (
            "Lead: Priya is going to review the contract next week.",
            [("commitment", "Priya", "review the contract", "2026-12-04")],
        ),
        (
            "Quinn: Okay, action item for Ravi: finalize the budget spreadsheet by Monday.",
            [("commitment", "Ravi", "finalize the budget spreadsheet", "2026-11-30")],
        ),
        (
            "Yara: Zack, you'll own the demo script.",
            [("commitment", "Zack", "own the demo script", None)],
        ),
        (
            "Gina: Hank and I will pair on the flaky test fixes tomorrow.",
            [
                ("commitment", "Hank", "pair on the flaky test fixes", "2026-11-25"),
                ("commitment", "Gina", "pair on the flaky test fixes", "2026-11-25"),
            ],
        ),
        (
            "Mona: Just to confirm, Oli is doing the customer interviews and I'm doing the "
            "synthesis.",
            [
                ("commitment", "Oli", "do the customer interviews", None),
                ("commitment", "Mona", "do the synthesis", None),
            ],
        ),
    ],
)
def test_assignments_belong_to_the_person_named(line: str, expected: list[Row]) -> None:
    assert extract(line) == expected


def test_two_people_in_one_turn() -> None:
    assert extract(
        "Nora: I'll draft the agenda, and Ravi is going to book the venue by next Friday."
    ) == [
        ("commitment", "Nora", "draft the agenda", None),
        ("commitment", "Ravi", "book the venue", "2026-12-04"),
    ]


# --------------------------------------------------------------------------- requests


def test_request_accepted_in_the_next_turn_belongs_to_the_addressee() -> None:
    [item] = found(
        "Ana: Tom, can you get the demo ready by Wednesday?", "Tom: Yes, I'll have it ready"
    )
    assert (item.kind, item.owner, item.action, item.due) == (
        "commitment",
        "Tom",
        "get the demo ready",
        dt.date(2026, 11, 25),
    )
    assert item.quote == "Tom, can you get the demo ready by Wednesday? / Yes, I'll have it ready"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["Ana: Can you send me the numbers by EOD, Rita?", "Rita: Sure."],
            ("Rita", "send me the numbers", "2026-11-24"),
        ),
        (
            ["Gabe: Can you, Hana, check the SLA numbers?", "Hana: Sure thing."],
            ("Hana", "check the SLA numbers", None),
        ),
        (
            ["Oscar: Paula, would you mind reviewing my PR today?", "Paula: Yep."],
            ("Paula", "review my PR", "2026-11-24"),
        ),
        (
            ["Cy: Tom, please update the status page by 5pm.", "Tom: On it."],
            ("Tom", "update the status page", "2026-11-24"),
        ),
        (
            # the answer's date wins over the request's
            ["Lisa: Ken, can you review the pull request?", "Ken: Sure, I'll do it Thursday."],
            ("Ken", "review the pull request", "2026-11-26"),
        ),
        (
            ["Lucy: Can someone take the release notes?", "Omar: I can take that."],
            ("Omar", "take the release notes", None),
        ),
        (
            # cross-talk between the request and its answer
            [
                "Ana: Tom, can you send the slides to the client?",
                "Ben: Sorry, quick thing, the projector is broken again.",
                "Tom: Sure, I'll send them tonight.",
            ],
            ("Tom", "send the slides to the client", "2026-11-24"),
        ),
    ],
)
def test_requests_and_their_acceptance(
    lines: list[str], expected: tuple[str, str, str | None]
) -> None:
    assert extract(*lines) == [("commitment", *expected)]


def test_an_open_request_answered_by_the_asker_is_no_commitment() -> None:
    assert extract("Lucy: Can someone take the release notes?", "Lucy: Anyone? Okay.") == []


def test_a_request_expires_after_the_window() -> None:
    lines = [
        "Ana: Tom, can you book the room?",
        "Ben: The numbers look fine.",
        "Cy: Agreed.",
        "Dee: Moving on.",
        "Eve: Next topic.",
        "Tom: Yes.",
    ]
    assert extract(*lines) == []
    assert found(*lines[:2], lines[-1]) != []


# --------------------------------------------------------------------------- negatives


@pytest.mark.parametrize(
    "lines",
    [
        ["Tom: Last week I fixed the login bug."],
        ["Omar: I sent it yesterday, check your spam folder."],
        ["Ana: Should we migrate to the new CI?"],
        ["Lena: Maybe later."],
        ["Ben: Maybe later we could look at the caching layer."],
        ["Ken: We could look at it someday, I guess."],
        ["Omar: If we had time I'd refactor the auth module."],
        ["Tina: If we had more budget I would hire a designer."],
        ["Ken: I can't take that, sorry."],
        ["Mia: No, I won't have time for the migration this sprint."],
        ["Uri: I'm not sure I can get to the security questionnaire this week."],
        ["Maya: She said she'd call the vendor."],
        ["Jo: Tom mentioned he will look at the logs."],
        ["Uma: The vendor said they'd send the quote by Friday."],
        ["Ana: Tom, can you cover on-call?", "Tom: No, I won't have time this week."],
        [
            "Lia: Can you, um, review the design doc, Marcus?",
            "Marcus: I'd love to but I'm completely slammed, sorry.",
        ],
        ["Ana: The demo is not ready yet."],
        ["Raj: The dashboard is almost finished."],
        ["Olga: Are you going to send the slides?"],
        ["Omar: Let me think about it."],
        ["Jess: Let me just share my screen."],
        ["Priya: I'm going to be out next week, just so everyone knows."],
        ["Sam: I'll be honest, the timeline looks tight."],
        ["Zed: I'm going to the offsite next week."],
        ["Jade: I'm going to grab lunch, back in ten."],
        ["Oli: I was going to fix the export bug but I ran out of time."],
        ["Flo: I'm not going to finish the audit by Friday."],
        ["Yan: Let's not drop the logo work yet, we still need it."],
        ["Ed: Honestly, we should probably revisit the hiring plan."],
        ["Tara: Thanks everyone, that's all for today."],
    ],
)
def test_rejections(lines: list[str]) -> None:
    assert extract(*lines) == []


def test_the_bot_is_never_an_owner() -> None:
    assert extract("Ana: Convene will send the summary tomorrow.") == []
    assert extract("Dana: Convene, can you remind everyone?", "Convene: Sure, I'll do it.") == []
    assert extract("Convene: I'll send a reminder.") == []
    assert extract("Ana: Max will send the deck.") == [("commitment", "Max", "send the deck", None)]
    assert found("Ana: Max will send the deck.", bot_names=("max",)) == []


# --------------------------------------------------------------------------- owner and action


def test_owner_is_the_speaker_else_unknown() -> None:
    assert extract("I will send the deck tomorrow.") == [
        ("commitment", None, "send the deck", "2026-11-25")
    ]
    assert extract("Can you send the agenda out tonight?", "Sure.") == [
        ("commitment", None, "send the agenda out", "2026-11-24")
    ]


@pytest.mark.parametrize(
    ("line", "action"),
    [
        ("Ben: Okay so I will, uh, I will update the onboarding docs.", "update the onboarding docs"),
        ("Hannah: Um, so I'll, I'll circulate the notes by end of day, okay?", "circulate the notes"),
        ("Noah: Basically I will, you know, clean up the old feature flags.", "clean up the old feature flags"),
        ("Quinn: Raj is going to, like, own the incident postmortem.", "own the incident postmortem"),
        ("Rita: I think I'll probably update the FAQ page next Tuesday.", "update the FAQ page"),
        ("Di: I will try to get the beta build out in a week.", "get the beta build out"),
        ("Tara: I'll make sure the test suite runs before the release.", "make sure the test suite runs before the release"),
    ],
)  # fmt: skip
def test_action_is_a_short_imperative_phrase(line: str, action: str) -> None:
    [item] = found(line)
    assert item.action == action
    assert item.quote == parse_transcript_lines([line])[0].text


def test_hedged_promises_have_lower_confidence() -> None:
    [plain] = found("Rita: I'll update the FAQ page.")
    [hedged] = found("Rita: I think I'll probably update the FAQ page.")
    assert 0.0 <= hedged.confidence < plain.confidence <= 1.0


def test_it_and_them_name_what_was_mentioned() -> None:
    assert extract("Tom: The security review is not done yet, I will send it to legal.") == [
        ("commitment", "Tom", "send the security review to legal", None)
    ]
    assert extract("Ray: Did you finish the migration?", "Sue: Not yet, I'll finish it tomorrow.") == [
        ("commitment", "Sue", "finish the migration", "2026-11-25")
    ]  # fmt: skip


def test_a_corrected_date_wins() -> None:
    assert extract("Eva: Um, I'll send the report Monday, no, actually Tuesday.") == [
        ("commitment", "Eva", "send the report", "2026-12-01")
    ]
    assert extract("Xena: I'll send it on Monday, sorry, I mean Wednesday.") == [
        ("commitment", "Xena", "send it", "2026-11-25")
    ]


# --------------------------------------------------------------------------- status and cancel


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["Tom: Quick update, the demo environment is ready."], ("Tom", "demo environment")),
        (["Ken: I finished the migration."], ("Ken", "migration")),
        (["Maya: Good news, the security review is done."], ("Maya", "security review")),
        (["Bo: The invoice has been sent to the client."], ("Bo", "invoice")),
        (["Ben: I've sent the invoice to the client."], ("Ben", "invoice to the client")),
        (["Hugo: Is the staging environment ready?", "Iris: Yes, it's ready."], ("Iris", "staging environment")),
    ],
)  # fmt: skip
def test_status_updates(lines: list[str], expected: tuple[str, str]) -> None:
    assert extract(*lines) == [("status_done", *expected, None)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Lead: We're dropping the logo work.", ("Lead", "logo work")),
        ("Ana: Let's cancel the offsite planning for now.", ("Ana", "offsite planning")),
        ("Fay: Let's cancel the Thursday sync, nobody uses it.", ("Fay", "Thursday sync")),
        ("Omar: The mobile redesign is off the table this quarter.", ("Omar", "mobile redesign")),
        ("Fran: Let's put the rebrand on hold until Q3.", ("Fran", "rebrand")),
    ],
)
def test_cancellations(line: str, expected: tuple[str, str]) -> None:
    assert extract(line) == [("cancel", *expected, None)]


def test_status_and_a_promise_in_one_turn() -> None:
    assert extract("Eli: The Q3 report is done, and I'll send it to the board by Monday.") == [
        ("status_done", "Eli", "Q3 report", None),
        ("commitment", "Eli", "send the Q3 report to the board", "2026-11-30"),
    ]


# --------------------------------------------------------------------------- API


def test_empty_transcript() -> None:
    assert extract() == []
    assert DeterministicExtractor().feed(Utterance("Ana", "   "), meeting_date=MEETING) == []


def test_parse_transcript_lines() -> None:
    assert parse_transcript_lines(
        ["", "Tom: hi", "no speaker here", "  ", "Speaker 2: yes", "Mary Jo: ok", "Tom:"]
    ) == [
        Utterance("Tom", "hi"),
        Utterance(None, "no speaker here"),
        Utterance("Speaker 2", "yes"),
        Utterance("Mary Jo", "ok"),
    ]


TRANSCRIPT = [
    "Ana: Tom, can you get the demo ready by Wednesday?",
    "Ben: Quick update, the pricing page is live.",
    "Tom: Yes, I'll have it ready.",
    "Ken: I'll send the invoice Monday, no, Tuesday.",
    "Lucy: Can someone take the release notes?",
    "Omar: I can take that.",
    "Lead: We're dropping the logo work.",
    "Ruth: I'll update the roadmap, and I will also share it with the board on Friday.",
]


def test_streaming_feed_matches_extract() -> None:
    lines = parse_transcript_lines(TRANSCRIPT)
    streaming = DeterministicExtractor()
    fed = [c for u in lines for c in streaming.feed(u, meeting_date=MEETING)]
    assert fed == DeterministicExtractor().extract(lines, meeting_date=MEETING)
    assert [(c.kind, c.owner) for c in fed] == [
        ("status_done", "Ben"),
        ("commitment", "Tom"),
        ("commitment", "Ken"),
        ("commitment", "Omar"),
        ("cancel", "Lead"),
        ("commitment", "Ruth"),
        ("commitment", "Ruth"),
    ]


def test_extract_does_not_disturb_a_stream() -> None:
    lines = parse_transcript_lines(TRANSCRIPT[:1] + TRANSCRIPT[2:3])
    streaming = DeterministicExtractor()
    assert streaming.feed(lines[0], meeting_date=MEETING) == []
    streaming.extract(parse_transcript_lines(TRANSCRIPT[3:]), meeting_date=MEETING)
    [accepted] = streaming.feed(lines[1], meeting_date=MEETING)
    assert (accepted.owner, accepted.action) == ("Tom", "get the demo ready")
    streaming.reset()
    [alone] = streaming.feed(lines[1], meeting_date=MEETING)  # no request to accept any more
    assert alone.action == "get it ready" and alone.confidence < 0.9


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DeterministicExtractor(window=0)


# --------------------------------------------------------------------------- labelled set


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "extraction.py"
    spec = importlib.util.spec_from_file_location("bench_extraction", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_extraction"] = module
    spec.loader.exec_module(module)
    return module


def test_labelled_set_f1() -> None:
    bench = _benchmark()
    rows = bench.load(bench.DEFAULT_DATA)
    assert len(rows) >= 60
    negatives = sum(1 for row in rows if not row["expected"])
    assert 0.3 <= negatives / len(rows) <= 0.5
    score, misses = bench.evaluate(rows)
    assert score.f1 >= 0.9, misses


def test_confidence_is_a_probability_and_kinds_are_known() -> None:
    bench = _benchmark()
    extractor = DeterministicExtractor()
    for row in bench.load(bench.DEFAULT_DATA):
        items = extractor.extract(
            parse_transcript_lines(row["lines"]),
            meeting_date=dt.date.fromisoformat(row["date"]),
        )
        for item in items:
            assert 0.0 <= item.confidence <= 1.0
            assert item.kind in ("commitment", "status_done", "cancel")
            assert item.owner is None or item.owner.lower() != "convene"
