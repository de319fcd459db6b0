"""Owners as people, not strings (issue 14 item 4), through the real rules extractor.

Roles bound to names by introductions, the addressee of a request by name, one commitment with
several owners for a group, and "he"/"she" named only when one person can be meant.
"""

from __future__ import annotations

import datetime as dt

import pytest

from domain.extraction import Commitment, DeterministicExtractor, Utterance, parse_transcript_lines
from server.extract_cli import CliExtractor, extract_lines

MEETING = dt.date(2026, 11, 24)


def found(*lines: str, participants: tuple[str, ...] = ()) -> list[Commitment]:
    items = DeterministicExtractor().extract(
        parse_transcript_lines(lines), meeting_date=MEETING, participants=participants
    )
    return [c for c in items if c.kind == "commitment"]


def owners(*lines: str, participants: tuple[str, ...] = ()) -> list[tuple[str | None, str]]:
    return [(c.owner, c.action) for c in found(*lines, participants=participants)]


# ----------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [
                "Laura: Hi, I'm Laura, I'm the project manager.",
                "Andrew: And I'm the marketing expert.",
                "Laura: The Marketing Expert is going to work on the trend report.",
            ],
            [("Andrew", "work on the trend report")],
        ),
        (
            # The voice is not yet known by name: the introduction gives it.
            [
                "Speaker 2: Hello, I'm Kate and I'm the industrial designer.",
                "Laura: So as the industrial designer, you're gonna look at the components.",
            ],
            [("Kate", "look at the components")],
        ),
        (
            [
                "Laura: Tom is our user interface designer.",
                "Laura: The designer will draw the casing.",
            ],
            [("Tom", "draw the casing")],
        ),
        (
            # "interface designer" is the same role as "user interface designer".
            [
                "Mark: I'm the user interface designer.",
                "Laura: The interface designer is going to sketch the buttons.",
            ],
            [("Mark", "sketch the buttons")],
        ),
    ],
)
def test_a_role_is_the_person_who_introduced_themselves_in_it(
    lines: list[str], expected: list[tuple[str | None, str]]
) -> None:
    assert owners(*lines) == expected


def test_a_role_nobody_introduced_stays_the_role_as_said() -> None:
    assert owners(
        "Laura: I'm Laura, I'm the project manager.",
        "Laura: The Marketing Expert is going to work on the trend report.",
    ) == [("Marketing Expert", "work on the trend report")]


def test_a_speaker_labelled_by_role_is_still_a_person() -> None:
    # "Marketing" alone is no name, but a voice labelled "Marketing Expert" is someone.
    assert owners("Marketing Expert: I'll look at the market trends.") == [
        ("Marketing Expert", "look at the market trends")
    ]


def test_an_ambiguous_role_binds_nobody() -> None:
    # Two designers introduced: "the designer" is either; the role is kept as said.
    assert owners(
        "Kate: I'm the industrial designer.",
        "Mark: I'm the interface designer.",
        "Laura: The designer will draw the casing.",
    ) == [("Designer", "draw the casing")]


def test_roles_are_remembered_past_the_window_in_a_live_call() -> None:
    extractor = DeterministicExtractor(window=2)
    extractor.feed(Utterance("Andrew", "I'm the marketing expert."), meeting_date=MEETING)
    for text in ("Okay.", "Right.", "Next item."):
        extractor.feed(Utterance("Laura", text), meeting_date=MEETING)
    out = extractor.feed(
        Utterance("Laura", "The marketing expert will research the buttons."),
        meeting_date=MEETING,
    )
    assert [(c.owner, c.action) for c in out] == [("Andrew", "research the buttons")]


# ----------------------------------------------------------------------------- addressee


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Priya: Tom, I'd like you to draft the budget.", [("Tom", "draft the budget")]),
        ("Priya: Tom, I need you to fix the build.", [("Tom", "fix the build")]),
        ("Priya: Okay, Tom. You'll be working on the casing.", [("Tom", "work on the casing")]),
        ("Priya: I'd like you to look at the costs, Tom.", [("Tom", "look at the costs")]),
    ],
)
def test_the_person_spoken_to_by_name_owns_the_request(
    line: str, expected: list[tuple[str | None, str]]
) -> None:
    # Ryan spoke last, but the request is said to Tom.
    assert owners("Ryan: Sure.", line) == expected


def test_the_addressee_accepting_is_not_a_second_task() -> None:
    assert owners("Priya: Tom, I'd like you to draft the budget.", "Tom: Sure, I'll do it.") == [
        ("Tom", "draft the budget")
    ]


