"""The `convene` command."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console

from core.errors import ConveneError
from core.identifiers import E164_PATTERN, SERIES_KEY_RULE, valid_series_key
from core.settings import Settings
from memory.access import SCOPES, AccessStore, TokenRow
from server.logs import configure_logging

app = typer.Typer(
    name="convene",
    help="Convene: an AI meeting participant that joins by phone.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)  # errors stay one line: greppable, copyable

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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unprotected(settings: Settings) -> list[str]:
    """Why a server on a public interface would be open to strangers (empty: it is not)."""
    from server.runtime import open_store

    reasons = []
    if settings.twilio.dev_skip_signature:
        reasons.append("CONVENE_DEV_SKIP_TWILIO_SIGNATURE is set (webhooks unverified)")
    if settings.twilio.auth_token is None:
        reasons.append("TWILIO_AUTH_TOKEN is not set (webhooks cannot be verified)")
    security = settings.security
    if security.bootstrap_token is None and not security.jwks_url:

        async def live_tokens() -> int:
            store, embedded = await open_store(settings)
            try:
                return await AccessStore(store.pool).live_tokens()
            finally:
                await store.close()
                if embedded is not None:
                    embedded.stop()

        if asyncio.run(live_tokens()) == 0:
            reasons.append(
                "no API token exists (`convene token create`), nor CONVENE_BOOTSTRAP_TOKEN "
                "or CONVENE_JWKS_URL"
            )
    return reasons


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    insecure_dev: Annotated[
        bool,
        typer.Option(
            "--insecure-dev",
            help="Development only: serve the REST API without authentication, and on a "
            "non-loopback host even when nothing protects it.",
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Run the dialer, Twilio webhooks, media socket and REST API (uvicorn).

    Uses embedded Postgres/Redis unless DATABASE_URL / REDIS_URL are set. Point your Twilio
    number's voice webhook at https://PUBLIC_HOST/twilio/voice. The REST API takes bearer
    tokens (`convene token create`); on a non-loopback --host it refuses to start while no
    token, CONVENE_BOOTSTRAP_TOKEN or CONVENE_JWKS_URL is configured (README: Security).
    """
    import uvicorn

    from server.app import INSECURE_BANNER, create_app

    configure_logging("INFO" if verbose else "WARNING")
    settings = _settings()
    if insecure_dev:
        settings = settings.updated(convene_insecure_dev=True)
    if settings.security.insecure_dev:
        err.print(f"[bold red]{INSECURE_BANNER}[/]", highlight=False)
    elif not _is_loopback(host):
        try:
            reasons = _unprotected(settings)
        except ConveneError as exc:
            raise _fail(exc) from exc
        if reasons:
            err.print(
                f"[red]error:[/] refusing to serve on {host}, a non-loopback address: "
                + "; ".join(reasons)
                + " (or --insecure-dev, for development only)",
                highlight=False,
            )
            raise typer.Exit(2)
    # Bad YAML, an unknown provider or a missing key: say so here, before any server starts.
    from core.errors import ConfigError
    from core.prompts import load_prompts
    from server.runtime import check_provider_settings

    try:
        check_provider_settings(settings, load_prompts(settings.convene_prompts_dir))
    except ConfigError as exc:
        from rich.markup import escape

        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    err.print(
        f"Convene listening on http://{host}:{port} (public host: {settings.twilio.public_host or 'unset'})"
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
        str | None,
        typer.Option(
            help="Stream to a running `convene serve` (http://host:port); its API is read "
            "with the token in CONVENE_API_TOKEN (read scope)."
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option("--record-replies", "--record", help="Save what the bot said (8 kHz WAV)."),
    ] = None,
    caller: Annotated[
        str,
        typer.Option(
            "--from",
            help="The caller's number (E.164) the call comes from; a person registered with "
            "it (POST /people) is greeted with their open items.",
        ),
    ] = "+15550100001",
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
    if not re.fullmatch(E164_PATTERN, caller):
        err.print(f"[red]error:[/] --from {caller!r}: expected an E.164 number, e.g. +14155550100")
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
                api_token=os.environ.get("CONVENE_API_TOKEN"),
                record_path=record,
                from_number=caller,
            )
        from server.app import create_app
        from server.local_server import minted_token, serve_in_process
        from server.runtime import Runtime

        token = secrets.token_hex(16)
        settings = _settings().updated(
            **{"twilio_auth_token": SecretStr(token), "public_host": None}
        )
        runtime = await Runtime.start(settings)
        try:
            async with (
                minted_token(runtime, name="convene simulate") as api_token,
                serve_in_process(create_app(runtime=runtime)) as base_url,
            ):
                return await simulate_call(
                    audio,
                    base_url=base_url,
                    series=series,
                    meeting_date=meeting_date,
                    speed=speed,
                    auth_token=token,
                    api_token=api_token,
                    record_path=record,
                    from_number=caller,
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
    """Two sample meetings through the real call path, offline: live transcripts, the tasks
    across them, and the spoken answer to "Convene, give me a progress report" (saved as WAV).
    """
    from server.demo import run_demo

    configure_logging("INFO" if verbose else "ERROR")
    console = Console()
    try:
        asyncio.run(run_demo(_settings(), speed=speed, console=console))
    except ConveneError as exc:
        raise _fail(exc) from exc


@app.command()
def extract(
    file: Annotated[
        str | None,
        typer.Argument(help="Transcript file, one `Speaker: text` per line; - for stdin."),
    ] = None,
    date: Annotated[
        str | None, typer.Option(help="Meeting date YYYY-MM-DD: due dates resolve against it.")
    ] = None,
    next_meeting: Annotated[
        str | None,
        typer.Option(
            "--next-meeting",
            help='The series\' next meeting YYYY-MM-DD: "for the next meeting" is due then.',
        ),
    ] = None,
    batch: Annotated[
        Path | None,
        typer.Option(help="JSONL: one {id, date, lines[, next_meeting]} per line."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    verbose: Verbose = False,
) -> None:
    """Find commitments (who promised what, by when) in a transcript, or in a batch of them.

    The extractor is prompts/pipeline.yaml's `extraction.backend`: by default the local model
    (started for the run; the rules answer a window it fails on, noted on stderr).
    With --batch, prints one {"id", "commitments"} per input line (or {"id", "error"} for a
    malformed line, also reported on stderr; the exit code is then 1).
    """
    configure_logging("INFO" if verbose else "WARNING")
    if batch is not None and not batch.is_file():
        err.print(f"[red]error:[/] {batch}: no such file")
        raise typer.Exit(2)
    text = ""
    meeting_date = dt.date.min
    next_date: dt.date | None = None
    if batch is None:
        if date is None:
            err.print("[red]error:[/] --date YYYY-MM-DD is required (due dates resolve against it)")
            raise typer.Exit(2)
        try:
            meeting_date = dt.date.fromisoformat(date)
        except ValueError as exc:
            err.print(f"[red]error:[/] --date {date!r}: expected YYYY-MM-DD")
            raise typer.Exit(2) from exc
        try:
            next_date = dt.date.fromisoformat(next_meeting) if next_meeting else None
        except ValueError as exc:
            err.print(f"[red]error:[/] --next-meeting {next_meeting!r}: expected YYYY-MM-DD")
            raise typer.Exit(2) from exc
        if file is None or file == "-":
            text = sys.stdin.read()
        else:
            path = Path(file)
            if not path.is_file():
                err.print(f"[red]error:[/] {path}: no such file")
                raise typer.Exit(2)
            text = path.read_text(encoding="utf-8")
        if not text.strip():
            err.print("note: the transcript is empty; no commitments")
    try:
        code = asyncio.run(
            _extract(
                _settings(),
                batch,
                text,
                meeting_date,
                file=file,
                as_json=as_json,
                next_meeting=next_date,
            )
        )
    except ConveneError as exc:
        raise _fail(exc) from exc
    raise typer.Exit(code)


async def _extract(
    settings: Settings,
    batch: Path | None,
    text: str,
    meeting_date: dt.date,
    *,
    file: str | None,
    as_json: bool,
    next_meeting: dt.date | None = None,
) -> int:
    from server.extract_cli import extract_lines, open_extractor, run_batch

    failed = 0
    async with open_extractor(settings) as extractor:
        if batch is not None:
            with batch.open(encoding="utf-8") as handle:
                async for result in run_batch(handle, extractor):
                    if result.error:
                        failed += 1
                        err.print(f"[red]error:[/] {batch}:{result.output['error']}")
                    if as_json:
                        sys.stdout.write(json.dumps(result.output) + "\n")
                        sys.stdout.flush()
                    elif not result.error:
                        _print_commitments(str(result.output["id"]), result.output["commitments"])
        else:
            found: list[dict[str, Any]] = []
            if text.strip():
                found = await extract_lines(
                    text.splitlines(),
                    meeting_date=meeting_date,
                    extractor=extractor,
                    next_meeting=next_meeting,
                )
            if as_json:
                sys.stdout.write(json.dumps({"commitments": found}) + "\n")
            else:
                _print_commitments(file or "stdin", found)
        if extractor.fallbacks:
            err.print(
                f"note: the LLM failed on {extractor.fallbacks} window(s); the rules answered "
                "for them"
            )
    return 1 if failed else 0


def _print_commitments(title: str, found: list[dict[str, object]]) -> None:
    out = Console()
    out.print(f"[bold]{title}[/]: {len(found)} found")
    for c in found:
        due = f" by {c['due']}" if c["due"] else ""
        out.print(f"  [{c['kind']}] {c['owner'] or '?'}: {c['action']}{due}")


@app.command()
def tasks(
    series: Annotated[str, typer.Option(help="Meeting series key.")],
    status: Annotated[str, typer.Option(help="open, done, cancelled or all.")] = "open",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List a series' tasks with their history (from Postgres: embedded unless DATABASE_URL)."""
    from server.runtime import open_store

    configure_logging("WARNING")
    if status not in ("open", "done", "cancelled", "all"):
        err.print(f"[red]error:[/] --status {status!r}: expected open, done, cancelled or all")
        raise typer.Exit(2)

    async def go() -> list[dict[str, object]] | None:
        store, embedded = await open_store(_settings())
        try:
            return await store.list_tasks(series, status=status)
        finally:
            await store.close()
            if embedded is not None:
                embedded.stop()

    try:
        found = asyncio.run(go())
    except ConveneError as exc:
        raise _fail(exc) from exc
    if found is None:
        err.print(f"[red]error:[/] no series {series!r}")
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps({"series": series, "tasks": found}) + "\n")
        return
    out = Console()
    out.print(f"[bold]{series}[/]: {len(found)} task(s) ({status})")
    for t in found:
        due = f" due {t['due']}" if t["due"] else ""
        out.print(f"  #{t['id']} [{t['status']}] {t['owner'] or '?'}: {t['action']}{due}")
        for h in t["history"]:  # type: ignore[attr-defined]
            out.print(f'      {h["meeting_date"] or ""} {h["change"]}: "{h["quote"]}"')


token_app = typer.Typer(
    help="API tokens: create (shown once), list, revoke. Stored hashed in Postgres.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")


async def _with_access(settings: Settings, work: Any) -> Any:
    from server.runtime import open_store

    store, embedded = await open_store(settings)
    try:
        return await work(AccessStore(store.pool))
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()


def _token_json(row: TokenRow) -> dict[str, object]:
    return row.as_json()


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what the token is for.")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: read, write (delete), dial, admin (all).")
    ] = "read",
    series: Annotated[
        list[str] | None,
        typer.Option("--series", help="Only this series (repeat for more); default: every one."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Make a token. It is printed once and stored only as a hash: keep it now."""
    configure_logging("WARNING")
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCOPES]
    if not wanted or unknown:
        err.print(f"[red]error:[/] --scopes {scopes!r}: expected some of {', '.join(SCOPES)}")
        raise typer.Exit(2)
    for key in series or []:
        if not valid_series_key(key):
            err.print(f"[red]error:[/] --series {key[:60]!r}: {SERIES_KEY_RULE}", highlight=False)
            raise typer.Exit(2)
    if not name.strip() or len(name) > 100:
        err.print("[red]error:[/] --name: 1-100 characters")
        raise typer.Exit(2)

    async def work(access: AccessStore) -> tuple[str, TokenRow]:
        made = await access.create_token(name=name, scopes=wanted, series=series or None)
        await access.audit(
            actor="cli", action="token.create", target=f"token:{made[1].id}", client=None
        )
        return made

    try:
        token, row = asyncio.run(_with_access(_settings(), work))
    except ConveneError as exc:
        raise _fail(exc) from exc
    if as_json:
        sys.stdout.write(json.dumps({"token": token, **_token_json(row)}) + "\n")
        return
    sys.stdout.write(token + "\n")
    err.print(
        f"token #{row.id} {row.name!r} ({', '.join(row.scopes)}"
        + (f"; series {', '.join(row.series)}" if row.series else "; every series")
        + "): shown once, stored only as a hash. Send it as `Authorization: Bearer <token>`.",
        highlight=False,
    )


@token_app.command("list")
def token_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The tokens (never their values): id, name, scopes, series, last use, revoked."""
    configure_logging("WARNING")

    async def work(access: AccessStore) -> list[TokenRow]:
        return await access.list_tokens()

    try:
        rows: list[TokenRow] = asyncio.run(_with_access(_settings(), work))
    except ConveneError as exc:
        raise _fail(exc) from exc
    if as_json:
        sys.stdout.write(json.dumps({"tokens": [_token_json(r) for r in rows]}) + "\n")
        return
    out = Console()
    for r in rows:
        state = f"revoked {r.revoked_at:%Y-%m-%d}" if r.revoked_at else "live"
        out.print(
            f"#{r.id} {r.name} [{', '.join(r.scopes)}] "
            f"series={', '.join(r.series) if r.series else '*'} {r.prefix}… {state}",
            highlight=False,
        )


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str, typer.Argument(help="The token's id (from `token list`) or name.")],
) -> None:
    """Revoke a token (by id, or every live token of that name): refused from now on."""
    configure_logging("WARNING")

    async def work(access: AccessStore) -> list[TokenRow]:
        revoked = await access.revoke_token(token)
        for row in revoked:
            await access.audit(
                actor="cli", action="token.revoke", target=f"token:{row.id}", client=None
            )
        return revoked

    try:
        revoked: list[TokenRow] = asyncio.run(_with_access(_settings(), work))
    except ConveneError as exc:
        raise _fail(exc) from exc
    if not revoked:
        err.print(f"[red]error:[/] no live token {token!r}", highlight=False)
        raise typer.Exit(1)
    for row in revoked:
        err.print(f"revoked token #{row.id} {row.name!r}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
