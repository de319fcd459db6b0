"""LLM extraction through the real Anthropic SDK, against a loopback fake of the Messages API.

Nothing here mocks the SDK: it sends real HTTP to `tests/fakes/anthropic_api.py`, which answers
with scripted tool calls, errors (429 + retry-after, 529, 500), delays and malformed output.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml
from pipecat.tests.utils import run_test

from core.errors import ConfigError
from core.settings import REPO_ROOT
from domain.extraction import KINDS, Commitment, DeterministicExtractor, Utterance
from domain.llm import API_KEY_ENV
from domain.llm_extraction import LLMExtractor, build_llm_extractor
from domain.llm_extraction_prompt import load_extraction_prompt
from domain.llm_extraction_tool import (
    COMMITMENTS_SCHEMA,
    TOOL,
    TOOL_CHOICE,
    ToolInput,
    to_commitments,
)
from domain.llm_pending import PendingSpool
from memory.models import CommitmentRecord, WriteOp
from processors.commitments import CommitmentExtractor
from processors.frames import TranscriptSegmentFrame
from server.local_server import serve_in_process
from tests.fakes.anthropic_api import (
    FakeAnthropic,
    TextReply,
    ToolReply,
    commitments,
    overloaded,
    rate_limited,
    server_error,
    slow,
)
from tests.test_spool import old_llm_spool

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

API_KEY = "sk-ant-api03-SECRET-convene-test-" + "k" * 24
PROMPT_PATH = REPO_ROOT / "prompts" / "extraction.yaml"
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

MakeExtractor = Callable[..., LLMExtractor]


@pytest.fixture(scope="module")
async def fake_api() -> AsyncIterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic(api_key=API_KEY)
    async with serve_in_process(fake.app()) as url:
        yield fake, url


@pytest.fixture
def fake(fake_api: tuple[FakeAnthropic, str]) -> Iterator[FakeAnthropic]:
    fake_api[0].reset()
    yield fake_api[0]
    fake_api[0].reset()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
async def make(
    fake_api: tuple[FakeAnthropic, str], tmp_path: Path, sleeps: list[float]
) -> AsyncIterator[MakeExtractor]:
    made: list[LLMExtractor] = []

    async def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(seconds)

    def factory(
        *,
        api_key: str = API_KEY,
        spool: Path | None = None,
        window: int = 4,
        batch_lines: int = 40,
        retry_after_cap_secs: float = 5.0,
        gate: bool = False,
        rules_too: bool = False,
        max_backlog: int | None = None,
        **prompt_changes: Any,
    ) -> LLMExtractor:
        prompt = load_extraction_prompt(PROMPT_PATH).model_copy(update=prompt_changes)
        extractor = LLMExtractor(
            prompt=prompt,
            spool_path=spool or tmp_path / "pending.sqlite3",
            fallback=DeterministicExtractor(),
            api_key=api_key,
            base_url=fake_api[1],
            window=window,
            batch_lines=batch_lines,
            backoff_base_secs=0.01,
            backoff_max_secs=0.05,
            retry_after_cap_secs=retry_after_cap_secs,
            sleep=recording_sleep,
            gate=gate,
            rules_too=rules_too,
            max_backlog=max_backlog,
        )
        made.append(extractor)
        return extractor

    yield factory
    for extractor in made:
        await extractor.aclose()


def spooled(path: Path) -> list[tuple[str, list[dict[str, Any]], int]]:
    """What the spool file holds, read by a spool of its own (as a new process would)."""
    spool = PendingSpool(path)
    try:
        windows = spool.load()
    finally:
        spool.close()
    return [
        (
            w.meeting_date.isoformat(),
            [{"speaker": u.speaker, "text": u.text} for u in w.utterances],
            w.attempts,
        )
        for w in windows
    ]


def spool_bytes(folder: Path) -> list[str]:
    return [p.read_bytes().decode("latin-1") for p in folder.glob("*.sqlite3*")]


def offline(lines: list[Utterance]) -> list[Commitment]:
    return DeterministicExtractor().extract(lines, meeting_date=MEETING)


# --------------------------------------------------------------------------- happy path


async def test_happy_path_request_and_parsing(fake: FakeAnthropic, make: MakeExtractor) -> None:
    extractor = make()
    ask = Utterance("Priya", "Marco, can you update the pricing page before Monday?")
    fake.push(
        commitments(),
        commitments(
            {
                "owner": "Marco",
                "action": "update the pricing page",
                "due": "2025-03-10",
                "kind": "commitment",
                "quote": "Sure, I'll get it done.",
                "confidence": 0.8,
            }
        ),
    )
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
    body = sent.body
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", sent.anthropic_version or "")
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 1024
    assert "temperature" not in body  # null in the YAML: not sent
    assert "record its action items" in body["system"]
    prompt = load_extraction_prompt(PROMPT_PATH)
    assert body["system"] == prompt.system
    # The worked examples are earlier turns: each a window and the answer, then this window.
    shown = body["messages"][:-1]
    assert [m["role"] for m in shown] == ["user", "assistant"] * len(prompt.examples)
    assert '"due": "by Friday"' in shown[1]["content"]
    assert body["tools"] == [json.loads(json.dumps(TOOL))]
    assert body["tools"][0]["input_schema"] == COMMITMENTS_SCHEMA
    assert body["tool_choice"] == {"type": "tool", "name": "record_commitments"}
    message = body["messages"][-1]
    assert message["role"] == "user"
    text = message["content"]
    assert "Meeting date: 2025-03-05 (Wednesday)" in text
    assert (
        "Earlier lines (context only, already read):\n"
        "Priya: Marco, can you update the pricing page before Monday?\n"
        "New lines:\nMarco: Sure, I'll get it done."
    ) in text
    assert extractor.stats.calls == 2 and extractor.stats.fallbacks == 0


def test_tool_schema_is_the_reply_models_schema_made_strict() -> None:
    """Generated from the Pydantic model that parses the reply: strict for the model (every
    field required, nothing else allowed), one self-contained object (no $ref, no titles)."""
    assert COMMITMENTS_SCHEMA["required"] == ["commitments"]
    assert COMMITMENTS_SCHEMA["additionalProperties"] is False
    commitments = COMMITMENTS_SCHEMA["properties"]["commitments"]
    assert commitments["type"] == "array" and "empty list" in commitments["description"]
    item = commitments["items"]
    assert item["type"] == "object" and item["additionalProperties"] is False
    assert item["required"] == ["owner", "action", "due", "kind", "quote", "confidence"]
    props = item["properties"]
    assert props["kind"] == {"type": "string", "enum": list(KINDS)}
    assert props["due"]["type"] == ["string", "null"]
    assert props["due"]["maxLength"] == 60 and "words said" in props["due"]["description"]
    assert props["confidence"] == {"type": "number", "minimum": 0.0, "maximum": 1.0}
    assert all("description" in props[k] for k in ("owner", "action", "due", "quote"))
    assert "$ref" not in json.dumps(COMMITMENTS_SCHEMA)
    assert '"title"' not in json.dumps(COMMITMENTS_SCHEMA)


async def test_overlapping_windows_never_report_twice(
    fake: FakeAnthropic, make: MakeExtractor
) -> None:
    extractor = make(window=3)
    reworded = {**ALICE_ITEM, "action": "send security review to legal"}
    bob = {
        **ALICE_ITEM,
        "owner": "Bob",
        "action": "book the venue",
        "quote": "I'll book the venue.",
    }
    fake.push(commitments(ALICE_ITEM), commitments(reworded), commitments(reworded, bob))

    first = await extractor.feed(PROMISE, meeting_date=MEETING)
    again = await extractor.feed(Utterance("Bob", "Sounds good."), meeting_date=MEETING)
    third = await extractor.feed(Utterance("Bob", "I'll book the venue."), meeting_date=MEETING)

    assert [c.action for c in first] == ["send the security review to the legal team"]
    assert first[0].due == dt.date(2025, 3, 7)
    assert again == []
    assert [(c.owner, c.action) for c in third] == [("Bob", "book the venue")]
    window = fake.requests[2].body["messages"][-1]["content"]
    assert "Earlier lines" in window and window.endswith("New lines:\nBob: I'll book the venue.")


async def test_extract_runs_chunks_with_context(fake: FakeAnthropic, make: MakeExtractor) -> None:
    extractor = make(window=2, batch_lines=2)
    lines = [Utterance("Alice", f"Line {n}.") for n in range(5)]
    fake.push(commitments(ALICE_ITEM), commitments(ALICE_ITEM), commitments())

    found = await extractor.extract(lines, meeting_date=MEETING)

    assert [c.owner for c in found] == ["Alice"]  # the repeat in chunk 2 is dropped
    texts = [r.body["messages"][-1]["content"] for r in fake.requests]
    assert len(texts) == 3
    assert texts[0].endswith("Transcript:\nAlice: Line 0.\nAlice: Line 1.")
    assert "already read):\nAlice: Line 1.\nNew lines:\nAlice: Line 2.\nAlice: Line 3." in texts[1]
    assert "already read):\nAlice: Line 3.\nNew lines:\nAlice: Line 4." in texts[2]


# --------------------------------------------------------------------------- the gate


async def test_the_gate_keeps_talk_without_a_cue_from_the_model(
    fake: FakeAnthropic, make: MakeExtractor
) -> None:
    extractor = make(gate=True)
    fake.push(commitments(ALICE_ITEM))

    assert await extractor.feed(Utterance("Bob", "Mm-hmm."), meeting_date=MEETING) == []
    assert await extractor.feed(Utterance("Bob", "It's blue."), meeting_date=MEETING) == []
    assert fake.requests == [] and extractor.stats.gated_out == 2
    found = await extractor.feed(PROMISE, meeting_date=MEETING)

    assert [c.owner for c in found] == ["Alice"]
    [sent] = fake.requests
    window = sent.body["messages"][-1]["content"]
    # the model still reads the window's context, and the new line as new
    assert "Bob: Mm-hmm.\n" in window and "New lines:\nAlice: I'll send" in window


async def test_extract_with_the_gate_asks_only_about_gated_runs(
    fake: FakeAnthropic, make: MakeExtractor
) -> None:
    extractor = make(window=2, gate=True)
    chat = [Utterance("Bob", f"It's blue, shade {n}.") for n in range(6)]
    lines = [*chat[:3], PROMISE, *chat[3:]]
    fake.push(commitments(ALICE_ITEM))

    found = await extractor.extract(lines, meeting_date=MEETING)

    assert [c.owner for c in found] == ["Alice"]
    [sent] = fake.requests
    text = sent.body["messages"][-1]["content"]
    assert "already read):\nBob: It's blue, shade 2.\nNew lines:" in text
    assert "New lines:\nAlice: I'll send the security review" in text
    assert "shade 3" not in text and "shade 1" not in text
    assert extractor.stats.gated_out == 2  # the runs before and after the promise


async def test_the_model_is_told_the_series_next_meeting(
    fake: FakeAnthropic, make: MakeExtractor
) -> None:
    extractor = make()
    fake.push(commitments(), commitments())
    said = Utterance("Alice", "I'll bring the mock-ups to the next meeting.")
    await extractor.feed(said, meeting_date=MEETING, next_meeting=dt.date(2025, 3, 12))
    await extractor.feed(said, meeting_date=MEETING)
    told, untold = (r.body["messages"][-1]["content"] for r in fake.requests)
    assert 'The series\' next meeting ("for the next meeting"): 2025-03-12 (Wednesday)' in told
    assert "next meeting (" not in untold


# --------------------------------------------------------------------------- retries


async def test_429_is_retried_after_retry_after(
    fake: FakeAnthropic, make: MakeExtractor, sleeps: list[float]
) -> None:
    extractor = make()
    fake.push(rate_limited(retry_after="0.3"), commitments(ALICE_ITEM))

    found = await extractor.feed(PROMISE, meeting_date=MEETING)

    assert [c.owner for c in found] == ["Alice"]
    assert sleeps == [0.3]
    assert fake.requests[1].at - fake.requests[0].at >= 0.3
    assert (extractor.stats.calls, extractor.stats.retries, extractor.stats.fallbacks) == (2, 1, 0)


async def test_retry_after_is_capped(
    fake: FakeAnthropic, make: MakeExtractor, sleeps: list[float]
) -> None:
    extractor = make(retry_after_cap_secs=0.05)
    fake.push(rate_limited(retry_after="3600"), commitments(ALICE_ITEM))

    assert len(await extractor.feed(PROMISE, meeting_date=MEETING)) == 1
    assert sleeps == [0.05]


async def test_529_twice_then_success(
    fake: FakeAnthropic, make: MakeExtractor, sleeps: list[float]
) -> None:
    extractor = make()
    fake.push(overloaded(), server_error(), commitments(ALICE_ITEM))

    found = await extractor.feed(PROMISE, meeting_date=MEETING)

    assert [c.owner for c in found] == ["Alice"]
    assert len(fake.requests) == 3
    # exponential backoff with jitter, base 0.01 s: [0.005, 0.01] then [0.01, 0.02]
    assert len(sleeps) == 2
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02
    assert extractor.stats.retries == 2 and extractor.stats.queued == 0


async def test_persistent_529_falls_back_queues_and_recovers(
    fake: FakeAnthropic, make: MakeExtractor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool" / "pending.sqlite3"
    extractor = make(spool=spool, max_retries=2)
    fake.default = overloaded()

    with caplog.at_level(logging.WARNING, logger="domain.llm_extraction"):
        found = await extractor.feed(PROMISE, meeting_date=MEETING)

    assert found == offline([PROMISE]) and found  # the offline rules answered meanwhile
    assert len(fake.requests) == 3  # first try + 2 retries
    assert extractor.stats.fallbacks == 1 and extractor.stats.queued == 1
    assert "HTTP 529 overloaded_error" in caplog.text and "fallbacks=1" in caplog.text
    assert spooled(spool) == [("2025-03-05", [{"speaker": "Alice", "text": PROMISE.text}], 1)]

    # Still down: the window stays, its attempts go up.
    assert await extractor.retry_pending() == []
    assert spooled(spool)[0][2] == 2

    # A new process (new extractor, same file) retries once the API is back.
    fake.default = commitments(ALICE_ITEM)
    later = make(spool=spool)
    recovered = await later.retry_pending()

    assert len(recovered) == 1
    lines, items = recovered[0]
    assert lines == [PROMISE]
    assert [(c.owner, c.due, c.confidence) for c in items] == [("Alice", dt.date(2025, 3, 7), 0.95)]
    assert spooled(spool) == [] and later.stats.recovered == 1
    assert "Meeting date: 2025-03-05" in fake.requests[-1].body["messages"][-1]["content"]


async def test_windows_spooled_before_the_upgrade_are_recovered(
    fake: FakeAnthropic, make: MakeExtractor, tmp_path: Path
) -> None:
    """A spool file in the old `pending` format: read, retried, and emptied by today's code."""
    spool = tmp_path / "old" / "llm-spool.sqlite3"
    spool.parent.mkdir()
    old_llm_spool(spool, [([PROMISE], 2, {"call_id": "c-1", "series": "s"})])
    fake.push(overloaded(), commitments(ALICE_ITEM))
    extractor = make(spool=spool, max_retries=1)

    [(window, items)] = await extractor.retry_pending_windows()

    assert (window.id, window.utterances, window.attempts) == (1, [PROMISE], 2)
    assert window.context == {"call_id": "c-1", "series": "s"}
    assert [(c.owner, c.due) for c in items] == [("Alice", dt.date(2025, 3, 7))]
    assert len(fake.requests) == 2  # the 529 was retried by the client's policy
    assert "Meeting date: 2025-03-05" in fake.requests[-1].body["messages"][-1]["content"]
    assert spooled(spool) == []


