"""Voice-to-voice latency as the caller hears it: the question's last voiced frame sent ->
the first voiced reply frame received, both timed at the client's socket.

    uv run python benchmarks/voice_to_voice.py [--turns 20]
    uv run python benchmarks/voice_to_voice.py --compare turn|quick [--rounds 2] [--turns 8]

A Twilio Media Streams client (server/simulator.py: real-time 20 ms frames on one cadence, each
`mark` echoed when the audio before it has "played", `clear` honoured) streams spoken questions
over the real websocket, once into Convene's full pipeline (VAD -> Whisper -> extraction -> wake
gate -> memory lookup -> report -> Piper) and once into a bare Pipecat pipeline (transport ->
VAD -> the same Whisper -> the same Piper, answering every utterance with a fixed sentence), in
the same run, and prints p50/p95 for both and their ratio. "Voiced" is core/voice.py's rule,
the one the server's stored replies use (`t_first_audio_ms - t_question_end_ms`), whose p50/p95
are printed beside the client's. Stage shares are measured beside it on the same audio: the VAD
stop wait (configured), Whisper on the question, memory lookup + report, and Piper's first chunk.

`--compare` runs Convene's pipeline with a knob off (A) and on (B) in interleaved calls (A, B,
A, B, ...: a busy machine's drift falls on both): `turn` is `turn.analyzer: smart-turn-v3`,
`quick` is `stt.quick_model: tiny` (with the quick model's words and time against the main
model's on the same questions).
It also prints how far ahead of real time the reply audio comes: for each `media` frame, the
audio the client still had queued to play when it arrived (the headroom network jitter must not
exceed, or the caller hears a gap); `--lead` sets `call.audio_lead_secs` for Convene's runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import soxr  # noqa: E402
from fastapi import FastAPI, WebSocket  # noqa: E402
from loguru import logger  # noqa: E402
from pipecat.frames.frames import Frame, TranscriptionFrame, TTSSpeakFrame  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bot.call import CallDeps, build_stt, build_vad, whisper_settings  # noqa: E402
from bot.twilio_stream import ConveneTwilioSerializer, read_stream_start  # noqa: E402
from core.settings import Settings  # noqa: E402
from domain.report_text import render  # noqa: E402
from processors.frames import AddressedFrame  # noqa: E402
from processors.memory_lookup import gather_facts  # noqa: E402
from processors.piper_voice import load_voice, synthesize  # noqa: E402
from processors.report import split_sentences  # noqa: E402
from processors.stage_metrics import RECENT  # noqa: E402
from processors.whisper_stt import transcribe_local  # noqa: E402
from server.app import create_app  # noqa: E402
from server.audio import pcm16_to_ulaw  # noqa: E402
from server.local_server import minted_token, serve_in_process  # noqa: E402
from server.runtime import Runtime  # noqa: E402
from server.simulator import TwilioStreamClient  # noqa: E402

QUESTIONS = [
    "Convene, what is Tom working on?",
    "Convene, what is Priya working on?",
    "Convene, give me a progress report.",
    "Convene, what did we decide today?",
]
SEED = [
    "Tom will get the demo environment ready by Friday.",
    "Priya is going to update the pricing page next week.",
]
FRAME = 160  # 20 ms of 8 kHz mu-law


def speech_ulaw(text: str) -> bytes:
    """The question as Twilio audio."""
    audio, rate = synthesize(text)
    samples = soxr.resample(audio.astype(np.float32) / 32768.0, rate, 8000)
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes()
    return pcm16_to_ulaw(pcm)


async def one_turn(client: TwilioStreamClient, ulaw: bytes) -> float | None:
    """Ask one question in real time; seconds from its last voiced frame sent to the first
    voiced reply frame received (None: no reply within 15 s)."""
    await client.stream_audio(ulaw, speed=1.0)
    asked = client.result.last_voiced_sent_at
    if asked is None:
        raise ValueError("the question has no voiced frame")
    await client.keep_line(lambda: client.first_voiced_after(asked) is not None, max_secs=15)
    first = client.first_voiced_after(asked)
    # Stay on the line while the reply plays, until the bot has been quiet for 1 s.
    await client.keep_line(lambda: time.monotonic() - client.bot_quiet_since() >= 1.0, max_secs=60)
    return None if first is None else first.at - asked


class FixedAnswer(FrameProcessor):  # type: ignore[misc]
    """The bare pipeline's "brain": every utterance gets the same one-sentence answer."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            await self.push_frame(TTSSpeakFrame("Tom has one open task, the demo environment."))


