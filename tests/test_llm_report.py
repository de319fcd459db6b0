"""LLM-worded reports through the real Anthropic SDK, against a loopback fake of the Messages API.

Nothing here mocks the SDK: it sends real HTTP to `tests/fakes/anthropic_api.py`, which answers
with scripted text, errors (529) and delays. Every answer is checked against the facts; an
invented task or owner, an error, a timeout or an empty answer gives the template report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.settings import REPO_ROOT
from domain.llm import API_KEY_ENV
from domain.llm_report import (
    LLMReporter,
    TemplateReporter,
    build_llm_reporter,
    check_report,
    facts_payload,
    load_report_prompt,
)
from domain.report_text import Facts, TaskFact, load_report_templates, render
from server.local_server import serve_in_process
from tests.fakes.anthropic_api import FakeAnthropic, TextReply, overloaded, slow
from tests.test_llm_extraction import edited_prompt

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

API_KEY = "sk-ant-api03-SECRET-report-test-" + "r" * 24
PROMPT_PATH = REPO_ROOT / "prompts" / "report_llm.yaml"
T = load_report_templates(REPO_ROOT / "prompts" / "report.yaml")
TODAY = dt.date(2026, 11, 24)  # a Tuesday
LAST = dt.date(2026, 11, 17)
TASKS = [
    TaskFact("Tom", "get the demo environment ready", dt.date(2026, 11, 20), "done", LAST, TODAY),
    TaskFact(None, "send the security review to legal", dt.date(2026, 11, 25), "open", LAST, TODAY),
    TaskFact("Priya", "update the pricing page", dt.date(2026, 11, 23), "open", LAST, LAST),
    TaskFact("Lee", "send the invoice", None, "open", TODAY, TODAY),
    TaskFact("Ana", "plan the offsite", None, "cancelled", LAST, TODAY),
]
FACTS = Facts(intent="progress_report", meeting_date=TODAY, previous_meeting=LAST, tasks=TASKS)
TEMPLATE_ANSWER = render(FACTS, T)
FAITHFUL = (
    "Priya's update of the pricing page is overdue; it was due by Monday the 23rd. "
    "Since last time, Tom got the demo environment ready. "
    "Someone still needs to send the security review to legal by Wednesday the 25th. "
    "New today, Lee will send the invoice."
)
INVENTED = (
    "Priya's update of the pricing page is overdue. "
    "Ken will migrate the database by Wednesday the 25th."
)

MakeReporter = Callable[..., LLMReporter]


@pytest.fixture(scope="module")
async def fake_api() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic(api_key=API_KEY)
    async with serve_in_process(fake.app()) as url:
        yield fake, url


@pytest.fixture
def fake(fake_api: tuple[FakeAnthropic, str]) -> Iterator[FakeAnthropic]:
    fake_api[0].reset()
    fake_api[0].default = TextReply(FAITHFUL)
    yield fake_api[0]
    fake_api[0].reset()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
async def make(
    fake_api: tuple[FakeAnthropic, str], sleeps: list[float]
) -> AsyncIterator[MakeReporter]:
    made: list[LLMReporter] = []

    async def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(seconds)

    def factory(*, api_key: str = API_KEY, **prompt_changes: Any) -> LLMReporter:
        prompt = load_report_prompt(PROMPT_PATH).model_copy(update=prompt_changes)
        reporter = LLMReporter(
            prompt=prompt,
            templates=T,
            api_key=api_key,
            base_url=fake_api[1],
            backoff_base_secs=0.01,
            backoff_max_secs=0.05,
            sleep=recording_sleep,
        )
        made.append(reporter)
        return reporter

    yield factory
    for reporter in made:
        await reporter.aclose()


def sent_facts(fake: FakeAnthropic, index: int = -1) -> dict[str, Any]:
    [message] = fake.requests[index].body["messages"]
    assert message["role"] == "user"
    parsed: dict[str, Any] = json.loads(message["content"])
    return parsed


# --------------------------------------------------------------------------- happy path


async def test_happy_path_request_carries_prompt_and_every_task(
    fake: FakeAnthropic, make: MakeReporter
) -> None:
    reporter = make()
    fake.push(TextReply(FAITHFUL))

    assert await reporter.report(FACTS) == FAITHFUL

    [request] = fake.requests
    body = request.body
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 400
    assert body["system"] == load_report_prompt(PROMPT_PATH).system
    assert "FACTS" in body["system"] and "Wednesday the 25th" in body["system"]
    assert "temperature" not in body and "tools" not in body
    facts = sent_facts(fake)
    assert facts["intent"] == "progress_report"
    assert facts["meeting_date"] == "Tuesday, November 24th"
    assert facts["previous_meeting"] == "Tuesday, November 17th"
    # Every task, in order, and nothing beyond them; dates already phrased for speech.
    assert [(t["owner"], t["action"], t["status"]) for t in facts["tasks"]] == [
        (t.owner, t.action, t.status) for t in TASKS
    ]
    assert [(t["group"], t["due"]) for t in facts["tasks"]] == [
        ("done_since_last_time", "by Friday the 20th"),
        ("open", "by Wednesday the 25th"),
        ("overdue", "by Monday the 23rd"),
        ("new_today", None),
        ("other", None),
    ]
    assert facts["recalled"] == []
    stats = reporter.stats
    assert (stats.calls, stats.retries, stats.answered, stats.fallbacks) == (1, 0, 1, 0)


async def test_payload_for_person_and_recall() -> None:
    person = Facts(intent="person_tasks", meeting_date=TODAY, person="Priya", tasks=TASKS[2:3])
    payload = facts_payload(person, T)
    assert payload["person"] == "Priya" and len(payload["tasks"]) == 1
    recall = Facts(
        intent="recall", meeting_date=TODAY, topic="pricing", recalled=["Priya will do it."]
    )
    payload = facts_payload(recall, T)
    assert (payload["topic"], payload["recalled"], payload["tasks"]) == (
        "pricing",
        ["Priya will do it."],
        [],
    )


async def test_markdown_is_stripped_for_speech(fake: FakeAnthropic, make: MakeReporter) -> None:
    reporter = make()
    fake.push(
        TextReply(
            "**Overdue:** Priya was to update the pricing page.\n- Lee will send the invoice."
        )
    )

    assert await reporter.report(FACTS) == (
        "Overdue: Priya was to update the pricing page. Lee will send the invoice."
    )


# --------------------------------------------------------------------------- inventions


async def test_invented_task_is_rejected_and_templates_answer(
    fake: FakeAnthropic, make: MakeReporter, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make()
    fake.push(TextReply(INVENTED))

    with caplog.at_level(logging.WARNING, logger="domain.llm_report"):
        answer = await reporter.report(FACTS)

    assert answer == TEMPLATE_ANSWER
    assert "Ken" not in answer and "database" not in answer
    assert reporter.stats.rejected_inventions == 1 and reporter.stats.fallbacks == 1
    assert reporter.stats.answered == 0 and len(fake.requests) == 1  # not asked again
    assert "not backed by the facts" in caplog.text and "rejected_inventions=1" in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        TEMPLATE_ANSWER,
        FAITHFUL,
        "Overdue: Priya was meant to update the pricing page by Monday the 23rd. Tom finished "
        "getting the demo environment ready. The security review still has to go to legal by "
        "Wednesday the 25th, and Lee is sending the invoices.",
        "Here is where things stand. Nothing else is open.",
    ],
    ids=["template", "paraphrase", "reworded", "filler"],
)
def test_checker_passes_faithful_answers(text: str) -> None:
    assert check_report(text, FACTS) == []


@pytest.mark.parametrize(
    ("text", "kinds", "about"),
    [
        ("Someone will migrate the database.", {"task"}, "Someone will migrate the database"),
        ("Ken will migrate the database.", {"task", "owner"}, "Ken"),
        ("Marcus is reviewing the pricing page.", {"owner"}, "Marcus"),
        ("Tom will update the pricing page.", {"misattributed"}, "Tom will update"),
        ("Lee will send the invoice and the budget.", {"task"}, "the budget"),
        ("Lee will send the invoice by Thursday the 26th.", {"date"}, "26th"),
        ("Tom will also book the venue for the offsite.", {"task"}, "book the venue"),
    ],
    ids=[
        "made-up-task",
        "unknown-owner-task",
        "unknown-owner",
        "wrong-owner",
        "added-item",
        "date",
        "cancelled-plus",
    ],
)
def test_checker_rejects_inventions(text: str, kinds: set[str], about: str) -> None:
    found = check_report(text, FACTS)
    assert {item.kind for item in found} == kinds
    assert any(about in item.text for item in found)


def test_checker_allows_the_asked_person_and_bot_name_and_recall() -> None:
    person = Facts(intent="person_tasks", meeting_date=TODAY, person="Zoe", tasks=TASKS)
    assert check_report("Zoe has nothing open.", person) == []
    assert {i.kind for i in check_report("Zoe owns the pricing page.", person)} == {"misattributed"}
    assert check_report("Convene here: Lee will send the invoice.", FACTS) == []
    recall = Facts(
        intent="recall",
        meeting_date=TODAY,
        topic="pricing",
        recalled=["Priya is going to update the pricing page before the launch."],
    )
    assert (
        check_report("About pricing, Priya said she'd update the page before launch.", recall) == []
    )
    assert {i.kind for i in check_report("Priya will cut prices by half.", recall)} == {"task"}


# --------------------------------------------------------------------------- failures


async def test_529_then_success_is_retried(
    fake: FakeAnthropic, make: MakeReporter, sleeps: list[float]
) -> None:
    reporter = make()
    fake.push(overloaded(), TextReply(FAITHFUL))

    assert await reporter.report(FACTS) == FAITHFUL

    assert len(fake.requests) == 2 and len(sleeps) == 1
    assert 0.005 <= sleeps[0] <= 0.01  # backoff with jitter, base 0.01 s
    assert (reporter.stats.calls, reporter.stats.retries, reporter.stats.fallbacks) == (2, 1, 0)


async def test_persistent_529_falls_back(
    fake: FakeAnthropic, make: MakeReporter, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make(max_retries=2)
    fake.default = overloaded()

    with caplog.at_level(logging.WARNING, logger="domain.llm_report"):
        assert await reporter.report(FACTS) == TEMPLATE_ANSWER

    assert len(fake.requests) == 3  # first try + 2 retries
    assert (reporter.stats.retries, reporter.stats.fallbacks) == (2, 1)
    assert reporter.stats.rejected_inventions == 0
    assert "HTTP 529 overloaded_error" in caplog.text


async def test_timeout_falls_back(fake: FakeAnthropic, make: MakeReporter) -> None:
    reporter = make(timeout_secs=0.2, max_retries=1)
    fake.push(slow(2.0, TextReply(FAITHFUL)), slow(2.0, TextReply(FAITHFUL)))

    assert await reporter.report(FACTS) == TEMPLATE_ANSWER

    assert len(fake.requests) == 2
    assert (reporter.stats.retries, reporter.stats.fallbacks) == (1, 1)


async def test_overall_deadline_falls_back(fake: FakeAnthropic, make: MakeReporter) -> None:
    reporter = make(timeout_secs=5, deadline_secs=0.3)
    fake.push(slow(3.0, TextReply(FAITHFUL)))

    # Each try may take 5 s and the answer comes after 3 s: only the deadline makes it fall back.
    assert await reporter.report(FACTS) == TEMPLATE_ANSWER
    assert reporter.stats.fallbacks == 1 and reporter.stats.retries == 0


@pytest.mark.parametrize("reply", ["", "   \n ", "x " * 400], ids=["empty", "blank", "too-long"])
async def test_unusable_text_falls_back(
    fake: FakeAnthropic, make: MakeReporter, reply: str
) -> None:
    reporter = make()
    fake.push(TextReply(reply))

    assert await reporter.report(FACTS) == TEMPLATE_ANSWER
    assert reporter.stats.fallbacks == 1 and len(fake.requests) == 1


async def test_stop_unknown_and_empty_facts_need_no_call(
    fake: FakeAnthropic, make: MakeReporter
) -> None:
    reporter = make()
    assert await reporter.report(Facts(intent="stop", meeting_date=TODAY)) == ""
    assert await reporter.report(Facts(intent="unknown", meeting_date=TODAY)) == T.unknown
    nothing = Facts(intent="progress_report", meeting_date=TODAY)
    assert await reporter.report(nothing) == render(nothing, T)
    assert fake.requests == [] and reporter.stats.skipped == 3
    assert await TemplateReporter(T).report(FACTS) == TEMPLATE_ANSWER


# --------------------------------------------------------------------------- the key


async def test_key_from_env_and_never_logged(
    fake: FakeAnthropic,
    fake_api: tuple[FakeAnthropic, str],
    make: MakeReporter,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    reporter = build_llm_reporter(prompt_path=PROMPT_PATH, templates=T, base_url=fake_api[1])
    try:
        fake.push(overloaded(), TextReply(INVENTED))
        assert await reporter.report(FACTS) == TEMPLATE_ANSWER
    finally:
        await reporter.aclose()
    wrong = make(api_key="sk-ant-api03-WRONG-secret-" + "w" * 24)
    assert await wrong.report(FACTS) == TEMPLATE_ANSWER
    assert "HTTP 401 authentication_error" in caplog.text

    for text in (caplog.text, repr(reporter), str(reporter.stats), repr(wrong)):
        assert "SECRET-report" not in text and "WRONG-secret" not in text


@pytest.mark.parametrize("env", [None, "  "], ids=["unset", "blank"])
def test_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch, env: str | None) -> None:
    if env is None:
        monkeypatch.delenv(API_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(API_KEY_ENV, env)
    with pytest.raises(ConfigError, match=API_KEY_ENV):
        build_llm_reporter(prompt_path=PROMPT_PATH, templates=T)


# --------------------------------------------------------------------------- the prompt file


def test_shipped_prompt_loads() -> None:
    prompt = load_report_prompt(PROMPT_PATH)
    assert prompt.model and prompt.max_retries >= 1 and prompt.timeout_secs <= 20
    assert prompt.deadline_secs >= prompt.timeout_secs
    for rule in ("Never mention a task", "overdue", "Wednesday the 25th", "markdown"):
        assert rule in prompt.system


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda raw: raw.pop("system"), r"system: Field required"),
        (lambda raw: raw.update(temprature=0.2), r"temprature: Extra inputs are not permitted"),
        (lambda raw: raw.update(max_retries=-1), r"max_retries: Input should be greater than"),
        (lambda raw: raw.update(timeout_secs="soon"), r"timeout_secs: Input should be a valid"),
        (lambda raw: raw.update(api_key="sk-ant-x"), r"api_key: Extra inputs"),
    ],
    ids=["missing-system", "unknown-key", "out-of-range", "wrong-type", "no-key-in-yaml"],
)
def test_bad_prompt_file_names_file_and_key(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    path = edited_prompt(tmp_path, edit, PROMPT_PATH)
    with pytest.raises(ConfigError, match=expected) as info:
        build_llm_reporter(prompt_path=path, templates=T, api_key="k")
    assert str(path) in str(info.value)
