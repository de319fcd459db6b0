"""The `convene` command."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console

from server.errors import ConveneError
from server.logs import configure_logging
from server.settings import Settings

app = typer.Typer(
    name="convene",
    help="Convene: an AI meeting participant that joins by phone.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO to stderr.")]


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        err.print(f"[red]Invalid settings:[/] {exc}")
        raise typer.Exit(2) from exc


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/] {exc}")
    return typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    verbose: Verbose = False,
) -> None:
    """Run the dialer, Twilio webhooks, media socket and REST API (uvicorn).

    Uses embedded Postgres/Redis unless DATABASE_URL / REDIS_URL are set. Point your Twilio
    number's voice webhook at https://PUBLIC_HOST/twilio/voice.
    """
    import uvicorn

    from server.app import create_app

    configure_logging("INFO" if verbose else "WARNING")
    settings = _settings()
    err.print(
        f"Convene listening on http://{host}:{port} (public host: {settings.public_host or 'unset'})"
    )
    uvicorn.run(
        create_app(settings=settings),
        host=host,
        port=port,
        log_level="info" if verbose else "warning",
    )


@app.command()
def simulate(
    audio: Annotated[
        Path, typer.Argument(help="A recording (wav, flac, ogg...) to stream as a call.")
    ],
    series: Annotated[str | None, typer.Option(help="Meeting series key.")] = None,
    date: Annotated[
        str | None, typer.Option(help="Meeting date, YYYY-MM-DD (default today).")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Pacing: 1 = real time, 4 = four times faster, 0 = unpaced.")
    ] = 1.0,
    url: Annotated[
        str | None, typer.Option(help="Stream to a running `convene serve` (http://host:port).")
    ] = None,
    record: Annotated[
        Path | None, typer.Option(help="Save the audio the bot sent back to this WAV.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    verbose: Verbose = False,
) -> None:
    """Stream AUDIO into Convene over the Twilio Media Streams protocol, print its transcript."""
    from server.simulate import simulate_call

    configure_logging("INFO" if verbose else "WARNING")
    if not audio.is_file():
        err.print(f"[red]error:[/] {audio}: no such file")
        raise typer.Exit(2)
    try:
        meeting_date = dt.date.fromisoformat(date) if date else None
    except ValueError as exc:
        err.print(f"[red]error:[/] --date {date!r}: expected YYYY-MM-DD")
        raise typer.Exit(2) from exc
    if speed < 0:
        err.print("[red]error:[/] --speed must be >= 0")
        raise typer.Exit(2)

    async def go() -> dict[str, object]:
        if url:
            token = os.environ.get("TWILIO_AUTH_TOKEN")
            return await simulate_call(
                audio,
                base_url=url,
                series=series,
                meeting_date=meeting_date,
                speed=speed,
                auth_token=token,
                record_path=record,
            )
        from server.app import create_app
        from server.local_server import serve_in_process
        from server.runtime import Runtime

        token = secrets.token_hex(16)
        settings = _settings().model_copy(
            update={"twilio_auth_token": SecretStr(token), "public_host": None}
        )
        runtime = await Runtime.start(settings)
        try:
            async with serve_in_process(create_app(runtime=runtime)) as base_url:
                return await simulate_call(
                    audio,
                    base_url=base_url,
                    series=series,
                    meeting_date=meeting_date,
                    speed=speed,
                    auth_token=token,
                    record_path=record,
                )
        finally:
            await runtime.close()

    try:
        result = asyncio.run(go())
    except (ConveneError, OSError, ValueError) as exc:
        raise _fail(exc) from exc
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    out = Console()
    out.print(f"call {result['call_id']} (series {result['series'] or '-'})")
    for seg in result["transcript"]:  # type: ignore[attr-defined]
        out.print(f"[{seg['start_ms'] / 1000:7.2f}s – {seg['end_ms'] / 1000:7.2f}s] {seg['text']}")


@app.command()
def demo(
    speed: Annotated[float, typer.Option(help="Pacing of the sample call (1 = real time).")] = 2.0,
    verbose: Verbose = False,
) -> None:
    """Run a sample meeting through the real call path, offline, and show the live transcript."""
    from server.demo import run_demo

    configure_logging("INFO" if verbose else "ERROR")
    console = Console()
    try:
        asyncio.run(run_demo(_settings(), speed=speed, console=console))
    except ConveneError as exc:
        raise _fail(exc) from exc


def main() -> None:
    app()
