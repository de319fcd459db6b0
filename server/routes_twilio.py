"""Twilio's side: the voice and status webhooks and the Media Streams websocket."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request, Response, WebSocket
from starlette.status import WS_1008_POLICY_VIOLATION
from starlette.websockets import WebSocketState
from twilio.request_validator import RequestValidator

from bot.call import run_call
from bot.twilio_stream import (
    BadStart,
    SkippedMessages,
    StreamEndedBeforeStart,
    StreamStart,
    read_stream_start,
)
from core.settings import reveal
from memory.access import AccessStore
from memory.models import CallCreated, CallEnded, SummaryRecord
from memory.store import CALL_SID_MISMATCH, StreamNotAttached, is_transient
from memory.summary import summarize_call
from server.deps import RuntimeDep, TwilioForm, hang_ups, media_stream_url
from server.guard import call_cap_refusal
from server.runtime import Runtime
from server.stream_tokens import TOKEN_PARAMETER, StreamClaims, TokenRefused
from server.twiml import refusal_twiml, stream_twiml

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

    A new call counts against CONVENE_MAX_CALLS as a dialled one does (past it: a spoken
    refusal and a hang-up, nothing stored) and is hung up through Twilio's REST API after
    CONVENE_MAX_CALL_MINUTES.
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
    security = runtime.settings.security
    access = AccessStore(runtime.store.pool)
    try:
        async with asyncio.timeout(STORE_ANSWER_SECS):
            known = await runtime.store.call_by_sid(call_sid) if call_sid else None
            if known is None:
                # A new call counts against the cap as a dialled one does (a retried webhook
                # of a call already answered is counted already).
                full = await call_cap_refusal(
                    access, in_process=len(runtime.active_calls), settings=runtime.settings
                )
                if full:
                    return _refused_call(call_sid, full)
                call_id = await runtime.store.create_call(new_call)
            else:
                call_id = known.call_id
                meeting_date = known.meeting_date or meeting_date
    except Exception as exc:
        if not is_transient(exc):
            raise
        # Postgres is away: answer anyway (the meeting is not lost) within this process's
        # cap; the record is spooled.
        if len(runtime.active_calls) >= security.max_concurrent_calls:
            return _refused_call(
                call_sid,
                f"{len(runtime.active_calls)} calls in progress in this process: at most "
                f"{security.max_concurrent_calls} at once (CONVENE_MAX_CALLS)",
            )
        known = None
        call_id = runtime.create_call_later(new_call, reason=exc)
    if known is not None and (known.streaming or known.over):
        # A replayed webhook: this call already has its stream, or is over.
        why = "is over" if known.over else "already has its media stream"
        log.warning("twilio voice: refused a second answer: call %s %s", call_id, why)
        raise HTTPException(status_code=409, detail=f"this CallSid {why}")
    token = runtime.stream_tokens.mint(
        call_id=call_id,
        series=series,
        meeting_date=meeting_date,
        meeting_title=title,
        call_sid=call_sid,
    )
    # Only the token is trusted when the stream starts; the rest is for Twilio's logs.
    params = {"call_id": call_id, TOKEN_PARAMETER: token}
    if series:
        params["series"] = series
    if meeting_date:
        params["meeting_date"] = meeting_date.isoformat()
    if title:
        params["meeting_title"] = title
    if call_sid and known is None:
        # Hung up through Twilio's REST API at the time limit, as a dialled call is.
        hang_ups(request).schedule(
            call_sid, security.max_call_minutes * 60, runtime.settings, runtime.store
        )
    twiml = stream_twiml(media_stream_url(request, runtime), params)
    return Response(content=twiml, media_type="application/xml")


BUSY_MESSAGE = "Sorry, the meeting assistant is busy with other calls right now. Goodbye."


def _refused_call(call_sid: str | None, why: str) -> Response:
    """Answer a call past the cap: a polite word and a hang-up; no token, nothing stored."""
    log.warning("twilio voice: refused call %s: %s", call_sid or "without CallSid", why)
    return Response(content=refusal_twiml(BUSY_MESSAGE), media_type="application/xml")


@router.post("/status")
async def status(form: TwilioForm, runtime: RuntimeDep) -> dict[str, str | None]:
    """Record a call status callback, once: a replay (same CallSid, status and
    SequenceNumber) is answered 200 and changes nothing."""
    call_sid = form.get("CallSid", "")
    call_status = form.get("CallStatus", "unknown")
    call_id, new = await runtime.store.record_status(
        call_sid=call_sid, status=call_status, payload=form
    )
    if not new:
        log.info("twilio status: ignored a repeated %s callback for call %s", call_status, call_id)
    return {"call_id": call_id, "status": call_status}


def _handshake_refusal(websocket: WebSocket, runtime: Runtime) -> str | None:
    """Why the handshake is refused: an X-Twilio-Signature that does not match (Twilio signs
    the wss URL it opens, with no parameters), or none where one is required."""
    settings = runtime.settings
    if settings.twilio.dev_skip_signature:
        return None
    signature = websocket.headers.get("x-twilio-signature")
    if not signature:
        if settings.streams.require_signature:
            return "handshake without X-Twilio-Signature"
        return None
    auth_token = reveal(settings.twilio.auth_token)
    if not auth_token:
        return None  # nothing to check it with; the stream token decides
    host = settings.twilio.public_host
    url = str(websocket.url)
    if host:
        query = f"?{websocket.url.query}" if websocket.url.query else ""
        url = f"wss://{host}{websocket.url.path}{query}"
    if not RequestValidator(auth_token).validate(url, {}, signature):
        return "forged handshake (X-Twilio-Signature does not match)"
    return None


async def _refuse(websocket: WebSocket, why: str, *, call_id: str | None = None) -> None:
    """Close a stream with policy violation (1008); one log line, never the token."""
    peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    log.warning(
        "twilio stream refused from %s%s: %s",
        peer,
        f" (call {call_id})" if call_id else "",
        why,
    )
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=WS_1008_POLICY_VIOLATION, reason=why[:120])


@dataclass(frozen=True)
class _Attached:
    call_id: str
    series: str | None
    meeting_date: dt.date


async def _attach(runtime: Runtime, start: StreamStart, claims: StreamClaims) -> _Attached:
    """Attach the stream to the call its token names. Series, meeting date and title come from
    the call record (or, while Postgres is away, from the token: what the record said when
    the token was minted), never from the client's `start`."""
    try:
        async with asyncio.timeout(STORE_ANSWER_SECS):
            attached = await runtime.store.start_stream(
                call_id=claims.call_id,
                stream_sid=start.stream_sid,
                call_sid=start.call_sid,
                meeting_title=claims.meeting_title,
                token_nonce=claims.nonce,
                token_expires_at=claims.expires_at,
            )
        return _Attached(claims.call_id, attached.series_key, attached.meeting_date)
    except StreamNotAttached as exc:
        if exc.reason != "unknown call" or not runtime.writer.backlog:
            raise
        # A call answered while Postgres was away, its record still spooled.
    except Exception as exc:
        if not is_transient(exc):
            raise
    runtime.start_stream_later(
        call_id=claims.call_id,
        stream_sid=start.stream_sid,
        call_sid=start.call_sid,
        series_key=claims.series,
        meeting_title=claims.meeting_title,
    )
    meeting_date = claims.meeting_date or runtime.meeting_date_for(claims.series)[0]
    return _Attached(claims.call_id, claims.series, meeting_date)