def bare_app(runtime: Runtime) -> FastAPI:
    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.serializers.twilio import TwilioFrameSerializer
    from pipecat.transports.websocket.fastapi import (
        FastAPIWebsocketParams,
        FastAPIWebsocketTransport,
    )
    from pipecat.workers.runner import WorkerRunner

    from processors.piper_tts import SharedPiperTTSService

    app = FastAPI()

    @app.websocket("/twilio/media")
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        start = await read_stream_start(websocket, max_bytes=65536)
        knobs = runtime.prompts.pipeline
        worker: PipelineWorker | None = None

        async def on_stop() -> None:
            if worker is not None:
                await worker.queue_frame(EndFrame())

        transport = FastAPIWebsocketTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                serializer=ConveneTwilioSerializer(
                    stream_sid=start.stream_sid,
                    max_message_bytes=65536,
                    on_stop=on_stop,
                    params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
                ),
            ),
        )
        deps: CallDeps = runtime.call_deps()
        vad = build_vad(knobs.vad, pauses=False)  # Pipecat's own VADProcessor
        pipeline = Pipeline(
            [
                transport.input(),
                vad,
                build_stt(deps),
                FixedAnswer(),
                SharedPiperTTSService(),
                transport.output(),
            ]
        )
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=8000),
            idle_timeout_secs=None,
            enable_rtvi=False,
        )

        @transport.event_handler("on_client_disconnected")  # type: ignore[misc, untyped-decorator]
        async def _gone(_t: object, _w: object) -> None:
            await worker.queue_frame(EndFrame())

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    return app


async def answered(base_url: str, series: str, token: str) -> tuple[str, dict[str, str], str]:
    """A call answered by /twilio/voice, as Twilio gets it: the stream URL, its parameters
    (with the call's single-use stream token) and the CallSid."""
    import httpx

    from server.simulate import request_twiml
    from server.simulator import new_sid, stream_url_from_twiml

    call_sid = new_sid("CA")
    async with httpx.AsyncClient(timeout=30) as http:
        twiml = await request_twiml(
            http,
            base_url,
            series=series,
            meeting_date=dt.date(2026, 11, 24),
            auth_token=token,
            call_sid=call_sid,
        )
    ws, params = stream_url_from_twiml(twiml)
    return ws, params, call_sid


