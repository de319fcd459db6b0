"""The offline default extractor, for real: the packaged model (joined from its registry chunk
packages), llama.cpp's OpenAI-compatible server started on a loopback port, the one `LlmClient`
asking it for a tool call whose arguments the runtime samples under the schema's grammar, and a
live call whose commitments the local model extracts.

These are the suite's LLM-heavy tests: one server for the module, few requests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from core.errors import ConfigError
from domain import local_llm
from domain.llm import OPENAI_NO_KEY, LlmClient, RetryPolicy, Tool
from domain.llm_pending import PendingSpool
from domain.local_llm import DEFAULT_MODEL, PACKAGED_MODELS, LocalLlmServer, packaged_model
from server.runtime import Runtime
from tests.calls import simulate_meeting
from tests.speech import write_meeting

# The live call resolves dates: re-run on other days by .ci/run. A model on 2 busy cores reads
# the extraction prompt (~1,700 tokens) in tens of seconds: more than the suite's 240 s default
# is allowed, as a bound, never as a budget asserted on.
pytestmark = [pytest.mark.dates, pytest.mark.timeout(900)]

MEETING_DATE = dt.date(2026, 11, 24)


class Counts:
    calls = 0
    retries = 0


class Palette(BaseModel):
    """A reply no free-text answer would meet by chance: made-up enum words, exactly two of
    them, a code of a made-up shape, no other keys. (llama-cpp-python's grammar enforces enums,
    array lengths, string patterns and required keys; not numeric bounds, which the reply model
    still checks: an out-of-range number is BadOutput.)"""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"additionalProperties": False})

    colours: list[Literal["zorblue", "quaxred", "plimgreen"]] = Field(min_length=2, max_length=2)
    code: str = Field(pattern=r"^[QXZ]{3}-[0-9]{2}$")


PALETTE = Tool("record_palette", "Record a palette of two colours and its code.", Palette)


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalLlmServer]:
    srv = LocalLlmServer(tmp_path_factory.mktemp("local-llm"), model=f"packaged:{DEFAULT_MODEL}")
    await asyncio.to_thread(srv.start)
    try:
        yield srv
    finally:
        await asyncio.to_thread(srv.stop)


def client(srv: LocalLlmServer) -> LlmClient:
    return LlmClient(
        provider="openai-compatible",
        api_key=OPENAI_NO_KEY,
        base_url=srv.base_url,
        model=srv.alias,
        timeout_secs=300,
        policy=RetryPolicy(max_retries=0),
        counts=Counts(),
        label="local LLM test",
    )


async def ask_palette(srv: LocalLlmServer) -> Palette:
    llm = client(srv)
    try:
        return await llm.ask_tool(
            PALETTE,
            system="You answer by calling the tool.",
            user="Name any palette.",
            max_tokens=96,
            temperature=0.0,
        )
    finally:
        await llm.aclose()


def test_the_packaged_model_is_joined_once_and_checked(server: LocalLlmServer) -> None:
    model = PACKAGED_MODELS[DEFAULT_MODEL]
    path = server.data_dir / "models" / f"{DEFAULT_MODEL}.gguf"
    assert path.stat().st_size == model.size
    assert local_llm._sha256(path) == model.sha256
    stamp = path.stat().st_mtime_ns
    assert packaged_model(DEFAULT_MODEL, path.parent) == path
    assert path.stat().st_mtime_ns == stamp  # not joined again
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left


def test_a_model_whose_chunks_do_not_add_up_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = PACKAGED_MODELS[DEFAULT_MODEL]
    wrong = local_llm.PackagedModel(
        name=real.name,
        chunks=real.chunks,
        size=real.size,
        sha256="0" * 64,
        chat_format=real.chat_format,
        note=real.note,
    )
    monkeypatch.setitem(PACKAGED_MODELS, real.name, wrong)
    with pytest.raises(ConfigError, match="sha256"):
        packaged_model(real.name, tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the model nor a partial file
    with pytest.raises(ConfigError, match="no packaged model 'nope'"):
        packaged_model("nope", tmp_path)


async def test_the_runtime_enforces_the_tool_schema(server: LocalLlmServer) -> None:
    """A forced tool call through the same client the cloud path uses: the arguments are
    sampled under the schema's grammar, so made-up enum words and bounds come back valid."""
    palette = await ask_palette(server)
    assert len(palette.colours) == 2
    assert set(palette.colours) <= {"zorblue", "quaxred", "plimgreen"}
    assert palette.code[:3].strip("QXZ") == "" and palette.code[4:].isdigit()


async def test_a_server_that_died_is_restarted_by_the_supervisor(server: LocalLlmServer) -> None:
    assert not server.supervise()  # alive: nothing to do
    old = server.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    await asyncio.to_thread(os.waitpid, old, 0)
    assert await asyncio.to_thread(server.supervise)
    assert server.pid != old and server.running and server.restarts == 1
    await ask_palette(server)  # the same URL serves again


async def test_live_call_commitments_come_from_the_local_model(
    runtime: Runtime, base_url: str, override: Callable[..., Runtime], tmp_path: Path
) -> None:
    """A phone call with the shipped defaults (local-llm, the gate, the rules first): the
    runtime starts the local model; the tidy promise is the rules' and stored at once; the
    messy hand-off the rules miss goes to the model (its server works; no window falls back
    to the rules or waits in the spool). What the model finds on real talk is
    benchmarks/extraction.py's to say."""
    override(pipeline={"extraction": {"backend": "local-llm"}})
    await runtime.local_llm_ready()
    assert runtime.local_llm is not None and runtime.local_llm.running
    served_before = runtime.local_llm.cpu_seconds()
    wav = write_meeting(
        tmp_path / "m.wav",
        [
            "Priya will send the security review to legal.",
            "Um, so for next time, the the pricing thing, you could maybe look into that.",
        ],
    )
    result = await simulate_meeting(
        wav,
        base_url=base_url,
        series="local-llm",
        speed=0,
        meeting_date=MEETING_DATE,
        complete_timeout=600,  # the call ends once its windows are read: seconds on 2 cores
    )
    assert runtime.local_llm.cpu_seconds() > served_before  # the model did the work
    spool = PendingSpool(runtime.settings.llm_spool_path)
    try:
        spooled = [w for w in spool.load() if w.context.get("series") == "local-llm"]
    finally:
        spool.close()
    assert spooled == []  # no window fell back to the rules
    promised = [c for c in result["commitments"] if "security review" in c["action"]]
    [item] = promised
    assert item["owner"] == "Priya"
    assert item["due"] is None  # no date was said