async def test_pending_windows_retry_oldest_first(fake: FakeAnthropic, make: MakeExtractor) -> None:
    extractor = make(max_retries=0)
    fake.default = server_error()
    first = Utterance("Alice", "I'll draft the agenda.")
    await extractor.feed(first, meeting_date=MEETING)
    await extractor.feed(PROMISE, meeting_date=MEETING)
    assert [p.new_from for p in await extractor.pending()] == [0, 1]

    fake.default = commitments()
    recovered = await extractor.retry_pending()

    assert [lines for lines, _ in recovered] == [[first], [first, PROMISE]]
    assert await extractor.pending() == []


async def test_fallbacks_over_overlapping_windows_report_once(
    fake: FakeAnthropic, make: MakeExtractor
) -> None:
    extractor = make(max_retries=0)
    fake.default = server_error()
    lines = [
        Utterance("Priya", "Marco, can you update the pricing page before Monday?"),
        Utterance("Marco", "Sure, I will get it done."),
        Utterance("Priya", "Great, thanks. I will book the venue tomorrow."),
    ]

    found = [await extractor.feed(line, meeting_date=MEETING) for line in lines]

    assert found[0] == []
    assert [(c.owner, c.action, c.due) for c in found[1]] == [
        ("Marco", "update the pricing page", dt.date(2025, 3, 10))
    ]
    assert [(c.owner, c.action) for c in found[2]] == [("Priya", "book the venue")]
    assert extractor.stats.fallbacks == 3 and len(await extractor.pending()) == 3


