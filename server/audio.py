"""Audio helpers for the call simulator: load, resample, PCM16 and G.711 mu-law.

The mu-law codec is `audioop`'s, the one Pipecat's serializers use underneath its async,
resampling `pcm_to_ulaw` / `ulaw_to_pcm` (pipecat.audio.utils); the simulator needs it
synchronous and at one rate. `audioop` is in the standard library up to Python 3.12 and comes
from the `audioop-lts` package from 3.13 on. PCM16 is signed 16-bit little-endian throughout.
"""

from __future__ import annotations

import audioop
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from core.errors import ConveneError

TWILIO_SAMPLE_RATE = 8000
ULAW_SILENCE = 0xFF  # mu-law code of the sample value 0

FloatArray = npt.NDArray[np.float32]


class AudioFormatError(ConveneError, ValueError):
    """An audio file could not be read (missing, not audio, or an unsupported format)."""


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Encode PCM16 (little-endian) to G.711 mu-law, one byte per sample."""
    if len(pcm) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm)}")
    return audioop.lin2ulaw(pcm, 2)


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """Decode G.711 mu-law to PCM16 (little-endian)."""
    return audioop.ulaw2lin(ulaw, 2)


def float_to_pcm16(x: npt.ArrayLike) -> bytes:
    """Float samples in [-1, 1] (clipped; NaN becomes 0) to PCM16 little-endian bytes."""
    samples = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    scaled = np.clip(np.round(samples * 32768.0), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def pcm16_to_float(b: bytes) -> FloatArray:
    """PCM16 little-endian bytes to float32 samples in [-1, 1)."""
    if len(b) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(b)}")
    return (np.frombuffer(b, dtype="<i2").astype(np.float32) / np.float32(32768.0)).astype(
        np.float32
    )


def load_audio(path: Path) -> tuple[FloatArray, int]:
    """Read any file soundfile can (wav, flac, ogg, mp3...), mixed down to mono float32.

    Returns (samples, sample_rate). Raises AudioFormatError naming the file and the reason.
    """
    path = Path(path)
    if not path.exists():
        raise AudioFormatError(f"cannot read audio file {path}: no such file")
    if not path.is_file():
        raise AudioFormatError(f"cannot read audio file {path}: not a regular file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioFormatError(
            f"cannot read audio file {path}: not a supported audio format ({exc})"
        ) from exc
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def resample(samples: npt.NDArray[np.floating], src_rate: int, dst_rate: int) -> FloatArray:
    """Resample float samples (mono, or frames x channels) with soxr's high-quality filter."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    x = np.asarray(samples, dtype=np.float32)
    if src_rate == dst_rate or x.shape[0] == 0:
        if src_rate == dst_rate:
            return x.copy()
        return np.zeros((0, *x.shape[1:]), dtype=np.float32)
    return np.asarray(soxr.resample(x, src_rate, dst_rate), dtype=np.float32)


def to_twilio_ulaw(path: Path) -> bytes:
    """An audio file as Twilio would send it: mono, 8 kHz, G.711 mu-law."""
    samples, rate = load_audio(path)
    return pcm16_to_ulaw(float_to_pcm16(resample(samples, rate, TWILIO_SAMPLE_RATE)))


def write_wav(path: Path, pcm16: bytes, sample_rate: int) -> None:
    """Write mono PCM16 little-endian bytes as a 16-bit WAV file (empty data is fine)."""
    if len(pcm16) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm16)}")
    samples = np.frombuffer(pcm16, dtype="<i2")
    sf.write(str(path), samples, sample_rate, format="WAV", subtype="PCM_16")