def _check_token(runtime: Runtime, params: dict[str, str], call_sid: str | None) -> StreamClaims:
    """The token's claims, if it opens a stream for this call (raises TokenRefused)."""
    claims = runtime.stream_tokens.verify(params.get(TOKEN_PARAMETER))
    named = params.get("call_id")
    if named and named != claims.call_id:
        raise TokenRefused("stream token of another call", call_id=claims.call_id)
    if claims.call_sid and call_sid != claims.call_sid:
        raise TokenRefused("stream token of another CallSid", call_id=claims.call_id)
    return claims


async def _end_refused_call(runtime: Runtime, bad: BadStart) -> str | None:
    """A `start` from our call that it cannot run on: end that call (it must not stay
    `ringing`), as failed, saying why, if it has no stream yet. Returns its id, if the token
    opens it."""
    try:
        claims = _check_token(runtime, bad.custom_parameters, bad.call_sid)
        runtime.stream_tokens.claim(claims)
    except TokenRefused:
        return None
    ended_by = "media-format" if "mediaFormat" in bad.reason else "bad-start"
    try:
        async with asyncio.timeout(STORE_ANSWER_SECS):
            await runtime.store.end_unstarted_call(
                call_id=claims.call_id,
                token_nonce=claims.nonce,
                token_expires_at=claims.expires_at,
                ended_by=ended_by,
                call_sid=bad.call_sid,
            )
    except StreamNotAttached:
        runtime.stream_tokens.release(claims)  # not the call's CallSid: not its stream
        return None
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("call %s: not marked failed (Postgres unavailable)", claims.call_id)
    return claims.call_id