def test_a_question_to_a_named_person_waits_for_their_answer() -> None:
    assert owners("Priya: Tom, could you send the deck?") == []
    assert owners("Priya: Tom, could you send the deck?", "Tom: Sure, I will.") == [
        ("Tom", "send the deck")
    ]
    assert owners("Priya: Tom, could you send the deck?", "Ryan: Sure, I will.") == []


# ----------------------------------------------------------------------------- groups


def test_we_all_is_one_commitment_with_everyone_as_owners() -> None:
    items = found(
        "Ryan: Hi.", "Tara: Hello.", "Poppy: So we'll all fill in the final questionnaire."
    )
    assert len(items) == 1
    assert items[0].owners == ("Ryan", "Tara", "Poppy")
    assert items[0].owner == "Ryan, Tara and Poppy"
    assert items[0].action == "fill in the final questionnaire"


def test_everyone_includes_known_participants_not_yet_heard() -> None:
    items = found("Poppy: Everyone's gonna read the report.", participants=("Ryan", "Poppy"))
    assert [(c.owners, c.action) for c in items] == [(("Poppy", "Ryan"), "read the report")]


def test_named_people_will_is_one_commitment_with_its_object() -> None:
    items = found("Priya: Poppy and Tara will draw the prototype for Friday.")
    assert [(c.owners, c.action, c.due) for c in items] == [
        (("Poppy", "Tara"), "draw the prototype", dt.date(2026, 11, 27))
    ]


def test_you_two_with_exactly_two_others() -> None:
    items = found("Ryan: Hi.", "Tara: Hello.", "Poppy: You two are gonna draw the prototype.")
    assert [(c.owners, c.action) for c in items] == [(("Ryan", "Tara"), "draw the prototype")]


def test_you_two_is_nobody_named_when_it_could_be_others() -> None:
    # Three others heard: which two is not known. One heard: they may be the third person.
    assert owners(
        "Ryan: Hi.", "Tara: Hello.", "Sam: Hey.", "Poppy: You two are gonna draw the prototype."
    ) == [(None, "draw the prototype")]
    assert owners("Ryan: Hi.", "Poppy: You two are gonna draw the prototype.") == [
        (None, "draw the prototype")
    ]


def test_we_all_agreed_is_no_task() -> None:
    assert owners("Ryan: Hi.", "Poppy: We all agreed on the colour.") == []


def test_a_single_owner_has_no_owners_list() -> None:
    assert [c.owners for c in found("Tom: I'll send the deck.")] == [()]


# ----------------------------------------------------------------------------- pronouns


def test_he_is_the_one_participant_named_before() -> None:
    items = found("Tom: Hi.", "Priya: I talked to Tom about the contract.", "Ryan: He'll send it.")
    assert [(c.owner, c.action) for c in items] == [("Tom", "send the contract")]


@pytest.mark.parametrize(
    "lines",
    [
        # nobody named
        ["Priya: He'll send the contract on Friday."],
        # two people named
        ["Tom: Hi.", "Sam: Hi.", "Priya: Tom and Sam are out.", "Ryan: He'll send the contract."],
        # a name nobody knows: "he" may be them
        ["Tom: Hi.", "Priya: Tom talked to Raj.", "Ryan: He'll send the contract."],
        # the one named is not a participant
        ["Priya: I talked to Raj.", "Ryan: He'll send the contract."],
        # the speaker is no "he"
        ["Ryan: Ryan here.", "Ryan: He'll send the contract."],
    ],
)
def test_he_is_nobody_when_not_sure(lines: list[str]) -> None:
    items = found(*lines)
    assert [(c.owner, c.action) for c in items] == [(None, "send the contract")]
    assert items[0].confidence < 0.5


def test_she_from_the_participant_list() -> None:
    assert owners(
        "Priya: Nina has the vendor list.",
        "Ryan: Okay, she's going to call them.",
        participants=("Nina", "Priya", "Ryan"),
    ) == [("Nina", "call the vendor list")]


def test_reported_speech_with_a_pronoun_is_still_no_task() -> None:
    assert owners("Tom: Hi.", "Priya: Tom said he'd call the vendor.") == []


async def test_the_cli_json_lists_a_group_task_owners() -> None:
    rules = CliExtractor(DeterministicExtractor())
    out = await extract_lines(
        ["Priya: Poppy and Tara will draw the prototype."], meeting_date=MEETING, extractor=rules
    )
    assert [(c["owner"], c.get("owners")) for c in out] == [("Poppy and Tara", ["Poppy", "Tara"])]
    single = await extract_lines(
        ["Tom: I'll send the deck."], meeting_date=MEETING, extractor=rules
    )
    assert "owners" not in single[0]
