"""A voice as a vector: the GE2E speaker encoder that the Resemblyzer wheel ships, run in numpy.

The wheel's `resemblyzer/pretrained.pt` holds a 3-layer LSTM (40 mel channels in, 256 hidden)
and a 256x256 projection, trained with the generalised end-to-end loss (Wan et al., 2018) on
LibriSpeech, VoxCeleb 1 and 2. The package itself needs PyTorch, so it is installed for its
weights only (pyproject.toml: `[tool.uv.dependency-metadata]` drops its requirements) and
nothing of it is imported: the file is an old-style PyTorch pickle (magic number, protocol,
system info, the state dict pickle, then each storage's raw floats), read here by a restricted
unpickler that knows three names and builds numpy arrays. The mel front end (librosa's
Slaney filterbank, a power spectrogram, no log) and the partial-utterance averaging are
Resemblyzer's, rewritten in numpy.
"""

from __future__ import annotations

import collections
import importlib.metadata
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import soxr

from core.errors import ConfigError

RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s of audio per partial utterance
PARTIALS_PER_SEC = 1.3
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
EMBEDDING_SIZE = 256

Floats = npt.NDArray[np.float32]


def weights_path() -> Path:
    """The GE2E weights inside the installed Resemblyzer wheel (never imported: it needs
    PyTorch)."""
    try:
        dist = importlib.metadata.distribution("resemblyzer")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError("the speaker encoder needs the resemblyzer package installed") from exc
    path = Path(str(dist.locate_file("resemblyzer/pretrained.pt")))
    if not path.is_file():
        raise ConfigError(f"the resemblyzer package has no weights at {path}")
    return path


@dataclass
class _Storage:
    size: int
    data: Floats | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> Floats:
        assert self.storage.data is not None
        base = self.storage.data[self.offset :]
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base, shape=self.shape, strides=[s * item for s in self.stride], writeable=False
        )
        return np.array(view, dtype=np.float32)


def _rebuild_tensor(storage: _Storage, offset: int, shape: Any, stride: Any, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(shape), tuple(stride))


