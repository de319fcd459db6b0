"""Meetings of several voices, spoken offline: the packaged Piper voice ("piper") and eSpeak NG
voices (the library and data the `espeakng-loader` wheel ships, driven through its C API with
ctypes; nothing to install on the machine).

`espeak("...", "en-us+m3")` speaks with the en-us voice and the m3 variant; variants (m1-m7,
f1-f5, ...) change pitch, formants and breath, so each is a different voice to a speaker
encoder. `voice_meeting` speaks each (voice, text) turn, levels them alike and lays them out
with pauses: the WAV and the truth (who spoke when). Used by `convene demo` and the tests.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import espeakng_loader
import numpy as np
import soundfile as sf
import soxr

from processors.piper_voice import synthesize

_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the text is spoken
_CHARS_UTF8 = 1
_RATE_PARAM = 1  # espeakRATE, words per minute
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)
_lock = threading.Lock()
_chunks: list[np.ndarray] = []


@_CALLBACK  # type: ignore[untyped-decorator]
def _collect(samples: Any, count: int, _events: Any) -> int:
    if count > 0 and samples:
        _chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
    return 0


@lru_cache(maxsize=1)
def _engine() -> tuple[Any, int]:
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
        raise RuntimeError("eSpeak NG failed to initialise")
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback(_collect)
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    return lib, rate


def espeak(text: str, voice: str, *, words_per_minute: int = 160) -> tuple[np.ndarray, int]:
    """Speak `text` with eSpeak NG's `voice` (e.g. "en-us+f3"): (int16 samples, rate)."""
    lib, rate = _engine()
    data = text.encode()
    with _lock:
        _chunks.clear()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        lib.espeak_SetParameter(_RATE_PARAM, words_per_minute, 0)
        if lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None) != 0:
            raise RuntimeError(f"eSpeak NG could not speak {text!r}")
        audio = np.concatenate(_chunks) if _chunks else np.zeros(0, dtype=np.int16)
        _chunks.clear()
    return audio.astype(np.int16), rate


RATE = 22050


@dataclass(frozen=True)
class Turn:
    voice: str
    start_ms: int
    end_ms: int


def speak(text: str, voice: str) -> np.ndarray:
    """int16 speech at 22.05 kHz, at a common loudness (-20 dBFS RMS).

    `voice`: "piper" (the packaged voice), "piper@F" (that voice with its pitch and formants
    moved by the factor F, e.g. 0.78 lower, 1.25 higher: as clear to speech recognition, a
    different voice to a speaker encoder), or an eSpeak NG voice ("en-us+m3").
    """
    shift = 1.0
    if voice.startswith("piper@"):
        shift = float(voice.removeprefix("piper@"))
        if not 0.5 <= shift <= 2.0:
            raise ValueError(f"voice {voice!r}: the shift must be between 0.5 and 2")
    if voice == "piper" or voice.startswith("piper@"):
        audio, rate = synthesize(text)
        # Played back at another rate: pitch, formants and pace move together.
        rate = round(rate * shift)
    else:
        audio, rate = espeak(text, voice)
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
