"""YAML files under prompts/, loaded into Pydantic models at start.

A bad file stops start-up with the file, the key path and the reason.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

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
    # whisper-local: faster-whisper in-process. whisper-remote: an OpenAI-compatible Whisper
    # server (CONVENE_WHISPER_REMOTE_URL, e.g. charts/stt on a DGX Spark), local as failover.
    provider: Literal["whisper-local", "whisper-remote"] = "whisper-local"
    remote_timeout_secs: float = Field(10.0, gt=0)
    remote_retries: int = Field(1, ge=0, le=5)
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


class TtsKnobs(_Strict):
    provider: Literal["piper"] = "piper"
    voice_model: str | None = None  # a Piper .onnx path; default: the packaged en_US joe voice
    length_scale: float = Field(1.0, gt=0.2, le=3.0)  # > 1 speaks slower
    max_sentence_chars: int = Field(220, ge=20)


class WakeKnobs(_Strict):
    follow_up_secs: float = Field(8.0, ge=0)


class ReportKnobs(_Strict):
    # templates: prompts/report.yaml; anthropic: Claude writes it from the same facts
    # (prompts/report_llm.yaml), checked against them, templates as the fallback.
    backend: Literal["templates", "anthropic"] = "templates"


class PipelineKnobs(_Strict):
    """`prompts/pipeline.yaml`: the pipeline's knobs."""

    report: ReportKnobs = ReportKnobs()
    tts: TtsKnobs = TtsKnobs()
    wake: WakeKnobs = WakeKnobs()
    extraction: ExtractionKnobs = ExtractionKnobs()
    vad: VadKnobs = VadKnobs()
    stt: SttKnobs = SttKnobs()
    call: CallKnobs = CallKnobs()


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class _Templates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    allowed: ClassVar[dict[str, set[str]]] = {}

    @field_validator("*")
    @classmethod
    def _known_placeholders(cls, value: Any, info: ValidationInfo) -> Any:
        allowed = cls.allowed.get(str(info.field_name))
        if allowed is not None and isinstance(value, str):
            unknown = _placeholders(value) - allowed
            if unknown:
                raise ValueError(
                    f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
                )
        return value


class ProgressTemplates(_Templates):
    allowed: ClassVar[dict[str, set[str]]] = {
        "intro": {"series"},
        "done": {"items"},
        "overdue": {"items"},
        "open": {"items"},
        "new": {"items"},
        "nothing": {"series"},
        "done_item": {"owner", "action", "due"},
        "overdue_item": {"owner", "action", "due"},
        "open_item": {"owner", "action", "due"},
    }
    intro: str
    done: str
    overdue: str
    open: str
    new: str
    nothing: str
    done_item: str
    overdue_item: str
    open_item: str


class PersonTemplates(_Templates):
    allowed: ClassVar[dict[str, set[str]]] = {
        "some": {"person", "count", "items"},
        "none": {"person"},
        "item": {"action", "due"},
    }
    some: str
    none: str
    item: str


class TodayTemplates(_Templates):
    allowed: ClassVar[dict[str, set[str]]] = {
        "some": {"items"},
        "none": set(),
        "item": {"owner", "action", "due"},
    }
    some: str
    none: str
    item: str


class RecallTemplates(_Templates):
    allowed: ClassVar[dict[str, set[str]]] = {
        "some": {"topic", "items"},
        "none": {"topic"},
        "item": {"text"},
    }
    some: str
    none: str
    item: str


class ReportTemplates(_Templates):
    allowed: ClassVar[dict[str, set[str]]] = {
        "unknown": set(),
        "due": {"weekday", "ordinal", "month"},
        "due_far": {"weekday", "ordinal", "month"},
        "someone": set(),
    }
    progress_report: ProgressTemplates
    person_tasks: PersonTemplates
    today: TodayTemplates
    recall: RecallTemplates
    unknown: str
    due: str
    due_far: str
    someone: str


class Prompts(_Strict):
    agent: AgentPrompts
    pipeline: PipelineKnobs
    report: ReportTemplates


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
        report=load_yaml_model(prompts_dir / "report.yaml", ReportTemplates),
    )
