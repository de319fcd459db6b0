"""Our REST API: place calls, read calls and transcripts, health and readiness."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import sqlite3
import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from core.errors import NotConfigured, ProviderError, StorageUnavailable
from memory.models import CallCreated as CallRecord
from server.deps import RuntimeDep
from server.dialer import missing_twilio_settings, place_call
from server.runtime import Runtime
from server.stream_tokens import TOKEN_PARAMETER
from server.twiml import stream_twiml

log = logging.getLogger(__name__)
router = APIRouter()


class CallRequest(BaseModel):
    """Dial a meeting: `to` is its dial-in number; `digits` the DTMF to send once answered."""

    to: str = Field(pattern=r"^\+?[0-9]{3,15}$", description="E.164 dial-in number")
    digits: str | None = Field(
        default=None,
        pattern=r"^[0-9*#wW]{1,64}$",
        description="DTMF after answer, e.g. 'ww123456#ww7890#' (w = half-second pause)",
    )
    series: str | None = Field(default=None, min_length=1, max_length=200)
    meeting_title: str | None = Field(default=None, max_length=200)
    meeting_date: dt.date | None = Field(
        default=None,
        description="The meeting's date; default: today in the series' time zone "
        "(call.timezone in prompts/pipeline.yaml, else CONVENE_TIMEZONE)",
    )


class CallCreated(BaseModel):
    call_id: str
    call_sid: str
    status: str


@router.post("/calls", status_code=201, responses={503: {}, 502: {}})
async def create_call(body: CallRequest, runtime: RuntimeDep) -> CallCreated:
    settings = runtime.settings
    missing = missing_twilio_settings(settings)
    if missing:
        raise HTTPException(
            status_code=503,
            detail=f"Twilio is not configured: set {', '.join(missing)} to place calls",
        )
    series = body.series or (f"{body.to}#{body.digits}" if body.digits else body.to)
    meeting_date, zone = runtime.meeting_date_for(series, body.meeting_date)
    call_id = await runtime.store.create_call(
        CallRecord(
            call_id=str(uuid.uuid4()),
            direction="outbound",
            status="queued",
            to_number=body.to,
            series_key=series,
            from_number=settings.twilio.from_number,
            meeting_date=meeting_date,
            time_zone=zone,
        )
    )
    token = runtime.stream_tokens.mint(
        call_id=call_id, series=series, meeting_date=meeting_date, meeting_title=body.meeting_title
    )
    params = {
        "call_id": call_id,
        TOKEN_PARAMETER: token,
        "series": series,
        "meeting_date": meeting_date.isoformat(),
    }
    if body.meeting_title:
        params["meeting_title"] = body.meeting_title
    twiml = stream_twiml(
        f"wss://{settings.twilio.public_host}/twilio/media", params, digits=body.digits
    )
    try:
        call_sid = await place_call(settings, to=body.to, twiml=twiml)
    except NotConfigured as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    except ProviderError as exc:
        await runtime.store.set_status(call_id, "failed")
        raise HTTPException(status_code=502, detail=str(exc)) from exc
    await runtime.store.set_call_sid(call_id, call_sid, status="queued")
    return CallCreated(call_id=call_id, call_sid=call_sid, status="queued")


@router.get("/calls/{call_id}")
async def get_call(call_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    call = await runtime.store.get_call(call_id)
    if call is None:
        raise HTTPException(status_code=404, detail=f"no call {call_id}")
    call["active"] = call_id in runtime.active_calls
    return call


@router.get("/calls/{call_id}/commitments")
async def get_call_commitments(call_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    if await runtime.store.get_call(call_id) is None:
        raise HTTPException(status_code=404, detail=f"no call {call_id}")
    return {"call_id": call_id, "commitments": await runtime.store.get_commitments(call_id)}


@router.get("/calls/{call_id}/replies")
async def get_call_replies(call_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    if await runtime.store.get_call(call_id) is None:
        raise HTTPException(status_code=404, detail=f"no call {call_id}")
    return {"call_id": call_id, "replies": await runtime.store.get_replies(call_id)}


@router.get("/series/{key}/tasks")
async def get_series_tasks(
    key: str, runtime: RuntimeDep, status: Literal["open", "done", "cancelled", "all"] = "all"
) -> dict[str, Any]:
    tasks = await runtime.store.list_tasks(key, status=status)
    if tasks is None:
        raise HTTPException(status_code=404, detail=f"no series {key!r}")
    return {"series": key, "tasks": tasks}


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


READY_CHECK_SECS = 2.0  # each check; a frozen server answers "no answer", never hangs /ready


async def _disk_check(runtime: Runtime) -> str:
    """'ok' while CONVENE_HOME (the spool, the embedded servers) has room to write."""
    home = runtime.settings.convene_home
    try:
        async with asyncio.timeout(READY_CHECK_SECS):
            free = (await asyncio.to_thread(shutil.disk_usage, home)).free
    except (OSError, TimeoutError) as exc:
        return f"CONVENE_HOME unreadable: {type(exc).__name__}"
    need = runtime.settings.store.min_free_mb * 1024 * 1024
    if free < need:
        return f"CONVENE_HOME has {free // 1024**2} MiB free (needs {need // 1024**2} MiB)"
    return "ok"


@router.get("/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_CHECK_SECS):
            await runtime.store.ping()
        checks["postgres"] = "ok"
    except StorageUnavailable as exc:
        checks["postgres"] = str(exc)
    except TimeoutError:
        checks["postgres"] = f"Postgres unreachable: no answer within {READY_CHECK_SECS:.0f}s"
    try:
        async with asyncio.timeout(READY_CHECK_SECS):
            await runtime.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        checks["redis"] = f"Redis unreachable: {type(exc).__name__}"
    except TimeoutError:
        checks["redis"] = f"Redis unreachable: no answer within {READY_CHECK_SECS:.0f}s"
    # The writer: 'ok', or why writes reach neither Postgres nor the spool (a full disk).
    checks["writer"] = runtime.writer.health()
    try:
        async with asyncio.timeout(READY_CHECK_SECS):
            spooled = await asyncio.to_thread(runtime.spool.count)
        checks["spooled_writes"] = str(spooled)
    except (sqlite3.Error, OSError, TimeoutError) as exc:
        checks["spooled_writes"] = f"unknown ({type(exc).__name__})"
    checks["disk"] = await _disk_check(runtime)
    checks["held_writes"] = str(runtime.writer.held)
    checks["dropped_writes"] = str(runtime.writer.dropped_total)
    ok = all(checks[name] == "ok" for name in ("postgres", "redis", "writer", "disk"))
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", **checks}, status_code=200 if ok else 503
    )
