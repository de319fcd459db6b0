"""Providers chosen in prompts/pipeline.yaml: validated at start, never mid-call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from bot.call import CallDeps, build_stt, build_tts
from core.errors import ConfigError
from core.prompts import load_prompts
from server.runtime import Runtime, check_provider_settings
from tests.conftest import make_settings
from tests.test_prompts import copy_prompts


def with_pipeline(tmp_path: Path, knobs: dict[str, Any]) -> Path:
    folder = copy_prompts(tmp_path)
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(knobs))
    return folder


@pytest.mark.parametrize(
    ("section", "provider"),
    [
        ("stt", "whisper-local"),
        ("stt", "whisper-remote"),
        ("stt", "deepgram"),
        ("stt", "openai-whisper"),
        ("tts", "piper"),
        ("tts", "cartesia"),
        ("tts", "elevenlabs"),
    ],
)
def test_each_provider_is_selectable(tmp_path: Path, section: str, provider: str) -> None:
    prompts = load_prompts(with_pipeline(tmp_path, {section: {"provider": provider}}))
    assert getattr(prompts.pipeline, section).provider == provider


def test_llm_provider_and_backends(tmp_path: Path) -> None:
    knobs = {
        "llm": {"provider": "openai-compatible", "model": "qwen2.5-7b-instruct"},
        "extraction": {"backend": "llm"},
        "report": {"backend": "llm"},
    }
    pipeline = load_prompts(with_pipeline(tmp_path, knobs)).pipeline
    assert pipeline.llm_for(pipeline.extraction.backend) == "openai-compatible"
    assert pipeline.llm_for(pipeline.report.backend) == "openai-compatible"
    assert pipeline.llm_for("deterministic") is None


def test_unknown_provider_names_file_key_and_allowed_values(tmp_path: Path) -> None:
    folder = with_pipeline(tmp_path, {"stt": {"provider": "deepgrm"}})
    with pytest.raises(ConfigError) as info:
        load_prompts(folder)
    message = str(info.value)
    assert str(folder / "pipeline.yaml") in message and "stt.provider" in message
    assert "'deepgram'" in message and "'whisper-local'" in message


def test_llm_backend_without_a_provider_is_refused(tmp_path: Path) -> None:
    folder = with_pipeline(tmp_path, {"report": {"backend": "llm"}})
    with pytest.raises(ConfigError, match=r"report\.backend is llm but llm\.provider is none"):
        load_prompts(folder)


def test_series_overrides_are_validated_and_applied(tmp_path: Path) -> None:
    knobs = {"series": {"board": {"stt": {"provider": "deepgram"}, "vad": {"stop_secs": 0.8}}}}
    pipeline = load_prompts(with_pipeline(tmp_path, knobs)).pipeline
    board = pipeline.for_series("board")
    assert board.stt.provider == "deepgram" and board.vad.stop_secs == 0.8
    assert board.tts == pipeline.tts  # untouched keys keep the global values
    assert pipeline.for_series("standup") is pipeline and pipeline.for_series(None) is pipeline
    bad = with_pipeline(tmp_path / "bad", {"series": {"board": {"tts": {"provider": "espeak"}}}})
    with pytest.raises(ConfigError, match=r"series\.board\.tts\.provider"):
        load_prompts(bad)


@pytest.mark.parametrize(
    ("knobs", "missing"),
    [
        ({"stt": {"provider": "deepgram"}}, "DEEPGRAM_API_KEY"),
        ({"stt": {"provider": "whisper-remote"}}, "CONVENE_WHISPER_REMOTE_URL"),
        ({"tts": {"provider": "cartesia"}}, "CARTESIA_API_KEY"),
        ({"tts": {"provider": "elevenlabs"}}, "ELEVENLABS_API_KEY"),
        ({"llm": {"provider": "anthropic"}, "report": {"backend": "llm"}}, "ANTHROPIC_API_KEY"),
        (
            {"llm": {"provider": "openai-compatible"}, "extraction": {"backend": "llm"}},
            "OPENAI_BASE_URL",
        ),
        ({"series": {"board": {"tts": {"provider": "cartesia"}}}}, "CARTESIA_API_KEY"),
    ],
)
def test_missing_key_stops_start_up(tmp_path: Path, knobs: dict[str, Any], missing: str) -> None:
    folder = with_pipeline(tmp_path, knobs)
    settings = make_settings(tmp_path, convene_prompts_dir=folder, anthropic_api_key=None)
    with pytest.raises(ConfigError) as info:
        check_provider_settings(settings, load_prompts(folder))
    message = str(info.value)
    assert missing in message and str(folder / "pipeline.yaml") in message
    if "series" in knobs:
        assert "series.board.tts.provider" in message


def test_keys_present_pass_and_are_never_in_errors(tmp_path: Path) -> None:
    knobs = {"stt": {"provider": "deepgram"}, "tts": {"provider": "elevenlabs"}}
    folder = with_pipeline(tmp_path, knobs)
    settings = make_settings(
        tmp_path,
        convene_prompts_dir=folder,
        deepgram_api_key=SecretStr("dg-secret-123"),
        elevenlabs_api_key=SecretStr("el-secret-456"),
    )
    check_provider_settings(settings, load_prompts(folder))
    assert "dg-secret-123" not in repr(settings)


def test_openai_whisper_without_the_extra_is_a_clear_error(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("whisper") is not None:  # the optional extra is installed
        pytest.skip("openai-whisper is installed here; nothing is missing")
    folder = with_pipeline(tmp_path, {"stt": {"provider": "openai-whisper"}})
    settings = make_settings(tmp_path, convene_prompts_dir=folder)
    with pytest.raises(ConfigError, match=r"uv sync --extra openai-whisper"):
        check_provider_settings(settings, load_prompts(folder))


async def test_a_series_override_changes_that_calls_pipeline(runtime: Runtime) -> None:
    """The call builds its services from the series' knobs, not the global ones."""
    pipeline = runtime.prompts.pipeline.model_copy(
        update={"series": {"board": {"tts": {"provider": "elevenlabs"}}}}
    )
    deps: CallDeps = runtime.call_deps()
    settings = deps.settings.updated(
        **{"elevenlabs_api_key": SecretStr("k"), "elevenlabs_base_url": None}
    )
    deps = CallDeps(**{**deps.__dict__, "settings": settings})
    board = pipeline.for_series("board")
    assert type(build_tts(deps, board)).__name__ != type(build_tts(deps, pipeline)).__name__
    assert type(build_stt(deps, board)) is type(build_stt(deps, pipeline))


def test_convene_serve_refuses_to_start_without_the_key(tmp_path: Path) -> None:
    """As a user runs it: the error comes at start, names the file, the key and the variable."""
    import os
    import subprocess
    import sys

    folder = with_pipeline(tmp_path, {"tts": {"provider": "cartesia"}})
    env = {**os.environ, "CONVENE_HOME": str(tmp_path / "home"), "CONVENE_PROMPTS_DIR": str(folder)}
    env.pop("CARTESIA_API_KEY", None)
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "pipeline.yaml" in out.stderr and "tts.provider is cartesia" in out.stderr
    assert "CARTESIA_API_KEY" in out.stderr and "Traceback" not in out.stderr