async def test_timeout_falls_back(fake: FakeAnthropic, make: MakeExtractor) -> None:
    extractor = make(timeout_secs=0.2, max_retries=1)
    fake.push(slow(2.0), slow(2.0))

    found = await extractor.feed(PROMISE, meeting_date=MEETING)

    assert found == offline([PROMISE])
    assert len(fake.requests) == 2
    assert (extractor.stats.retries, extractor.stats.fallbacks, extractor.stats.queued) == (1, 1, 1)
    assert len(await extractor.pending()) == 1


@pytest.mark.parametrize(
    "reply",
    [
        ToolReply({"commitments": [{**ALICE_ITEM, "due": "2025-02-30"}]}),
        ToolReply({"commitments": [{**ALICE_ITEM, "kind": "promise", "confidence": 3}]}),
        ToolReply({"items": []}),
        ToolReply({"commitments": []}, name="other_tool"),
        TextReply("Alice will send the review."),
    ],
    ids=["bad-date", "bad-kind", "wrong-shape", "wrong-tool", "no-tool-call"],
)
async def test_malformed_output_falls_back(
    fake: FakeAnthropic, make: MakeExtractor, reply: ToolReply | TextReply
) -> None:
    extractor = make()
    fake.push(reply)

    found = await extractor.feed(PROMISE, meeting_date=MEETING)

    assert found == offline([PROMISE])
    assert len(fake.requests) == 1  # bad output is not retried in-call; it is spooled
    assert extractor.stats.fallbacks == 1 and extractor.stats.queued == 1


