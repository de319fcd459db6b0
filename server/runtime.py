"""The process's shared parts, created once at start and closed at exit.

Postgres and Redis are the ones named by DATABASE_URL / REDIS_URL, or embedded servers started
under CONVENE_HOME. The Whisper model is loaded once and shared by every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential

from bot.call import CallDeps
from bot.models import (
    resolve_whisper_model,
    shared_quick_model,
    shared_whisper_model,
    warm_up,
)
from bot.tracing import start_tracing
from core import clock
from core.errors import ConfigError, StorageUnavailable
from core.prompts import LlmProvider, Prompts, load_prompts
from core.settings import Settings, reveal
from core.stt_queue import TranscriptionQueue, shared_queue
from domain.extraction import DeterministicExtractor
from domain.llm import OPENAI_NO_KEY
from domain.llm_extraction import LLMExtractor, build_llm_extractor, warm_up_server
from domain.llm_extraction_prompt import load_extraction_prompt
from domain.llm_pending import watch
from domain.llm_report import load_report_prompt
from domain.local_llm import LocalLlmServer, check_model
from memory.embedded import EmbeddedPostgres, EmbeddedRedis
from memory.journal import ActiveCalls, CallJournal
from memory.models import CallCreated, CallEnded, StreamStarted
from memory.spool import Spool
from memory.store import Store
from memory.writer import StoreWriter
from processors.commitments import commitment_record
from server.stream_tokens import StreamTokens, load_or_create_secret

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)
# Commitments found when a spooled window is retried get segment numbers beyond any real one.
RETRIED_SEQ_BASE = 1_000_000
# The first pause before the LLM's spooled windows are tried again; it doubles from there up
# to CONVENE_LLM_RETRY_SECS while some are left.
LLM_RETRY_FIRST_SECS = 1.0


def _log_start_failure(task: asyncio.Task[str]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the local LLM did not start: %s", task.exception())


class _WindowsLeft(Exception):
    """Spooled windows are left after a retry round: another, after the backoff."""


def check_llm_settings(
    settings: Settings, *, prompt: str = "extraction.yaml", provider: str = "anthropic"
) -> None:
    """An LLM backend needs a key (Anthropic) and a valid prompt file, checked at start."""

    knob = "extraction.backend" if prompt == "extraction.yaml" else "report.backend"
    if provider == "anthropic" and settings.llm.anthropic_api_key is None:
        raise ConfigError(
            f"{settings.convene_prompts_dir / 'pipeline.yaml'}: {knob} uses anthropic "
            "but ANTHROPIC_API_KEY is not set"
        )
    if provider == "openai-compatible" and not (
        settings.llm.openai_base_url or settings.llm.openai_api_key
    ):
        raise ConfigError(
            f"{settings.convene_prompts_dir / 'pipeline.yaml'}: {knob} uses openai-compatible "
            "but neither OPENAI_BASE_URL (a local server) nor OPENAI_API_KEY is set"
        )
    path = settings.convene_prompts_dir / prompt
    if prompt == "extraction.yaml":
        load_extraction_prompt(path)
    else:
        load_report_prompt(path)


_CLOUD_KEYS: dict[tuple[str, str], str] = {
    ("stt", "deepgram"): "deepgram_api_key",
    ("stt", "whisper-remote"): "convene_whisper_remote_url",
    ("tts", "cartesia"): "cartesia_api_key",
    ("tts", "elevenlabs"): "elevenlabs_api_key",
}


def check_provider_settings(settings: Settings, prompts: Prompts) -> None:
    """Every provider prompts/pipeline.yaml selects (globally or for a series) is usable.

    Missing keys, a missing optional extra or a bad LLM prompt file stop start-up here, with
    the file, the key path and what is missing, never in the middle of a call.
    """
    pipeline_yaml = settings.convene_prompts_dir / "pipeline.yaml"
    base = prompts.pipeline
    variants = [("", base)] + [
        (f"series.{name}.", base.for_series(name)) for name in sorted(base.series)
    ]
    for prefix, knobs in variants:
        for section, provider in (("stt", knobs.stt.provider), ("tts", knobs.tts.provider)):
            field_name = _CLOUD_KEYS.get((section, provider))
            if field_name is not None and not settings.by_env(field_name):
                raise ConfigError(
                    f"{pipeline_yaml}: {prefix}{section}.provider is {provider} "
                    f"but {field_name.upper()} is not set"
                )
        if knobs.stt.provider == "openai-whisper":
            try:
                import whisper  # noqa: F401  (the optional extra)
            except ImportError:
                raise ConfigError(
                    f"{pipeline_yaml}: {prefix}stt.provider is openai-whisper but the "
                    "`openai-whisper` package is not installed "
                    "(uv sync --extra openai-whisper; it pulls PyTorch)"
                ) from None
        if knobs.extraction.backend == "local-llm":
            try:
                check_model(knobs.local_llm.model)
            except ConfigError as exc:
                raise ConfigError(f"{pipeline_yaml}: {prefix}local_llm.model: {exc}") from None
            load_extraction_prompt(settings.convene_prompts_dir / "extraction.yaml")
        for prompt, backend in (
            ("extraction.yaml", knobs.extraction.backend),
            ("report_llm.yaml", knobs.report.backend),
        ):
            llm = knobs.llm_for(backend)
            if llm is not None:
                check_llm_settings(settings, prompt=prompt, provider=llm)


async def open_store(settings: Settings) -> tuple[Store, EmbeddedPostgres | None]:
    """Postgres from DATABASE_URL, or the embedded one under CONVENE_HOME; migrated."""
    embedded: EmbeddedPostgres | None = None
    if settings.store.database_url is not None:
        dsn = settings.store.database_url.get_secret_value()
    else:
        settings.convene_home.mkdir(parents=True, exist_ok=True)
        embedded = EmbeddedPostgres(settings.convene_home / "postgres")
        dsn = await asyncio.to_thread(embedded.start)
    return await Store.open(dsn), embedded


def recover_crashed_calls(journal: CallJournal, writer: StoreWriter) -> list[str]:
    """Close the calls a dead process left open: `interrupted`, ended_by `crash`.

    Their segments and commitments stay as written. The end goes through the writer, behind
    anything still spooled, so it lands after the call's last stored segment even when
    Postgres is down now (then it is spooled too).
    """
    closed = []
    for call_id, owner in journal.orphans():
        writer.submit(CallEnded(call_id=call_id, status="interrupted", ended_by="crash"))
        journal.closed(call_id)
        log.warning(
            "call %s was left open by process %d, which is gone: closed as interrupted "
            "(ended_by=crash)",
            call_id,
            owner.pid,
        )
        closed.append(call_id)
    return closed


@dataclass
class Runtime:
    settings: Settings
    prompts: Prompts
    store: Store
    redis: aioredis.Redis
    writer: StoreWriter
    spool: Spool
    whisper_model: WhisperModel | None
    whisper_model_name: str
    # stt.quick_model (a smaller Whisper for speculative transcripts), if the knobs use one.
    quick_whisper_model: WhisperModel | None = None
    # The process's one queue in front of local Whisper (stt.workers, stt.max_queue).
    stt_queue: TranscriptionQueue = field(default_factory=shared_queue)
    embedded_postgres: EmbeddedPostgres | None = None
    embedded_redis: EmbeddedRedis | None = None
    journal: CallJournal | None = None
    active_calls: ActiveCalls = field(default_factory=ActiveCalls)
    llm_retry_task: asyncio.Task[None] | None = None
    # Set when a window is queued in the LLM spool (and at start): the retry loop wakes.
    llm_windows_queued: asyncio.Event = field(default_factory=asyncio.Event)
    _unwatch_llm_spool: Callable[[], None] | None = field(default=None, repr=False)
    _retry_extractor: tuple[tuple[object, ...], LLMExtractor] | None = field(
        default=None, repr=False
    )
    supervisor_task: asyncio.Task[None] | None = None
    # The local model's server (extraction.backend local-llm), started in the background.
    local_llm: LocalLlmServer | None = None
    local_llm_task: asyncio.Task[str] | None = None  # start + warm-up
    _stream_tokens: tuple[tuple[object, ...], StreamTokens] | None = field(default=None, repr=False)
    _supervise_backoff: dict[str, tuple[int, float]] = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings, *, load_whisper: bool = True) -> Runtime:
        prompts = load_prompts(settings.convene_prompts_dir)  # bad YAML stops start-up here
        check_provider_settings(settings, prompts)
        start_tracing(settings)  # CONVENE_TRACING without the `tracing` extra stops here
        home = settings.convene_home
        home.mkdir(parents=True, exist_ok=True)

        store, embedded_pg = await open_store(settings)

        embedded_redis: EmbeddedRedis | None = None
        if settings.store.redis_url is not None:
            redis_url = settings.store.redis_url.get_secret_value()
        else:
            embedded_redis = EmbeddedRedis(home / "redis")
            redis_url = await asyncio.to_thread(embedded_redis.start)
        # Timeouts: a frozen Redis must not hang the writer or /ready.
        redis = aioredis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
        )
        try:
            await redis.ping()
        except (RedisError, OSError) as exc:
            await store.close()
            raise StorageUnavailable(f"Redis unreachable: {type(exc).__name__}") from exc

        spool = Spool(settings.spool_path)
        writer = StoreWriter(
            store,
            redis,
            spool,
            batch_size=settings.store.writer_batch,
            retry_secs=settings.store.writer_retry_secs,
            max_retry_secs=settings.store.writer_max_retry_secs,
            max_held=settings.store.writer_max_held,
        )
        writer.start()
        journal = CallJournal(home / "open-calls.sqlite3")
        recover_crashed_calls(journal, writer)

        model_name = resolve_whisper_model(settings.speech.whisper_model, home / "models")
        model = None
        if load_whisper:
            model = await asyncio.to_thread(
                shared_whisper_model,
                model_name,
                device=settings.speech.whisper_device,
                compute_type=settings.speech.whisper_compute_type,
            )
        quick = None
        if load_whisper:
            quick = await asyncio.to_thread(
                shared_quick_model,
                prompts.pipeline,
                device=settings.speech.whisper_device,
                compute_type=settings.speech.whisper_compute_type,
            )
            await asyncio.to_thread(warm_up, model, prompts.pipeline.tts.voice_model, quick)
        runtime = cls(
            settings=settings,
            prompts=prompts,
            store=store,
            redis=redis,
            writer=writer,
            spool=spool,
            whisper_model=model,
            whisper_model_name=model_name,
            quick_whisper_model=quick,
            stt_queue=shared_queue(
                workers=prompts.pipeline.stt.workers, max_queue=prompts.pipeline.stt.max_queue
            ),
            embedded_postgres=embedded_pg,
            embedded_redis=embedded_redis,
            journal=journal,
            active_calls=ActiveCalls(journal),
        )
        knobs = prompts.pipeline
        if knobs.uses_local_llm():
            runtime.ensure_local_llm()
        if knobs.uses_local_llm() or any(
            knobs.for_series(name).llm_for(knobs.for_series(name).extraction.backend)
            for name in (None, *knobs.series)
        ):
            runtime._start_llm_retry()
        if runtime.supervisor_task is None and (
            embedded_pg is not None or embedded_redis is not None
        ):
            runtime.supervisor_task = asyncio.create_task(
                runtime._supervise(), name="convene-supervisor"
            )
        return runtime

    def ensure_local_llm(self) -> LocalLlmServer:
        """The local model's server: made and started in the background on first need.

        Its URL is known at once; windows asked before it serves fail over to the rules and
        are spooled, and the retry loop sends them again once it serves."""
        if self.local_llm is None:
            local = self.prompts.pipeline.local_llm
            self.local_llm = LocalLlmServer(
                self.settings.convene_home / "local-llm",
                model=local.model,
                threads=local.threads,
                context_tokens=local.context_tokens,
            )
        if self.local_llm_task is None:
            self.local_llm_task = asyncio.create_task(
                self._start_local_llm(self.local_llm), name="convene-local-llm-start"
            )
            self.local_llm_task.add_done_callback(_log_start_failure)
            if self.supervisor_task is None:
                self.supervisor_task = asyncio.create_task(
                    self._supervise(), name="convene-supervisor"
                )
        return self.local_llm

    async def _start_local_llm(self, server: LocalLlmServer) -> str:
        """Start the server, then read the extraction prompt once: llama.cpp keeps it in its
        cache, so a call's first window pays only for its own lines (like Whisper's warm-up)."""
        url = await asyncio.to_thread(server.start)
        await warm_up_server(
            prompt_path=self.settings.convene_prompts_dir / "extraction.yaml",
            spool_path=self.settings.llm_spool_path,
            base_url=url,
            model=server.alias,
            temperature=self.prompts.pipeline.local_llm.temperature,
        )
        return url

    async def local_llm_ready(self) -> str:
        """Wait until the local model serves; its base URL."""
        self.ensure_local_llm()
        assert self.local_llm_task is not None
        return await asyncio.shield(self.local_llm_task)

    async def supervise_once(self) -> None:
        """Restart an embedded server that died under us (not one stopped on purpose).

        A restart that fails (a full disk) is retried with backoff, up to a minute apart."""
        now = asyncio.get_running_loop().time()
        local = self.local_llm if self.local_llm_task and self.local_llm_task.done() else None
        for server in (self.embedded_postgres, self.embedded_redis, local):
            if server is None:
                continue
            name = type(server).__name__
            failures, next_at = self._supervise_backoff.get(name, (0, 0.0))
            if now < next_at:
                continue
            try:
                await asyncio.to_thread(server.supervise)
            except Exception as exc:  # keep supervising: a later round tries again
                wait = min(60.0, self.settings.store.supervise_secs * 2 ** (failures + 1))
                if failures == 0:
                    log.exception("supervisor: restarting %s failed", name)
                else:
                    log.warning(
                        "supervisor: restarting %s failed again (%s); next try in %.0fs",
                        name,
                        type(exc).__name__,
                        wait,
                    )
                self._supervise_backoff[name] = (failures + 1, now + wait)
            else:
                if failures:
                    log.warning("supervisor: %s runs again", name)
                self._supervise_backoff.pop(name, None)

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(self.settings.store.supervise_secs)
            await self.supervise_once()

    async def retry_llm_windows_once(self) -> int:
        """Send windows the LLM failed on again; merge what it now finds into memory.

        Their deterministic result was used at the time; the LLM's answer is applied on top
        (tracking matches it to the tasks it already made, so nothing is duplicated).
        """

        knobs = self.prompts.pipeline
        provider: LlmProvider = knobs.llm_for(knobs.extraction.backend) or (
            "openai-compatible"
            if knobs.llm.provider == "openai-compatible" or knobs.extraction.backend == "local-llm"
            else "anthropic"
        )
        llm = self.settings.llm
        secret, base_url = (
            (llm.anthropic_api_key, llm.anthropic_base_url)
            if provider == "anthropic"
            else (llm.openai_api_key, llm.openai_base_url)
        )
        api_key = reveal(secret)
        model, timeout, temperature = knobs.llm.model, None, None
        if knobs.extraction.backend == "local-llm":
            local = self.ensure_local_llm()
            api_key, base_url, model = OPENAI_NO_KEY, local.base_url, local.alias
            timeout, temperature = knobs.local_llm.timeout_secs, knobs.local_llm.temperature
        prompt_path = self.settings.convene_prompts_dir / "extraction.yaml"
        # One extractor (one HTTP client, one read of extraction.yaml) for as long as the
        # configuration it was built from holds, not one per retry round.
        key = (provider, api_key, base_url, model, prompt_path)
        if self._retry_extractor is None or self._retry_extractor[0] != key:
            if self._retry_extractor is not None:
                await self._retry_extractor[1].aclose()
            extractor = build_llm_extractor(
                prompt_path=prompt_path,
                spool_path=self.settings.llm_spool_path,
                fallback=DeterministicExtractor(),
                api_key=api_key,
                base_url=base_url,
                provider=provider,
                model=model,
                timeout_secs=timeout,
                temperature=temperature,
            )
            self._retry_extractor = (key, extractor)
        extractor = self._retry_extractor[1]
        merged = 0
        for window, found in await extractor.retry_pending_windows():
            call_id = window.context.get("call_id")
            if not call_id:
                continue
            for ordinal, item in enumerate(found):
                self.writer.submit(
                    commitment_record(
                        item,
                        call_id=call_id,
                        seq=RETRIED_SEQ_BASE + window.id,
                        ordinal=ordinal,
                        series=window.context.get("series") or None,
                    )
                )
                merged += 1
        return merged

    def _start_llm_retry(self) -> None:
        """Retry the LLM's spooled windows whenever one is queued (and once now, for windows
        an earlier process left), backing off while the LLM still fails."""
        loop = asyncio.get_running_loop()
        queued = self.llm_windows_queued
        self._unwatch_llm_spool = watch(
            self.settings.llm_spool_path, lambda: loop.call_soon_threadsafe(queued.set)
        )
        queued.set()
        self.llm_retry_task = asyncio.create_task(
            self._retry_llm_windows(), name="convene-llm-retry"
        )

    async def _retry_llm_windows(self) -> None:
        backoff = wait_exponential(
            multiplier=LLM_RETRY_FIRST_SECS,
            min=LLM_RETRY_FIRST_SECS,
            max=max(LLM_RETRY_FIRST_SECS, self.settings.llm.retry_secs),
        )
        while True:
            await self.llm_windows_queued.wait()
            self.llm_windows_queued.clear()
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(_WindowsLeft),
                wait=backoff,
                stop=stop_never,
                reraise=True,
            )
            await retrying(self._retry_llm_round)

    async def _retry_llm_round(self) -> None:
        """One retry of the spooled windows; `_WindowsLeft` while some remain."""
        try:
            merged = await self.retry_llm_windows_once()
        except Exception as exc:
            log.exception("LLM retry of spooled windows failed")
            raise _WindowsLeft from exc
        if merged:
            log.info("LLM retry: merged %d commitments from spooled windows", merged)
        if self._retry_extractor is not None and await self._retry_extractor[1].pending():
            raise _WindowsLeft

    def create_call_later(self, call: CallCreated, *, reason: BaseException | None = None) -> str:
        """A new call while Postgres is away: its record goes through the writer (spooled,
        in order before the call's segments) and lands when Postgres is back."""
        self.writer.submit(call)
        log.warning(
            "Postgres unavailable (%s): %s call %s accepted; its record is spooled",
            type(reason).__name__ if reason else "unknown",
            call.direction,
            call.call_id,
        )
        return call.call_id

    def start_stream_later(
        self,
        *,
        call_id: str,
        stream_sid: str,
        call_sid: str | None,
        series_key: str | None,
        meeting_title: str | None,
    ) -> None:
        """`Store.start_stream` through the writer, while Postgres is away."""
        self.writer.submit(
            StreamStarted(
                call_id=call_id,
                stream_sid=stream_sid,
                call_sid=call_sid,
                series_key=series_key,
                meeting_title=meeting_title,
            )
        )
        log.warning("Postgres unavailable: call %s streams; its start is spooled", call_id)

    @property
    def stream_tokens(self) -> StreamTokens:
        """The stream-token signer: CONVENE_STREAM_TOKEN_SECRET, else the key kept in
        CONVENE_HOME (generated on first use)."""
        conf = self.settings.streams
        secret = reveal(conf.token_secret)
        key = (secret, conf.token_ttl_secs, self.settings.convene_home)
        if self._stream_tokens is None or self._stream_tokens[0] != key:
            raw = secret.encode() if secret else load_or_create_secret(self.settings.convene_home)
            self._stream_tokens = (key, StreamTokens(raw, ttl_secs=conf.token_ttl_secs))
        return self._stream_tokens[1]

    def time_zone_for(self, series: str | None) -> str:
        """The time zone a series' meeting dates are read in: `call.timezone` in
        prompts/pipeline.yaml (per series or global), else CONVENE_TIMEZONE."""
        zone = self.prompts.pipeline.for_series(series).call.timezone
        return zone or self.settings.timezone

    def meeting_date_for(
        self, series: str | None, named: dt.date | None = None
    ) -> tuple[dt.date, str]:
        """Decide a new call's meeting date once: the date it names, else today (the clock's
        instant now) in the series' time zone. Returns the date and the zone."""
        zone = self.time_zone_for(series)
        return (named or clock.meeting_date_at(clock.now(), zone)), zone

    def call_deps(self) -> CallDeps:
        if self.whisper_model is None:
            self.whisper_model = shared_whisper_model(
                self.whisper_model_name,
                device=self.settings.speech.whisper_device,
                compute_type=self.settings.speech.whisper_compute_type,
            )
        if self.quick_whisper_model is None:
            self.quick_whisper_model = shared_quick_model(
                self.prompts.pipeline,
                device=self.settings.speech.whisper_device,
                compute_type=self.settings.speech.whisper_compute_type,
            )
        return CallDeps(
            prompts=self.prompts,
            settings=self.settings,
            whisper_model=self.whisper_model,
            whisper_model_name=self.whisper_model_name,
            quick_whisper_model=self.quick_whisper_model,
            submit=self.writer.submit,
            flush=self.writer.flush,
            store=self.store,
            local_llm=(self.ensure_local_llm() if self.prompts.pipeline.uses_local_llm() else None),
        )

    async def close(self) -> None:
        if self._unwatch_llm_spool is not None:
            self._unwatch_llm_spool()
            self._unwatch_llm_spool = None
        for task in (self.supervisor_task, self.llm_retry_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.local_llm is not None:
            if self.local_llm_task is not None:
                with contextlib.suppress(Exception):
                    await self.local_llm_task  # a start under way is finished, then stopped
            await asyncio.to_thread(self.local_llm.stop)
        if self._retry_extractor is not None:
            await self._retry_extractor[1].aclose()
            self._retry_extractor = None
        await self.writer.close()
        await self.redis.aclose()
        await self.store.close()
        self.spool.close()
        if self.journal is not None:
            self.journal.close()
        if self.embedded_redis is not None:
            await asyncio.to_thread(self.embedded_redis.stop)
        if self.embedded_postgres is not None:
            await asyncio.to_thread(self.embedded_postgres.stop)
