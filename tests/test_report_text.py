"""Spoken reports from seeded facts: done, open, overdue, re-dated; nothing invented."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import REPO_ROOT
from domain.report_text import Facts, TaskFact, load_report_templates, ordinal, render, say_due

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

T = load_report_templates(REPO_ROOT / "prompts" / "report.yaml")
TODAY = dt.date(2026, 11, 24)
LAST = dt.date(2026, 11, 17)
TASKS = [
    TaskFact("Tom", "get the demo environment ready", dt.date(2026, 11, 20), "done", LAST, TODAY),
    TaskFact(None, "send the security review to legal", dt.date(2026, 11, 25), "open", LAST, TODAY),
    TaskFact("Priya", "update the pricing page", dt.date(2026, 11, 23), "open", LAST, LAST),
    TaskFact("Ken", "send the invoice", None, "open", TODAY, TODAY),
    TaskFact("Ana", "plan the offsite", None, "cancelled", LAST, TODAY),
]


def test_progress_report_orders_overdue_first_and_mentions_only_known_tasks() -> None:
    text = render(
        Facts(intent="progress_report", meeting_date=TODAY, previous_meeting=LAST, tasks=TASKS), T
    )
    assert text.startswith(
        "Here is the progress report. Overdue: Priya was to update the pricing page by Monday the 23rd."
    )
    assert "Done since last time: Tom got the demo environment ready." in text
    assert (
        "Still open: someone will send the security review to legal by Wednesday the 25th." in text
    )
    assert "New today: Ken will send the invoice." in text
    assert "offsite" not in text  # cancelled tasks are not reported


def test_person_today_recall_and_empty() -> None:
    assert render(
        Facts(intent="person_tasks", meeting_date=TODAY, person="Priya", tasks=TASKS), T
    ) == ("Priya has 1 open: update the pricing page by Monday the 23rd.")
    assert (
        render(Facts(intent="person_tasks", meeting_date=TODAY, person="Zoe", tasks=TASKS), T)
        == "Zoe has nothing open."
    )
    assert (
        render(Facts(intent="today", meeting_date=TODAY, tasks=TASKS), T)
        == "So far today: Ken will send the invoice."
    )
    recalled = Facts(
        intent="recall",
        meeting_date=TODAY,
        topic="pricing",
        recalled=["Priya is going to update the pricing page."],
    )
    assert render(recalled, T) == "About pricing: Priya is going to update the pricing page."
    assert (
        render(Facts(intent="progress_report", meeting_date=TODAY), T)
        == "There are no tasks yet for this series."
    )
    assert render(Facts(intent="stop", meeting_date=TODAY), T) == ""


def test_dates_for_speech() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "31st",
    ]
    assert say_due(dt.date(2026, 11, 25), today=TODAY, templates=T) == " by Wednesday the 25th"
    assert say_due(dt.date(2027, 2, 3), today=TODAY, templates=T) == " by February 3rd"


def test_unknown_placeholder_fails_at_load_with_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "report.yaml"
    path.write_text(
        (REPO_ROOT / "prompts" / "report.yaml")
        .read_text()
        .replace("{person} has nothing open.", "{persn} has nothing open.")
    )
    with pytest.raises(ConfigError) as info:
        load_report_templates(path)
    assert (
        str(path) in str(info.value)
        and "person_tasks.none" in str(info.value)
        and "persn" in str(info.value)
    )


def test_a_long_first_sentence_is_cut_after_its_first_clause_for_a_quick_first_audio() -> None:
    from processors.report import split_sentences

    answer = "Tom has 2 open: get the demo environment ready by Friday the 20th. Nothing else."
    assert split_sentences(answer, first_chars=40) == [
        "Tom has 2 open:",
        "get the demo environment ready by Friday the 20th.",
        "Nothing else.",
    ]
    # Off, short enough already, or no clause with two words on each side: kept whole.
    assert split_sentences(answer, first_chars=0)[0] == answer.split(". ")[0] + "."
    assert split_sentences("Here is the progress report. Done.", first_chars=40) == [
        "Here is the progress report.",
        "Done.",
    ]
    long_single = "Yes, everything we promised last week is already done and delivered to them."
    assert split_sentences(long_single, first_chars=40) == [long_single]


@pytest.mark.parametrize(
    ("action", "done"),
    [
        ("get the demo environment ready", "got the demo environment ready"),
        ("send the security review to legal", "sent the security review to legal"),
        ("update the pricing page", "updated the pricing page"),
        ("book the venue", "booked the venue"),
        ("fix the login bug", "fixed the login bug"),
        ("ship the release", "shipped the release"),
        ("plan the offsite", "planned the offsite"),
        ("copy the slides", "copied the slides"),
        ("review the contract", "reviewed the contract"),
        ("open a ticket", "opened a ticket"),
        ("follow up with Dana", "followed up with Dana"),
        ("the pricing page", "finished the pricing page"),
    ],
)
def test_done_items_are_said_in_the_past_tense(action: str, done: str) -> None:
    from domain.report_text import past_tense

    assert past_tense(action) == done
