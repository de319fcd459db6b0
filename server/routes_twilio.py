"""Twilio's side: the voice and status webhooks and the Media Streams websocket."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid

from fastapi import APIRouter, HTTPException, Request, Response, WebSocket
from starlette.websockets import WebSocketState

from bot.call import run_call
from bot.twilio_stream import StreamEndedBeforeStart, StreamStart, read_stream_start
from memory.models import CallCreated, CallEnded, SummaryRecord
from memory.store import is_transient
from memory.summary import summarize_call
from server.deps import RuntimeDep, TwilioForm, media_stream_url
from server.runtime import Runtime
from server.twiml import stream_twiml

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio"])

FLUSH_TIMEOUT_SECS = 30.0
# Postgres gets this long to answer a call's webhook or stream start; past it (or when it is
# down) the call is answered anyway and its record spooled (Twilio waits 15 s at most).
STORE_ANSWER_SECS = 5.0


@router.post("/voice")
async def voice(
    request: Request,
    form: TwilioForm,
    runtime: RuntimeDep,
    series: str | None = None,
    date: dt.date | None = None,
    title: str | None = None,
) -> Response:
    """Answer an inbound call: connect its audio to /twilio/media.

    Query parameters (set them on the number's webhook URL), or the same names as form
    fields: `series` (the meeting series key), `date` (the meeting date; default: today in
    the series' time zone, decided now and kept for the whole call) and `title`.
    """
    series = series or form.get("series") or None
    title = title or form.get("title") or None
    if date is None and form.get("date"):
        try:
            date = dt.date.fromisoformat(form["date"])
        except ValueError:
            raise HTTPException(
                status_code=422,
                detail=f"form field `date`: {form['date'][:40]!r} is not a date (YYYY-MM-DD)",
            ) from None
    call_sid = form.get("CallSid")
    # Decided once: the same id and date whether Postgres takes the record now or later.
    meeting_date, zone = runtime.meeting_date_for(series, date)
    new_call = CallCreated(
        call_id=str(uuid.uuid4()),
        direction="inbound",
        status="ringing",
        call_sid=call_sid,
        from_number=form.get("From"),
        to_number=form.get("To"),
        series_key=series,
        meeting_date=meeting_date,
        time_zone=zone,
    )
    try:
        async with asyncio.timeout(STORE_ANSWER_SECS):
            call_id = await runtime.store.find_call(call_sid=call_sid) if call_sid else None
            if call_id is None:
                call_id = await runtime.store.create_call(new_call)
            else:
                meeting_date = await runtime.store.call_meeting_date(call_id) or meeting_date
    except Exception as exc:
        if not is_transient(exc):
            raise
        # Postgres is away: answer anyway (the meeting is not lost); the record is spooled.
        call_id = runtime.create_call_later(new_call, reason=exc)
    params = {"call_id": call_id}
    if series:
        params["series"] = series
    if meeting_date:
        params["meeting_date"] = meeting_date.isoformat()
    if title:
        params["meeting_title"] = title
    twiml = stream_twiml(media_stream_url(request, runtime), params)
    return Response(content=twiml, media_type="application/xml")


@router.post("/status")
async def status(form: TwilioForm, runtime: RuntimeDep) -> dict[str, str | None]:
    """Record a call status callback."""
    call_sid = form.get("CallSid", "")
    call_status = form.get("CallStatus", "unknown")
    call_id = await runtime.store.record_status(call_sid=call_sid, status=call_status, payload=form)
    return {"call_id": call_id, "status": call_status}


def _named_date(start: StreamStart) -> dt.date | None:
    raw = start.custom_parameters.get("meeting_date")
    if raw:
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            log.warning("stream %s: ignored a bad meeting_date parameter", start.stream_sid)
    return None


def _stream_call(runtime: Runtime, start: StreamStart) -> CallCreated:
    """The record of a call first seen as a stream: its date is the one it names, or today in
    its series' zone."""
    meeting_date, zone = runtime.meeting_date_for(
        start.custom_parameters.get("series"), _named_date(start)
    )
    return CallCreated(
        call_id=str(uuid.uuid4()),
        direction="stream",
        status="in-progress",
        call_sid=start.call_sid,
        meeting_date=meeting_date,
        time_zone=zone,
    )


async def _call_for_stream(runtime: Runtime, start: StreamStart) -> tuple[str, dt.date]:
    """The call this stream belongs to, and its meeting date (decided when it was created)."""
    params = start.custom_parameters
    call_id = await runtime.store.find_call(call_id=params.get("call_id"))
    if call_id is None and start.call_sid:
        call_id = await runtime.store.find_call(call_sid=start.call_sid)
    if call_id is None:
        # A stream we did not answer ourselves (e.g. a <Stream> in someone else's TwiML).
        call_id = await runtime.store.create_call(_stream_call(runtime, start))
    meeting_date = await runtime.store.start_stream(
        call_id=call_id,
        stream_sid=start.stream_sid,
        call_sid=start.call_sid,
        series_key=params.get("series"),
        meeting_title=params.get("meeting_title"),
    )
    return call_id, meeting_date


def _call_for_stream_later(runtime: Runtime, start: StreamStart) -> tuple[str, dt.date]:
    """`_call_for_stream` while Postgres is away: the call named by the stream (or a new one)
    streams now; what Postgres would record is spooled through the writer."""
    params = start.custom_parameters
    named = _named_date(start)
    call_id = params.get("call_id")
    try:
        call_id = str(uuid.UUID(call_id)) if call_id else None
    except ValueError:
        call_id = None
    if call_id is None:
        new_call = _stream_call(runtime, start)
        meeting_date = new_call.meeting_date
        call_id = runtime.create_call_later(new_call)
    else:
        # Our /twilio/voice put the date decided at the call's creation in the parameters.
        meeting_date = named or runtime.meeting_date_for(params.get("series"))[0]
    runtime.start_stream_later(
        call_id=call_id,
        stream_sid=start.stream_sid,
        call_sid=start.call_sid,
        series_key=params.get("series"),
        meeting_title=params.get("meeting_title"),
    )
    return call_id, meeting_date


@router.websocket("/media")
async def media(websocket: WebSocket) -> None:
    """A Media Streams connection: one Pipecat pipeline for this call."""
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    try:
        start = await read_stream_start(
            websocket, max_bytes=runtime.prompts.pipeline.call.max_message_bytes
        )
    except StreamEndedBeforeStart as exc:
        log.warning("twilio stream ended before it started: %s", exc)
        return
    try:
        async with asyncio.timeout(STORE_ANSWER_SECS):
            call_id, meeting_date = await _call_for_stream(runtime, start)
    except Exception as exc:
        if not is_transient(exc):
            raise
        call_id, meeting_date = _call_for_stream_later(runtime, start)
    runtime.active_calls.add(call_id)
    status = "completed"
    stopped_at: dt.datetime | None = None  # when `stop` came: the call's `ended_at`
    try:
        outcome = await run_call(
            websocket,
            start,
            call_id=call_id,
            meeting_date=meeting_date,
            deps=runtime.call_deps(),
        )
        stopped_at = outcome.stopped_at
        runtime.writer.submit(
            SummaryRecord(
                call_id=call_id,
                series=start.custom_parameters.get("series"),
                text=summarize_call(
                    meeting_date=meeting_date,
                    segments=outcome.segments,
                    commitments=outcome.commitments,
                ),
            )
        )
    except Exception:
        status = "failed"
        log.exception("call %s: pipeline failed", call_id)
    finally:
        runtime.active_calls.discard(call_id)
        # Queued after every segment of the call, so `completed` means all of it is stored.
        ended = CallEnded(call_id=call_id, status=status)
        if stopped_at is not None:
            ended = CallEnded(call_id=call_id, status=status, ended_at=stopped_at)
        runtime.writer.submit(ended)
        try:
            await runtime.writer.flush(FLUSH_TIMEOUT_SECS)
        except TimeoutError:
            log.error("call %s: writes still queued after %.0fs", call_id, FLUSH_TIMEOUT_SECS)
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):
                await websocket.close()
