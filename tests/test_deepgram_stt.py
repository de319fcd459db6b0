"""stt.provider: deepgram, through the real deepgram-sdk against a loopback Deepgram, in real calls.

The fake (tests/fakes/deepgram_api.py) speaks the listen websocket and really transcribes with
the same faster-whisper model; these tests check what the pipeline makes of it: interims that
never become segments, keyterms on the wire, and failover through Pipecat's ServiceSwitcher to
local Whisper (a dropped socket, a refused key, a stall), with the words in flight replayed to it
(and what is lost without that replay, measured).
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pipecat.frames.frames import Frame, InterimTranscriptionFrame, TranscriptionFrame
from pydantic import SecretStr

import bot.call as call_module
import processors.deepgram_stt as deepgram_stt
import processors.stt_failover as stt_failover
from core.metrics import REGISTRY
from processors.deepgram_stt import DeepgramSegmentsSTTService
from processors.frames import TranscriptSegmentFrame
from processors.stt_failover import FailoverReplay
from server.runtime import Runtime
from tests.calls import simulate_meeting
from tests.conftest import MEETING_TURNS
from tests.fakes.deepgram_api import FakeDeepgram
from tests.speech import wer

BYTES_PER_SEC = 16000 * 2  # the pipeline's 16 kHz, 16-bit mono
SPEED = 4.0  # streamed 4x faster than real time: still a stream, the socket answers as it goes

# Every meeting a test simulates has an explicit date (never the server's today).
MEETING_DATE = dt.date(2026, 11, 24)


@dataclass
class Harness:
    fake: FakeDeepgram
    runtime: Runtime
    saved_prompts: Any
    # The fake runs Whisper on this machine's CPU, far slower than Deepgram: a generous
    # timeout, so that only the stall test stalls.
    options: dict[str, Any] = field(default_factory=lambda: {"timeout_secs": 60.0})
    services: list[DeepgramSegmentsSTTService] = field(default_factory=list)
    failovers: list[FailoverReplay] = field(default_factory=list)
    pushed: list[Frame] = field(default_factory=list)
    local: list[Frame] = field(default_factory=list)  # what the fallback pushed
    replay: bool = True

    def configure(self, *, fallback: str = "whisper-local", **options: Any) -> None:
        """Select `stt.provider: deepgram` with these `stt.deepgram` options."""
        self.options.update(options)
        prompts = self.saved_prompts
        stt = prompts.pipeline.stt
        stt = stt.model_copy(
            update={
                "provider": "deepgram",
                "fallback": fallback,
                "deepgram": stt.deepgram.model_copy(update=self.options),
            }
        )
        pipeline = prompts.pipeline.model_copy(update={"stt": stt})
        self.runtime.prompts = prompts.model_copy(update={"pipeline": pipeline})

    @property
    def stt(self) -> DeepgramSegmentsSTTService:
        assert len(self.services) == 1, self.services
        return self.services[0]

    @property
    def failover(self) -> FailoverReplay:
        assert len(self.failovers) == 1, self.failovers
        return self.failovers[0]

    def of(self, kind: type[Frame]) -> list[Any]:
        return [f for f in self.pushed if isinstance(f, kind)]

    def of_local(self, kind: type[Frame]) -> list[Any]:
        return [f for f in self.local if isinstance(f, kind)]


@pytest.fixture
async def deepgram(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    assert runtime.whisper_model is not None
    harness = Harness(FakeDeepgram(model=runtime.whisper_model), runtime, runtime.prompts)
    build = deepgram_stt.build_deepgram_stt
    build_failover = stt_failover.build_stt_failover
    kinds = (TranscriptionFrame, InterimTranscriptionFrame, TranscriptSegmentFrame)

    def recording_build(**kwargs: Any) -> Any:
        stt = build(**kwargs)
        harness.services.append(stt)

        def pushed(_processor: object, frame: Frame) -> None:
            if isinstance(frame, kinds):
                harness.pushed.append(frame)

        stt.add_event_handler("on_after_push_frame", pushed)
        return stt

    def recording_failover(primary: Any, fallback: Any, clock: Any, **kwargs: Any) -> Any:
        stage = build_failover(primary, fallback, clock, **kwargs, replay=harness.replay)
        harness.failovers.extend(p for p in stage.processors if isinstance(p, FailoverReplay))

        def pushed(_processor: object, frame: Frame) -> None:
            if isinstance(frame, kinds):
                harness.local.append(frame)

        fallback.add_event_handler("on_after_push_frame", pushed)
        return stage

    # Wrap the builders where the call's pipeline looks them up, to see the call's services.
    monkeypatch.setattr(call_module, "build_deepgram_stt", recording_build)
    monkeypatch.setattr(call_module, "build_stt_failover", recording_failover)
    saved_settings, saved_prompts = runtime.settings, runtime.prompts
    async with harness.fake.serve() as url:
        runtime.settings = saved_settings.updated(
            **{"deepgram_api_key": SecretStr(harness.fake.api_key), "deepgram_base_url": url}
        )
        harness.configure()
        try:
            yield harness
        finally:
            runtime.settings, runtime.prompts = saved_settings, saved_prompts


async def call(base_url: str, meeting_wav: Path) -> dict[str, Any]:
    return await simulate_meeting(
        meeting_wav, base_url=base_url, speed=SPEED, meeting_date=MEETING_DATE
    )


def texts(result: dict[str, Any]) -> list[str]:
    return [s["text"] for s in result["transcript"]]


def final_transcripts(fake: FakeDeepgram) -> list[str]:
    return [
        r["channel"]["alternatives"][0]["transcript"]
        for c in fake.accepted
        for r in c.finals
        if r["channel"]["alternatives"][0]["transcript"]
    ]


async def test_deepgram_streams_the_meeting_with_interims_and_keyterms(
    deepgram: Harness, base_url: str, meeting_wav: Path
) -> None:
    deepgram.fake.latency_secs = 0.2  # a slow answer is not a stall
    result = await call(base_url, meeting_wav)
    assert wer(" ".join(MEETING_TURNS), " ".join(texts(result))) <= 0.15

    # One socket, configured from prompts: model, audio format, interims, the names boosted.
    (conn,) = deepgram.fake.connections
    assert conn.status == 101
    assert conn.param("model") == "nova-3"
    assert conn.param("encoding") == "linear16"
    assert conn.param("sample_rate") == "16000"
    assert conn.param("interim_results") == "true"
    assert conn.param("endpointing") == "300"
    agent = deepgram.runtime.prompts.agent
    assert {agent.name, "Tom", "Priya"} <= set(conn.params["keyterm"])
    assert conn.audio_bytes >= 12 * BYTES_PER_SEC  # the whole call went to Deepgram
    assert "Finalize" in conn.controls  # on each VAD stop
    assert conn.controls[-1] == "CloseStream"

    # Interims reached the pipeline but only finals became segments, exactly as Deepgram sent
    # them, stored in order with their place in the call.
    stt = deepgram.stt
    assert conn.interims and stt.interims > 0
    assert deepgram.of(InterimTranscriptionFrame)
    assert " ".join(texts(result)) == " ".join(final_transcripts(deepgram.fake))
    assert [f.text for f in deepgram.of(TranscriptSegmentFrame)] == texts(result)
    assert [f.text for f in deepgram.of(TranscriptionFrame)] == final_transcripts(deepgram.fake)
    starts = [s["start_ms"] for s in result["transcript"]]
    assert starts == sorted(starts) and starts[0] < 1000
    assert all(s["start_ms"] < s["end_ms"] <= 13_500 for s in result["transcript"])
    assert deepgram.failover.failovers == 0 and stt.is_usable and stt.finals >= 3
    assert stt.errors_in_a_row == 0 and stt.stalls == 0 and not deepgram.local


def words(text: str) -> list[str]:
    return [w.strip(".,!?;:").lower() for w in text.split() if w.strip(".,!?;:")]


def words_lost(said: str, heard: str) -> int:
    """Words of `said` missing from `heard` (a bag of words: order and repeats aside)."""
    left = words(heard)
    lost = 0
    for word in words(said):
        if word in left:
            left.remove(word)
        else:
            lost += 1
    return lost


@pytest.mark.parametrize("replay", [True, False], ids=["replay", "no-replay"])
async def test_deepgram_dropping_mid_utterance_fails_over_to_local_whisper(
    deepgram: Harness,
    base_url: str,
    meeting_wav: Path,
    caplog: pytest.LogCaptureFixture,
    replay: bool,
) -> None:
    """The measurement behind `FailoverReplay`: words lost at a failover mid-utterance."""
    deepgram.replay = replay
    deepgram.configure(retries=0, interim_results=False)
    deepgram.fake.drop_after_bytes = 6 * BYTES_PER_SEC  # mid second turn (5.2-8.5 s)
    with caplog.at_level(logging.INFO, logger="processors"):
        result = await call(base_url, meeting_wav)

    conn = deepgram.fake.connections[0]
    assert conn.dropped
    # The second turn was in flight when the socket died: Deepgram never finalized it.
    assert not any("security" in t.lower() for t in final_transcripts(deepgram.fake))
    stt, failover = deepgram.stt, deepgram.failover
    assert failover.failovers == 1 and not stt.is_usable
    logged = [r.getMessage() for r in caplog.records if "stt: failover" in r.getMessage()]
    assert len(logged) == 1 and "to=SharedWhisperSTTService" in logged[0]
    # Found by where it was said (the second turn, 5.2-8.5 s with the 1 s lead-in), not by
    # its words: the turn's segments, whoever transcribed them.
    second = " ".join(
        s["text"] for s in result["transcript"] if s["start_ms"] < 8_500 and s["end_ms"] > 5_400
    )
    lost = words_lost(MEETING_TURNS[1], second)
    turn = len(words(MEETING_TURNS[1]))
    sys.stdout.write(f"\n[measure] replay={replay}: {lost}/{turn} words of the turn lost\n")
    if replay:
        assert failover.replayed_ms > 0
        assert wer(MEETING_TURNS[1], second) <= 0.25, result["transcript"]
        assert wer(" ".join(MEETING_TURNS), " ".join(texts(result))) <= 0.15
    else:
        assert failover.replayed_ms == 0
        assert lost >= 3, (lost, second)  # without the replay the words in flight are gone


async def test_a_refused_key_fails_over_at_once_without_leaking_it(
    deepgram: Harness,
    base_url: str,
    meeting_wav: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong_key = "dg-wrong-key-" + "7" * 27
    deepgram.runtime.settings = deepgram.runtime.settings.updated(
        **{"deepgram_api_key": SecretStr(wrong_key)}
    )
    counted = {"provider": "deepgram"}
    before = REGISTRY.get_sample_value("convene_stt_failovers_total", counted) or 0.0
    with caplog.at_level(logging.DEBUG):
        result = await call(base_url, meeting_wav)
    # /metrics counts it (tests/test_metrics.py reads the same registry through the route).
    assert REGISTRY.get_sample_value("convene_stt_failovers_total", counted) == before + 1

    (conn,) = deepgram.fake.connections  # a 401 is not retried
    assert conn.status == 401
    assert wer(" ".join(MEETING_TURNS), " ".join(texts(result))) <= 0.15
    stt = deepgram.stt
    assert deepgram.failover.failovers == 1 and stt.finals == 0 and not stt.is_usable
    assert len(deepgram.of_local(TranscriptSegmentFrame)) >= 3
    assert any("401" in r.getMessage() for r in caplog.records if "stt: failover" in r.msg)
    assert wrong_key not in caplog.text


async def test_a_stalled_socket_fails_over(
    deepgram: Harness,
    base_url: str,
    meeting_wav: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deepgram.configure(timeout_secs=1.0, interim_results=False)
    deepgram.fake.stall = True  # takes the audio, never answers
    with caplog.at_level(logging.WARNING, logger="processors"):
        result = await call(base_url, meeting_wav)

    assert len(deepgram.fake.accepted) == 1
    assert wer(" ".join(MEETING_TURNS), " ".join(texts(result))) <= 0.15
    stt = deepgram.stt
    assert deepgram.failover.failovers == 1 and stt.stalls == 1 and stt.finals == 0
    assert sum("reason=stalled" in r.getMessage() for r in caplog.records) == 1


async def test_without_a_fallback_the_call_goes_on_untranscribed(
    deepgram: Harness,
    base_url: str,
    meeting_wav: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deepgram.configure(fallback="none")
    deepgram.fake.reject_status = 503
    with caplog.at_level(logging.WARNING):
        result = await call(base_url, meeting_wav)

    assert result["transcript"] == []
    # Given up after `retries: 1`; Pipecat's own loop may try once more (it stops after three
    # quick failures in a row), unheard: the service takes no audio once unusable.
    assert [c.status for c in deepgram.fake.connections][:2] == [503, 503]
    assert len(deepgram.fake.connections) <= 3
    assert not deepgram.failovers and not deepgram.stt.is_usable
    assert any(r.levelno == logging.ERROR and "not transcribed" in r.msg for r in caplog.records)
