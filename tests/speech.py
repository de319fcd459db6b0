"""Test speech: meetings spoken with Piper, and word error rate."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf

from bot.speech import synthesize_meeting


def write_meeting(
    path: Path, turns: list[str], *, pause_secs: float = 1.0, lead_secs: float = 1.0
) -> Path:
    """Speak `turns` into a WAV, after `lead_secs` of silence (a bridge is quiet before anyone
    speaks; Whisper mishears a first word that starts the audio: "Tom" as "Kamal")."""
    audio, rate = synthesize_meeting(turns, pause_secs=pause_secs)
    lead = np.zeros(int(rate * lead_secs), dtype=audio.dtype)
    sf.write(path, np.concatenate([lead, audio]), rate)
    return path


_NUMBERS = {"1": "one", "2": "two", "3": "three", "4": "four", "5": "five"}


def words(text: str) -> list[str]:
    tokens = re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))
    return [_NUMBERS.get(t, t) for t in tokens]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (jiwer) over `words()`: case and punctuation ignored."""
    ref, hyp = " ".join(words(reference)), " ".join(words(hypothesis))
    if not ref:
        return float(len(hyp.split()))
    return float(jiwer.wer(ref, hyp)) if hyp else 1.0