# How a call's end is recorded, by what ended it (CallOutcome.ended_by): Twilio's `stop` is
# the call's own end; a socket gone without `stop` may have lost audio (interrupted).
_ENDS: dict[str, tuple[str, str | None]] = {
    "stop": ("completed", None),
    "idle-timeout": ("completed", "idle-timeout"),
}


@router.websocket("/media")
async def media(websocket: WebSocket) -> None:
    """A Media Streams connection: one Pipecat pipeline for a call this server created."""
    runtime: Runtime = websocket.app.state.runtime
    conf = runtime.settings.streams
    await websocket.accept()
    refusal = _handshake_refusal(websocket, runtime)
    if refusal:
        await _refuse(websocket, refusal)
        return
    skipped = SkippedMessages()
    try:
        async with asyncio.timeout(conf.start_timeout_secs):
            start = await read_stream_start(
                websocket,
                max_bytes=runtime.prompts.pipeline.call.max_message_bytes,
                skipped=skipped,
            )
    except TimeoutError:
        skipped.log_summary()
        await _refuse(websocket, f"no valid `start` within {conf.start_timeout_secs:g}s")
        return
    except BadStart as bad:
        skipped.log_summary()
        await _refuse(websocket, bad.reason, call_id=await _end_refused_call(runtime, bad))
        return
    except StreamEndedBeforeStart as exc:
        skipped.log_summary()
        log.warning("twilio stream ended before it started: %s", exc)
        return
    skipped.log_summary()
    try:
        claims = _check_token(runtime, start.custom_parameters, start.call_sid)
        runtime.stream_tokens.claim(claims)
        attached = await _attach(runtime, start, claims)
    except TokenRefused as exc:
        await _refuse(websocket, exc.reason, call_id=exc.call_id)
        return
    except StreamNotAttached as exc:
        if exc.reason == CALL_SID_MISMATCH:
            # The token was not used: the call's own stream (its CallSid) may still open.
            runtime.stream_tokens.release(claims)
        await _refuse(websocket, exc.reason, call_id=claims.call_id)
        return
    call_id = attached.call_id
    runtime.active_calls.add(call_id)
    status_: str = "failed"
    ended_by: str | None = "error"
    stopped_at: dt.datetime | None = None  # when `stop` came: the call's `ended_at`
    try:
        outcome = await run_call(
            websocket,
            start,
            call_id=call_id,
            series=attached.series,
            meeting_date=attached.meeting_date,
            deps=runtime.call_deps(),
        )
        stopped_at = outcome.stopped_at
        status_, ended_by = _ENDS.get(outcome.ended_by, ("interrupted", outcome.ended_by))
        runtime.writer.submit(
            SummaryRecord(
                call_id=call_id,
                series=attached.series,
                text=summarize_call(
                    meeting_date=attached.meeting_date,
                    segments=outcome.segments,
                    commitments=outcome.commitments,
                ),
            )
        )
    except Exception:
        log.exception("call %s: pipeline failed", call_id)
    finally:
        runtime.active_calls.discard(call_id)
        # Queued after every segment of the call, so `completed` means all of it is stored.
        ended = CallEnded(call_id=call_id, status=status_, ended_by=ended_by)
        if stopped_at is not None:
            ended = CallEnded(
                call_id=call_id, status=status_, ended_at=stopped_at, ended_by=ended_by
            )
        runtime.writer.submit(ended)
        try:
            await runtime.writer.flush(FLUSH_TIMEOUT_SECS)
        except TimeoutError:
            log.error("call %s: writes still queued after %.0fs", call_id, FLUSH_TIMEOUT_SECS)
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):
                await websocket.close()
