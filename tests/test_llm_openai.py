"""`llm.provider: openai-compatible`: extraction and reports through the real `openai` SDK.

Nothing here mocks the SDK: it sends real HTTP to `tests/fakes/openai_chat_api.py`, a loopback
Chat Completions server (what vLLM, Ollama and OpenAI serve), which answers with scripted
function calls, text, errors (429 + retry-after, 500, 503) and delays. The semantics are the
Anthropic path's: the same prompt, tool schema, validation, retries, fallback and spool.
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
from pydantic import SecretStr

from core.prompts import LlmKnobs
from core.settings import REPO_ROOT
from domain.extraction import Commitment, DeterministicExtractor, Utterance
from domain.llm import OPENAI_API_KEY_ENV, OPENAI_NO_KEY
from domain.llm_extraction import LLMExtractor, build_llm_extractor
from domain.llm_extraction_prompt import load_extraction_prompt
from domain.llm_extraction_tool import COMMITMENTS_SCHEMA, OPENAI_TOOL
from domain.llm_report import LLMReporter, build_llm_reporter, load_report_prompt
from domain.report_text import Facts, render
from server.local_server import serve_in_process
from server.runtime import Runtime
from tests.calls import say_weekday, simulate_meeting, weekday_on_or_after
from tests.fakes.openai_chat_api import (
    FakeOpenAIChat,
    ToolCallReply,
    commitments,
    rate_limited,
    server_error,
    slow,
    unavailable,
)
from tests.fakes.openai_chat_api import TextReply as ChatText
from tests.speech import write_meeting
from tests.test_llm_extraction import spool_bytes, spooled
from tests.test_llm_report import FAITHFUL, INVENTED, LAST, TODAY, T
from tests.test_llm_report import TASKS as REPORT_TASKS

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

API_KEY = "sk-proj-SECRET-openai-test-" + "k" * 24
MODEL = "qwen2.5-7b-instruct"
EXTRACTION_PROMPT = REPO_ROOT / "prompts" / "extraction.yaml"
REPORT_PROMPT = REPO_ROOT / "prompts" / "report_llm.yaml"
MEETING = dt.date(2025, 3, 5)  # a Wednesday
PROMISE = Utterance("Alice", "I'll send the security review to the legal team by Friday.")
ALICE_ITEM = {
    "owner": "Alice",
    "action": "send the security review to the legal team",
    "due": "2025-03-07",
    "kind": "commitment",
    "quote": "I'll send the security review to the legal team by Friday.",
    "confidence": 0.95,
}
NAMED_CHOICE = {"type": "function", "function": {"name": "record_commitments"}}

# test_llm_report's facts, less its cancelled task, and its answers to them.
TASKS = [task for task in REPORT_TASKS if task.status != "cancelled"]
FACTS = Facts(intent="progress_report", meeting_date=TODAY, previous_meeting=LAST, tasks=TASKS)
TEMPLATE_ANSWER = render(FACTS, T)

MakeExtractor = Callable[..., LLMExtractor]
MakeReporter = Callable[..., LLMReporter]

# Every meeting a test simulates has an explicit date (never the server's today).
MEETING_DATE = dt.date(2026, 11, 24)
FRIDAY = weekday_on_or_after(MEETING_DATE, 4)  # "by Friday", said at that meeting


@pytest.fixture(scope="module")
async def fake_api() -> AsyncIterator[tuple[FakeOpenAIChat, str]]:
    fake = FakeOpenAIChat(api_key=API_KEY)
    async with serve_in_process(fake.app()) as url:
        yield fake, f"{url}/v1"  # the SDK's base_url includes /v1, as for vLLM and Ollama


@pytest.fixture
def fake(
    fake_api: tuple[FakeOpenAIChat, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeOpenAIChat]:
    monkeypatch.delenv(OPENAI_API_KEY_ENV, raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    fake_api[0].reset()
    yield fake_api[0]
    fake_api[0].reset()
    fake_api[0].api_key = API_KEY


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def recording_sleep(sleeps: list[float]) -> Callable[[float], Any]:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(seconds)

    return sleep


@pytest.fixture
async def make(
    fake_api: tuple[FakeOpenAIChat, str],
    tmp_path: Path,
    recording_sleep: Callable[[float], Any],
) -> AsyncIterator[MakeExtractor]:
    made: list[LLMExtractor] = []

    def factory(
        *,
        api_key: str | None = API_KEY,
        model: str | None = MODEL,
        spool: Path | None = None,
        **prompt_changes: Any,
    ) -> LLMExtractor:
        prompt = load_extraction_prompt(EXTRACTION_PROMPT).model_copy(update=prompt_changes)
        extractor = LLMExtractor(
            prompt=prompt,
            spool_path=spool or tmp_path / "pending.sqlite3",
            fallback=DeterministicExtractor(),
            api_key=api_key,
            base_url=fake_api[1],
            window=4,
            backoff_base_secs=0.01,
            backoff_max_secs=0.05,
            retry_after_cap_secs=5.0,
            sleep=recording_sleep,
            provider="openai-compatible",
            model=model,
        )
        made.append(extractor)
        return extractor

    yield factory
    for extractor in made:
        await extractor.aclose()


@pytest.fixture
async def make_reporter(
    fake_api: tuple[FakeOpenAIChat, str], recording_sleep: Callable[[float], Any]
) -> AsyncIterator[MakeReporter]:
    made: list[LLMReporter] = []

    def factory(
        *, api_key: str | None = API_KEY, model: str | None = MODEL, **prompt_changes: Any
    ) -> LLMReporter:
        prompt = load_report_prompt(REPORT_PROMPT).model_copy(update=prompt_changes)
        reporter = LLMReporter(
            prompt=prompt,
            templates=T,
            api_key=api_key,
            base_url=fake_api[1],
            backoff_base_secs=0.01,
            backoff_max_secs=0.05,
            sleep=recording_sleep,
            provider="openai-compatible",
            model=model,
        )
        made.append(reporter)
        return reporter

    yield factory
    for reporter in made:
        await reporter.aclose()


def offline(lines: list[Utterance]) -> list[Commitment]:
    return DeterministicExtractor().extract(lines, meeting_date=MEETING)


# --------------------------------------------------------------------------- extraction


async def test_tool_call_is_parsed_and_request_is_chat_completions(
    fake: FakeOpenAIChat, make: MakeExtractor
) -> None:
    extractor = make()
    marco = {
        "owner": "Marco",
        "action": "update the pricing page",
        "due": "2025-03-10",
        "kind": "commitment",
        "quote": "Sure, I'll get it done.",
        "confidence": 0.8,
    }
    fake.push(commitments(), ToolCallReply({"commitments": [marco]}, finish_reason="tool_calls"))
    ask = Utterance("Priya", "Marco, can you update the pricing page before Monday?")

    assert await extractor.feed(ask, meeting_date=MEETING) == []
    found = await extractor.feed(
        Utterance("Marco", "Sure, I'll get it done."), meeting_date=MEETING
    )

    assert found == [
        Commitment(
            owner="Marco",
            action="update the pricing page",
            due=dt.date(2025, 3, 10),
            quote="Sure, I'll get it done.",
            confidence=0.8,
            kind="commitment",
        )
    ]
    assert len(fake.requests) == 2
    sent = fake.requests[1]
    assert sent.auth == "bearer"
    body = sent.body
    assert body["model"] == MODEL  # llm.model overrides the prompt file's
    assert body["max_tokens"] == 1024 and "temperature" not in body
    system, *shown, user = body["messages"]
    prompt = load_extraction_prompt(EXTRACTION_PROMPT)
    assert system == {"role": "system", "content": prompt.system}
    # The worked examples, as earlier turns: a window, then the answer as JSON text.
    assert [m["role"] for m in shown] == ["user", "assistant"] * len(prompt.examples)
    assert [m["content"] for m in shown[::2]] == [u for u, _ in prompt.example_turns()]
    assert user["role"] == "user"
    assert "Meeting date: 2025-03-05 (Wednesday)" in user["content"]
    assert "already read):\nPriya: Marco, can you update the pricing page" in user["content"]
    assert "New lines:\nMarco: Sure, I'll get it done." in user["content"]
    assert body["tools"] == [json.loads(json.dumps(OPENAI_TOOL))]
    assert body["tools"][0]["type"] == "function"
    assert body["tools"][0]["function"]["parameters"] == COMMITMENTS_SCHEMA
    assert body["tool_choice"] == NAMED_CHOICE
    assert (extractor.stats.calls, extractor.stats.fallbacks) == (2, 0)


async def test_model_override_and_prompt_model(
    fake: FakeOpenAIChat, make: MakeExtractor, caplog: pytest.LogCaptureFixture
) -> None:
    fake.default = commitments(ALICE_ITEM)
    assert [c.owner for c in await make(model="llama3.1:8b").feed(PROMISE, meeting_date=MEETING)]
    with caplog.at_level(logging.WARNING, logger="domain.llm_extraction"):
        unset = make(model=None, temperature=0.2)
    await unset.feed(PROMISE, meeting_date=MEETING)

    assert [r.body["model"] for r in fake.requests] == ["llama3.1:8b", "claude-sonnet-4-5"]
    assert fake.requests[1].body["temperature"] == 0.2
    assert "no llm.model is set" in caplog.text
    assert "openai-compatible" in repr(unset) and "claude-sonnet-4-5" in repr(unset)


async def test_429_is_retried_after_retry_after(
    fake: FakeOpenAIChat, make: MakeExtractor, sleeps: list[float]
) -> None:
    extractor = make()
    fake.push(rate_limited(retry_after="0.3"), commitments(ALICE_ITEM))

    found = await extractor.feed(PROMISE, meeting_date=MEETING)

    assert [c.owner for c in found] == ["Alice"]
    assert sleeps == [0.3]
    assert fake.requests[1].at - fake.requests[0].at >= 0.3
    assert (extractor.stats.calls, extractor.stats.retries, extractor.stats.fallbacks) == (2, 1, 0)


async def test_500_then_503_then_success_backs_off(
    fake: FakeOpenAIChat, make: MakeExtractor, sleeps: list[float]
) -> None:
    extractor = make()
    fake.push(server_error(), unavailable(), commitments(ALICE_ITEM))

    assert [c.owner for c in await extractor.feed(PROMISE, meeting_date=MEETING)] == ["Alice"]

    assert len(fake.requests) == 3 and len(sleeps) == 2
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02  # backoff with jitter
    assert extractor.stats.retries == 2 and extractor.stats.queued == 0


async def test_persistent_503_falls_back_spools_and_recovers(
    fake: FakeOpenAIChat, make: MakeExtractor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool" / "pending.sqlite3"
    extractor = make(spool=spool, max_retries=2)
    fake.default = unavailable()

    with caplog.at_level(logging.WARNING, logger="domain.llm_extraction"):
        found = await extractor.feed(PROMISE, meeting_date=MEETING)

    assert found == offline([PROMISE]) and found  # the deterministic rules answered
    assert len(fake.requests) == 3  # first try + 2 retries
    assert extractor.stats.fallbacks == 1 and extractor.stats.queued == 1
    assert "HTTP 503 server_error" in caplog.text and "fallbacks=1" in caplog.text
    assert spooled(spool) == [("2025-03-05", [{"speaker": "Alice", "text": PROMISE.text}], 1)]

    assert await extractor.retry_pending() == []  # still down: stays queued
    assert spooled(spool)[0][2] == 2

    fake.default = commitments(ALICE_ITEM)
    later = make(spool=spool)
    [(lines, items)] = await later.retry_pending()
    assert lines == [PROMISE]
    assert [(c.owner, c.due) for c in items] == [("Alice", dt.date(2025, 3, 7))]
    assert spooled(spool) == [] and later.stats.recovered == 1
    assert fake.requests[-1].body["model"] == MODEL


async def test_timeout_falls_back(fake: FakeOpenAIChat, make: MakeExtractor) -> None:
    extractor = make(timeout_secs=0.2, max_retries=1)
    fake.push(slow(2.0), slow(2.0))

    assert await extractor.feed(PROMISE, meeting_date=MEETING) == offline([PROMISE])

    assert len(fake.requests) == 2
    assert (extractor.stats.retries, extractor.stats.fallbacks, extractor.stats.queued) == (1, 1, 1)


async def test_connection_refused_falls_back(tmp_path: Path) -> None:
    extractor = LLMExtractor(
        prompt=load_extraction_prompt(EXTRACTION_PROMPT).model_copy(update={"max_retries": 1}),
        spool_path=tmp_path / "p.sqlite3",
        fallback=DeterministicExtractor(),
        base_url="http://127.0.0.1:9/v1",  # discard port: nothing listens
        backoff_base_secs=0.01,
        provider="openai-compatible",
        model=MODEL,
    )
    try:
        assert await extractor.feed(PROMISE, meeting_date=MEETING) == offline([PROMISE])
    finally:
        await extractor.aclose()
    assert (extractor.stats.calls, extractor.stats.retries, extractor.stats.queued) == (2, 1, 1)


@pytest.mark.parametrize(
    "reply",
    [
        ToolCallReply('{"commitments": [{"owner": "Alice", '),
        ToolCallReply({"commitments": [{**ALICE_ITEM, "due": "2025-02-30"}]}),
        ToolCallReply({"items": []}),
        ToolCallReply({"commitments": []}, name="other_tool"),
        ToolCallReply({"commitments": [ALICE_ITEM]}, finish_reason="length"),
        ChatText("Alice will send the review."),
    ],
    ids=["not-json", "bad-date", "wrong-shape", "wrong-function", "cut-off", "no-tool-call"],
)
async def test_malformed_output_falls_back(
    fake: FakeOpenAIChat, make: MakeExtractor, reply: ToolCallReply | ChatText
) -> None:
    extractor = make()
    fake.push(reply)

    assert await extractor.feed(PROMISE, meeting_date=MEETING) == offline([PROMISE])

    assert len(fake.requests) == 1  # bad output is not retried in-call; it is spooled
    assert extractor.stats.fallbacks == 1 and extractor.stats.queued == 1


@pytest.mark.parametrize(
    ("bad", "logged"),
    [
        ({**ALICE_ITEM, "owner": "Gandalf"}, "owner 'Gandalf' is nobody in the meeting"),
        ({**ALICE_ITEM, "due": "2025-03-04"}, "due 2025-03-04 is before the meeting (2025-03-05)"),
    ],
    ids=["owner-not-in-meeting", "due-before-meeting"],
)
async def test_an_impossible_item_is_rejected_logged_and_never_stored(
    fake: FakeOpenAIChat,
    make: MakeExtractor,
    caplog: pytest.LogCaptureFixture,
    bad: dict[str, Any],
    logged: str,
) -> None:
    """A well-formed reply whose item cannot be true (a small local model invents an owner or
    a date in the past): that item is dropped and logged; the reply's good items are kept, and
    the window is not a failure (no fallback, nothing spooled)."""
    extractor = make()
    ken = Utterance("Ken", "And I will book the venue.")
    ken_item = {
        **ALICE_ITEM,
        "owner": "Ken",
        "action": "book the venue",
        "due": None,
        "quote": ken.text,
    }
    fake.push(commitments(bad, ken_item))

    with caplog.at_level(logging.WARNING, logger="domain.llm_extraction_tool"):
        found = await extractor.extract([PROMISE, ken], meeting_date=MEETING)

    assert [(c.owner, c.action) for c in found] == [("Ken", "book the venue")]
    assert any(logged in r.getMessage() and "rejected" in r.getMessage() for r in caplog.records)
    assert extractor.stats.fallbacks == 0 and await extractor.pending() == []


async def test_owners_named_by_role_or_in_the_talk_are_in_the_meeting(
    fake: FakeOpenAIChat, make: MakeExtractor
) -> None:
    """An owner is in the meeting when they speak (a role label counts) or are named."""
    extractor = make()
    lines = [
        Utterance("Project Manager", "Marketing Expert, you'll do the trend watching."),
        Utterance("Marketing Expert", "Okay. And Bob will send the survey."),
    ]
    fake.push(
        commitments(
            {**ALICE_ITEM, "owner": "Marketing Expert", "action": "do the trend watching"},
            {**ALICE_ITEM, "owner": "Bob", "action": "send the survey", "due": None},
        )
    )
    found = await extractor.extract(lines, meeting_date=MEETING)
    assert [c.owner for c in found] == ["Marketing Expert", "Bob"]


# --------------------------------------------------------------------------- keys


async def test_local_server_needs_no_key(
    fake: FakeOpenAIChat, fake_api: tuple[FakeOpenAIChat, str], tmp_path: Path
) -> None:
    fake.api_key = None  # a local vLLM / Ollama
    fake.default = commitments(ALICE_ITEM)
    extractor = build_llm_extractor(
        prompt_path=EXTRACTION_PROMPT,
        spool_path=tmp_path / "pending.sqlite3",
        fallback=DeterministicExtractor(),
        api_key=None,
        base_url=fake_api[1],
        provider="openai-compatible",
        model=MODEL,
    )
    reporter = build_llm_reporter(
        prompt_path=REPORT_PROMPT,
        templates=T,
        base_url=fake_api[1],
        provider="openai-compatible",
        model=MODEL,
    )
    try:
        assert [c.owner for c in await extractor.feed(PROMISE, meeting_date=MEETING)] == ["Alice"]
        fake.push(ChatText(FAITHFUL))
        assert await reporter.report(FACTS) == FAITHFUL
    finally:
        await extractor.aclose()
        await reporter.aclose()
    assert [r.auth for r in fake.requests] == ["bearer", "bearer"]  # the placeholder
    assert OPENAI_NO_KEY == "not-needed"


async def test_key_from_env_and_never_logged(
    fake: FakeOpenAIChat,
    fake_api: tuple[FakeOpenAIChat, str],
    make: MakeExtractor,
    make_reporter: MakeReporter,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(OPENAI_API_KEY_ENV, API_KEY)
    from_env = build_llm_extractor(
        prompt_path=EXTRACTION_PROMPT,
        spool_path=tmp_path / "env.sqlite3",
        fallback=DeterministicExtractor(),
        base_url=fake_api[1],
        provider="openai-compatible",
        model=MODEL,
    )
    fake.push(rate_limited("0.01"), commitments(ALICE_ITEM))
    try:
        assert len(await from_env.feed(PROMISE, meeting_date=MEETING)) == 1
    finally:
        await from_env.aclose()
    monkeypatch.delenv(OPENAI_API_KEY_ENV)

    wrong_key = "sk-proj-WRONG-secret-" + "w" * 24
    bad = make(api_key=wrong_key, spool=tmp_path / "bad.sqlite3")
    assert await bad.feed(PROMISE, meeting_date=MEETING) == offline([PROMISE])
    assert bad.stats.calls == 1 and bad.stats.queued == 1  # a 401 is not retried
    wrong_reporter = make_reporter(api_key=wrong_key)
    assert await wrong_reporter.report(FACTS) == TEMPLATE_ANSWER
    assert "HTTP 401 invalid_request_error" in caplog.text

    surfaces = [caplog.text, repr(bad), str(bad.stats), repr(wrong_reporter)]
    surfaces += spool_bytes(tmp_path)
    for text in surfaces:
        assert API_KEY not in text and wrong_key not in text
        assert "SECRET-openai" not in text and "WRONG-secret" not in text


# --------------------------------------------------------------------------- reports


async def test_report_is_the_checked_llm_text(
    fake: FakeOpenAIChat, make_reporter: MakeReporter
) -> None:
    reporter = make_reporter()
    fake.push(ChatText("**Overdue:** Priya was to update the pricing page.\n- " + FAITHFUL))

    assert await reporter.report(FACTS) == (
        "Overdue: Priya was to update the pricing page. " + FAITHFUL
    )

    [request] = fake.requests
    body = request.body
    assert body["model"] == MODEL and body["max_tokens"] == 400
    assert "tools" not in body and "tool_choice" not in body
    system, user = body["messages"]
    assert system == {"role": "system", "content": load_report_prompt(REPORT_PROMPT).system}
    facts = json.loads(user["content"])
    assert user["role"] == "user" and facts["intent"] == "progress_report"
    assert [t["action"] for t in facts["tasks"]] == [t.action for t in TASKS]
    assert (reporter.stats.calls, reporter.stats.answered, reporter.stats.fallbacks) == (1, 1, 0)


async def test_invented_task_is_rejected_and_templates_answer(
    fake: FakeOpenAIChat, make_reporter: MakeReporter, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = make_reporter()
    fake.push(ChatText(INVENTED))

    with caplog.at_level(logging.WARNING, logger="domain.llm_report"):
        answer = await reporter.report(FACTS)

    assert answer == TEMPLATE_ANSWER and "Ken" not in answer and "database" not in answer
    assert reporter.stats.rejected_inventions == 1 and reporter.stats.fallbacks == 1
    assert len(fake.requests) == 1
    assert "not backed by the facts" in caplog.text


async def test_report_retries_then_falls_back(
    fake: FakeOpenAIChat,
    make_reporter: MakeReporter,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reporter = make_reporter(max_retries=2)
    fake.push(unavailable(), rate_limited(retry_after="0.05"), ChatText(FAITHFUL))
    assert await reporter.report(FACTS) == FAITHFUL
    assert len(fake.requests) == 3 and len(sleeps) == 2 and sleeps[1] == 0.05

    fake.default = server_error()
    with caplog.at_level(logging.WARNING, logger="domain.llm_report"):
        assert await reporter.report(FACTS) == TEMPLATE_ANSWER
    assert len(fake.requests) == 6  # first try + 2 retries
    assert (reporter.stats.retries, reporter.stats.fallbacks) == (4, 1)
    assert "HTTP 500 server_error" in caplog.text


@pytest.mark.parametrize(
    "reply",
    [
        ChatText(""),
        ChatText(FAITHFUL, finish_reason="length"),
        ChatText("x " * 400),
        ToolCallReply({"commitments": []}),
        slow(2.0, ChatText(FAITHFUL)),
    ],
    ids=["empty", "cut-off", "too-long", "tool-call", "timeout"],
)
async def test_unusable_report_falls_back(
    fake: FakeOpenAIChat, make_reporter: MakeReporter, reply: ChatText | ToolCallReply
) -> None:
    reporter = make_reporter(timeout_secs=0.3, max_retries=0)
    fake.push(reply)

    assert await reporter.report(FACTS) == TEMPLATE_ANSWER
    assert reporter.stats.fallbacks == 1 and len(fake.requests) == 1


# --------------------------------------------------------------------------- a real call


@pytest.fixture
async def openai_backend(override: Callable[..., Runtime]) -> AsyncIterator[FakeOpenAIChat]:
    key = "sk-proj-call-test-" + "7" * 24
    fake = FakeOpenAIChat(api_key=key)
    async with serve_in_process(fake.app()) as url:
        override(
            settings={"openai_api_key": SecretStr(key), "openai_base_url": f"{url}/v1"},
            pipeline={
                "llm": LlmKnobs(provider="openai-compatible", model=MODEL),
                "extraction": {"backend": "llm", "rules_too": False},
                "report": {"backend": "llm"},
            },
        )
        yield fake


async def test_openai_compatible_llm_in_a_real_call(
    openai_backend: FakeOpenAIChat,
    base_url: str,
    override: Callable[..., Runtime],
    tmp_path: Path,
) -> None:
    fake = openai_backend
    fake.default = commitments()
    fake.push(
        commitments(
            {
                "owner": "Tom",
                "action": "book the venue for the team dinner",
                "due": FRIDAY.isoformat(),
                "kind": "commitment",
                "quote": "Tom will book the venue for the team dinner by Friday.",
                "confidence": 0.93,
            }
        )
    )
    wav = write_meeting(
        tmp_path / "m.wav", ["Tom will book the venue for the team dinner by Friday."]
    )
    result = await simulate_meeting(
        wav, base_url=base_url, series="openai-llm", speed=0, meeting_date=MEETING_DATE
    )
    assert [(c["owner"], c["action"], c["due"]) for c in result["commitments"]] == [
        ("Tom", "book the venue for the team dinner", FRIDAY.isoformat())
    ]
    assert fake.requests and all(r.body["model"] == MODEL for r in fake.requests)
    assert all(r.body["tool_choice"] == NAMED_CHOICE for r in fake.requests)
    assert "venue" in str(fake.requests[0].body["messages"])

    # The next meeting asks for a report: the model's words, checked against memory, are spoken.
    override(pipeline={"extraction": {"backend": "deterministic"}})
    fake.requests.clear()
    scripted = f"Tom will book the venue for the team dinner by {say_weekday(FRIDAY)}."
    fake.push(ChatText(scripted))
    ask = write_meeting(tmp_path / "b.wav", ["Convene, give me a progress report."])
    result = await simulate_meeting(
        ask, base_url=base_url, series="openai-llm", speed=0, meeting_date=MEETING_DATE
    )
    [reply] = result["replies"]
    assert reply["answer"] == scripted
    [request] = fake.requests
    assert request.body["model"] == MODEL and "tools" not in request.body
    assert "book the venue" in request.body["messages"][1]["content"]