# --------------------------------------------------------------------------- the key


async def test_api_key_never_logged_or_raised(
    fake: FakeAnthropic,
    fake_api: tuple[FakeAnthropic, str],
    make: MakeExtractor,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong_key = "sk-ant-api03-WRONG-secret-" + "w" * 24
    caplog.set_level(logging.DEBUG)
    good = make(max_retries=1)
    fake.push(rate_limited("0.01"), commitments(ALICE_ITEM), overloaded(), overloaded())
    await good.feed(PROMISE, meeting_date=MEETING)
    await good.feed(Utterance("Bob", "I'll book the venue."), meeting_date=MEETING)
    bad = make(api_key=wrong_key, spool=tmp_path / "bad.sqlite3")
    assert await bad.feed(PROMISE, meeting_date=MEETING) == offline([PROMISE])
    assert "HTTP 401 authentication_error" in caplog.text

    raised: list[str] = []
    client = anthropic.AsyncAnthropic(api_key=wrong_key, base_url=fake_api[1], max_retries=0)
    try:
        await client.messages.create(
            model="m", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    except anthropic.AuthenticationError as exc:
        raised.append(f"{exc} {exc!r}")
    finally:
        await client.close()
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(ConfigError) as info:
        build_llm_extractor(
            prompt_path=PROMPT_PATH, spool_path=tmp_path / "x", fallback=DeterministicExtractor()
        )
    raised.append(str(info.value))

    surfaces = [caplog.text, *raised, repr(good), str(good.stats), str(bad.stats)]
    surfaces += spool_bytes(tmp_path)
    assert raised and caplog.text
    for text in surfaces:
        assert API_KEY not in text and wrong_key not in text
        assert "SECRET-convene" not in text and "WRONG-secret" not in text


async def test_key_comes_from_env(
    fake: FakeAnthropic,
    fake_api: tuple[FakeAnthropic, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    fake.push(commitments(ALICE_ITEM))
    extractor = build_llm_extractor(
        prompt_path=PROMPT_PATH,
        spool_path=tmp_path / "pending.sqlite3",
        fallback=DeterministicExtractor(),
        base_url=fake_api[1],
    )
    try:
        assert len(await extractor.feed(PROMISE, meeting_date=MEETING)) == 1
    finally:
        await extractor.aclose()


def test_missing_key_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "  ")
    with pytest.raises(ConfigError, match=API_KEY_ENV):
        build_llm_extractor(
            prompt_path=PROMPT_PATH, spool_path=tmp_path / "p", fallback=DeterministicExtractor()
        )


# --------------------------------------------------------------------------- the prompt file


def test_shipped_prompt_loads() -> None:
    prompt = load_extraction_prompt(PROMPT_PATH)
    assert prompt.model == "claude-sonnet-4-5"
    assert len(prompt.examples) >= 4
    assert any(not example.output for example in prompt.examples)
    kinds = {item.kind for example in prompt.examples for item in example.output}
    assert kinds == {"commitment", "status_done", "cancel"}


def edited_prompt(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], source: Path = PROMPT_PATH
) -> Path:
    """A copy of the prompt file `source` in `tmp_path`, its YAML changed by `edit`."""
    path = tmp_path / source.name
    shutil.copy(source, path)
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda raw: raw.pop("system"), r"system: Field required"),
        (lambda raw: raw.update(temprature=0.2), r"temprature: Extra inputs are not permitted"),
        (
            lambda raw: raw["examples"][0]["output"][0].update(kind="promise"),
            r"examples\.0\.output\.0\.kind",
        ),
        (lambda raw: raw.update(max_retries=-1), r"max_retries: Input should be greater than"),
        (lambda raw: raw.update(api_key="sk-ant-x"), r"api_key: Extra inputs"),
    ],
    ids=["missing-system", "unknown-key", "nested-bad-kind", "out-of-range", "no-key-in-yaml"],
)
def test_bad_prompt_file_names_file_and_key(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    path = edited_prompt(tmp_path, edit)
    with pytest.raises(ConfigError, match=expected) as info:
        build_llm_extractor(
            prompt_path=path,
            spool_path=tmp_path / "p",
            fallback=DeterministicExtractor(),
            api_key="k",
        )
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- streaming


async def test_streaming_smoke(fake: FakeAnthropic, fake_api: tuple[FakeAnthropic, str]) -> None:
    client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=fake_api[1], max_retries=0)
    fake.push(commitments(ALICE_ITEM), TextReply("Alice will send the security review by Friday."))
    try:
        async with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=256,
            messages=[{"role": "user", "content": PROMISE.text}],
            tools=[TOOL],
            tool_choice=TOOL_CHOICE,
        ) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()
        async with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=256,
            messages=[{"role": "user", "content": "Summarise."}],
        ) as text_stream:
            spoken = "".join([chunk async for chunk in text_stream.text_stream])
    finally:
        await client.close()

    assert fake.requests[0].body["stream"] is True
    for kind in (
        "message_start",
        "content_block_start",
        "input_json",
        "content_block_stop",
        "message_stop",
    ):
        assert kind in kinds
    assert final.stop_reason == "tool_use"
    block = final.content[0]
    assert block.type == "tool_use" and block.input == {"commitments": [ALICE_ITEM]}
    assert spoken == "Alice will send the security review by Friday."


