"""One Pipecat pipeline per call: Twilio socket -> VAD -> Whisper -> speakers -> transcript
recorder."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import EndFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.stt_service import STTService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams
from pipecat.workers.runner import WorkerRunner

from bot.tracing import worker_tracing
from bot.twilio_stream import ConveneTwilioSerializer, StreamStart, TwilioTransport
from core import clock
from core.errors import ConfigError
from core.prompts import LlmProvider, PipelineKnobs, Prompts, TurnKnobs, VadKnobs
from core.settings import Settings, reveal
from core.stt_queue import shared_queue
from domain.dates import next_meeting_date
from domain.extraction import DeterministicExtractor
from domain.llm import OPENAI_NO_KEY
from domain.llm_extraction import LLMExtractor, build_llm_extractor
from domain.llm_report import Reporter, TemplateReporter, build_llm_reporter
from domain.local_llm import LocalLlmServer
from domain.people import CallPeople, KnownVoice
from memory.models import CommitmentRecord, WriteOp
from memory.store import Store
from processors.barge_in import BargeIn
from processors.cloud_tts import build_cloud_tts
from processors.commitments import CommitmentExtractor
from processors.deepgram_stt import build_deepgram_stt
from processors.frames import CallerHungUpFrame
from processors.greeting import CallerGreeting
from processors.heard_probe import HeardProbe
from processors.memory_lookup import MemoryLookup
from processors.pause_vad import PauseAwareVADAnalyzer, PauseVADProcessor
from processors.people import KnownPeople, PersonBinder
from processors.piper_tts import SharedPiperTTSService
from processors.reply_tracker import ReplyMarks, ReplyTracker
from processors.report import ReportProcessor
from processors.speakers import SpeakerLabeler
from processors.stage_metrics import StageMetricsObserver
from processors.stt_failover import build_stt_failover
from processors.stt_timing import CallClock
from processors.transcript import TranscriptRecorder
from processors.user_turns import UserTurnMarks
from processors.wake import WakeGate, WakeMatcher
from processors.whisper_stt import RemoteWhisperSTTService, SharedWhisperSTTService

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)
DRAIN_TIMEOUT_SECS = 30.0  # a safety net: the drain ends on an event
SETTLE_SECS = 1.0
CALL_OUT_RATE = 8000  # what a Twilio call plays (mu-law 8 kHz); the TTS speaks at this rate


@dataclass(frozen=True)
class CallDeps:
    """What a call's pipeline needs from the process: shared, created once. Keys stay
    `SecretStr` in `settings` until the SDK client that needs one is built."""

    prompts: Prompts
    settings: Settings
    whisper_model: WhisperModel
    whisper_model_name: str
    submit: Callable[[WriteOp], None]
    store: Store
    # Waits (at most the given seconds) until submitted writes are in Postgres or spooled.
    flush: Callable[[float], Awaitable[object]] | None = None
    # The local model's server (extraction.backend local-llm); None when none is configured.
    local_llm: LocalLlmServer | None = None
    # stt.quick_model, loaded once per process when the knobs use it (bot/models.py).
    quick_whisper_model: WhisperModel | None = None

    def prompt_file(self, name: str) -> Path:
        """A file of the prompts folder (CONVENE_PROMPTS_DIR), e.g. `report_llm.yaml`."""
        return self.settings.convene_prompts_dir / name


@dataclass
class CallOutcome:
    call_id: str
    segments: int
    skipped_messages: int
    ended_by: str
    commitments: list[CommitmentRecord]
    # When Twilio's `stop` (or the socket's close) ended the call; None if it never came.
    stopped_at: dt.datetime | None = None
    # How the end waited for the STT: "event" (it consumed the last received audio frame),
    # "no-audio" (none was received), "timeout" (the safety net), "none" (no stop/close).
    drained_by: str = "none"


def whisper_settings(deps: CallDeps, knobs: PipelineKnobs) -> Any:
    """The local Whisper settings (also the failover's): language, name bias, thresholds."""
    agent = deps.prompts.agent
    return WhisperSTTService.Settings(
        language=knobs.stt.language,
        no_speech_prob=knobs.stt.no_speech_prob,
        initial_prompt=agent.stt_initial_prompt(),
        hotwords=agent.stt.hotwords,
    )


def build_stt(deps: CallDeps, knobs: PipelineKnobs | None = None) -> FrameProcessor:
    """The STT that prompts/pipeline.yaml names (`stt.provider`).

    A remote or cloud provider comes behind Pipecat's `ServiceSwitcher` with local Whisper as
    its failover (`stt.fallback: whisper-local`, processors/stt_failover.py); local providers,
    or `stt.fallback: none`, come alone.
    """
    knobs = knobs or deps.prompts.pipeline
    stt = knobs.stt
    settings = whisper_settings(deps, knobs)
    clock = CallClock()
    primary: STTService
    if stt.provider == "whisper-remote":
        remote_url = deps.settings.speech.whisper_remote_url
        if not remote_url:
            raise ConfigError("stt.provider: whisper-remote needs CONVENE_WHISPER_REMOTE_URL")
        primary = RemoteWhisperSTTService(
            base_url=remote_url,
            model=deps.settings.speech.whisper_remote_model,
            settings=settings,
            timeout_secs=stt.remote_timeout_secs,
            retries=stt.remote_retries,
            trailing_silence_secs=stt.trailing_silence_secs,
            clock=clock,
        )
    elif stt.provider == "deepgram":
        deepgram_key = deps.settings.speech.deepgram_api_key
        if deepgram_key is None or not deepgram_key.get_secret_value():
            raise ConfigError("stt.provider: deepgram needs DEEPGRAM_API_KEY")
        agent = deps.prompts.agent
        primary = build_deepgram_stt(
            options=stt.deepgram,
            language=stt.language,
            api_key=deepgram_key,
            base_url=deps.settings.speech.deepgram_base_url,
            # Not the aliases: they are what recognisers mishear, not words to boost.
            keyterms=[agent.name, *agent.participants, *stt.deepgram.keyterms],
            clock=clock,
        )
    elif stt.provider == "openai-whisper":
        from processors.openai_whisper_stt import OpenAIWhisperSTTService

        return OpenAIWhisperSTTService(
            options=stt.openai_whisper,
            settings=settings,
            trailing_silence_secs=stt.trailing_silence_secs,
        )
    else:
        quick = deps.quick_whisper_model if stt.quick_model != "none" else None
        if stt.quick_model != "none" and quick is None:
            raise ConfigError(f"stt.quick_model: {stt.quick_model} was not loaded")
        return SharedWhisperSTTService(
            model=deps.whisper_model,
            model_name=deps.whisper_model_name,
            settings=settings,
            trailing_silence_secs=stt.trailing_silence_secs,
            quick_model=quick,
            quick_max_secs=stt.quick_max_secs,
            ttfs_p99_latency=1.0,
            queue=shared_queue(workers=stt.workers, max_queue=stt.max_queue),
            short_secs=stt.short_secs,
        )
    if stt.fallback == "none":
        primary.add_event_handler("on_usable_changed", _untranscribed_from_now)
        return primary
    local = SharedWhisperSTTService(
        model=deps.whisper_model,
        model_name=deps.whisper_model_name,
        settings=settings,
        trailing_silence_secs=stt.trailing_silence_secs,
        ttfs_p99_latency=1.0,
        clock=clock,
        queue=shared_queue(workers=stt.workers, max_queue=stt.max_queue),
        short_secs=stt.short_secs,
    )
    return build_stt_failover(primary, local, clock, provider=stt.provider)


async def _untranscribed_from_now(service: FrameProcessor, usable: bool) -> None:
    if not usable:
        log.error(
            "stt: %s can no longer transcribe and stt.fallback is none: the rest of the call "
            "is not transcribed",
            service.name,
        )


def build_tts(deps: CallDeps, knobs: PipelineKnobs | None = None) -> FrameProcessor:
    """The voice prompts/pipeline.yaml names (`tts.provider`): Piper, or a cloud service with
    Piper as the fallback (`ServiceSwitcher`, see processors/cloud_tts.py)."""
    tts = (knobs or deps.prompts.pipeline).tts
    piper = SharedPiperTTSService(model_path=tts.voice_model, length_scale=tts.length_scale)
    if tts.provider == "piper":
        return piper

    settings = deps.settings
    keys = {
        "cartesia": (
            settings.speech.cartesia_api_key,
            settings.speech.cartesia_base_url,
            "CARTESIA_API_KEY",
        ),
        "elevenlabs": (
            settings.speech.elevenlabs_api_key,
            settings.speech.elevenlabs_base_url,
            "ELEVENLABS_API_KEY",
        ),
    }
    secret, base_url, env = keys[tts.provider]
    if secret is None or not reveal(secret):
        raise ConfigError(f"tts.provider: {tts.provider} needs {env}")
    return build_cloud_tts(
        knobs=tts,
        api_key=secret,
        base_url=base_url,
        sample_rate=CALL_OUT_RATE,
        fallback=piper if tts.fallback == "piper" else None,
    )


def llm_access(deps: CallDeps, provider: LlmProvider) -> tuple[str | None, str | None]:
    """(api key, base URL) for an LLM provider, from the process settings."""
    settings = deps.settings
    if provider == "anthropic":
        return reveal(settings.llm.anthropic_api_key), settings.llm.anthropic_base_url
    return reveal(settings.llm.openai_api_key), settings.llm.openai_base_url


def build_extractor(
    deps: CallDeps, *, call_id: str, series: str | None, knobs: PipelineKnobs | None = None
) -> DeterministicExtractor | LLMExtractor:
    """The extractor prompts/pipeline.yaml names (one per call: it keeps the call's window)."""
    knobs = knobs or deps.prompts.pipeline
    agent = deps.prompts.agent
    names = tuple(n.lower() for n in (agent.name, *agent.aliases))
    deterministic = DeterministicExtractor(window=knobs.extraction.window, bot_names=names)
    if knobs.extraction.backend == "local-llm":
        if deps.local_llm is None:
            log.warning("extraction.backend is local-llm but no local model runs: rules only")
            return deterministic
        return build_llm_extractor(
            prompt_path=deps.prompt_file("extraction.yaml"),
            spool_path=deps.settings.llm_spool_path,
            fallback=deterministic,
            api_key=OPENAI_NO_KEY,
            base_url=deps.local_llm.base_url,
            context={"call_id": call_id, "series": series or ""},
            provider="openai-compatible",
            model=deps.local_llm.alias,
            timeout_secs=knobs.local_llm.timeout_secs,
            temperature=knobs.local_llm.temperature,
            gate=knobs.extraction.gate,
            rules_too=knobs.extraction.rules_too,
            max_backlog=knobs.extraction.max_backlog,
        )
    provider = knobs.llm_for(knobs.extraction.backend)
    if provider is None:
        return deterministic
    api_key, base_url = llm_access(deps, provider)
    return build_llm_extractor(
        prompt_path=deps.prompt_file("extraction.yaml"),
        spool_path=deps.settings.llm_spool_path,
        fallback=deterministic,
        api_key=api_key,
        base_url=base_url,
        context={"call_id": call_id, "series": series or ""},
        provider=provider,
        model=knobs.llm.model,
        gate=knobs.extraction.gate,
        rules_too=knobs.extraction.rules_too,
        max_backlog=knobs.extraction.max_backlog,
    )


def build_turn_analyzer(knobs: TurnKnobs) -> BaseTurnAnalyzer | None:
    """Blocking (loads an ONNX model): the turn analyzer `turn.analyzer` names, or None.

    Smart Turn v3 is the ONNX model inside the pipecat-ai wheel (numpy features, onnxruntime:
    no torch); one per call, since an analyzer holds its turn's audio."""
    if knobs.analyzer == "smart-turn-v3":
        return LocalSmartTurnAnalyzerV3()
    return None


def first_person_reader(deps: CallDeps) -> Callable[[str, dt.date], set[str]]:
    """What a text commits its own speaker to, read by the rules alone (no call state)."""
    agent = deps.prompts.agent
    names = tuple(n.lower() for n in (agent.name, *agent.aliases))
    probe = DeterministicExtractor(window=1, bot_names=names)

    def read(text: str, meeting_date: dt.date) -> set[str]:
        return probe.speakers_own(text, meeting_date=meeting_date)

    return read


def build_vad(
    knobs: VadKnobs, *, pauses: bool = True, turn_analyzer: BaseTurnAnalyzer | None = None
) -> VADProcessor:
    """Silero VAD with the thresholds from prompts/pipeline.yaml.

    With `pauses`, it also announces mid-turn pauses (`vad.pause_secs`) for speculative STT,
    and has `turn_analyzer` (if any) judge at each whether the turn sounds complete.
    """
    params = VADParams(
        confidence=knobs.confidence,
        start_secs=knobs.start_secs,
        stop_secs=knobs.stop_secs,
        min_volume=knobs.min_volume,
    )
    if pauses and knobs.pause_secs > 0:
        return PauseVADProcessor(
            vad_analyzer=PauseAwareVADAnalyzer(params=params),
            pause_secs=knobs.pause_secs,
            turn_analyzer=turn_analyzer,
        )
    return VADProcessor(vad_analyzer=SileroVADAnalyzer(params=params))


def build_speakers(
    deps: CallDeps, knobs: PipelineKnobs, *, call_id: str, series: str | None
) -> list[FrameProcessor]:
    """Voices into speaker labels (`speakers.enabled`), labels into people (`speakers.people`)."""
    spk = knobs.speakers
    if not spk.enabled:
        return []
    labeler = SpeakerLabeler(knobs=spk, call_id=call_id, submit=deps.submit)
    if not spk.people:
        return [labeler]
    agent = deps.prompts.agent
    people = deps.store.people

    async def known() -> KnownPeople:
        voices = await people.voiceprints(series) if series else []
        caller = await people.caller(call_id)
        return KnownPeople(
            voices=[KnownVoice(name, voice) for name, voice in voices],
            names=await people.names(series) if series else [],
            caller=caller[0] if caller else None,
            number=await people.inbound_number(call_id),
        )

    binder = PersonBinder(
        people=CallPeople(
            min_confidence=spk.min_confidence,
            voiceprint_threshold=spk.voiceprint_threshold,
            voiceprint_margin=spk.voiceprint_margin,
            not_names=(agent.name, *agent.aliases),
            known_names=tuple(agent.participants),
        ),
        speakers=labeler.speakers,
        call_id=call_id,
        submit=deps.submit,
        known=known,
        learn=spk.learn_voiceprints and series is not None,
        learn_min_secs=spk.learn_min_secs,
    )
    return [labeler, binder]


def build_reporter(deps: CallDeps, knobs: PipelineKnobs | None = None) -> Reporter:
    """The reporter prompts/pipeline.yaml names (`report.backend`)."""
    knobs = knobs or deps.prompts.pipeline
    provider = knobs.llm_for(knobs.report.backend)
    if provider is None:
        return TemplateReporter(deps.prompts.report)
    agent = deps.prompts.agent
    api_key, base_url = llm_access(deps, provider)
    return build_llm_reporter(
        prompt_path=deps.prompt_file("report_llm.yaml"),
        templates=deps.prompts.report,
        api_key=api_key,
        base_url=base_url,
        bot_names=[agent.name, *agent.aliases],
        provider=provider,
        model=knobs.llm.model,
    )


async def run_call(
    websocket: WebSocket,
    start: StreamStart,
    *,
    call_id: str,
    meeting_date: dt.date,
    deps: CallDeps,
    series: str | None = None,
) -> CallOutcome:
    """Run the call's pipeline until Twilio says `stop`, the socket goes away or the call has
    been silent for `call.idle_timeout_secs` (ended_by 'idle-timeout'). `series` and
    `meeting_date` are the call record's, never what the stream's `start` says."""
    knobs = deps.prompts.pipeline.for_series(series)
    ended_by = "disconnect"
    stopped_at: dt.datetime | None = None
    drained_by = "none"
    worker: PipelineWorker | None = None
    probe = HeardProbe()

    async def end_call(reason: str = "stop") -> None:
        nonlocal ended_by, stopped_at, drained_by
        if stopped_at is not None:
            return
        ended_by = reason
        stopped_at = clock.now()
        if worker is None:
            return
        # The caller is gone: a reply being spoken is cut (and recorded as such).
        await worker.queue_frame(CallerHungUpFrame(reason=reason))
        # `stop` can arrive while received audio is still queued in the transport (a fast
        # sender, a loaded machine): end once the STT has consumed the last frame received,
        # so it hears all of it. The timeout is a safety net only (a wedged pipeline).
        last = serializer.last_audio_frame_id
        if last is not None:
            try:
                async with asyncio.timeout(DRAIN_TIMEOUT_SECS):
                    await probe.wait_for(last)
                drained_by = "event"
            except TimeoutError:
                drained_by = "timeout"
                log.error(
                    "call %s: STT had not consumed the last received audio after %.0f s;"
                    " ending anyway",
                    call_id,
                    DRAIN_TIMEOUT_SECS,
                )
        else:
            drained_by = "no-audio"
        log.info("call %s: %s; drained (%s), ending the pipeline", call_id, reason, drained_by)
        await worker.queue_frame(EndFrame())

    stt = build_stt(deps, knobs)
    twilio_sid, twilio_token = deps.settings.twilio.account_sid, deps.settings.twilio.auth_token
    hang_up = bool(twilio_sid and twilio_token and start.call_sid)
    serializer = ConveneTwilioSerializer(
        stream_sid=start.stream_sid,
        max_message_bytes=knobs.call.max_message_bytes,
        on_stop=end_call,
        call_sid=start.call_sid,
        account_sid=twilio_sid if hang_up else None,
        auth_token=reveal(twilio_token) if hang_up else None,
        # Never clear the 8->16 kHz resampler's history between chunks: phone audio arrives
        # with irregular gaps, and clearing drops the samples it holds (Pipecat's advice for
        # telephony).
        params=TwilioFrameSerializer.InputParams(
            auto_hang_up=False, resampler_clear_after_secs=None
        ),
    )

    async def on_client_disconnected() -> None:
        # A hang-up without `stop`: end gracefully so queued speech is still transcribed.
        if not serializer.stopped:
            await end_call("disconnect")

    transport = TwilioTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            # The pipeline ends when the caller has gone: no closing silence for nobody.
            audio_out_end_silence_secs=0,
            serializer=serializer,
        ),
        clock=serializer.clock,
        # Reply audio goes out this far ahead of real time: Twilio's buffer absorbs jitter.
        lead_secs=knobs.call.audio_lead_secs,
        on_client_disconnected=on_client_disconnected,
    )
    # Off the event loop: loading the model takes ~0.1 s, other calls go on meanwhile.
    turn_analyzer = await asyncio.to_thread(build_turn_analyzer, knobs.turn)
    judged = turn_analyzer is not None and knobs.vad.pause_secs > 0
    vad = build_vad(knobs.vad, turn_analyzer=turn_analyzer)
    segments = 0

    def counted(record: object) -> None:
        nonlocal segments
        segments += 1

    recorder = TranscriptRecorder(call_id=call_id, submit=deps.submit, on_segment=counted)
    extractor = build_extractor(deps, call_id=call_id, series=series, knobs=knobs)

    async def next_meeting() -> dt.date | None:
        cadence = knobs.extraction.cadence_days
        previous = None
        if cadence is None and series:
            previous = await deps.store.previous_meeting(series, before=meeting_date)
        return next_meeting_date(meeting_date, previous=previous, cadence_days=cadence)

    commitments = CommitmentExtractor(
        call_id=call_id,
        series=series,
        meeting_date=meeting_date,
        extractor=extractor,
        submit=deps.submit,
        next_meeting=next_meeting,
        first_person=first_person_reader(deps) if knobs.speakers.people else None,
    )
    written = 0

    async def settle_memory() -> None:
        # Bounded: a slow extractor or a Postgres outage delays an answer, never blocks it.
        nonlocal written
        await commitments.settled(SETTLE_SECS)
        if deps.flush is not None and len(commitments.found) > written:
            written = len(commitments.found)
            with contextlib.suppress(TimeoutError):
                await deps.flush(SETTLE_SECS)

    agent = deps.prompts.agent
    reporter = build_reporter(deps, knobs)
    tts_knobs = knobs.tts

    async def known_caller() -> str | None:
        caller = await deps.store.people.caller(call_id)
        return caller[0] if caller else None

    tracker = ReplyTracker(call_id=call_id, submit=deps.submit, clock=serializer.clock)
    pipeline = Pipeline(
        [
            transport.input(),
            vad,
            BargeIn(clock=serializer.clock),
            stt,
            probe,
            # Before the recorder: the segment is stored with its speaker label and person,
            # and before the extractor: a first-person promise gets its owner.
            *build_speakers(deps, knobs, call_id=call_id, series=series),
            recorder,
            commitments,
            WakeGate(
                WakeMatcher(agent.name, agent.aliases),
                follow_up_secs=knobs.wake.follow_up_secs,
                answer_early=knobs.wake.answer_early,
                judged=judged,
            ),
            # A known inbound caller hears their own open items first.
            *([CallerGreeting(caller=known_caller)] if series else []),
            MemoryLookup(
                store=deps.store,
                series=series,
                meeting_date=meeting_date,
                call_id=call_id,
                settle=settle_memory,
            ),
            ReportProcessor(
                reporter,
                max_sentence_chars=tts_knobs.max_sentence_chars,
                first_chunk_chars=tts_knobs.first_chunk_chars,
            ),
            build_tts(deps, knobs),
            ReplyMarks(stream_sid=start.stream_sid),
            transport.output(),
            # After the output: it sees only the audio really sent on the socket.
            tracker,
            # CONVENE_TRACING: the caller's turns marked for Pipecat's turn tracking, last.
            *([UserTurnMarks()] if deps.settings.tracing else []),
        ]
    )
    idle = knobs.call.idle_timeout_secs
    metrics = StageMetricsObserver(call_id)
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=knobs.call.pipeline_sample_rate,
            audio_out_sample_rate=CALL_OUT_RATE,
            enable_metrics=True,
        ),
        observers=[metrics],
        idle_timeout_secs=idle if idle > 0 else None,
        # A silent call ends gracefully (below), so what it heard is still transcribed.
        cancel_on_idle_timeout=False,
        enable_rtvi=False,
        # CONVENE_TRACING: Pipecat's OpenTelemetry spans, one trace per turn (bot/tracing.py).
        **worker_tracing(deps.settings, call_id=call_id, series=series),
        name=f"call-{call_id}",
    )

    @worker.event_handler("on_idle_timeout")  # type: ignore[misc, untyped-decorator]
    async def _on_idle(_worker: object) -> None:
        log.warning("call %s: nobody spoke for %.0f s; ending the call", call_id, idle)
        await end_call("idle-timeout")

    runner = WorkerRunner(handle_sigint=False)
    log.info("call %s: pipeline started (stream %s)", call_id, start.stream_sid)
    await runner.add_workers(worker)
    try:
        await runner.run()
    finally:
        if isinstance(extractor, LLMExtractor):
            await extractor.aclose()
        await reporter.aclose()
        metrics.log_summary()
        serializer.bad_messages.log_summary()
    log.info("call %s: pipeline finished by %s, %d segments", call_id, ended_by, segments)
    return CallOutcome(
        call_id=call_id,
        segments=segments,
        skipped_messages=serializer.skipped,
        ended_by=ended_by,
        commitments=list(commitments.found),
        stopped_at=stopped_at,
        drained_by=drained_by,
    )
