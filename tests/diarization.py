"""Meetings of several voices, and the diarization error rate of a speaker labelling.

`voice_meeting` speaks each (voice, text) turn with the packaged Piper voice ("piper") or an
eSpeak NG voice (tests/voices.py), levels them alike, and lays them out with pauses: the WAV
and the truth (who spoke when). `der` scores labelled segments against that truth.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from processors.piper_voice import synthesize
from tests.voices import espeak

RATE = 22050


@dataclass(frozen=True)
class Turn:
    voice: str
    start_ms: int
    end_ms: int


def speak(text: str, voice: str) -> np.ndarray:
    """int16 speech at 22.05 kHz, at a common loudness (-20 dBFS RMS)."""
    audio, rate = synthesize(text) if voice == "piper" else espeak(text, voice)
    wav = audio.astype(np.float32) / 32768
    if rate != RATE:
        wav = np.asarray(soxr.resample(wav, rate, RATE), dtype=np.float32)
    rms = float(np.sqrt(np.mean(wav**2))) or 1.0
    wav = np.clip(wav * (0.1 / rms), -1, 1)
    return (wav * 32767).astype(np.int16)


def voice_meeting(
    path: Path, turns: list[tuple[str, str]], *, pause_secs: float = 1.0, lead_secs: float = 1.0
) -> list[Turn]:
    """Write the meeting to `path` (22.05 kHz WAV); returns who spoke when."""
    parts = [np.zeros(int(RATE * lead_secs), dtype=np.int16)]
    at = len(parts[0])
    truth: list[Turn] = []
    for voice, text in turns:
        audio = speak(text, voice)
        truth.append(Turn(voice, at * 1000 // RATE, (at + len(audio)) * 1000 // RATE))
        parts += [audio, np.zeros(int(RATE * pause_secs), dtype=np.int16)]
        at += len(audio) + int(RATE * pause_secs)
    sf.write(path, np.concatenate(parts), RATE)
    return truth


def der(
    truth: list[Turn],
    hypothesis: list[tuple[int, int, str | None]],
    *,
    collar_ms: int = 250,
    step_ms: int = 10,
) -> float:
    """Diarization error rate: (missed speech + false alarm + speaker confusion) / speech,
    on a `step_ms` grid, the `collar_ms` either side of each true turn's edges not scored
    (pyannote.metrics' convention), labels mapped to voices one-to-one so as to agree most.
    A segment without a label counts as missed speech."""
    end = max([t.end_ms for t in truth] + [h[1] for h in hypothesis]) + collar_ms
    n = end // step_ms + 1
    ref: list[str | None] = [None] * n
    scored = [True] * n
    for t in truth:
        for i in range(t.start_ms // step_ms, t.end_ms // step_ms):
            ref[i] = t.voice
        for edge in (t.start_ms, t.end_ms):
            for i in range(max(0, (edge - collar_ms) // step_ms), (edge + collar_ms) // step_ms):
                scored[i] = False
    hyp: list[str | None] = [None] * n
    for start, stop, label in hypothesis:
        for i in range(start // step_ms, stop // step_ms):
            hyp[i] = label
    frames = [(r, h) for r, h, s in zip(ref, hyp, scored, strict=True) if s]
    speech = sum(1 for r, _ in frames if r is not None)
    missed = sum(1 for r, h in frames if r is not None and h is None)
    false_alarm = sum(1 for r, h in frames if r is None and h is not None)
    voices = sorted({r for r, _ in frames if r is not None})
    labels = sorted({h for _, h in frames if h is not None})
    best = 0
    # One-to-one label -> voice mapping with the most agreeing frames (labels are few).
    for chosen in itertools.permutations(labels, min(len(labels), len(voices))):
        mapping = dict(zip(chosen, voices, strict=False))
        agree = sum(1 for r, h in frames if r is not None and h is not None and mapping.get(h) == r)
        best = max(best, agree)
    both = sum(1 for r, h in frames if r is not None and h is not None)
    confusion = both - best
    return (missed + false_alarm + confusion) / max(speech, 1)