def _item(owner: str | None, action: str, quote: str, due: str | None = None) -> dict[str, Any]:
    return {
        "owner": owner,
        "action": action,
        "due": due,
        "kind": "commitment",
        "quote": quote,
        "confidence": 0.8,
    }


def test_model_items_become_commitments_as_the_window_says() -> None:
    """Due words are resolved against the meeting date (and the next meeting); "everyone" is
    the window's speakers as one group task (the bot left out); one action given to two owners
    is one task; an item whose quoted line puts work on nobody (this meeting's agenda) and one
    owned by nobody in the window are dropped, never returned."""
    meeting = dt.date(2026, 3, 4)  # a Wednesday
    lines = [
        Utterance("Project Manager", "First we'll look at the minutes, then the presentations."),
        Utterance("Project Manager", "Tom, you'll be working on the casing by Friday."),
        Utterance("Tom", "Okay. And don't forget the questionnaire before the next meeting."),
        Utterance("Convene", "Noted."),
    ]
    reply = ToolInput.model_validate(
        {
            "commitments": [
                _item("Project Manager", "look at the minutes", "we'll look at the minutes"),
                _item("Tom", "work on the casing", "you'll be working on the casing", "by Friday"),
                _item("Project Manager", "work on the casing", "you'll be working on the casing"),
                _item(
                    "everyone",
                    "fill in the questionnaire",
                    "don't forget the questionnaire",
                    "before the next meeting",
                ),
                _item("Zed", "book the room", "you'll be working on the casing"),
            ]
        }
    )
    found = to_commitments(
        reply,
        bot_names=["convene"],
        lines=lines,
        meeting_date=meeting,
        next_meeting=dt.date(2026, 3, 11),
    )
    assert [(c.owner, c.owners, c.action, c.due) for c in found] == [
        (
            "Tom and Project Manager",
            ("Tom", "Project Manager"),
            "work on the casing",
            dt.date(2026, 3, 6),
        ),
        (
            "Project Manager and Tom",
            ("Project Manager", "Tom"),
            "fill in the questionnaire",
            dt.date(2026, 3, 11),
        ),
    ]