class _StateUnpickler(pickle.Unpickler):
    """Knows an ordered dict, float storages and tensors; refuses every other global."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch", "FloatStorage"):
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in speaker weights")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key, _location, size, _view = pid
        if kind != "storage" or storage_type != "FloatStorage":
            raise pickle.UnpicklingError(f"unexpected storage {storage_type!r}")
        return self.storages.setdefault(str(key), _Storage(int(size)))


def load_state(path: Path) -> dict[str, Floats]:
    """The model state of an old-style (non-zip) PyTorch checkpoint, as float32 arrays."""
    with path.open("rb") as f:
        for _ in range(3):  # magic number, protocol version, system info: plain data
            pickle.load(f)  # three plain literals written by torch.save
        unpickler = _StateUnpickler(f)
        checkpoint = unpickler.load()
        keys = pickle.load(f)  # a list of storage keys (strings)
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            storage = unpickler.storages[str(key)]
            storage.data = np.frombuffer(f.read(4 * count), dtype="<f4").astype(np.float32)
    state = checkpoint["model_state"]
    return {name: ref.array() for name, ref in state.items()}


def _mel_filters() -> Floats:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40): Slaney scale and area norm."""

    def hz_to_mel(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lin = f / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log, lin)

    def mel_to_hz(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lin = m * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log, lin)

    fft_freqs = np.linspace(0, RATE / 2, 1 + N_FFT // 2)
    edges = hz_to_mel(np.array([0.0, RATE / 2]))
    mel_f = mel_to_hz(np.linspace(edges[0], edges[1], N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: bytes | str | int) -> bytes:
    """One protobuf field: a varint (int) or a length-delimited one (bytes, str)."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


_FLOAT, _INT64 = 1, 7  # TensorProto.DataType


def _tensor(name: str, array: npt.NDArray[Any]) -> bytes:
    kind = _FLOAT if array.dtype == np.float32 else _INT64
    dims = b"".join(_field(1, d) for d in array.shape)
    data = np.ascontiguousarray(array).astype("<f4" if kind == _FLOAT else "<i8").tobytes()
    return dims + _field(2, kind) + _field(8, name) + _field(9, data)


def _node(op: str, inputs: list[str], outputs: list[str], **ints: int) -> bytes:
    attrs = b"".join(
        _field(5, _field(1, k) + _field(3, v) + _field(20, 2)) for k, v in ints.items()
    )
    return (
        b"".join(_field(1, i) for i in inputs)
        + b"".join(_field(2, o) for o in outputs)
        + _field(4, op)
        + attrs
    )


def _value_info(name: str, dims: list[str | int]) -> bytes:
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    return _field(1, name) + _field(2, _field(1, _field(1, _FLOAT) + _field(2, shape)))


def _onnx_model(state: dict[str, Floats]) -> bytes:
    """The encoder as an ONNX model (3 LSTM nodes, a projection, ReLU, L2 norm), written as
    protobuf by hand: onnxruntime is a dependency, the `onnx` package is not."""
    size = EMBEDDING_SIZE
    # PyTorch orders the gates (i, f, g, o); ONNX wants (i, o, f, g).
    order = np.concatenate(
        [
            np.arange(0, size),
            np.arange(3 * size, 4 * size),
            np.arange(size, 2 * size),
            np.arange(2 * size, 3 * size),
        ]
    )
    inits = [
        _tensor("axis0", np.array([0], dtype=np.int64)),
        _tensor("axis1", np.array([1], dtype=np.int64)),
    ]
    nodes: list[bytes] = []
    # Transpose (batch, time, mels) -> (time, batch, mels): ONNX LSTM's default layout.
    nodes.append(
        _field(1, "mels")
        + _field(2, "x0")
        + _field(4, "Transpose")
        + _field(5, _field(1, "perm") + b"".join(_field(8, p) for p in (1, 0, 2)) + _field(20, 7))
    )
    for n in range(3):
        w = state[f"lstm.weight_ih_l{n}"][order][None]
        r = state[f"lstm.weight_hh_l{n}"][order][None]
        b = np.concatenate([state[f"lstm.bias_ih_l{n}"][order], state[f"lstm.bias_hh_l{n}"][order]])
        inits += [_tensor(f"w{n}", w), _tensor(f"r{n}", r), _tensor(f"b{n}", b[None])]
        nodes.append(
            _node(
                "LSTM", [f"x{n}", f"w{n}", f"r{n}", f"b{n}"], [f"y{n}", f"h{n}"], hidden_size=size
            )
        )
        # Y is (time, directions, batch, hidden): drop the directions axis for the next layer.
        nodes.append(_node("Squeeze", [f"y{n}", "axis1"], [f"x{n + 1}"]))
    inits += [
        _tensor("linear_w", state["linear.weight"]),
        _tensor("linear_b", state["linear.bias"]),
    ]
    nodes += [
        _node("Squeeze", ["h2", "axis0"], ["last"]),
        _node("Gemm", ["last", "linear_w", "linear_b"], ["projected"], transB=1),
        _node("Relu", ["projected"], ["positive"]),
        _node("LpNormalization", ["positive"], ["embeddings"], axis=1, p=2),
    ]
    graph = (
        b"".join(_field(1, n) for n in nodes)
        + _field(2, "ge2e")
        + b"".join(_field(5, t) for t in inits)
        + _field(11, _value_info("mels", ["batch", "frames", N_MELS]))
        + _field(12, _value_info("embeddings", ["batch", size]))
    )
    return (
        _field(1, 8)
        + _field(2, "convene")
        + _field(7, graph)
        + _field(8, _field(1, "") + _field(2, 13))
    )


class VoiceEncoder:
    """Embeds speech (16-bit PCM, any rate) into an L2-normed 256-d voice vector."""

    def __init__(self, path: Path | None = None) -> None:
        state = load_state(path or weights_path())
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a call's segments are few; keep its cores free
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            _onnx_model(state),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._mel = _mel_filters()
        self._window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)

    @staticmethod
    def prepare(pcm: bytes, sample_rate: int) -> Floats:
        """16-bit PCM -> float waveform at 16 kHz, quiet speech raised to -30 dBFS."""
        wav = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if sample_rate != RATE and wav.size:
            wav = np.asarray(soxr.resample(wav, sample_rate, RATE), dtype=np.float32)
        rms = float(np.sqrt(np.mean(np.square(wav)))) if wav.size else 0.0
        if rms > 0:
            change = TARGET_DBFS - 20 * np.log10(rms)
            if change > 0:
                wav = wav * np.float32(10 ** (change / 20))
        return wav

    def mel_frames(self, wav: Floats) -> Floats:
        """(frames, 40) mel power spectrogram, librosa's framing (centred, reflect-padded)."""
        padded = np.pad(wav, N_FFT // 2, mode="reflect") if wav.size > N_FFT // 2 else wav
        if padded.size < N_FFT:
            padded = np.pad(padded, (0, N_FFT - padded.size))
        count = 1 + (padded.size - N_FFT) // HOP
        frames = np.lib.stride_tricks.as_strided(
            padded,
            shape=(count, N_FFT),
            strides=(padded.strides[0] * HOP, padded.strides[0]),
            writeable=False,
        )
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
        return np.asarray(power @ self._mel.T, dtype=np.float32)

    def embed_partials(self, mels: Floats) -> Floats:
        """(batch, frames, 40) -> (batch, 256) L2-normed embeddings."""
        (out,) = self._session.run(["embeddings"], {"mels": mels.astype(np.float32)})
        return np.asarray(out, dtype=np.float32)

    @staticmethod
    def partial_starts(samples: int) -> list[int]:
        """First mel frame of each 1.6 s partial (Resemblyzer's `compute_partial_slices`)."""
        n_frames = int(np.ceil((samples + 1) / HOP))
        step = round((RATE / PARTIALS_PER_SEC) / HOP)
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
        coverage = (samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
        if coverage < MIN_COVERAGE and len(starts) > 1:
            starts.pop()
        return starts

    def embed(self, pcm: bytes, sample_rate: int) -> Floats:
        """The voice vector of an utterance: the normed mean of its partials' embeddings."""
        wav = self.prepare(pcm, sample_rate)
        starts = self.partial_starts(wav.size)
        needed = (starts[-1] + PARTIAL_FRAMES) * HOP
        if needed > wav.size:
            wav = np.pad(wav, (0, needed - wav.size))
        mel = self.mel_frames(wav)
        batch = np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
        mean = self.embed_partials(batch).mean(axis=0)
        return np.asarray(mean / max(float(np.linalg.norm(mean)), 1e-9), dtype=np.float32)
