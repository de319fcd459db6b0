"""`convene simulate`: stream an audio file into Convene as a Twilio call would.

The simulator asks `/twilio/voice` for TwiML exactly as Twilio does (signed when an auth token
is known), connects to the `<Stream>` URL it names with the `<Parameter>`s it carries (among
them the call's single-use stream token, which the server checks on `start`), streams the file as 20 ms mu-law frames,
stays on the line while the bot answers (until it has been quiet `hold_secs`), sends `stop`
(the hang-up), waits for the call to be stored as completed, and returns the call's record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from core.errors import ConveneError
from server.audio import to_twilio_ulaw
from server.simulator import simulate_stream, stream_url_from_twiml

COMPLETE_TIMEOUT_SECS = 120.0
HOLD_SECS = 2.0  # how long the caller waits for (more of) an answer before hanging up


class SimulationError(ConveneError):
    """The simulated call could not be placed or did not complete."""


CALLER_NUMBER = "+15550100001"  # the simulated caller's number, unless told otherwise


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


async def request_twiml(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    series: str | None,
    meeting_date: dt.date | None,
    auth_token: str | None,
    call_sid: str,
    from_number: str = CALLER_NUMBER,
) -> str:
    query = {
        k: v
        for k, v in {"series": series, "date": meeting_date and meeting_date.isoformat()}.items()
        if v
    }
    url = f"{base_url.rstrip('/')}/twilio/voice" + (f"?{urlencode(query)}" if query else "")
    form = {
        "CallSid": call_sid,
        "AccountSid": _sid("AC"),
        "From": from_number,
        "To": "+15550100002",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    headers = {}
    if auth_token:
        headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(url, form)
    response = await client.post(url, data=form, headers=headers)
    if response.status_code != 200:
        raise SimulationError(f"POST {url} answered {response.status_code}: {response.text[:300]}")
    return response.text


async def wait_completed(
    client: httpx.AsyncClient, base_url: str, call_id: str, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"{base_url.rstrip('/')}/calls/{call_id}")
        if response.status_code == 200:
            call: dict[str, Any] = response.json()
            # Ended: completed, failed, or interrupted (ended early; `ended_by` says why).
            if call.get("completed_at"):
                return call
        if time.monotonic() > deadline:
            raise SimulationError(f"call {call_id} not completed after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def simulate_call(
    audio_path: Path,
    *,
    base_url: str,
    series: str | None = None,
    meeting_date: dt.date | None = None,
    speed: float = 1.0,
    auth_token: str | None = None,
    api_token: str | None = None,
    record_path: Path | None = None,
    on_progress: Callable[[float], None] | None = None,
    on_call_id: Callable[[str], None] | None = None,
    complete_timeout: float = COMPLETE_TIMEOUT_SECS,
    hold_secs: float = HOLD_SECS,
    expect_answer: bool = False,
    from_number: str = CALLER_NUMBER,
) -> dict[str, Any]:
    """Stream `audio_path` as one call; returns the `--json` shape of `convene simulate`.

    `auth_token` signs the webhook as Twilio would; `api_token` reads the call back from the
    REST API (a bearer token with the read scope).

    After the audio the caller stays on the line until the bot has been quiet `hold_secs`;
    with `expect_answer`, it first waits for the bot to say something (the audio asks it).
    """
    ulaw = await asyncio.to_thread(to_twilio_ulaw, audio_path)
    call_sid = _sid("CA")
    headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        twiml = await request_twiml(
            client,
            base_url,
            series=series,
            meeting_date=meeting_date,
            auth_token=auth_token,
            call_sid=call_sid,
            from_number=from_number,
        )
        stream_url, params = stream_url_from_twiml(twiml)
        call_id = params.get("call_id")
        if not call_id:
            raise SimulationError("the TwiML's <Stream> carries no call_id parameter")
        if on_call_id is not None:
            on_call_id(call_id)
        await simulate_stream(
            stream_url,
            ulaw,
            custom_parameters=params,
            speed=speed,
            record_path=record_path,
            on_progress=on_progress,
            call_sid=call_sid,
            hold_secs=hold_secs,
            hold_for_answer=expect_answer,
        )
        call = await wait_completed(client, base_url, call_id, complete_timeout)
        found = await client.get(f"{base_url.rstrip('/')}/calls/{call_id}/commitments")
        commitments = found.json()["commitments"] if found.status_code == 200 else []
        answered = await client.get(f"{base_url.rstrip('/')}/calls/{call_id}/replies")
        replies = answered.json()["replies"] if answered.status_code == 200 else []
    return {
        "call_id": call_id,
        "series": call.get("series"),
        "transcript": [
            {
                "start_ms": s["start_ms"],
                "end_ms": s["end_ms"],
                "text": s["text"],
                "speaker": s.get("speaker"),
                "person": s.get("person"),
            }
            for s in call["transcript"]
        ],
        "commitments": [
            {k: c[k] for k in ("owner", "action", "due", "quote", "confidence", "kind")}
            for c in commitments
        ],
        "replies": [
            {k: r[k] for k in ("question", "answer", "t_question_end_ms", "t_first_audio_ms")}
            | {
                k: r.get(k)
                for k in ("intent", "audio_ms", "audio_played_ms", "interrupted", "hung_up")
            }
            for r in replies
        ],
    }