# --------------------------------------------------------------------------- behind the call


async def test_a_model_slower_than_the_talk_loses_nothing(
    fake: FakeAnthropic, make: MakeExtractor, tmp_path: Path
) -> None:
    """A real pipeline (the commitment processor) over an LLM extractor whose model answers
    each window only after a delay, while the talk goes on: once more than `max_backlog`
    utterances wait, the rules answer the windows at once (audio and transcripts never wait)
    and each such window is queued; the model re-reads them later, and every promise said is
    found. The gate keeps the model off the small talk."""
    spool = tmp_path / "behind.sqlite3"
    extractor = make(spool=spool, gate=True, max_backlog=1)
    promises = [
        Utterance("Alice", "I'll send the security review to the legal team by Friday."),
        Utterance("Bob", "I will book the venue for the offsite by Thursday."),
        Utterance("Carol", "I'll update the pricing page by Monday."),
        Utterance("Dan", "I'll call the vendor about the contract tomorrow."),
    ]
    fake.default = slow(0.4, then=commitments())  # the model: slow, and finds nothing new
    written: list[WriteOp] = []
    processor = CommitmentExtractor(
        call_id="00000000-0000-0000-0000-0000000000b1",
        series="behind",
        meeting_date=MEETING,
        extractor=extractor,
        submit=written.append,
    )
    frames = [
        TranscriptSegmentFrame(
            text=u.text, start_ms=n * 1000, end_ms=n * 1000 + 900, seq=n, person=u.speaker
        )
        for n, u in enumerate([Utterance(None, "Good morning everyone."), *promises])
    ]
    down, _ = await run_test(processor, frames_to_send=frames)

    assert sum(isinstance(f, TranscriptSegmentFrame) for f in down) == len(frames)
    assert extractor.stats.gated_out == 1  # the greeting never reached the model
    deferred = extractor.stats.deferred
    assert deferred >= 1 and extractor.stats.queued == deferred  # behind: rules now, model later
    assert len(fake.requests) == len(promises) - deferred
    # The deferred windows were answered by the rules at once (the model, which read the
    # others, found nothing in them: the fake says nothing), and wait in the spool.
    waiting = spooled(spool)
    assert len(waiting) == deferred
    deferred_speakers = {lines[-1]["speaker"] for _, lines, _ in waiting}
    assert {r.owner for r in written if isinstance(r, CommitmentRecord)} == deferred_speakers

    # Later, the model re-reads each deferred window; nothing is left in the spool.
    fake.default = commitments(ALICE_ITEM)
    recovered = await extractor.retry_pending_windows()
    assert len(recovered) == deferred and spooled(spool) == []
    assert all(items for _, items in recovered)  # the model's answer for each of them
