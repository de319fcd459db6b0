"""More test voices: eSpeak NG (the library and data the `espeakng-loader` wheel ships, a dev
dependency: nothing to install on the machine), driven through its C API with ctypes.

`espeak("...", "en-us+m3")` speaks with the en-us voice and the m3 variant; variants (m1-m7,
f1-f5, ...) change pitch, formants and breath, so each is a different voice to a speaker
encoder. Returns int16 samples and the rate (22050 Hz).
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache
from typing import Any

import espeakng_loader
import numpy as np

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
