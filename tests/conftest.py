"""Fixtures: real embedded Postgres + Redis, the real app on a loopback port, test speech."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from pydantic import SecretStr

from core.settings import Settings
from server.app import create_app
from server.local_server import serve_in_process
from server.runtime import Runtime
from tests.speech import write_meeting

# Pipecat logs through loguru at DEBUG by default: keep test output readable.
logger.remove()
logger.add(sys.stderr, level="WARNING")

TEST_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
TEST_ACCOUNT_SID = "AC" + "0" * 32
# The REST API's token in tests: every test runtime accepts it (CONVENE_BOOTSTRAP_TOKEN);
# tests/test_security_api.py makes and checks real tokens of its own.
TEST_API_TOKEN = "test-api-token-5b0c1e7d9a2f4e68"
API_HEADERS = {"Authorization": f"Bearer {TEST_API_TOKEN}"}

REPO_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
_RULES_PROMPTS: list[Path] = []


def rules_prompts() -> Path:
    """The repository's prompts with `extraction.backend: deterministic`: the prompts every test
    runtime and server gets unless it says otherwise. Tests of the rules, the call path and the
    store pin the rules so that the local model (the shipped default, tested for real in
    tests/test_local_llm.py and tests/test_extract_cli.py) is not started by each of them."""
    if not _RULES_PROMPTS:
        folder = Path(tempfile.mkdtemp(prefix="convene-rules-prompts-"))
        shutil.copytree(REPO_PROMPTS, folder, dirs_exist_ok=True)
        pipeline = folder / "pipeline.yaml"
        text = pipeline.read_text()
        assert "  backend: local-llm" in text, "prompts/pipeline.yaml's default moved"
        pipeline.write_text(text.replace("  backend: local-llm", "  backend: deterministic", 1))
        _RULES_PROMPTS.append(folder)
    return _RULES_PROMPTS[0]


MEETING_TURNS = [
    "Good morning everyone, let's start the weekly planning meeting.",
    "I will send the security review to the legal team by Friday.",
    "The new dashboard is almost finished and the tests are passing.",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--today",
        default=None,
        help="run with the wall clock moved to this day (YYYY-MM-DD; time of day and ticking "
        "kept): .ci/run re-runs the `dates` tests this way so a date bomb fails the day it "
        "is written",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.basetemp:
        # A temp root of this run's own: pytest resets /tmp/pytest-of-<user> to 0700 at every
        # session start, which would lock the embedded Postgres (its own system user) out of a
        # data dir another pytest run is using at the time.
        base = Path(tempfile.gettempdir()) / f"convene-tests-{os.getpid()}"
        config.option.basetemp = base
        config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))
    config.addinivalue_line(
        "markers", "dates: depends on meeting dates or the calendar; re-run with --today in CI"
    )
    config.add_cleanup(lambda: [shutil.rmtree(p, ignore_errors=True) for p in _RULES_PROMPTS])
    today = config.getoption("--today")
    if today:
        import datetime as dt

        import time_machine

        real = dt.datetime.now(dt.UTC)
        shifted = dt.datetime.combine(dt.date.fromisoformat(today), real.timetz())
        traveller = time_machine.travel(shifted, tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


def make_settings(home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "convene_home": home,
        "twilio_auth_token": SecretStr(TEST_AUTH_TOKEN),
        "twilio_account_sid": None,
        "public_host": None,
        "convene_writer_retry_secs": 0.3,
        "convene_bootstrap_token": SecretStr(TEST_API_TOKEN),
        "convene_prompts_dir": rules_prompts(),
        # Calls tests answer or dial and never stream stay `ringing`/`queued` (no status
        # callbacks) and count against the call cap for a while: no cap but where tested.
        "convene_max_calls": 10_000,
    }
    if os.environ.get("DATABASE_URL"):
        values["database_url"] = SecretStr(os.environ["DATABASE_URL"])
    if os.environ.get("REDIS_URL"):
        values["redis_url"] = SecretStr(os.environ["REDIS_URL"])
    values.update(overrides)
    return Settings.of(**values)


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


@pytest.fixture
def override(runtime: Runtime) -> Iterator[Callable[..., Runtime]]:
    """`override(pipeline={"report": {"backend": "anthropic"}}, settings={...})` for this test
    only: the session's runtime gets its prompts and settings back at teardown."""
    from tests.calls import overridden

    with ExitStack() as stack:

        def apply(**changes: Any) -> Runtime:
            return stack.enter_context(overridden(runtime, **changes))

        yield apply


@pytest.fixture(scope="session")
def meeting_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_meeting(tmp_path_factory.mktemp("audio") / "meeting.wav", MEETING_TURNS)
