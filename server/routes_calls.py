"""Our REST API: place calls, read calls and transcripts, health and readiness."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import sqlite3
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from core.errors import NotConfigured, ProviderError, StorageUnavailable
from core.identifiers import (
    DTMF_PATTERN,
    E164_PATTERN,
    SERIES_KEY_MAX,
    SERIES_KEY_PATTERN,
    SERIES_KEY_RULE,
    SeriesKey,
)
from memory.access import AccessStore
from memory.models import CallCreated as CallRecord
from server.auth import Admin, Dialer, Principal, Reader, Writer, audit, count_request
from server.deps import RuntimeDep, hang_ups
from server.dialer import missing_twilio_settings, place_call
from server.erase import erase_calls, erase_series
from server.guard import CALL_CAP_RETRY_AFTER_SECS, call_cap_refusal
from server.runtime import Runtime
from server.stream_tokens import TOKEN_PARAMETER
from server.twiml import stream_twiml

log = logging.getLogger(__name__)
router = APIRouter()


class CallRequest(BaseModel):
    """Dial a meeting: `to` is its dial-in number; `digits` the DTMF to send once answered."""

    to: str = Field(pattern=E164_PATTERN, description="E.164 dial-in number, e.g. +14155550100")
    digits: str | None = Field(
        default=None,
        pattern=DTMF_PATTERN,
        description="DTMF after answer, e.g. 'ww123456#ww7890#' (w = half-second pause); "
        "sent to Twilio only: never stored, never returned",
    )
    series: SeriesKey | None = Field(
        default=None,
        description="The meeting series; required with `digits` (a series key is never made "
        f"from a passcode); default: the number. {SERIES_KEY_RULE}",
    )
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


SeriesPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=SERIES_KEY_MAX,
        pattern=SERIES_KEY_PATTERN,
        description=f"The series key: {SERIES_KEY_RULE}",
    ),
]


def _no_call(call_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no call {call_id[:64]}")


def _no_series(key: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no series {key!r}")


async def _visible_call(runtime: Runtime, principal: Principal, call_id: str) -> str | None:
    """The call's series, when the call exists and this caller may see it (else 404: a
    series-scoped token cannot tell someone else's call from none)."""
    exists, series = await AccessStore(runtime.store.pool).call_series(call_id)
    if not exists or not principal.sees(series):
        raise _no_call(call_id)
    return series


@router.post(
    "/calls",
    status_code=201,
    responses={403: {}, 404: {}, 429: {}, 503: {}, 502: {}},
    summary="Place a call (scope: dial)",
)
async def create_call(
    body: CallRequest, request: Request, runtime: RuntimeDep, principal: Dialer
) -> CallCreated:
    settings = runtime.settings
    security = settings.security
    await count_request(
        request,
        runtime,
        security.rate_limit_dial,
        "dial",
        principal.rate_key,
        what="calls placed per token",
        strict=True,
    )
    missing = missing_twilio_settings(settings)
    if missing:
        raise HTTPException(
            status_code=503,
            detail=f"Twilio is not configured: set {', '.join(missing)} to place calls",
        )
    if body.digits and not body.series:
        raise HTTPException(
            status_code=422,
            detail="name the `series` when sending `digits` (a series key is never made "
            "from a meeting's passcode)",
        )
    series = body.series or body.to
    if not principal.sees(series):
        raise _no_series(series)
    knobs = runtime.prompts.pipeline
    if not (knobs.dial.allows(body.to) or knobs.for_series(series).dial.allows(body.to)):
        raise HTTPException(
            status_code=403,
            detail=f"{body.to} is not on the dial-out allow-list "
            "(dial.allow in prompts/pipeline.yaml)",
        )
    full = await call_cap_refusal(
        AccessStore(runtime.store.pool), in_process=len(runtime.active_calls), settings=settings
    )
    if full:
        # The server is busy, not the client too eager (429 stays the per-token rate limit):
        # 503, with when to try again (a call lasts minutes; a slot frees when one ends).
        raise HTTPException(
            status_code=503,
            detail=full,
            headers={"Retry-After": str(CALL_CAP_RETRY_AFTER_SECS)},
        )
    minutes = security.max_call_minutes
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
        call_sid = await place_call(
            settings, to=body.to, twiml=twiml, time_limit_secs=max(1, round(minutes * 60))
        )
    except NotConfigured as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    except ProviderError as exc:
        await runtime.store.set_status(call_id, "failed")
        raise HTTPException(status_code=502, detail=str(exc)) from exc
    await runtime.store.set_call_sid(call_id, call_sid, status="queued")
    hang_ups(request).schedule(call_sid, minutes * 60, settings, runtime.store)
    await audit(request, runtime, principal, "dial", f"call:{call_id}")
    return CallCreated(call_id=call_id, call_sid=call_sid, status="queued")