async def run_turns(
    url: str,
    questions: list[bytes],
    turns: int,
    params: dict[str, str],
    *,
    label: str = "",
    verbose: bool = False,
    call_sid: str | None = None,
    ahead_ms: list[float] | None = None,
) -> list[float]:
    """Each turn's latency; `ahead_ms` gets, for each reply frame, the audio the client still
    had queued to play when it arrived."""
    latencies: list[float] = []
    async with TwilioStreamClient(url, custom_parameters=params, call_sid=call_sid) as client:
        await client.send_connected()
        await client.send_start()
        await client.stream_audio(b"\xff" * FRAME * 25, speed=1.0)
        for i in range(turns):
            latency = await one_turn(client, questions[i % len(questions)])
            if verbose:
                shown = "no reply" if latency is None else f"{latency * 1000:.0f} ms"
                print(f"  {label} turn {i + 1}: {QUESTIONS[i % len(QUESTIONS)]!r} {shown}")
            if latency is not None:
                latencies.append(latency)
        await client.send_stop()
        await client.wait_closed(timeout=60)
    if ahead_ms is not None:
        ahead_ms.extend(client.result.ahead_at_arrival_ms)
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def stored_latencies(
    runtime: Runtime, base_url: str, api_token: str, call_sid: str
) -> list[float]:
    """The server's own figure for each reply of the call, once it is stored: seconds from
    `t_question_end_ms` to `t_first_audio_ms` (replies that were sent)."""
    import httpx

    from server.simulate import wait_completed

    call_id = await runtime.store.find_call(call_sid=call_sid)
    if call_id is None:
        return []
    headers = {"Authorization": f"Bearer {api_token}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        await wait_completed(http, base_url, call_id, 120)
    return [
        (r["t_first_audio_ms"] - r["t_question_end_ms"]) / 1000
        for r in await runtime.store.get_replies(call_id)
        if r["t_first_audio_ms"] is not None
    ]


async def stage_shares(runtime: Runtime, questions: list[bytes], series: str) -> dict[str, float]:
    from server.audio import ulaw_to_pcm16

    deps = runtime.call_deps()
    model = deps.whisper_model
    stt_times, stt_full_times, tts_times, lookup_times, report_times = [], [], [], [], []
    tts_clause_times: list[float] = []
    settings = whisper_settings(deps, runtime.prompts.pipeline)
    for ulaw in questions:
        pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.float32) / 32768.0
        audio16 = soxr.resample(pcm, 8000, 16000)
        pcm16 = (np.clip(audio16, -1, 1) * 32767).astype(np.int16).tobytes()
        t = time.perf_counter()
        transcribe_local(model, pcm16, settings, short_window=False)
        stt_full_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        transcribe_local(model, pcm16, settings)
        stt_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        facts = await gather_facts(
            runtime.store,
            series=series,
            meeting_date=dt.date(2026, 11, 24),
            call_id=None,
            ask=AddressedFrame(
                intent="person_tasks", question="", person="Tom", topic=None, seq=0, end_ms=0
            ),
        )
        lookup_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        text = render(facts, runtime.prompts.report)
        report_times.append(time.perf_counter() - t)
        voice = load_voice()
        t = time.perf_counter()
        next(iter(voice.synthesize(text)))
        tts_times.append(time.perf_counter() - t)
        # What Convene sends first: the first sentence, cut after its first clause.
        first = split_sentences(text, first_chars=runtime.prompts.pipeline.tts.first_chunk_chars)
        t = time.perf_counter()
        next(iter(voice.synthesize(first[0])))
        tts_clause_times.append(time.perf_counter() - t)
    return {
        "vad_stop_wait": runtime.prompts.pipeline.vad.stop_secs,
        "vad_pause": runtime.prompts.pipeline.vad.pause_secs,
        "stt_30s_window": statistics.median(stt_full_times),
        "stt": statistics.median(stt_times),
        "memory_lookup": statistics.median(lookup_times),
        "report": statistics.median(report_times),
        "tts_first_sentence": statistics.median(tts_times),
        "tts_first_chunk": statistics.median(tts_clause_times),
    }


COMPARED = {
    "turn": ("turn", {"analyzer": "none"}, {"analyzer": "smart-turn-v3"}),
    "quick": ("stt", {"quick_model": "none"}, {"quick_model": "tiny"}),
}


def with_knobs(runtime: Runtime, section: str, values: dict[str, str]) -> None:
    knobs = runtime.prompts.pipeline
    changed = getattr(knobs, section).model_copy(update=values)
    runtime.prompts = runtime.prompts.model_copy(
        update={"pipeline": knobs.model_copy(update={section: changed})}
    )


async def compare(
    runtime: Runtime,
    url: str,
    series: str,
    token: str,
    questions: list[bytes],
    *,
    what: str,
    rounds: int,
    turns: int,
    verbose: bool,
) -> None:
    section, off, on = COMPARED[what]
    if what == "quick":  # first: loads and warms the quick model, outside the timed calls
        await quick_words(runtime, questions)
    saved = runtime.prompts
    results: dict[str, list[list[float]]] = {"A": [], "B": []}
    try:
        for r in range(rounds):
            for name, values in (("A", off), ("B", on)):
                with_knobs(runtime, section, values)
                ws, params, call_sid = await answered(url, series, token)
                latencies = await run_turns(
                    ws,
                    questions,
                    turns,
                    params,
                    label=f"{name}{r + 1}",
                    verbose=verbose,
                    call_sid=call_sid,
                )
                results[name].append(latencies)
                runtime.prompts = saved
    finally:
        runtime.prompts = saved
    print(f"--compare {what}: A = {section} {off}, B = {section} {on}; {rounds} rounds of")
    print(f"  {turns} turns each, interleaved A, B, A, B; client-side voice-to-voice:")
    for r in range(rounds):
        row = []
        for name in ("A", "B"):
            values = results[name][r]
            row.append(
                f"{name} p50/p95 {pct(values, 0.5) * 1000:5.0f}/{pct(values, 0.95) * 1000:5.0f} ms"
                f" ({len(values)}/{turns})"
                if values
                else f"{name} no replies"
            )
        print(f"  round {r + 1}: " + "   ".join(row))
    for name in ("A", "B"):
        values = [v for run in results[name] for v in run]
        if values:
            print(
                f"  all {name}: p50 {pct(values, 0.5) * 1000:5.0f} ms  p95"
                f" {pct(values, 0.95) * 1000:5.0f} ms  (answered {len(values)}/{turns * rounds})"
            )


