"""Fixtures: real embedded Postgres + Redis, the real app on a loopback port, test speech."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from loguru import logger
from pydantic import SecretStr

from server.app import create_app
from server.local_server import serve_in_process
from server.runtime import Runtime
from server.settings import Settings
from tests.speech import write_meeting

# Pipecat logs through loguru at DEBUG by default: keep test output readable.
logger.remove()
logger.add(sys.stderr, level="WARNING")

TEST_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
TEST_ACCOUNT_SID = "AC" + "0" * 32

MEETING_TURNS = [
    "Good morning everyone, let's start the weekly planning meeting.",
    "I will send the security review to the legal team by Friday.",
    "The new dashboard is almost finished and the tests are passing.",
]


def make_settings(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "convene_home": home,
        "twilio_auth_token": SecretStr(TEST_AUTH_TOKEN),
        "twilio_account_sid": None,
        "public_host": None,
        "convene_writer_retry_secs": 0.3,
    }
    if os.environ.get("DATABASE_URL"):
        values["database_url"] = SecretStr(os.environ["DATABASE_URL"])
    if os.environ.get("REDIS_URL"):
        values["redis_url"] = SecretStr(os.environ["REDIS_URL"])
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("convene-home")


@pytest.fixture(scope="session")
async def runtime(home: Path) -> AsyncIterator[Runtime]:
    rt = await Runtime.start(make_settings(home))
    # As a user would list them in prompts/agent.yaml: biases Whisper toward the names.
    agent = rt.prompts.agent.model_copy(update={"participants": ["Tom", "Priya"]})
    rt.prompts = rt.prompts.model_copy(update={"agent": agent})
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture(scope="session")
async def base_url(runtime: Runtime) -> AsyncIterator[str]:
    async with serve_in_process(create_app(runtime=runtime)) as url:
        yield url


@pytest.fixture(scope="session")
def meeting_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_meeting(tmp_path_factory.mktemp("audio") / "meeting.wav", MEETING_TURNS)
