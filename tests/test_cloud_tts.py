"""Cloud TTS: Cartesia and ElevenLabs through their official SDKs, against loopback fakes.

Each service is run in a Pipecat pipeline (its audio checked by Whisper), then in a real call:
the bot's spoken reply comes back on the Twilio socket as media with marks. Failures (error
events, HTTP errors, stalls, dropped connections) are retried once, then Piper speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.tts_service import TTSService
from pipecat.tests.utils import run_test
from pipecat.workers.runner import WorkerRunner
from pydantic import SecretStr

import bot.call as call_module
import processors.cloud_tts as cloud_tts
from bot.models import shared_whisper_model
from core.prompts import TtsKnobs
from processors.cloud_tts import CartesiaTTSService, ElevenLabsTTSService, build_cloud_tts
from processors.piper_tts import SharedPiperTTSService
from server.audio import to_twilio_ulaw
from server.local_server import serve_in_process
from server.runtime import Runtime
from server.simulate import request_twiml, wait_completed
from server.simulator import StreamResult, simulate_stream, stream_url_from_twiml
from tests.conftest import TEST_AUTH_TOKEN
from tests.fakes import cartesia_api, elevenlabs_api
from tests.fakes.cartesia_api import FakeCartesia
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.speech import wer, words, write_meeting

SENTENCE = "The demo environment is ready, and Priya will update the pricing page next week."
SECOND = "Tom owns the security review."
QUESTION = "Convene, what did we decide today?"


@pytest.fixture(scope="module")
async def cartesia_server() -> AsyncIterator[tuple[FakeCartesia, str]]:
    fake = FakeCartesia()
    async with serve_in_process(fake.app()) as url:
        yield fake, url


@pytest.fixture(scope="module")
async def elevenlabs_server() -> AsyncIterator[tuple[FakeElevenLabs, str]]:
    fake = FakeElevenLabs()
    async with serve_in_process(fake.app()) as url:
        yield fake, url


@pytest.fixture
def cartesia(cartesia_server: tuple[FakeCartesia, str]) -> Iterator[tuple[FakeCartesia, str]]:
    cartesia_server[0].reset()
    yield cartesia_server
    cartesia_server[0].reset()


@pytest.fixture
def elevenlabs(
    elevenlabs_server: tuple[FakeElevenLabs, str],
) -> Iterator[tuple[FakeElevenLabs, str]]:
    elevenlabs_server[0].reset()
    yield elevenlabs_server
    elevenlabs_server[0].reset()


def _transcribe(runtime: Runtime, pcm16: bytes, rate: int) -> str:
    import soxr

    audio = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768.0
    model = shared_whisper_model(runtime.whisper_model_name, device="cpu", compute_type="int8")
    segments, _ = model.transcribe(soxr.resample(audio, rate, 16000), language="en")
    return " ".join(s.text for s in segments)


def _audio(frames: Sequence[Frame]) -> list[TTSAudioRawFrame]:
    return [f for f in frames if isinstance(f, TTSAudioRawFrame)]


async def _speak(service: TTSService, *frames: Frame) -> tuple[Sequence[Frame], Sequence[Frame]]:
    return await run_test(
        service,
        frames_to_send=list(frames),
        pipeline_params=PipelineParams(audio_out_sample_rate=8000),
        start_timeout=10.0,
    )


def _cartesia(
    url: str, fake: FakeCartesia, *, api_key: str | None = None, **knobs: Any
) -> CartesiaTTSService:
    service = build_cloud_tts(
        knobs=TtsKnobs(provider="cartesia", **knobs),
        api_key=api_key or fake.api_key,
        base_url=url,
        fallback=SharedPiperTTSService(),
    )
    assert isinstance(service, CartesiaTTSService)
    return service


def _elevenlabs(url: str, key: str, *, fallback: bool = True, **knobs: Any) -> ElevenLabsTTSService:
    service = build_cloud_tts(
        knobs=TtsKnobs(provider="elevenlabs", **knobs),
        api_key=key,
        base_url=url,
        fallback=SharedPiperTTSService() if fallback else None,
    )
    assert isinstance(service, ElevenLabsTTSService)
    return service


# The services through their SDKs, in a pipeline.


async def test_cartesia_streams_speech_over_its_websocket(
    cartesia: tuple[FakeCartesia, str], runtime: Runtime
) -> None:
    fake, url = cartesia
    service = _cartesia(url, fake)
    down, _ = await _speak(service, TTSSpeakFrame(SENTENCE), TTSSpeakFrame(SECOND))
    audio = _audio(down)
    # Streamed chunk by chunk (40 ms each from the fake), at the call's 8 kHz.
    assert len(audio) > 20 and {f.sample_rate for f in audio} == {8000}
    kinds = [type(f) for f in down if isinstance(f, TTSStartedFrame | TTSStoppedFrame)]
    assert kinds == [TTSStartedFrame, TTSStoppedFrame] * 2
    # The SDK's wire protocol: one socket, a context per sentence, as the real API takes it.
    [handshake] = fake.handshakes
    assert handshake.accepted and handshake.auth == "bearer"
    assert handshake.version and handshake.version[:2] == "20"
    assert fake.transcripts() == [SENTENCE, SECOND]
    first = fake.requests[0].body
    assert first["model_id"] == "sonic-2" and first["voice"] == TtsKnobs().cartesia.voice_id
    assert first["output_format"] == {
        "container": "raw",
        "encoding": "pcm_s16le",
        "sample_rate": 8000,
    }
    assert first["language"] == "en" and first["continue"] is False
    assert len({r.body["context_id"] for r in fake.requests}) == 2
    assert service.failovers == 0 and service.retries == 0 and service.fallback_sentences == 0
    pcm = b"".join(f.audio for f in audio)
    heard = await asyncio.to_thread(_transcribe, runtime, pcm, 8000)
    assert wer(f"{SENTENCE} {SECOND}", heard) <= 0.25, heard


async def test_elevenlabs_streams_speech_from_its_stream_endpoint(
    elevenlabs: tuple[FakeElevenLabs, str], runtime: Runtime
) -> None:
    fake, url = elevenlabs
    service = _elevenlabs(url, fake.api_key)
    down, _ = await _speak(service, TTSSpeakFrame(SENTENCE))
    audio = _audio(down)
    assert len(audio) > 10 and {f.sample_rate for f in audio} == {8000}
    [request] = fake.requests
    assert request.voice_id == TtsKnobs().elevenlabs.voice_id
    assert request.query["output_format"] == "pcm_8000"
    assert request.body["text"] == SENTENCE
    assert request.body["model_id"] == "eleven_flash_v2_5"
    assert request.body["language_code"] == "en"
    assert request.user_agent and request.user_agent.startswith("elevenlabs/")
    assert fake.completed == 1 and service.failovers == 0
    heard = await asyncio.to_thread(_transcribe, runtime, b"".join(f.audio for f in audio), 8000)
    assert wer(SENTENCE, heard) <= 0.25, heard


async def test_cartesia_resamples_when_the_pipeline_rate_is_not_offered(
    cartesia: tuple[FakeCartesia, str],
) -> None:
    fake, url = cartesia
    service = _cartesia(url, fake)
    down, _ = await run_test(
        service,
        frames_to_send=[TTSSpeakFrame(SECOND)],
        pipeline_params=PipelineParams(audio_out_sample_rate=11025),
        start_timeout=10.0,
    )
    assert fake.requests[0].body["output_format"]["sample_rate"] == 16000
    audio = _audio(down)
    assert audio and {f.sample_rate for f in audio} == {11025}


# Retry, then failover.


async def test_cartesia_error_events_fail_over_to_piper_for_the_rest_of_the_call(
    cartesia: tuple[FakeCartesia, str], runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = cartesia
    fake.push(cartesia_api.Fail(), cartesia_api.Fail(status_code=503, title="Overloaded"))
    service = _cartesia(url, fake)
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    down, _ = await _speak(service, TTSSpeakFrame(SENTENCE), TTSSpeakFrame(SECOND))
    # Tried twice; then Piper spoke this sentence and the next, which Cartesia never saw.
    assert fake.transcripts() == [SENTENCE, SENTENCE]
    assert service.retries == 1 and service.failovers == 1 and service.failed_over
    assert service.fallback_sentences == 2
    kinds = [type(f) for f in down if isinstance(f, TTSStartedFrame | TTSStoppedFrame)]
    assert kinds == [TTSStartedFrame, TTSStoppedFrame] * 2
    heard = await asyncio.to_thread(
        _transcribe, runtime, b"".join(f.audio for f in _audio(down)), 8000
    )
    assert wer(f"{SENTENCE} {SECOND}", heard) <= 0.25, heard
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying" in m and "Internal Server Error" in m for m in messages), messages
    assert any("failover 1" in m and "Overloaded" in m for m in messages), messages
    assert not any(fake.api_key in m for m in messages)


async def test_cartesia_dropped_socket_is_retried_on_a_new_connection(
    cartesia: tuple[FakeCartesia, str],
) -> None:
    fake, url = cartesia
    fake.push(cartesia_api.Disconnect(after_chunks=3))
    service = _cartesia(url, fake)
    down, _ = await _speak(service, TTSSpeakFrame(SECOND))
    # The sentence restarted on a second socket and was spoken by Cartesia, not Piper.
    assert fake.transcripts() == [SECOND, SECOND]
    assert [r.connection for r in fake.requests] == [1, 2]
    assert service.connections == 2 and service.retries == 1 and service.failovers == 0
    assert _audio(down)


async def test_cartesia_refused_handshakes_fail_over(
    cartesia: tuple[FakeCartesia, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = cartesia
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    service = _cartesia(url, fake, api_key="sk_car_wrong_key_123456")
    down, _ = await _speak(service, TTSSpeakFrame(SECOND))
    assert [h.accepted for h in fake.handshakes] == [False, False]
    assert service.failovers == 1 and _audio(down)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "401" in messages and "sk_car_wrong_key_123456" not in messages


async def test_elevenlabs_stall_past_the_timeout_fails_over(
    elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, url = elevenlabs
    fake.default = elevenlabs_api.Speak(delay_secs=5.0)
    service = _elevenlabs(url, fake.api_key, timeout_secs=0.4)
    down, _ = await _speak(service, TTSSpeakFrame(SECOND))
    # Two 0.4 s timeouts, then Piper: the fake would have answered after 5 s, so had the
    # service waited it out there would be no retry and no failover.
    assert fake.texts() == [SECOND, SECOND]
    assert service.retries == 1 and service.failovers == 1 and _audio(down)
    # Each timed-out request was abandoned: the fake saw the client go away.
    async with asyncio.timeout(30):
        await fake.wait_until(lambda: fake.disconnected == 2)


async def test_elevenlabs_http_error_then_success_needs_no_failover(
    elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, url = elevenlabs
    fake.push(elevenlabs_api.HttpError(429, "too_many_concurrent_requests", "Too many"))
    service = _elevenlabs(url, fake.api_key)
    down, _ = await _speak(service, TTSSpeakFrame(SECOND))
    assert fake.texts() == [SECOND, SECOND] and fake.completed == 1
    assert service.retries == 1 and service.failovers == 0 and _audio(down)


async def test_elevenlabs_dropped_stream_without_fallback_reports_an_error(
    elevenlabs: tuple[FakeElevenLabs, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = elevenlabs
    fake.default = elevenlabs_api.Disconnect(after_bytes=3200)
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    service = _elevenlabs(url, fake.api_key, fallback=False)
    down, up = await _speak(service, TTSSpeakFrame(SECOND))
    assert len(fake.requests) == 2 and service.failovers == 0 and not service.failed_over
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    assert any("elevenlabs TTS failed" in e.error for e in errors), errors
    assert any("no fallback" in r.getMessage() for r in caplog.records)


# Barge-in: an interruption cancels the sentence in flight.


class _CutOnFirstAudio(FrameProcessor):
    """Interrupts the bot as soon as its first audio comes out: a barge-in that waits on the
    event, not on a guess of how long synthesis takes on this CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.cut = asyncio.Event()
        self.audio: list[TTSAudioRawFrame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.audio.append(frame)
            if not self.cut.is_set():
                self.cut.set()
                await self.broadcast_interruption()  # type: ignore[no-untyped-call]


async def _speak_and_cut(service: TTSService, settled: Awaitable[None]) -> float:
    """Speak SENTENCE, barge in on its first audio, wait until the provider saw the cut
    (`settled`); returns the seconds of audio that came out."""
    cutter = _CutOnFirstAudio()
    worker = PipelineWorker(
        Pipeline([service, cutter]),
        cancel_on_idle_timeout=False,
        params=PipelineParams(audio_out_sample_rate=8000),
    )
    runner = WorkerRunner()
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    await worker.queue_frame(TTSSpeakFrame(SENTENCE))
    async with asyncio.timeout(60):
        await cutter.cut.wait()
        await settled
    await worker.queue_frame(EndFrame())
    await running
    return sum(len(f.audio) for f in cutter.audio) / 2 / 8000


async def test_interruption_cancels_the_cartesia_context(
    cartesia: tuple[FakeCartesia, str],
) -> None:
    fake, url = cartesia
    fake.default = cartesia_api.Speak(chunk_delay_secs=0.05)
    service = _cartesia(url, fake)
    played = await _speak_and_cut(service, fake.wait_until(lambda: bool(fake.cancels)))
    context_id = fake.requests[0].body["context_id"]
    assert fake.cancels == [context_id]
    # Cut short: far less than the sentence's ~5 s of audio came out, and nothing failed.
    assert 0 < played < 2.0, played
    assert service.retries == 0 and service.failovers == 0


async def test_interruption_closes_the_elevenlabs_stream(
    elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, url = elevenlabs
    fake.default = elevenlabs_api.Speak(chunk_delay_secs=0.05)
    service = _elevenlabs(url, fake.api_key)
    played = await _speak_and_cut(service, fake.wait_until(lambda: fake.disconnected > 0))
    assert fake.completed == 0 and fake.disconnected == 1
    assert 0 < played < 2.0, played
    assert service.retries == 0 and service.failovers == 0


# A real call: the spoken reply comes back on the Twilio socket.


@dataclass
class _Call:
    result: StreamResult
    reply: dict[str, Any]


@contextlib.contextmanager
def _cloud_provider(
    runtime: Runtime, series: str, tts: dict[str, Any], **settings: Any
) -> Iterator[list[TTSService]]:
    """Calls of `series` speak with the `tts` knobs and these settings; yields the services."""
    saved_prompts, saved_settings = runtime.prompts, runtime.settings
    pipeline = saved_prompts.pipeline.model_copy(
        update={"series": {**saved_prompts.pipeline.series, series: {"tts": tts}}}
    )
    runtime.prompts = saved_prompts.model_copy(update={"pipeline": pipeline})
    runtime.settings = saved_settings.updated(**settings)
    built: list[TTSService] = []
    original = call_module.build_cloud_tts

    def spy(**kwargs: Any) -> TTSService:
        service = original(**kwargs)
        built.append(service)
        return service

    call_module.build_cloud_tts = spy  # where the call's pipeline looks it up
    try:
        yield built
    finally:
        call_module.build_cloud_tts = original
        runtime.prompts, runtime.settings = saved_prompts, saved_settings


async def _ask(base_url: str, runtime: Runtime, tmp_path: Path, series: str) -> _Call:
    """One call of `series` where someone asks the bot what was decided (nothing yet)."""
    question = write_meeting(tmp_path / f"{series}.wav", [QUESTION], pause_secs=0.3)
    # A second of room tone first, as on a real bridge before anyone speaks.
    ulaw = b"\xff" * 8000 + await asyncio.to_thread(to_twilio_ulaw, question)
    async with httpx.AsyncClient(timeout=30) as http:
        twiml = await request_twiml(
            http,
            base_url,
            series=series,
            meeting_date=dt.date(2026, 11, 24),
            auth_token=TEST_AUTH_TOKEN,
            call_sid=(call_sid := "CA" + uuid.uuid4().hex),
        )
        stream_url, params = stream_url_from_twiml(twiml)
        # The caller stays on the line until the answer has played (then hangs up).
        result = await simulate_stream(
            stream_url,
            ulaw,
            custom_parameters=params,
            call_sid=call_sid,
            speed=0,
            hold_secs=1.0,
            hold_for_answer=True,
        )
        call = await wait_completed(http, base_url, params["call_id"], 60)
    await runtime.writer.flush(10)
    replies = await runtime.store.get_replies(params["call_id"])
    assert len(replies) == 1, (replies, call["transcript"])
    return _Call(result, dict(replies[0]))


def _check_spoken_reply(runtime: Runtime, call: _Call) -> str:
    """The reply went out as media with a mark per sentence, and is the answer as speech."""
    result, reply = call.result, call.reply
    answer = str(reply["answer"])
    assert reply["intent"] == "today" and reply["t_first_audio_ms"] is not None
    assert len(words(answer)) >= 4
    assert len(result.received_media) / 8000 > 1.5
    assert result.received_marks == ["reply-0-1"]
    heard = _transcribe(runtime, result.received_pcm16(), 8000)
    assert wer(answer, heard) <= 0.25, (answer, heard)
    return answer


async def test_cartesia_speaks_the_reply_on_a_call(
    base_url: str, runtime: Runtime, cartesia: tuple[FakeCartesia, str], tmp_path: Path
) -> None:
    fake, url = cartesia
    with _cloud_provider(
        runtime,
        "tts-cartesia",
        {"provider": "cartesia"},
        cartesia_api_key=SecretStr(fake.api_key),
        cartesia_base_url=url,
    ) as built:
        call = await _ask(base_url, runtime, tmp_path, "tts-cartesia")
    answer = await asyncio.to_thread(_check_spoken_reply, runtime, call)
    assert fake.transcripts() == [answer]
    [service] = built
    assert isinstance(service, CartesiaTTSService) and service.failovers == 0


async def test_elevenlabs_speaks_the_reply_on_a_call(
    base_url: str, runtime: Runtime, elevenlabs: tuple[FakeElevenLabs, str], tmp_path: Path
) -> None:
    fake, url = elevenlabs
    with _cloud_provider(
        runtime,
        "tts-elevenlabs",
        {"provider": "elevenlabs"},
        elevenlabs_api_key=SecretStr(fake.api_key),
        elevenlabs_base_url=url,
    ) as built:
        call = await _ask(base_url, runtime, tmp_path, "tts-elevenlabs")
    answer = await asyncio.to_thread(_check_spoken_reply, runtime, call)
    assert fake.texts() == [answer] and fake.completed == 1
    [service] = built
    assert isinstance(service, ElevenLabsTTSService) and service.failovers == 0


async def test_stalled_provider_fails_over_to_piper_on_a_call(
    base_url: str,
    runtime: Runtime,
    elevenlabs: tuple[FakeElevenLabs, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = elevenlabs
    fake.default = elevenlabs_api.Speak(delay_secs=10.0)
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    with _cloud_provider(
        runtime,
        "tts-stalled",
        {"provider": "elevenlabs", "timeout_secs": 0.5},
        elevenlabs_api_key=SecretStr(fake.api_key),
        elevenlabs_base_url=url,
    ) as built:
        call = await _ask(base_url, runtime, tmp_path, "tts-stalled")
    answer = await asyncio.to_thread(_check_spoken_reply, runtime, call)
    # ElevenLabs got the sentence twice and never answered in time: Piper spoke it.
    assert fake.texts() == [answer, answer] and fake.completed == 0
    [service] = built
    assert isinstance(service, ElevenLabsTTSService)
    assert service.failovers == 1 and service.fallback_sentences == 1
    assert any("elevenlabs TTS: failover 1" in r.getMessage() for r in caplog.records)
