"""`convene demo`: a sample meeting, spoken offline with Piper, through the real call path."""

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

from bot.speech import synthesize_meeting
from server.app import create_app
from server.local_server import serve_in_process
from server.runtime import Runtime
from server.settings import Settings
from server.simulate import simulate_call

SERIES = "demo-weekly-sync"
MEETING_DATE = dt.date(2026, 11, 24)
MEETING_1 = [
    "Good morning everyone, this is our weekly product sync.",
    "Tom, can you get the demo environment ready by Wednesday?",
    "Yes, I will have the demo environment ready by Wednesday.",
    "I will send the security review to legal by Friday.",
    "Priya is going to update the pricing page next week.",
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
    local = settings.model_copy(update={"twilio_auth_token": SecretStr(token), "public_host": None})
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True
    ) as p:
        p.add_task("Starting embedded Postgres + Redis, loading Whisper base…", total=None)
        runtime = await Runtime.start(local)
        # The sample meeting's people: biases Whisper toward their names.
        agent = runtime.prompts.agent.model_copy(update={"participants": ["Tom", "Priya"]})
        runtime.prompts = runtime.prompts.model_copy(update={"agent": agent})
        p.add_task("Speaking the sample meeting with Piper…", total=None)
        audio = await asyncio.to_thread(meeting_audio, local.convene_home, "meeting-1", MEETING_1)
    info = sf.info(str(audio))
    console.print(f"[bold]Meeting[/] {audio} ({info.duration:.1f} s) -> series [cyan]{SERIES}[/]")
    try:
        async with serve_in_process(create_app(runtime=runtime)) as base_url:
            result = await _stream_with_live_transcript(
                base_url, audio, info.duration, speed=speed, token=token, console=console
            )
    finally:
        await runtime.close()
    table = Table(title=f"Transcript of call {result['call_id']}")
    table.add_column("start", justify="right")
    table.add_column("end", justify="right")
    table.add_column("text")
    for seg in result["transcript"]:
        table.add_row(f"{seg['start_ms'] / 1000:.1f}s", f"{seg['end_ms'] / 1000:.1f}s", seg["text"])
    console.print(table)
    out = local.convene_home / "demo" / "last-call.json"
    out.write_text(json.dumps(result, indent=2))
    console.print(f"Stored in Postgres; JSON written to {out}")
    return result


async def _stream_with_live_transcript(
    base_url: str, audio: Path, duration: float, *, speed: float, token: str, console: Console
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
                series=SERIES,
                meeting_date=MEETING_DATE,
                speed=speed,
                auth_token=token,
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
        return await call
