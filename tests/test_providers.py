"""Providers chosen in YAML: the Anthropic extractor in a real call, against a loopback API."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from core.errors import ConfigError
from server.local_server import serve_in_process
from server.runtime import Runtime, check_llm_settings
from tests.calls import contains_close_to, say_weekday, simulate_meeting, weekday_on_or_after
from tests.conftest import make_settings
from tests.fakes.anthropic_api import FakeAnthropic, commitments, overloaded
from tests.speech import write_meeting

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

KEY = "sk-ant-test-" + "7" * 24

# Every meeting a test simulates has an explicit date (never the server's today).
MEETING_DATE = dt.date(2026, 11, 24)
FRIDAY = weekday_on_or_after(MEETING_DATE, 4)  # "by Friday", said at that meeting


@pytest.fixture
async def anthropic_backend(runtime: Runtime) -> AsyncIterator[FakeAnthropic]:
    fake = FakeAnthropic(api_key=KEY)
    async with serve_in_process(fake.app()) as url:
        saved_settings, saved_prompts = runtime.settings, runtime.prompts
        runtime.settings = saved_settings.updated(
            **{"anthropic_api_key": SecretStr(KEY), "anthropic_base_url": url}
        )
        # The model alone reads the call (rules_too off): these tests are about the cloud path.
        extraction = saved_prompts.pipeline.extraction.model_copy(
            update={"backend": "anthropic", "rules_too": False}
        )
        pipeline = saved_prompts.pipeline.model_copy(update={"extraction": extraction})
        runtime.prompts = saved_prompts.model_copy(update={"pipeline": pipeline})
        try:
            yield fake
        finally:
            runtime.settings, runtime.prompts = saved_settings, saved_prompts


async def test_anthropic_backend_extracts_in_a_call(
    anthropic_backend: FakeAnthropic, base_url: str, tmp_path: Path
) -> None:
    fake = anthropic_backend
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
        wav, base_url=base_url, series="offsite", speed=0, meeting_date=MEETING_DATE
    )
    assert [(c["owner"], c["action"], c["due"]) for c in result["commitments"]] == [
        ("Tom", "book the venue for the team dinner", FRIDAY.isoformat())
    ]
    [request] = fake.requests
    body = request.body
    assert body["tool_choice"] == {"type": "tool", "name": "record_commitments"}
    assert "venue" in str(body["messages"])


async def test_anthropic_overloaded_falls_back_to_deterministic(
    anthropic_backend: FakeAnthropic, base_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    fake = anthropic_backend
    fake.default = overloaded()
    wav = write_meeting(
        tmp_path / "m.wav", ["Tom will book the venue for the team dinner by Friday."]
    )
    result = await simulate_meeting(
        wav, base_url=base_url, series="offsite-2", speed=0, meeting_date=MEETING_DATE
    )
    [item] = result["commitments"]
    assert item["owner"] == "Tom" and contains_close_to(item["action"], "book the venue")
    assert len(fake.requests) >= 2  # retried before falling back

    # The window waits in the durable spool; once the API answers, it is retried and merged.
    fake.default = commitments(
        {
            "owner": "Tom",
            "action": "book the venue for the team dinner",
            "due": FRIDAY.isoformat(),
            "kind": "commitment",
            "quote": "Tom will book the venue for the team dinner by Friday.",
            "confidence": 0.95,
        }
    )
    assert await runtime.retry_llm_windows_once() >= 1
    await runtime.writer.flush(10)
    stored = await runtime.store.get_commitments(result["call_id"])
    assert any(c["seq"] >= 1_000_000 and c["task_id"] is not None for c in stored)
    tasks = await runtime.store.list_tasks("offsite-2")
    assert tasks is not None and len(tasks) == 1  # matched the task it already had
    changes = [h["change"] for h in tasks[0]["history"]]
    assert changes[0] == "created" and changes[1] in ("restated", "redated") and len(changes) == 2
    assert tasks[0]["due"] == "2026-11-27"
    assert await runtime.retry_llm_windows_once() == 0  # the spool is empty now


def test_anthropic_backend_without_key_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        check_llm_settings(make_settings(tmp_path, anthropic_api_key=None))


async def test_anthropic_report_backend_speaks_the_llm_answer(
    anthropic_backend: FakeAnthropic,
    base_url: str,
    override: Callable[..., Runtime],
    tmp_path: Path,
) -> None:
    from tests.fakes.anthropic_api import TextReply

    fake = anthropic_backend
    override(
        pipeline={"report": {"backend": "anthropic"}, "extraction": {"backend": "deterministic"}}
    )
    week1 = write_meeting(
        tmp_path / "a.wav", ["Tom will book the venue for the team dinner by Friday."]
    )
    first = await simulate_meeting(
        week1, base_url=base_url, series="llm-report", speed=0, meeting_date=MEETING_DATE
    )
    assert len(first["commitments"]) == 1, first["transcript"]
    scripted = f"Tom will book the venue for the team dinner by {say_weekday(FRIDAY)}."
    fake.push(TextReply(scripted))
    ask = write_meeting(tmp_path / "b.wav", ["Convene, give me a progress report."])
    result = await simulate_meeting(
        ask, base_url=base_url, series="llm-report", speed=0, meeting_date=MEETING_DATE
    )
    [reply] = result["replies"]
    assert reply["answer"] == scripted
    body = fake.requests[-1].body
    assert "book the venue" in str(body["messages"])

    # An answer that invents a task is not spoken: the templates answer instead.
    fake.push(TextReply("Ken will migrate the billing database by Monday."))
    result = await simulate_meeting(
        ask, base_url=base_url, series="llm-report", speed=0, meeting_date=MEETING_DATE
    )
    [reply] = result["replies"]
    assert "Ken" not in reply["answer"]
    assert contains_close_to(reply["answer"], "book the venue for the team dinner")
