"""`convene demo`: two meetings of one series, spoken offline with Piper, through the real call
path. The first has promises; the second a status update and "Convene, give me a progress
report", answered by voice on the call. Shows transcripts, tasks and the reply; saves its audio.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
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
from server.app import create_app
from server.local_server import minted_token, serve_in_process
from server.runtime import Runtime
from server.simulate import simulate_call
from server.voices import voice_meeting

# Three people, three voices (server/voices.py): Maya chairs (the packaged Piper voice), Tom
# and Priya speak with that voice moved lower and higher, which a speaker encoder hears as
# other voices. Tom is named by the request put to him and his answer, Maya and Priya by their
# introductions; in the second meeting nobody says who they are: their voices are remembered.
MAYA, TOM, PRIYA = "piper", "piper@0.78", "piper@1.25"
MEETINGS: list[tuple[str, dt.date, list[tuple[str, str]]]] = [
    (
        "meeting-1",
        dt.date(2026, 11, 17),
        [
            (MAYA, "Good morning everyone, this is Maya, welcome to our weekly product sync."),
            (MAYA, "Tom, can you get the demo environment ready by Friday?"),
            (TOM, "Yes, I will have the demo environment ready by Friday."),
            (TOM, "I will send the security review to legal by Thursday."),
            (PRIYA, "Hi, this is Priya. I will update the pricing page next week."),
        ],
    ),
    (
        "meeting-2",
        dt.date(2026, 11, 24),
        [
            (TOM, "Good morning, quick update: the demo environment is ready."),
            (TOM, "The security review is not done yet, I will send it to legal by Wednesday."),
            (MAYA, "Convene, give me a progress report."),
        ],
    ),
]


def meeting_audio(home: Path, name: str, turns: list[tuple[str, str]]) -> Path:
    """Synthesize a meeting recording once (cached under CONVENE_HOME/demo, by its script)."""
    script = hashlib.sha256(json.dumps(turns).encode()).hexdigest()[:10]
    path = home / "demo" / f"{name}-{script}.wav"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        voice_meeting(path, turns, pause_secs=0.9, lead_secs=0.3)
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
        agent = runtime.prompts.agent.model_copy(update={"participants": ["Maya", "Tom", "Priya"]})
        runtime.prompts = runtime.prompts.model_copy(update={"agent": agent})
        p.add_task("Speaking the sample meetings (three voices)…", total=None)
        audios = [
            await asyncio.to_thread(meeting_audio, local.convene_home, name, turns)
            for name, _, turns in MEETINGS
        ]
    results: list[dict[str, Any]] = []
    try:
        async with (
            minted_token(runtime, name="convene demo") as api_token,
            serve_in_process(create_app(runtime=runtime)) as base_url,
        ):
            auth = {"Authorization": f"Bearer {api_token}"}
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
                    api_token=api_token,
                    console=console,
                    record=demo_dir / f"{name}-bot-audio.wav",
                )
                results.append(result)
                _show_commitments(console, result)
            async with httpx.AsyncClient(timeout=10, headers=auth) as client:
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


def _line(seg: dict[str, Any]) -> str:
    """A live transcript line: when, who (their name when known, else their voice's label)."""
    who = seg.get("person") or seg.get("speaker") or "?"
    return f"  [green]{seg['start_ms'] / 1000:5.1f}s[/] [cyan]{who:>6}[/] {seg['text']}"


async def _stream_with_live_transcript(
    base_url: str,
    audio: Path,
    duration: float,
    *,
    series: str,
    date: dt.date,
    speed: float,
    token: str,
    api_token: str,
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
                api_token=api_token,
                record_path=record,
                on_progress=lambda secs: progress.update(task, completed=min(secs, duration)),
                on_call_id=call_ids.append,
            )
        )
        auth = {"Authorization": f"Bearer {api_token}"}
        async with httpx.AsyncClient(timeout=10, headers=auth) as client:
            while not call.done():
                await asyncio.sleep(0.5)
                if not call_ids:
                    continue
                response = await client.get(f"{base_url}/calls/{call_ids[0]}")
                if response.status_code != 200:
                    continue
                segments = response.json()["transcript"]
                for seg in segments[shown:]:
                    progress.console.print(_line(seg))
                shown = max(shown, len(segments))
        result = await call
    for seg in result["transcript"][shown:]:
        console.print(_line(seg))
    return result
