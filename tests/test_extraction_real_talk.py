"""The rules on forms of real meeting talk (issue 14): work handed out without "I'll"."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.extraction import DeterministicExtractor, parse_transcript_lines

MEETING = dt.date(2026, 11, 24)


def extract(*lines: str) -> list[tuple[str | None, str]]:
    found = DeterministicExtractor().extract(parse_transcript_lines(lines), meeting_date=MEETING)
    return [(c.owner, c.action) for c in found if c.kind == "commitment"]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["Ryan: I can show the sketches.", "Priya: You'll be working on the user interface."],
            [("Ryan", "work on the user interface")],
        ),
        (
            ["Ryan: Okay.", "Priya: So you're gonna be working on the remote's casing."],
            [("Ryan", "work on the remote's casing")],
        ),
        (
            ["Priya: Ryan, you're gonna draw the prototype."],
            [("Ryan", "draw the prototype")],
        ),
    ],
)
def test_you_will_be_working_on_belongs_to_the_one_addressed(
    lines: list[str], expected: list[tuple[str | None, str]]
) -> None:
    assert extract(*lines) == expected


def test_you_will_see_is_no_task() -> None:
    assert extract("Ryan: Okay.", "Priya: You'll see what I mean.") == []
    assert extract("Ryan: Okay.", "Priya: You're gonna be surprised.") == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "Priya: The Marketing Expert is going to work on the trend report.",
            [("Marketing Expert", "work on the trend report")],
        ),
        (
            "Priya: And as the industrial designer, you're gonna look at the components.",
            [("Industrial Designer", "look at the components")],
        ),
        (
            "Priya: Right, the project manager will write up the minutes.",
            [("Project Manager", "write up the minutes")],
        ),
    ],
)
def test_owners_named_by_role(line: str, expected: list[tuple[str | None, str]]) -> None:
    assert extract(line) == expected


def test_a_role_in_a_prediction_is_no_owner() -> None:
    assert extract("Priya: The designer might like the blue one.") == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Priya: I'd like you to draft the budget.", [("Ryan", "draft the budget")]),
        (
            "Priya: If you can figure out how to cut the battery cost.",
            [("Ryan", "figure out how to cut the battery cost")],
        ),
    ],
)
def test_requests_to_the_one_addressed(line: str, expected: list[tuple[str | None, str]]) -> None:
    assert extract("Ryan: Sure.", line) == expected


def test_a_request_with_nobody_addressed_has_no_owner() -> None:
    assert extract("Priya: I'd like you to draft the budget.") == [(None, "draft the budget")]


def test_hypothetical_or_refused_requests_are_not_commitments() -> None:
    assert extract("Ryan: Sure.", "Priya: If you could maybe look at the costs later.") == []
    assert extract("Ryan: Sure.", "Priya: I'd like you to, but you can't do the costs.") == []


def test_a_reminder_is_a_task_of_the_one_reminded() -> None:
    assert extract("Ryan: Right.", "Priya: Don't forget to complete the final questionnaire.") == [
        ("Ryan", "complete the final questionnaire")
    ]


def test_a_group_task_is_one_commitment_of_everyone_heard() -> None:
    assert extract(
        "Ryan: Hi.", "Tara: Hello.", "Poppy: So everyone's gonna go finish their questionnaire."
    ) == [("Ryan, Tara and Poppy", "go finish their questionnaire")]


def test_you_two_leaves_the_speaker_out() -> None:
    assert extract(
        "Ryan: Hi.", "Tara: Hello.", "Poppy: You two are gonna work together on the drawing."
    ) == [("Ryan and Tara", "work together on the drawing")]


def test_two_people_working_together_is_one_commitment_with_its_object() -> None:
    assert extract("Priya: Poppy and Tara will have to work together on the prototype.") == [
        ("Poppy and Tara", "work together on the prototype")
    ]
    # Not together: each owns it, as before.
    assert len(extract("Gina: Hank and I will pair on the flaky test fixes tomorrow.")) == 2