async def quick_words(runtime: Runtime, questions: list[bytes]) -> None:
    """The quick model against the main one on the questions (phone audio): words and time."""
    from bot.models import quick_model_dir, shared_whisper_model
    from processors.whisper_stt import transcribe_quick
    from server.audio import ulaw_to_pcm16
    from tests.speech import wer

    deps = runtime.call_deps()
    settings = whisper_settings(deps, runtime.prompts.pipeline)
    quick = shared_whisper_model(quick_model_dir("tiny"), device="cpu", compute_type="int8")
    models = (("base", deps.whisper_model), ("tiny", quick))
    times: dict[str, list[float]] = {"base": [], "tiny": []}
    errors: dict[str, list[float]] = {"base": [], "tiny": []}
    against_base: list[float] = []
    for _ in range(3):
        for text, ulaw in zip(QUESTIONS, questions, strict=True):
            pcm = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.float32) / 32768.0
            audio16 = soxr.resample(pcm, 8000, 16000)
            pcm16 = (np.clip(audio16, -1, 1) * 32767).astype(np.int16).tobytes()
            pcm16 += bytes(16000)  # the 0.5 s of silence a speculation is padded with
            heard: dict[str, str] = {}
            for name, model in models:
                t = time.perf_counter()
                result = await asyncio.to_thread(transcribe_quick, model, pcm16, settings)
                times[name].append(time.perf_counter() - t)
                heard[name] = result[0] if result else ""
                errors[name].append(wer(text, heard[name]))
            against_base.append(wer(heard["base"], heard["tiny"]))
    print("quick model on the questions (phone audio, turn-sized window; 3 passes):")
    for name, _ in models:
        print(
            f"  {name:<5} median {statistics.median(times[name]) * 1000:5.0f} ms"
            f"  (min {min(times[name]) * 1000:4.0f}, max {max(times[name]) * 1000:4.0f})"
            f"  WER vs the text {statistics.mean(errors[name]):.3f}"
        )
    print(f"  tiny vs base transcript WER {statistics.mean(against_base):.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument(
        "--convene-only", action="store_true", help="skip the no-speculation and bare runs"
    )
    parser.add_argument("--per-turn", action="store_true", help="print each turn's latency")
    parser.add_argument(
        "--lead",
        type=float,
        default=None,
        help="call.audio_lead_secs for Convene's runs (default: prompts/pipeline.yaml's)",
    )
    parser.add_argument(
        "--stages-only", action="store_true", help="only the stage shares, no streamed turns"
    )
    parser.add_argument(
        "--compare",
        choices=sorted(COMPARED),
        help="knob off (A) vs on (B), interleaved calls: turn.analyzer or stt.quick_model",
    )
    parser.add_argument("--rounds", type=int, default=2, help="--compare: A, B pairs")
    args = parser.parse_args()
    if args.stages_only:
        args.turns, args.convene_only = 0, True
    if args.per_turn:
        import logging

        logging.basicConfig(format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("processors").setLevel(logging.DEBUG)
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    home = Path(tempfile.mkdtemp(prefix="convene-bench-"))
    token = secrets.token_hex(8)
    settings = Settings.of(convene_home=home, twilio_auth_token=SecretStr(token), public_host=None)
    runtime = await Runtime.start(settings)
    agent = runtime.prompts.agent.model_copy(update={"participants": ["Tom", "Priya"]})
    runtime.prompts = runtime.prompts.model_copy(update={"agent": agent})
    if args.lead is not None:
        knobs = runtime.prompts.pipeline
        call = knobs.call.model_copy(update={"audio_lead_secs": args.lead})
        runtime.prompts = runtime.prompts.model_copy(
            update={"pipeline": knobs.model_copy(update={"call": call})}
        )
    lead = runtime.prompts.pipeline.call.audio_lead_secs
    ahead: dict[str, list[float]] = {"convene": [], "bare pipecat": []}
    series = "bench-series"
    questions = [speech_ulaw(q) for q in QUESTIONS]
    try:
        async with (
            minted_token(runtime, name="voice-to-voice benchmark") as api_token,
            serve_in_process(create_app(runtime=runtime)) as url,
        ):
            from server.simulate import simulate_call

            with tempfile.TemporaryDirectory() as tmp:
                import soundfile as sf

                from processors.piper_voice import synthesize_meeting

                seed, rate = synthesize_meeting(SEED)
                seed_wav = Path(tmp) / "seed.wav"
                sf.write(seed_wav, seed, rate)
                await simulate_call(
                    seed_wav,
                    base_url=url,
                    series=series,
                    meeting_date=dt.date(2026, 11, 17),
                    speed=0,
                    auth_token=token,
                    api_token=api_token,
                )
            if args.compare:
                await compare(
                    runtime,
                    url,
                    series,
                    token,
                    questions,
                    what=args.compare,
                    rounds=args.rounds,
                    turns=args.turns,
                    verbose=args.per_turn,
                )
                return
            ws, params, call_sid = await answered(url, series, token)
            RECENT.clear()
            convene = await run_turns(
                ws,
                questions,
                args.turns,
                params,
                label="convene",
                verbose=args.per_turn,
                call_sid=call_sid,
                ahead_ms=ahead["convene"],
            )
            stored = await stored_latencies(runtime, url, api_token, call_sid)
            if args.per_turn:
                shown = ", ".join(f"{secs * 1000:.0f}" for secs in stored)
                print(f"  convene stored replies (ms): {shown}")
            service_metrics = {
                f"{kind} {name}": statistics.median(values)
                for (kind, name), values in sorted(RECENT.items())
                if values
            }
            # The same pipeline without speculation: the turn is transcribed after the VAD's
            # end-of-turn silence, as Pipecat's segmented STT does.
            saved = runtime.prompts
            vad = saved.pipeline.vad.model_copy(update={"pause_secs": 0.0})
            runtime.prompts = saved.model_copy(
                update={"pipeline": saved.pipeline.model_copy(update={"vad": vad})}
            )
            no_spec: list[float] = []
            try:
                if not args.convene_only:
                    ws, params, call_sid = await answered(url, series, token)
                    no_spec = await run_turns(
                        ws,
                        questions,
                        args.turns,
                        params,
                        label="no-spec",
                        verbose=args.per_turn,
                        call_sid=call_sid,
                    )
            finally:
                runtime.prompts = saved
        bare: list[float] = []
        if not args.convene_only:
            async with serve_in_process(bare_app(runtime)) as url:
                bare = await run_turns(
                    url.replace("http", "ws") + "/twilio/media",
                    questions,
                    args.turns,
                    {},
                    label="bare",
                    verbose=args.per_turn,
                    ahead_ms=ahead["bare pipecat"],
                )
        shares = await stage_shares(runtime, questions, series)
    finally:
        await runtime.close()
    print(
        f"voice-to-voice latency, {args.turns} turns each, real-time streaming over the Twilio"
        " websocket, as the caller hears it: last voiced frame of the question sent -> first"
        " voiced reply frame received, at the client"
    )
    rows = (
        ("convene", convene),
        ("convene, stored replies", stored),
        ("convene, no speculation", no_spec),
        ("bare pipecat", bare),
    )
    for name, values in rows:
        if values:
            print(
                f"  {name:<24} p50 {pct(values, 0.5) * 1000:6.0f} ms   p95 {pct(values, 0.95) * 1000:6.0f} ms   (answered {len(values)}/{args.turns})"
            )
        else:
            print(f"  {name:<24} no replies")
    if convene and bare:
        print(f"  ratio convene/bare p50: {pct(convene, 0.5) / pct(bare, 0.5):.2f}")
    print(
        "reply audio queued at the client when each frame arrived (headroom against jitter;"
        f" Convene's call.audio_lead_secs {lead:g}):"
    )
    for name, values in ahead.items():
        if values:
            print(
                f"  {name:<24} p10 {pct(values, 0.1):6.0f} ms   p50 {pct(values, 0.5):6.0f} ms"
                f"   ({len(values)} frames)"
            )
    if no_spec and bare:
        print(f"  ratio convene-no-speculation/bare p50: {pct(no_spec, 0.5) / pct(bare, 0.5):.2f}")
    print("stage shares (medians, measured beside the run on the same audio):")
    for stage, secs in shares.items():
        print(f"  {stage:<18} {secs * 1000:6.0f} ms")
    print("Pipecat service metrics in Convene's run (medians; processing = work per call):")
    for name, secs in service_metrics.items():
        print(f"  {name:<45} {secs * 1000:6.0f} ms")
    print("targets (issue 16, at the caller's ear): p50 <= 700 ms, p95 <= 1000 ms")


if __name__ == "__main__":
    asyncio.run(main())
