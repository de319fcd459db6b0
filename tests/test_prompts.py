"""prompts/ YAML is validated at start: file, key path and reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.prompts import load_prompts
from core.settings import REPO_ROOT


def copy_prompts(tmp_path: Path) -> Path:
    target = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", target)
    return target


def test_shipped_prompts_load() -> None:
    prompts = load_prompts(REPO_ROOT / "prompts")
    assert prompts.agent.name == "Convene"
    assert prompts.agent.stt_initial_prompt() == "Convene meeting with the team."


def test_bad_value_names_file_and_key(tmp_path: Path) -> None:
    folder = copy_prompts(tmp_path)
    path = folder / "pipeline.yaml"
    path.write_text(path.read_text().replace("stop_secs: 0.6", "stop_secs: -1"))
    with pytest.raises(ConfigError) as info:
        load_prompts(folder)
    message = str(info.value)
    assert str(path) in message and "vad.stop_secs" in message and "greater than 0" in message


def test_unknown_key_and_missing_key(tmp_path: Path) -> None:
    folder = copy_prompts(tmp_path)
    (folder / "pipeline.yaml").write_text("vad:\n  stop_sec: 0.5\n")
    with pytest.raises(ConfigError, match=r"pipeline\.yaml: vad\.stop_sec: Extra inputs"):
        load_prompts(folder)
    folder = copy_prompts(tmp_path / "second")
    (folder / "agent.yaml").write_text("aliases: [x]\n")
    with pytest.raises(ConfigError, match=r"agent\.yaml: name: Field required"):
        load_prompts(folder)


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    folder = copy_prompts(tmp_path)
    (folder / "agent.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_prompts(folder)
    (folder / "agent.yaml").unlink()
    with pytest.raises(ConfigError, match=r"agent\.yaml: file not found"):
        load_prompts(folder)
