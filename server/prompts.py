"""YAML files under prompts/, loaded into Pydantic models at start.

A bad file stops start-up with the file, the key path and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SttBias(_Strict):
    """How Whisper is nudged toward the names it must hear."""

    initial_prompt: str = "Convene meeting."
    hotwords: str | None = None


class AgentPrompts(_Strict):
    """`prompts/agent.yaml`: who the bot is and who it meets."""

    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    participants: list[str] = Field(default_factory=list)
    stt: SttBias = SttBias()

    def stt_initial_prompt(self) -> str:
        return self.stt.initial_prompt.format(
            name=self.name, participants=", ".join(self.participants) or "the team"
        )


class VadKnobs(_Strict):
    confidence: float = Field(0.7, ge=0.0, le=1.0)
    start_secs: float = Field(0.2, gt=0.0, le=2.0)
    stop_secs: float = Field(0.6, gt=0.0, le=5.0)
    min_volume: float = Field(0.6, ge=0.0, le=1.0)


class SttKnobs(_Strict):
    provider: Literal["whisper-local"] = "whisper-local"
    language: str = "en"
    no_speech_prob: float = Field(0.6, ge=0.0, le=1.0)
    trailing_silence_secs: float = Field(0.5, ge=0.0, le=3.0)


class CallKnobs(_Strict):
    # 0 disables the idle timeout: a meeting bot mostly listens.
    idle_timeout_secs: float = Field(0, ge=0)
    max_message_bytes: int = Field(65536, ge=1024)
    pipeline_sample_rate: Literal[8000, 16000] = 16000


class ExtractionKnobs(_Strict):
    backend: Literal["deterministic", "anthropic"] = "deterministic"
    window: int = Field(4, ge=1, le=20)


class PipelineKnobs(_Strict):
    """`prompts/pipeline.yaml`: the pipeline's knobs."""

    extraction: ExtractionKnobs = ExtractionKnobs()
    vad: VadKnobs = VadKnobs()
    stt: SttKnobs = SttKnobs()
    call: CallKnobs = CallKnobs()


class Prompts(_Strict):
    agent: AgentPrompts
    pipeline: PipelineKnobs


M = TypeVar("M", bound=BaseModel)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Load one YAML file into `model`, or raise ConfigError naming file, key and reason."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_location(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"{path}: {problems}") from exc


def load_prompts(prompts_dir: Path) -> Prompts:
    """Load and validate every YAML file Convene reads from `prompts_dir`."""
    if not prompts_dir.is_dir():
        raise ConfigError(f"{prompts_dir}: prompts directory not found (CONVENE_PROMPTS_DIR)")
    return Prompts(
        agent=load_yaml_model(prompts_dir / "agent.yaml", AgentPrompts),
        pipeline=load_yaml_model(prompts_dir / "pipeline.yaml", PipelineKnobs),
    )
