"""Operable at scale: `GET /metrics` read as Prometheus reads it (its text format, parsed by
`prometheus_client`'s own parser), its access rules, and Pipecat's OpenTelemetry turn tracing
switched on by CONVENE_TRACING."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EndFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.workers.runner import WorkerRunner
from prometheus_client.parser import text_string_to_metric_families

from bot.tracing import start_tracing, worker_tracing
from core.errors import ConfigError
from core.settings import Settings
from core.stt_queue import Lane
from processors.user_turns import UserTurnMarks
from server.app import create_app
from server.local_server import serve_in_process
from server.runtime import Runtime
from server.simulator import TwilioStreamClient
from tests.calls import answered_stream, overridden, simulate_meeting
from tests.conftest import API_HEADERS, make_settings
from tests.speech import write_meeting
from tests.test_cloud_tts import SECOND, _cloud, _speak, cartesia, cartesia_server
from tests.test_security_api import bearer, make_token, security
from tests.test_security_stream import SILENCE, completed, hang_up, start_streaming

__all__ = ["cartesia", "cartesia_server"]  # the fixtures, reused


async def scrape(base_url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """/metrics as Prometheus reads it: every sample, `name{label="v",...}` -> value."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.get("/metrics", headers=API_HEADERS if headers is None else headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


async def wait_active(base_url: str, call_id: str, client: TwilioStreamClient) -> None:
    """Until the API says the call streams (`active`), as the call's own record says it."""
    async with httpx.AsyncClient(base_url=base_url, headers=API_HEADERS, timeout=30) as http:
        while True:
            call = (await http.get(f"/calls/{call_id}")).json()
            if call.get("active"):
                return
            # More audio, not a sleep: the pipeline attaches while it is fed.
            await client.stream_audio(SILENCE * 5, speed=1)


async def test_active_calls_go_from_1_to_0_around_a_call(base_url: str) -> None:
    assert (await scrape(base_url))["convene_active_calls"] == 0
    async with answered_stream(base_url) as client:
        await start_streaming(client, frames=10)
        await wait_active(base_url, client.custom_parameters["call_id"], client)
        during = await scrape(base_url)
        await hang_up(client)
    # The call is over once its end is stored (written after it stops counting as active).
    await completed(base_url, client.custom_parameters["call_id"])
    after = await scrape(base_url)
    assert during["convene_active_calls"] == 1
    assert after["convene_active_calls"] == 0
    # The state gauges are there too, read from the spools now (nothing waits here).
    assert after["convene_spool_depth"] == 0 and after["convene_extraction_backlog"] == 0
    assert "process_resident_memory_bytes" in after


async def test_transcriptions_waiting_for_whisper_are_counted(
    base_url: str, runtime: Runtime
) -> None:
    """`convene_stt_waiting`: what the process's Whisper queue holds and no worker runs yet."""
    queue = runtime.stt_queue
    gate, started = threading.Event(), [threading.Event() for _ in range(queue.workers)]

    def hold(ready: threading.Event) -> None:
        ready.set()
        gate.wait()

    held = [queue.submit(lambda e=e: hold(e), lane=Lane.AFTER) for e in started]
    try:
        for ready in started:  # every worker is busy now
            await asyncio.to_thread(ready.wait)
        waiting = queue.submit(lambda: None, lane=Lane.FIRST)
        during = await scrape(base_url)
    finally:
        gate.set()
    await asyncio.gather(*(asyncio.wrap_future(f) for f in [*held, waiting]))
    after = await scrape(base_url)
    assert during["convene_stt_waiting"] == 1 and after["convene_stt_waiting"] == 0
    assert "convene_stt_dropped_total" in after


async def test_a_tts_failover_is_counted(base_url: str, cartesia: tuple[object, str]) -> None:
    """The refused-handshake failover of tests/test_cloud_tts.py, seen from /metrics."""
    fake, url = cartesia
    key = 'convene_tts_failovers_total{provider="cartesia"}'
    before = (await scrape(base_url)).get(key, 0.0)
    voice = _cloud("cartesia", url, "sk_car_wrong_key_123456")
    await _speak(voice, SECOND)
    assert voice.watch.failovers == 1
    assert (await scrape(base_url))[key] == before + 1


