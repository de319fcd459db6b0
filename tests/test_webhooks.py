"""Twilio webhooks: signature checks, inbound calls, status callbacks."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

import httpx
from twilio.request_validator import RequestValidator

from server.runtime import Runtime
from tests.conftest import API_HEADERS, TEST_AUTH_TOKEN


def signed(url: str, form: dict[str, str], token: str = TEST_AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, form)}


def inbound_form() -> dict[str, str]:
    return {
        "CallSid": "CA" + secrets.token_hex(16),
        "AccountSid": "AC" + secrets.token_hex(16),
        "From": "+14155550123",
        "To": "+14155550999",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }


async def test_voice_with_valid_signature_answers_stream_twiml(
    base_url: str, runtime: Runtime
) -> None:
    url = f"{base_url}/twilio/voice?series=team-sync"
    form = inbound_form()
    async with httpx.AsyncClient() as client:
        response = await client.post(url, data=form, headers=signed(url, form))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == f"{base_url.replace('http', 'ws')}/twilio/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["series"] == "team-sync"
    call = await runtime.store.get_call(params["call_id"] or "")
    assert call is not None
    assert call["from_number"] == "+14155550123"
    assert call["call_sid"] == form["CallSid"]
    assert call["direction"] == "inbound"


async def test_voice_without_signature_is_403(base_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{base_url}/twilio/voice", data=inbound_form())
    assert response.status_code == 403
    assert "X-Twilio-Signature" in response.json()["detail"]


async def test_forged_signature_is_403_on_every_webhook(base_url: str) -> None:
    form = inbound_form()
    async with httpx.AsyncClient() as client:
        for path in ("/twilio/voice", "/twilio/status"):
            url = f"{base_url}{path}"
            forged = signed(url, form, token="not-the-real-token")
            response = await client.post(url, data=form, headers=forged)
            assert response.status_code == 403, path
            # A signature for other parameters does not carry over.
            tampered = {**form, "From": "+19999999999"}
            response = await client.post(url, data=tampered, headers=signed(url, form))
            assert response.status_code == 403, path


async def test_status_callback_is_recorded(base_url: str, runtime: Runtime) -> None:
    form = inbound_form()
    async with httpx.AsyncClient() as client:
        voice_url = f"{base_url}/twilio/voice"
        await client.post(voice_url, data=form, headers=signed(voice_url, form))
        status_url = f"{base_url}/twilio/status"
        status_form = {"CallSid": form["CallSid"], "CallStatus": "in-progress", "CallDuration": "3"}
        response = await client.post(
            status_url, data=status_form, headers=signed(status_url, status_form)
        )
    assert response.status_code == 200
    call_id = response.json()["call_id"]
    assert call_id
    call = await runtime.store.get_call(call_id)
    assert call is not None and call["status"] == "in-progress"
    events = await runtime.store.pool.fetch(
        "SELECT status, payload->>'CallDuration' AS duration FROM call_events WHERE call_sid = $1",
        form["CallSid"],
    )
    assert [(e["status"], e["duration"]) for e in events] == [("in-progress", "3")]


async def test_health_and_ready(base_url: str) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base_url}/health")).json() == {"status": "ok"}
        ready = await client.get(f"{base_url}/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["postgres"] == "ok" and body["redis"] == "ok"


async def test_unknown_call_is_404(base_url: str) -> None:
    async with httpx.AsyncClient(headers=API_HEADERS) as client:
        response = await client.get(f"{base_url}/calls/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
