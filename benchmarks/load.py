"""Many calls on one box: N simultaneous real-time calls against one `convene serve`.

    uv run python benchmarks/load.py [--n 1,2,4,8,16] [--stt local|remote] [--json]

Each call is a Twilio Media Streams client (server/simulator.py: real-time 20 ms frames, marks
echoed, `clear` honoured) answered by /twilio/voice as Twilio would be, streaming the same
meeting recording (spoken with Piper, as `convene demo` does) and then asking one addressed
question. The server is a `convene serve` subprocess (its own CPUs, its own event loop; the
clients and the loopback Whisper server run in this process), on a Postgres this benchmark
starts (embedded) so that it can read when each segment was stored.

`--stt local`: the server's own Whisper (CONVENE_WHISPER_MODEL, the process's one queue).
`--stt remote`: `stt.provider: whisper-remote` against a loopback OpenAI-compatible server
(tests/fakes/whisper_server.py) that answers a segment it has heard before in 50 ms: a warm-up
call, not counted, transcribes each segment once; what the server then costs is the pipeline's
own. Segments the warm-up did not cover are transcribed when they come (counted: `stt_misses`).
Either way a first call, not counted, warms the server up.

Per N:
- completeness: each call's stored transcript against the N = 1 call's (WER; 0 = the same
  words), and against the script the meeting was spoken from
- segment end -> stored: from the instant the segment's last audio was sent (the client sends
  in real time) to its row's `created_at` in Postgres, p50/p95/max over every segment
- voice-to-voice under load: the question's last voiced frame sent -> the first voiced reply
  frame received, at the client, p50/p95 over the N calls
- calls completed: seconds from a call's `stop` to its `completed_at`, max
- server CPU: the `convene serve` process and its children (embedded Redis) over the calls,
  percent of one core, in total and per call; RSS: the peak during the calls, and
  (peak - idle) / N per call
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402

from benchmarks.voice_to_voice import answered, one_turn, pct, speech_ulaw  # noqa: E402
from bot.models import resolve_whisper_model, shared_whisper_model  # noqa: E402
from memory.embedded import EmbeddedPostgres  # noqa: E402
from server.audio import to_twilio_ulaw  # noqa: E402
from server.demo import MEETINGS, meeting_audio  # noqa: E402
from server.local_server import serve_in_process  # noqa: E402
from server.simulate import wait_completed  # noqa: E402
from server.simulator import TwilioStreamClient  # noqa: E402
from tests.fakes.whisper_server import FakeWhisperServer  # noqa: E402
from tests.speech import wer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# One meeting recording, about 45 s: the demo's two meetings' talk (not their question) and
# some more of the same kind.
TURNS: list[tuple[str, str]] = [  # (voice, text): server/voices.py
    *MEETINGS[0][2],
    *MEETINGS[1][2][:-1],
    (
        "piper",
        "The customer interviews went well, three of the five teams want the export feature first.",
    ),
    ("piper@1.25", "Marketing needs the launch copy before the end of the month."),
    ("piper@0.78", "I can draft the launch copy and share it on Monday."),
    ("piper", "Let's keep the retrospective short this time and move on to the budget."),
]
QUESTION = "Convene, what is Tom working on?"
SERIES = "load-bench"
REMOTE_REPLY_SECS = 0.05
MULAW_SILENCE = b"\xff"  # one 8 kHz mu-law sample of silence


@dataclass
class CallFigures:
    call_id: str
    transcript: str
    lags: list[float]  # seconds, segment end sent -> stored
    voice_to_voice: float | None
    completed_after: float | None
    asked: bool = True


@dataclass
class RunFigures:
    n: int
    calls: list[CallFigures] = field(default_factory=list)
    cpu_percent: float = 0.0
    rss_peak_mb: float = 0.0
    rss_idle_mb: float = 0.0
    wall_secs: float = 0.0
    stt_misses: int = 0

    def summary(self, reference: str | None) -> dict[str, Any]:
        lags = [lag for call in self.calls for lag in call.lags]
        v2v = [c.voice_to_voice for c in self.calls if c.voice_to_voice is not None]
        done = [c.completed_after for c in self.calls if c.completed_after is not None]
        wers = [wer(reference, c.transcript) for c in self.calls] if reference else []
        script = " ".join(text for _, text in TURNS)
        script_wers = [wer(script, c.transcript) for c in self.calls]
        return {
            "n": self.n,
            "wer_vs_n1_max": round(max(wers), 3) if wers else None,
            "wer_vs_n1_mean": round(statistics.mean(wers), 3) if wers else None,
            # Against what was said: N = 1's own slips (a turn heard twice) are not a reference.
            "wer_vs_script_max": round(max(script_wers), 3) if script_wers else None,
            "segments": len(lags),
            "lag_p50_s": round(pct(lags, 0.5), 2) if lags else None,
            "lag_p95_s": round(pct(lags, 0.95), 2) if lags else None,
            "lag_max_s": round(max(lags), 2) if lags else None,
            "v2v_p50_ms": round(pct(v2v, 0.5) * 1000) if v2v else None,
            "v2v_p95_ms": round(pct(v2v, 0.95) * 1000) if v2v else None,
            "answered": f"{len(v2v)}/{sum(c.asked for c in self.calls)}",
            "completed_after_max_s": round(max(done), 1) if done else None,
            "cpu_percent": round(self.cpu_percent),
            "cpu_percent_per_call": round(self.cpu_percent / self.n, 1),
            "rss_peak_mb": round(self.rss_peak_mb),
            "rss_per_call_mb": round(max(0.0, self.rss_peak_mb - self.rss_idle_mb) / self.n, 1),
            "stt_misses": self.stt_misses,
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prompts_for(home: Path, stt: str, workers: int | None = None) -> Path:
    """A copy of prompts/ for the server: the meeting's people named, the STT chosen, and a
    queue bound no run reaches (a dropped speculation would change what is measured)."""
    target = home / "prompts"
    shutil.copytree(REPO / "prompts", target)
    agent = yaml.safe_load((target / "agent.yaml").read_text())
    agent["participants"] = ["Tom", "Priya"]
    (target / "agent.yaml").write_text(yaml.safe_dump(agent))
    pipeline = yaml.safe_load((target / "pipeline.yaml").read_text())
    pipeline["stt"]["provider"] = "whisper-local" if stt == "local" else "whisper-remote"
    if workers is not None:
        pipeline["stt"]["workers"] = workers
    (target / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    return target


@contextlib.asynccontextmanager
async def convene_serve(env: dict[str, str], port: int, log: Path) -> AsyncIterator[int]:
    """`convene serve` on `port` until the block exits; yields its pid once it answers."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from server.cli import main; main()",
            "serve",
            "--port",
            str(port),
            env={**os.environ, **env},
            cwd=REPO,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            # Start-up (embedded Redis, migrations, Whisper load and warm-up) ends when the
            # socket answers: a process outside this one has no event to wait on.
            async with httpx.AsyncClient(timeout=5) as http:
                deadline = time.monotonic() + 180
                while True:
                    if proc.returncode is not None:
                        raise RuntimeError(f"convene serve exited (its output: {log})")
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"http://127.0.0.1:{port}/health")).status_code < 500:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError("convene serve did not start within 180 s")
                    await asyncio.sleep(0.25)
            yield proc.pid
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def cpu_secs(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


async def one_call(
    base_url: str,
    auth_token: str,
    api_token: str,
    pool: asyncpg.Pool,
    meeting: bytes,
    question: bytes,
    ask: bool = True,
) -> CallFigures:
    ws, params, call_sid = await answered(base_url, SERIES, auth_token)
    call_id = params["call_id"]
    async with TwilioStreamClient(ws, custom_parameters=params, call_sid=call_sid) as client:
        await client.send_connected()
        await client.send_start()
        t0 = time.time()  # audio at offset x ms is sent at t0 + x (real time, one cadence)
        await client.stream_audio(meeting, speed=1.0)
        if ask:
            latency: float | None = await one_turn(client, question)
        else:  # listening only: room tone while the others ask, then hang up
            latency = None
            await client.stream_audio(MULAW_SILENCE * (len(question) + 3 * 8000), speed=1.0)
        await client.send_stop()
        stopped = time.time()
        await client.wait_closed(timeout=300)
    async with httpx.AsyncClient(
        timeout=30, headers={"Authorization": f"Bearer {api_token}"}
    ) as http:
        call = await wait_completed(http, base_url, call_id, 600)
    rows = await pool.fetch(
        "SELECT start_ms, end_ms, text, created_at FROM transcript_segments"
        " WHERE call_id = $1 ORDER BY seq",
        uuid.UUID(call_id),
    )
    completed = call.get("completed_at")
    return CallFigures(
        call_id=call_id,
        # The meeting's words only (segments starting within the recording): a call that only
        # listened has no question, and its transcript is compared with those that asked.
        transcript=" ".join(r["text"] for r in rows if r["start_ms"] < len(meeting) / 8),
        lags=[r["created_at"].timestamp() - (t0 + r["end_ms"] / 1000) for r in rows],
        voice_to_voice=latency,
        completed_after=(
            dt.datetime.fromisoformat(completed).timestamp() - stopped if completed else None
        ),
        asked=ask,
    )


async def run_n(
    n: int,
    pid: int,
    base_url: str,
    auth_token: str,
    api_token: str,
    pool: asyncpg.Pool,
    audio: tuple[bytes, bytes],
    fake: FakeWhisperServer | None,
    askers: int | None = None,
) -> RunFigures:
    proc = psutil.Process(pid)
    figures = RunFigures(n=n, rss_idle_mb=proc.memory_info().rss / 2**20)
    misses = fake.misses if fake else 0
    done = asyncio.Event()

    async def sample_rss() -> None:
        # A sampler, not a wait: RSS has no event; read it every half second while calls run.
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                figures.rss_peak_mb = max(figures.rss_peak_mb, proc.memory_info().rss / 2**20)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.5)

    sampler = asyncio.create_task(sample_rss())
    cpu0, wall0 = cpu_secs(proc), time.monotonic()
    try:
        figures.calls = list(
            await asyncio.gather(
                *(
                    one_call(
                        base_url,
                        auth_token,
                        api_token,
                        pool,
                        *audio,
                        ask=askers is None or i < askers,
                    )
                    for i in range(n)
                )
            )
        )
    finally:
        figures.wall_secs = time.monotonic() - wall0
        figures.cpu_percent = (cpu_secs(proc) - cpu0) / figures.wall_secs * 100
        done.set()
        await sampler
    figures.stt_misses = (fake.misses - misses) if fake else 0
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1,2,4,8,16", help="simultaneous calls, comma-separated")
    parser.add_argument("--stt", choices=("local", "remote"), default="local")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--askers",
        type=int,
        default=None,
        help="only this many calls ask the question at the end (default: every call); the"
        " others listen, then hang up",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="stt.workers for the server (default: its own)"
    )
    args = parser.parse_args()
    ns = sorted({int(n) for n in args.n.split(",")})
    if 1 not in ns:
        ns.insert(0, 1)  # the reference transcript
    home = Path(tempfile.mkdtemp(prefix="convene-load-"))
    auth_token = secrets.token_hex(16)
    api_token = secrets.token_hex(16)  # CONVENE_BOOTSTRAP_TOKEN: the benchmark's API token
    postgres = EmbeddedPostgres(home / "postgres")
    dsn = await asyncio.to_thread(postgres.start)
    meeting_path = await asyncio.to_thread(meeting_audio, home, "load-meeting", TURNS)
    audio = (await asyncio.to_thread(to_twilio_ulaw, meeting_path), speech_ulaw(QUESTION))
    port = free_port()
    env = {
        "CONVENE_HOME": str(home / "server"),
        "CONVENE_PROMPTS_DIR": str(prompts_for(home, args.stt, args.workers)),
        "DATABASE_URL": dsn,
        "TWILIO_AUTH_TOKEN": auth_token,
        "CONVENE_BOOTSTRAP_TOKEN": api_token,
        "CONVENE_MAX_CALLS": str(max(ns) + 2),
        "CONVENE_RATE_LIMIT_IP": "100000/minute",
        "CONVENE_RATE_LIMIT_TOKEN": "100000/minute",
        "CONVENE_LOG_FORMAT": "text",
    }
    fake: FakeWhisperServer | None = None
    results: dict[int, RunFigures] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            if args.stt == "remote":
                model_dir = resolve_whisper_model("packaged:base", home / "models")
                model = shared_whisper_model(model_dir, device="cpu", compute_type="int8")
                fake = FakeWhisperServer(model, memo=True, reply_secs=REMOTE_REPLY_SECS)
                env["CONVENE_WHISPER_REMOTE_URL"] = await stack.enter_async_context(
                    serve_in_process(fake.app())
                )
            pid = await stack.enter_async_context(
                convene_serve(env, port, home / "convene-serve.log")
            )
            pool = await stack.enter_async_context(asyncpg.create_pool(dsn, min_size=1))
            base_url = f"http://127.0.0.1:{port}"
            # A warm-up call, not counted: first-call allocations (the RSS baseline is read
            # after it) and, with remote STT, every segment transcribed once.
            await run_n(1, pid, base_url, auth_token, api_token, pool, audio, fake)
            if fake is not None:
                log(args, f"warm-up: {len(fake.transcripts)} segments transcribed")
            for n in ns:
                log(args, f"N = {n}: {n} calls of {len(audio[0]) / 8000:.0f} s + a question")
                results[n] = await run_n(
                    n, pid, base_url, auth_token, api_token, pool, audio, fake, args.askers
                )
                log(args, json.dumps(results[n].summary(results[1].calls[0].transcript)))
    finally:
        await asyncio.to_thread(postgres.stop)
    shutil.rmtree(home, ignore_errors=True)  # kept (with convene-serve.log) when a run failed
    reference = results[1].calls[0].transcript
    report = {
        "stt": args.stt,
        "cpus": len(os.sched_getaffinity(0)),
        "meeting_secs": round(len(audio[0]) / 8000, 1),
        "remote_reply_ms": REMOTE_REPLY_SECS * 1000 if args.stt == "remote" else None,
        "askers": args.askers,
        "stt_workers": args.workers,
        "runs": [results[n].summary(reference) for n in ns],
    }
    if args.json:
        report["calls"] = {n: [asdict(c) for c in results[n].calls] for n in ns}
        print(json.dumps(report, indent=2))
        return
    print(
        f"load: stt {args.stt}, {report['cpus']} CPUs, one {report['meeting_secs']} s meeting "
        f"+ one addressed question in {'every call' if args.askers is None else f'{args.askers} call(s)'}, "
        f"real time, stt.workers {args.workers or 'default'}"
    )
    header = (
        f"{'N':>3} {'WER max':>8} {'script':>7} {'lag p50':>8} {'p95':>6} {'max':>6} {'v2v p50':>8} "
        f"{'p95':>6} {'done+':>6} {'CPU %':>6} {'/call':>6} {'RSS MB':>7} {'/call':>6}"
    )
    print(header)
    for row in report["runs"]:
        print(
            f"{row['n']:>3} {row['wer_vs_n1_max']:>8} {row['wer_vs_script_max']:>7} "
            f"{row['lag_p50_s']:>8} "
            f"{row['lag_p95_s']:>6} {row['lag_max_s']:>6} {row['v2v_p50_ms']:>8} "
            f"{row['v2v_p95_ms']:>6} {row['completed_after_max_s']:>6} {row['cpu_percent']:>6} "
            f"{row['cpu_percent_per_call']:>6} {row['rss_peak_mb']:>7} "
            f"{row['rss_per_call_mb']:>6}"
        )
    print(
        "WER max (the meeting's words, not the question): against the N = 1 call's transcript, and against the script; lag: segment end sent -> row stored (s); "
        "v2v: question end sent -> first voiced reply frame received (ms); done+: stop -> "
        "completed_at (s); CPU: % of one core, convene serve and its children"
    )


def log(args: argparse.Namespace, line: str) -> None:
    print(line, file=sys.stderr if args.json else sys.stdout, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
