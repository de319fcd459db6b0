"""Cloud TTS: Pipecat's Cartesia and ElevenLabs websocket services against loopback fakes of
their real wire protocols, failing over to Piper through Pipecat's `ServiceSwitcher`.

Each voice is run in a Pipecat pipeline (its audio checked by Whisper), then in a real call:
the bot's spoken reply comes back on the Twilio socket as media with marks. A provider that
errors, drops its socket, refuses the handshake or goes silent hands the call to Piper, which
says again every sentence the provider had not finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
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
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.cartesia.tts import CartesiaTTSService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.workers.runner import WorkerRunner
from pydantic import SecretStr

import bot.call as call_module
import processors.cloud_tts as cloud_tts
from bot.models import shared_whisper_model
from core.prompts import TtsKnobs
from processors.cloud_tts import CloudTTS, build_cloud_tts
from processors.piper_tts import SharedPiperTTSService
from server.audio import to_twilio_ulaw
from server.local_server import serve_in_process
from server.runtime import Runtime
from server.simulate import request_twiml, wait_completed
from server.simulator import StreamResult, simulate_stream, stream_url_from_twiml
from tests.conftest import API_HEADERS, TEST_AUTH_TOKEN
from tests.fakes import cartesia_api, elevenlabs_api
from tests.fakes.cartesia_api import FakeCartesia
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.speech import wer, words, write_meeting

SENTENCE = "The demo environment is ready, and Priya will update the pricing page next week."
SECOND = "Tom owns the security review."
QUESTION = "Convene, what did we decide today?"
RATE = 8000


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


def _voice(
    provider: str, url: str, key: str, *, fallback: bool = True, **knobs: Any
) -> FrameProcessor:
    return build_cloud_tts(
        knobs=TtsKnobs(provider=provider, **knobs),  # type: ignore[arg-type]
        api_key=SecretStr(key),
        base_url=url,
        sample_rate=RATE,
        fallback=SharedPiperTTSService() if fallback else None,
    )


def _cloud(provider: str, url: str, key: str, **knobs: Any) -> CloudTTS:
    voice = _voice(provider, url, key, **knobs)
    assert isinstance(voice, CloudTTS)
    return voice


class _Collect(FrameProcessor):
    """The end of the test pipeline: keeps what comes out, wakes the test on each frame."""

    def __init__(self) -> None:
        super().__init__()
        self.down: list[Frame] = []
        self.up: list[Frame] = []
        self.changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        (self.down if direction == FrameDirection.DOWNSTREAM else self.up).append(frame)
        self.changed.set()
        await self.push_frame(frame, direction)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    def stops(self) -> int:
        return sum(isinstance(f, TTSStoppedFrame) for f in self.down)


class _Upstream(FrameProcessor):
    """The head of the test pipeline: keeps the frames that come back upstream (errors)."""

    def __init__(self, sink: _Collect) -> None:
        super().__init__()
        self._sink = sink

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.UPSTREAM:
            self._sink.up.append(frame)
            self._sink.changed.set()
        await self.push_frame(frame, direction)


@dataclass
class _Run:
    down: list[Frame]
    up: list[Frame]
    audio: list[TTSAudioRawFrame] = field(default_factory=list)

    def pcm(self) -> bytes:
        return b"".join(f.audio for f in self.audio)


async def _speak(
    voice: FrameProcessor, *texts: str, until: Callable[[_Collect], bool] | None = None
) -> _Run:
    """Speak `texts` through `voice`; end once each has its TTSStoppedFrame (or `until`)."""
    sink = _Collect()
    worker = PipelineWorker(
        Pipeline([_Upstream(sink), voice, sink]),
        cancel_on_idle_timeout=False,
        params=PipelineParams(audio_out_sample_rate=RATE),
    )
    runner = WorkerRunner()
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    for text in texts:
        await worker.queue_frame(TTSSpeakFrame(text))
    done = until or (lambda s: s.stops() >= len(texts))
    try:
        async with asyncio.timeout(90):  # a safety net: the wait ends on an event
            await sink.wait_until(lambda: done(sink))
    except BaseException:
        await runner.cancel()
        await running
        raise
    await worker.queue_frame(EndFrame())
    await running
    audio = [f for f in sink.down if isinstance(f, TTSAudioRawFrame)]
    return _Run(sink.down, sink.up, audio)


def _heard(runtime: Runtime, run: _Run) -> str:
    return _transcribe(runtime, run.pcm(), RATE)


# The services, in a pipeline.


async def test_cartesia_streams_speech_over_its_websocket(
    cartesia: tuple[FakeCartesia, str], runtime: Runtime
) -> None:
    fake, url = cartesia
    voice = _cloud("cartesia", url, fake.api_key)
    assert isinstance(voice.cloud, CartesiaTTSService)
    run = await _speak(voice, SENTENCE, SECOND)
    # Streamed chunk by chunk (40 ms each from the fake), at the call's 8 kHz.
    assert len(run.audio) > 20 and {f.sample_rate for f in run.audio} == {RATE}
    assert sum(isinstance(f, TTSStoppedFrame) for f in run.down) == 2
    # Pipecat's wire protocol: one socket, a context per sentence, as the real API takes it.
    [handshake] = fake.handshakes
    assert handshake.accepted and handshake.auth == "x-api-key"
    assert handshake.version and handshake.version[:2] == "20"
    assert fake.transcripts() == [SENTENCE, SECOND]
    first = fake.requests[0].body
    assert first["model_id"] == "sonic-2"
    assert first["voice"] == {"mode": "id", "id": TtsKnobs().cartesia.voice_id}
    assert first["output_format"] == {
        "container": "raw",
        "encoding": "pcm_s16le",
        "sample_rate": RATE,
    }
    assert first["language"] == "en" and first["add_timestamps"] is True
    spoken = [r.body for r in fake.requests if r.body["transcript"].strip()]
    assert len({b["context_id"] for b in spoken}) == 2
    # Each context was closed with an empty `continue: false`, and answered with `done`.
    closing = [r.body for r in fake.requests if not r.body["transcript"].strip()]
    assert {b["context_id"] for b in closing} == {b["context_id"] for b in spoken}
    assert all(b["continue"] is False for b in closing)
    assert voice.watch.failovers == 0 and voice.watch.fallback_sentences == 0
    heard = await asyncio.to_thread(_heard, runtime, run)
    assert wer(f"{SENTENCE} {SECOND}", heard) <= 0.25, heard


async def test_elevenlabs_streams_speech_over_its_multi_stream_socket(
    elevenlabs: tuple[FakeElevenLabs, str], runtime: Runtime
) -> None:
    fake, url = elevenlabs
    voice = _cloud("elevenlabs", url, fake.api_key)
    assert isinstance(voice.cloud, ElevenLabsTTSService)
    run = await _speak(voice, SENTENCE, SECOND)
    assert len(run.audio) > 10 and {f.sample_rate for f in run.audio} == {RATE}
    [handshake] = fake.handshakes
    assert handshake.accepted and handshake.auth == "xi-api-key"
    assert handshake.voice_id == TtsKnobs().elevenlabs.voice_id
    assert handshake.query["model_id"] == "eleven_flash_v2_5"
    assert handshake.query["output_format"] == "pcm_8000"
    assert handshake.query["language_code"] == "en"
    assert fake.texts() == [SENTENCE, SECOND]
    # A context per sentence, opened with " ", closed, answered with isFinal after its audio.
    contexts = [r.context_id for r in fake.requests]
    assert len(set(contexts)) == 2 and fake.finals == contexts
    assert all(init["text"] == " " for init in fake.inits)
    assert fake.completed == 2 and voice.watch.failovers == 0
    heard = await asyncio.to_thread(_heard, runtime, run)
    assert wer(f"{SENTENCE} {SECOND}", heard) <= 0.25, heard


# Failover: Piper says every sentence the provider had not finished, then the rest.


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == cloud_tts.__name__]


async def test_cartesia_error_event_fails_over_to_piper_for_the_rest_of_the_call(
    cartesia: tuple[FakeCartesia, str], runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = cartesia
    fake.push(cartesia_api.Fail(status_code=503, title="Overloaded"))
    voice = _cloud("cartesia", url, fake.api_key)
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    run = await _speak(voice, SENTENCE, SECOND)
    watch = voice.watch
    assert fake.transcripts()[0] == SENTENCE
    assert watch.failovers == 1 and watch.failed_over and not voice.cloud.is_usable
    assert voice.switcher.strategy.active_service is voice.fallback
    # One end per sentence reached the caller, and Piper said both.
    assert sum(isinstance(f, TTSStoppedFrame) for f in run.down) == 2
    assert watch.fallback_sentences == 2
    heard = await asyncio.to_thread(_heard, runtime, run)
    assert wer(f"{SENTENCE} {SECOND}", heard) <= 0.25, heard
    messages = _messages(caplog)
    assert any("cartesia TTS: failover 1" in m and "Overloaded" in m for m in messages), messages
    assert not any(fake.api_key in m for m in messages)


async def test_cartesia_dropped_socket_mid_sentence_is_said_again_by_piper(
    cartesia: tuple[FakeCartesia, str], runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = cartesia
    fake.push(cartesia_api.Disconnect(after_chunks=3))
    voice = _cloud("cartesia", url, fake.api_key)
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    run = await _speak(voice, SECOND)
    # Three chunks came from Cartesia before the drop; then Piper said the sentence whole.
    assert fake.transcripts() == [SECOND] and fake.chunks_sent == 3
    assert voice.watch.failovers == 1 and voice.watch.respoken == 1
    assert sum(isinstance(f, TTSStoppedFrame) for f in run.down) == 1
    heard = await asyncio.to_thread(_heard, runtime, run)
    assert wer(SECOND, heard) <= 0.25, heard  # the whole sentence, not just its rest
    assert any("failover 1" in m for m in _messages(caplog))


async def test_cartesia_refused_handshake_fails_over(
    cartesia: tuple[FakeCartesia, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = cartesia
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    voice = _cloud("cartesia", url, "sk_car_wrong_key_123456")
    run = await _speak(voice, SECOND)
    assert fake.handshakes and not any(h.accepted for h in fake.handshakes)
    assert fake.requests == [] and voice.watch.failovers == 1 and run.audio
    messages = " ".join(_messages(caplog))
    assert "401" in messages and "sk_car_wrong_key_123456" not in messages


async def test_elevenlabs_silence_past_the_timeout_fails_over_in_order(
    elevenlabs: tuple[FakeElevenLabs, str], runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = elevenlabs
    fake.default = elevenlabs_api.Speak(delay_secs=5.0)
    voice = _cloud("elevenlabs", url, fake.api_key, timeout_secs=0.4)
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    run = await _speak(voice, SENTENCE, SECOND)
    # The fake would have answered after 5 s: the 0.4 s watch failed the call over first.
    # ElevenLabs never got the second sentence; Piper said both, in order.
    assert fake.texts() == [SENTENCE] and fake.completed == 0
    assert voice.watch.failovers == 1 and voice.watch.reason == "no audio for 0.4 s"
    assert voice.watch.fallback_sentences == 2
    assert sum(isinstance(f, TTSStoppedFrame) for f in run.down) == 2
    heard = await asyncio.to_thread(_heard, runtime, run)
    assert wer(f"{SENTENCE} {SECOND}", heard) <= 0.25, heard
    assert any("elevenlabs TTS: failover 1: no audio" in m for m in _messages(caplog))


async def test_elevenlabs_stall_between_chunks_fails_over(
    elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, url = elevenlabs
    fake.default = elevenlabs_api.Speak(chunk_delay_secs=3.0)
    voice = _cloud("elevenlabs", url, fake.api_key, timeout_secs=0.5)
    run = await _speak(voice, SECOND)
    # The first chunk came at once, the next would have taken 3 s: Piper said it all.
    assert voice.watch.failovers == 1 and voice.watch.respoken == 1
    assert sum(isinstance(f, TTSStoppedFrame) for f in run.down) == 1
    assert voice.watch.fallback_sentences == 1 and fake.completed == 0


async def test_elevenlabs_in_band_error_fails_over(
    elevenlabs: tuple[FakeElevenLabs, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = elevenlabs
    fake.push(elevenlabs_api.Fail(code=1011, error="internal_error"))
    voice = _cloud("elevenlabs", url, fake.api_key)
    caplog.set_level(logging.WARNING, logger=cloud_tts.__name__)
    run = await _speak(voice, SECOND)
    assert fake.texts() == [SECOND] and fake.completed == 0
    assert voice.watch.failovers == 1 and voice.watch.respoken == 1 and run.audio
    assert any("1011" in m for m in _messages(caplog)), _messages(caplog)


async def test_elevenlabs_without_fallback_reports_the_error_upstream(
    elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, url = elevenlabs
    fake.default = elevenlabs_api.Disconnect(after_bytes=3200)
    voice = _voice("elevenlabs", url, fake.api_key, fallback=False)
    assert isinstance(voice, ElevenLabsTTSService)
    run = await _speak(voice, SECOND, until=lambda s: any(isinstance(f, ErrorFrame) for f in s.up))
    errors = [f for f in run.up if isinstance(f, ErrorFrame)]
    assert errors and all(e.processor is voice for e in errors), errors
    assert fake.texts() == [SECOND] and fake.completed == 0


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


async def _speak_and_cut(voice: FrameProcessor, settled: Awaitable[None]) -> float:
    """Speak SENTENCE, barge in on its first audio, wait until the provider saw the cut
    (`settled`); returns the seconds of audio that came out."""
    cutter = _CutOnFirstAudio()
    worker = PipelineWorker(
        Pipeline([voice, cutter]),
        cancel_on_idle_timeout=False,
        params=PipelineParams(audio_out_sample_rate=RATE),
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
    return sum(len(f.audio) for f in cutter.audio) / 2 / RATE


async def test_interruption_cancels_the_cartesia_context(
    cartesia: tuple[FakeCartesia, str],
) -> None:
    fake, url = cartesia
    fake.default = cartesia_api.Speak(chunk_delay_secs=0.05)
    voice = _cloud("cartesia", url, fake.api_key)
    played = await _speak_and_cut(voice, fake.wait_until(lambda: bool(fake.cancels)))
    context_id = fake.requests[0].body["context_id"]
    assert fake.cancels == [context_id]
    # Cut short: far less than the sentence's ~5 s of audio came out, and nothing failed.
    assert 0 < played < 2.0, played
    assert voice.watch.failovers == 0 and voice.watch.fallback_sentences == 0


async def test_interruption_closes_the_elevenlabs_context(
    elevenlabs: tuple[FakeElevenLabs, str],
) -> None:
    fake, url = elevenlabs
    fake.default = elevenlabs_api.Speak(chunk_delay_secs=0.05)
    voice = _cloud("elevenlabs", url, fake.api_key)
    played = await _speak_and_cut(voice, fake.wait_until(lambda: len(fake.closes) >= 2))
    [context_id] = {r.context_id for r in fake.requests}
    # Closed once when the sentence was sent, once more by the barge-in.
    assert fake.closes == [context_id, context_id]
    assert 0 < played < 2.0, played
    assert voice.watch.failovers == 0 and voice.watch.fallback_sentences == 0


# A real call: the spoken reply comes back on the Twilio socket.


@dataclass
class _Call:
    result: StreamResult
    reply: dict[str, Any]


@contextlib.contextmanager
def _cloud_provider(
    runtime: Runtime, series: str, tts: dict[str, Any], **settings: Any
) -> Iterator[list[FrameProcessor]]:
    """Calls of `series` speak with the `tts` knobs and these settings; yields the voices."""
    saved_prompts, saved_settings = runtime.prompts, runtime.settings
    pipeline = saved_prompts.pipeline.model_copy(
        update={"series": {**saved_prompts.pipeline.series, series: {"tts": tts}}}
    )
    runtime.prompts = saved_prompts.model_copy(update={"pipeline": pipeline})
    runtime.settings = saved_settings.updated(**settings)
    built: list[FrameProcessor] = []
    original = call_module.build_cloud_tts

    def spy(**kwargs: Any) -> FrameProcessor:
        voice = original(**kwargs)
        built.append(voice)
        return voice

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
    async with httpx.AsyncClient(timeout=30, headers=API_HEADERS) as http:
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
    assert not reply["interrupted"]
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
    [voice] = built
    assert isinstance(voice, CloudTTS) and isinstance(voice.cloud, CartesiaTTSService)
    assert voice.watch.failovers == 0


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
    [voice] = built
    assert isinstance(voice, CloudTTS) and isinstance(voice.cloud, ElevenLabsTTSService)
    assert voice.watch.failovers == 0


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
    # ElevenLabs got the sentence and never answered in time: Piper said it.
    assert fake.texts() == [answer] and fake.completed == 0
    [voice] = built
    assert isinstance(voice, CloudTTS)
    assert voice.watch.failovers == 1 and voice.watch.fallback_sentences == 1
    assert any("elevenlabs TTS: failover 1" in m for m in _messages(caplog))


def test_the_api_key_reaches_the_service_only() -> None:
    """The key stays a SecretStr up to the service's constructor."""
    voice = _cloud("cartesia", "http://127.0.0.1:9", "sk_car_secret_987654")
    assert "sk_car_secret_987654" not in repr(voice) and "sk_car_secret_987654" not in str(voice)
    with pytest.raises(Exception, match="not a cloud provider"):
        _voice("piper", "http://127.0.0.1:9", "k")
    assert isinstance(
        _voice("cartesia", "http://127.0.0.1:9", "k", fallback=False), CartesiaTTSService
    )
