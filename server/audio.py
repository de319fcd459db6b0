"""Audio helpers for the call simulator: load, resample, PCM16 and G.711 mu-law.

Everything is numpy (no `audioop`, which is deprecated and gone in Python 3.13). The mu-law
codec is bit-exact with `audioop.lin2ulaw` / `audioop.ulaw2lin` (the ITU-T G.711 algorithm with
bias 0x84 and clip 32635, as used by Twilio and Pipecat), via a 65,536-entry encode table and a
256-entry decode table built once at import. PCM16 is signed 16-bit little-endian throughout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from core.errors import ConveneError

TWILIO_SAMPLE_RATE = 8000
ULAW_SILENCE = 0xFF  # mu-law code of the sample value 0

_BIAS = 0x84
_CLIP = 32635

FloatArray = npt.NDArray[np.float32]


class AudioFormatError(ConveneError, ValueError):
    """An audio file could not be read (missing, not audio, or an unsupported format)."""


def _build_decode_table() -> npt.NDArray[np.int16]:
    """The 256 PCM16 values of the mu-law codes (G.711 expansion)."""
    inverted = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (inverted >> 4) & 0x07
    magnitude = ((((inverted & 0x0F) << 3) + _BIAS) << exponent) - _BIAS
    return np.where(inverted & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    """The mu-law code of every PCM16 value, indexed by the value's unsigned 16-bit pattern."""
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm)
    negative = pcm < 0
    # G.711 quantises the 14-bit value pcm >> 2 (arithmetic shift, as audioop does), so the
    # magnitude of a negative sample is rounded up to a multiple of 4.
    magnitude = np.where(negative, -((pcm >> 2) << 2), pcm)
    biased = np.minimum(magnitude, _CLIP) + _BIAS  # 132 .. 32767
    exponent = np.frexp(biased)[1].astype(np.int32) - 8  # bit length - 8: 0 .. 7
    mantissa = (biased >> (exponent + 3)) & 0x0F
    sign = np.where(negative, 0x80, 0x00)
    table: npt.NDArray[np.uint8] = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    return table


_ULAW_DECODE = _build_decode_table()
_ULAW_ENCODE = _build_encode_table()


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Encode PCM16 (little-endian) to G.711 mu-law, one byte per sample."""
    if len(pcm) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(pcm)}")
    samples = np.frombuffer(pcm, dtype="<u2")
    return np.take(_ULAW_ENCODE, samples).tobytes()


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """Decode G.711 mu-law to PCM16 (little-endian)."""
    codes = np.frombuffer(ulaw, dtype=np.uint8)
    return np.take(_ULAW_DECODE, codes).astype("<i2").tobytes()


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