async def test_metrics_need_a_read_token_of_every_series_unless_public(
    base_url: str, runtime: Runtime
) -> None:
    reader = await make_token(runtime, "read", name="metrics-reader")
    dialler = await make_token(runtime, "dial", name="metrics-dialler")
    one_series = await make_token(runtime, "read", series=["weekly"], name="metrics-weekly")
    async with httpx.AsyncClient(base_url=base_url) as client:
        anonymous = await client.get("/metrics")
        forged = await client.get("/metrics", headers=bearer("cvn_" + "A" * 43))
        wrong_scope = await client.get("/metrics", headers=bearer(dialler))
        partial = await client.get("/metrics", headers=bearer(one_series))
        # Prometheus scrapes the pod's own address: any Host, as for the probes.
        pod = await client.get("/metrics", headers={**bearer(reader), "Host": "10.1.2.3:8000"})
        with overridden(runtime, settings=security(runtime, metrics_public=True)):
            public = await client.get("/metrics")
            elsewhere = await client.get("/calls/00000000-0000-0000-0000-000000000000")
    assert [anonymous.status_code, forged.status_code] == [401, 401]
    assert [wrong_scope.status_code, partial.status_code] == [403, 403]
    assert pod.status_code == 200 and "convene_active_calls" in pod.text
    assert public.status_code == 200 and "convene_active_calls" in public.text
    assert elsewhere.status_code == 401  # CONVENE_METRICS_PUBLIC opens /metrics only


@pytest.fixture
def spans(runtime: Runtime) -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider, set once as `convene serve` sets it, with the spans kept
    in memory (the first test to ask sets it; later ones share it)."""
    global _EXPORTER
    if _EXPORTER is None:
        _EXPORTER = InMemorySpanExporter()
        assert start_tracing(runtime.settings.updated(convene_tracing=True), exporter=_EXPORTER)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


_EXPORTER: InMemorySpanExporter | None = None


def finished(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    provider: Any = trace.get_tracer_provider()
    assert provider.force_flush()
    return list(exporter.get_finished_spans())


def _in(span: ReadableSpan, parent: ReadableSpan) -> bool:
    assert span.context is not None and parent.context is not None
    return (
        span.parent is not None
        and span.parent.span_id == parent.context.span_id
        and span.context.trace_id == parent.context.trace_id
    )


async def test_pipecat_traces_each_user_turn_inside_the_call(
    spans: InMemorySpanExporter,
) -> None:
    """The VAD's speech frames, marked at the pipeline's end, start Pipecat's turns: speech,
    a reply, speech again is two turns, each a span inside the call's `conversation`."""
    settings = Settings.of(convene_tracing=True)
    marks = UserTurnMarks()
    worker = PipelineWorker(
        Pipeline([marks]),
        **worker_tracing(settings, call_id="call-1", series="weekly"),
        enable_rtvi=False,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await worker.queue_frames(
        [
            VADUserStartedSpeakingFrame(),
            VADUserStoppedSpeakingFrame(),
            BotStartedSpeakingFrame(),
            BotStoppedSpeakingFrame(),
            VADUserStartedSpeakingFrame(),
            VADUserStoppedSpeakingFrame(),
            EndFrame(),
        ]
    )
    await runner.run()
    done = finished(spans)
    [conversation] = [s for s in done if s.name == "conversation"]
    turns = sorted((s for s in done if s.name == "turn"), key=lambda s: s.start_time or 0)
    assert marks.marked == 2
    assert conversation.attributes is not None
    assert conversation.attributes["conversation.id"] == "call-1"
    assert conversation.attributes["convene.series"] == "weekly"
    assert [t.attributes["turn.number"] for t in turns if t.attributes] == [1, 2]
    assert all(_in(t, conversation) for t in turns)


async def test_a_spoken_reply_is_timed_and_each_turn_traced(
    runtime: Runtime, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """With CONVENE_TRACING, Pipecat traces the call (one `conversation` span) and each turn
    (a `turn` span of its own trace); the reply's voice-to-voice time lands in the histogram
    as the stored reply has it."""
    with overridden(runtime, settings={"convene_tracing": True}):
        async with serve_in_process(create_app(runtime=runtime)) as url:
            before = await scrape(url)
            result = await simulate_meeting(
                write_meeting(tmp_path / "q.wav", ["Convene, what did we decide today?"]),
                base_url=url,
                meeting_date=dt.date(2026, 11, 24),
                expect_answer=True,
            )
            after = await scrape(url)
    [reply] = result["replies"]
    latency = (reply["t_first_audio_ms"] - reply["t_question_end_ms"]) / 1000
    count = "convene_voice_to_voice_seconds_count"
    total = "convene_voice_to_voice_seconds_sum"
    assert after[count] == before[count] + 1
    assert after[total] - before[total] == pytest.approx(max(0.0, latency), abs=1e-6)
    done = finished(spans)
    names = [s.name for s in done]
    [conversation] = [s for s in done if s.name == "conversation"]
    assert conversation.attributes is not None
    assert conversation.attributes["conversation.id"] == result["call_id"], names
    turns = [s for s in done if s.name == "turn"]
    assert turns and all(_in(t, conversation) for t in turns), names


async def test_tracing_without_the_extra_stops_start_up(tmp_path: Path) -> None:
    """`./dev test` syncs without the `tracing` extra: no OTLP exporter, so CONVENE_TRACING
    stops start-up with what to install, before anything is started."""
    with pytest.raises(ConfigError, match="uv sync --extra tracing"):
        await Runtime.start(make_settings(tmp_path, convene_tracing=True))
    assert not (tmp_path / "postgres").exists()