@router.get("/calls/{call_id}", summary="A call and its transcript (scope: read)")
async def get_call(
    call_id: str, request: Request, runtime: RuntimeDep, principal: Reader
) -> dict[str, Any]:
    await _visible_call(runtime, principal, call_id)
    call = await runtime.store.get_call(call_id)
    if call is None:
        raise _no_call(call_id)
    call["active"] = call_id in runtime.active_calls
    await audit(request, runtime, principal, "read", f"call:{call_id}")
    return call


@router.get("/calls/{call_id}/commitments", summary="A call's commitments (scope: read)")
async def get_call_commitments(
    call_id: str, request: Request, runtime: RuntimeDep, principal: Reader
) -> dict[str, Any]:
    await _visible_call(runtime, principal, call_id)
    await audit(request, runtime, principal, "read", f"call:{call_id}/commitments")
    return {"call_id": call_id, "commitments": await runtime.store.get_commitments(call_id)}


@router.get("/calls/{call_id}/replies", summary="What the bot was asked and said (scope: read)")
async def get_call_replies(
    call_id: str, request: Request, runtime: RuntimeDep, principal: Reader
) -> dict[str, Any]:
    await _visible_call(runtime, principal, call_id)
    await audit(request, runtime, principal, "read", f"call:{call_id}/replies")
    return {"call_id": call_id, "replies": await runtime.store.get_replies(call_id)}


@router.delete("/calls/{call_id}", summary="Delete a call and all of its data (scope: write)")
async def delete_call(
    call_id: str, request: Request, runtime: RuntimeDep, principal: Writer
) -> dict[str, Any]:
    await _visible_call(runtime, principal, call_id)
    if call_id in runtime.active_calls:
        raise HTTPException(status_code=409, detail=f"call {call_id} is in progress")
    await erase_calls(runtime, [call_id])
    await audit(request, runtime, principal, "delete", f"call:{call_id}")
    return {"call_id": call_id, "deleted": True}


@router.get("/series/{key}/tasks", summary="A series' tasks with their history (scope: read)")
async def get_series_tasks(
    key: SeriesPath,
    request: Request,
    runtime: RuntimeDep,
    principal: Reader,
    status: Literal["open", "done", "cancelled", "all"] = "all",
) -> dict[str, Any]:
    if not principal.sees(key):
        raise _no_series(key)
    tasks = await runtime.store.list_tasks(key, status=status)
    if tasks is None:
        raise _no_series(key)
    await audit(request, runtime, principal, "read", f"series:{key}/tasks")
    return {"series": key, "tasks": tasks}


@router.delete("/series/{key}", summary="Delete a series and all of its calls (scope: write)")
async def delete_series(
    key: SeriesPath, request: Request, runtime: RuntimeDep, principal: Writer
) -> dict[str, Any]:
    if not principal.sees(key):
        raise _no_series(key)
    live = [c for c in runtime.active_calls if (await _series_of(runtime, c)) == key]
    if live:
        raise HTTPException(status_code=409, detail=f"series {key!r} has a call in progress")
    deleted = await erase_series(runtime, key)
    if deleted is None:
        raise _no_series(key)
    await audit(request, runtime, principal, "delete", f"series:{key}")
    return {"series": key, "deleted": True, "calls": len(deleted.call_ids)}


async def _series_of(runtime: Runtime, call_id: str) -> str | None:
    return (await AccessStore(runtime.store.pool).call_series(call_id))[1]


@router.get("/audit", summary="The audit log, newest first (scope: admin)")
async def get_audit(
    runtime: RuntimeDep, principal: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    return {"entries": await AccessStore(runtime.store.pool).audit_entries(limit=limit)}


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
