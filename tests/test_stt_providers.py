"""STT providers chosen in prompts/pipeline.yaml: whisper-remote, with failover to local."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from server.errors import ConfigError
from server.local_server import serve_in_process
from server.runtime import Runtime
from tests.calls import simulate_meeting
from tests.conftest import MEETING_TURNS, make_settings
from tests.fakes.whisper_server import FakeWhisperServer
from tests.speech import wer

# Every meeting a test simulates has an explicit date (never the server's today).
MEETING_DATE = dt.date(2026, 11, 24)


@pytest.fixture
async def remote_stt(
    runtime: Runtime, override: Callable[..., Runtime]
) -> AsyncIterator[FakeWhisperServer]:
    assert runtime.whisper_model is not None
    fake = FakeWhisperServer(model=runtime.whisper_model)
    async with serve_in_process(fake.app()) as url:
        # The fake transcribes with real Whisper: a generous timeout, so a slow or busy CPU
        # is not mistaken for a failing server (the failure tests set their own).
        override(
            settings={
                "convene_whisper_remote_url": url,
                "convene_whisper_remote_model": "large-v3-turbo",
            },
            pipeline={"stt": {"provider": "whisper-remote", "remote_timeout_secs": 60.0}},
        )
        yield fake


def text_of(result: dict[str, object]) -> str:
    return " ".join(s["text"] for s in result["transcript"])  # type: ignore[attr-defined, index]


async def test_whisper_remote_transcribes_each_segment(
    remote_stt: FakeWhisperServer, base_url: str, meeting_wav: Path
) -> None:
    result = await simulate_meeting(
        meeting_wav, base_url=base_url, speed=0, meeting_date=MEETING_DATE
    )
    assert wer(" ".join(MEETING_TURNS), text_of(result)) <= 0.15
    assert len(remote_stt.requests) == len(result["transcript"])
    assert all(r["model"] == "large-v3-turbo" and r["bytes"] > 1000 for r in remote_stt.requests)


@pytest.mark.parametrize("mode", ["error", "stall"])
async def test_whisper_remote_failure_falls_back_to_local_within_the_call(
    remote_stt: FakeWhisperServer,
    base_url: str,
    meeting_wav: Path,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    override: Callable[..., Runtime],
) -> None:
    override(pipeline={"stt": {"remote_timeout_secs": 2.0}})
    if mode == "error":
        remote_stt.fail = True
    else:
        remote_stt.stall_secs = 5.0  # past the 2 s timeout
    result = await simulate_meeting(
        meeting_wav, base_url=base_url, speed=0, meeting_date=MEETING_DATE
    )
    assert wer(" ".join(MEETING_TURNS), text_of(result)) <= 0.15  # nothing lost
    assert len(remote_stt.requests) >= 2  # tried, retried
    assert any("failover" in r.getMessage() for r in caplog.records)


def test_whisper_remote_without_url_fails_at_start(tmp_path: Path) -> None:
    import asyncio
    import shutil

    from server.settings import REPO_ROOT

    prompts = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", prompts)
    path = prompts / "pipeline.yaml"
    path.write_text(
        path.read_text().replace("provider: whisper-local", "provider: whisper-remote", 1)
    )
    settings = make_settings(tmp_path / "home", convene_prompts_dir=prompts)
    with pytest.raises(ConfigError, match="CONVENE_WHISPER_REMOTE_URL"):
        asyncio.run(Runtime.start(settings))
    path.write_text(path.read_text().replace("provider: whisper-remote", "provider: deepgrm", 1))
    with pytest.raises(
        ConfigError,
        match=r"stt\.provider: Input should be 'whisper-local', 'whisper-remote', 'deepgram' or",
    ):
        asyncio.run(Runtime.start(settings))
