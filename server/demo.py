"""`convene demo`: two meetings of one series, spoken offline with Piper, through the real call
path. The first has promises; the second a status update and "Convene, give me a progress
report", answered by voice on the call. Shows transcripts, tasks and the reply; saves its audio.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import soundfile as sf
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core import clock
from core.settings import Settings
from processors.piper_voice import synthesize_meeting
from server.app import create_app
from server.local_server import serve_in_process
from server.runtime import Runtime
from server.simulate import simulate_call

MEETINGS: list[tuple[str, dt.date, list[str]]] = [
    (
        "meeting-1",
        dt.date(2026, 11, 17),
        [
            "Good morning everyone, this is our weekly product sync.",
            "Tom, can you get the demo environment ready by Friday?",
            "Yes, I will have the demo environment ready by Friday.",
            "I will send the security review to legal by Thursday.",
            "Priya is going to update the pricing page next week.",
        ],
    ),
    (
        "meeting-2",
        dt.date(2026, 11, 24),
        [
            "Good morning, quick update: the demo environment is ready.",
            "The security review is not done yet, I will send it to legal by Wednesday.",
            "Convene, give me a progress report.",
        ],
    ),
]


def meeting_audio(home: Path, name: str, turns: list[str]) -> Path:
    """Synthesize a meeting recording once (cached under CONVENE_HOME/demo)."""
    path = home / "demo" / f"{name}.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        audio, rate = synthesize_meeting(turns)
        sf.write(path, audio, rate)
    return path


async def run_demo(settings: Settings, *, speed: float, console: Console) -> dict[str, Any]:
    token = secrets.token_hex(16)
    local = settings.updated(**{"twilio_auth_token": SecretStr(token), "public_host": None})
    series = f"demo-weekly-sync-{clock.now():%Y%m%d-%H%M%S}"
    demo_dir = local.convene_home / "demo"
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True
    ) as p:
        p.add_task("Starting embedded Postgres + Redis, loading Whisper base…", total=None)
        runtime = await Runtime.start(local)
        # The sample meeting's people: biases Whisper toward their names.
        agent = runtime.prompts.agent.model_copy(update={"participants": ["Tom", "Priya"]})
        runtime.prompts = runtime.prompts.model_copy(update={"agent": agent})
        p.add_task("Speaking the sample meetings with Piper…", total=None)
        audios = [
            await asyncio.to_thread(meeting_audio, local.convene_home, name, turns)
            for name, _, turns in MEETINGS
        ]
    results: list[dict[str, Any]] = []
    try:
        async with serve_in_process(create_app(runtime=runtime)) as base_url:
            for (name, date, _), audio in zip(MEETINGS, audios, strict=True):
                duration = sf.info(str(audio)).duration
                console.rule(f"[bold]{name}[/] · {date:%A %d %B %Y} · series {series}")
                result = await _stream_with_live_transcript(
                    base_url,
                    audio,
                    duration,
                    series=series,
                    date=date,
                    speed=speed,
                    token=token,
                    console=console,
                    record=demo_dir / f"{name}-bot-audio.wav",
                )
                results.append(result)
                _show_commitments(console, result)
            async with httpx.AsyncClient(timeout=10) as client:
                tasks = (await client.get(f"{base_url}/series/{series}/tasks")).json()["tasks"]
    finally:
        await runtime.close()
    _show_tasks(console, tasks)
    for reply in results[-1]["replies"]:
        console.print(f"\n[bold]Asked:[/] {reply['question']}")
        console.print(f"[bold]Convene said:[/] [magenta]{reply['answer']}[/]")
        # Both times are on the call's audio clock: a latency only at real-time pacing.
        latency = (
            reply["t_first_audio_ms"] - reply["t_question_end_ms"]
            if reply["t_first_audio_ms"] is not None and speed == 1
            else None
        )
        console.print(
            f"  ({reply['audio_ms'] / 1000:.1f} s of speech"
            + (
                f", first audio {latency} ms after the question ended"
                if latency is not None
                else ""
            )
            + ")"
        )
    reply_wav = demo_dir / "meeting-2-bot-audio.wav"
    console.print(f"\nThe bot's voice on the call: {reply_wav}")
    out = demo_dir / "last-demo.json"
    out.write_text(json.dumps({"series": series, "calls": results, "tasks": tasks}, indent=2))
    console.print(f"Everything is in Postgres; JSON written to {out}")
    return {"series": series, "calls": results, "tasks": tasks}


def _show_commitments(console: Console, result: dict[str, Any]) -> None:
    for c in result["commitments"]:
        due = f" (due {c['due']})" if c["due"] else ""
        label = {"commitment": "promise", "status_done": "done", "cancel": "cancelled"}[c["kind"]]
        console.print(f"  [yellow]{label}[/] {c['owner'] or 'someone'}: {c['action']}{due}")


def _show_tasks(console: Console, tasks: list[dict[str, Any]]) -> None:
    table = Table(title="Tasks of the series after both meetings")
    for column in ("owner", "action", "due", "status", "history"):
        table.add_column(column)
    for t in tasks:
        history = ", ".join(
            f"{h['change']} {h['meeting_date'] or ''}".strip() for h in t["history"]
        )
        table.add_row(t["owner"] or "?", t["action"], t["due"] or "-", t["status"], history)
    console.print(table)


async def _stream_with_live_transcript(
    base_url: str,
    audio: Path,
    duration: float,
    *,
    series: str,
    date: dt.date,
    speed: float,
    token: str,
    console: Console,
    record: Path,
) -> dict[str, Any]:
    call_ids: list[str] = []
    shown = 0
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:.1f} s"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Streaming the call", total=duration)
        call = asyncio.create_task(
            simulate_call(
                audio,
                base_url=base_url,
                series=series,
                meeting_date=date,
                speed=speed,
                auth_token=token,
                record_path=record,
                on_progress=lambda secs: progress.update(task, completed=min(secs, duration)),
                on_call_id=call_ids.append,
            )
        )
        async with httpx.AsyncClient(timeout=10) as client:
            while not call.done():
                await asyncio.sleep(0.5)
                if not call_ids:
                    continue
                response = await client.get(f"{base_url}/calls/{call_ids[0]}")
                if response.status_code != 200:
                    continue
                segments = response.json()["transcript"]
                for seg in segments[shown:]:
                    progress.console.print(
                        f"  [green]{seg['start_ms'] / 1000:5.1f}s[/] {seg['text']}"
                    )
                shown = max(shown, len(segments))
        result = await call
    for seg in result["transcript"][shown:]:
        console.print(f"  [green]{seg['start_ms'] / 1000:5.1f}s[/] {seg['text']}")
    return result
