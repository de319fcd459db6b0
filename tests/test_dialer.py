"""Outbound calls: the twilio SDK's real request, sent to a loopback Twilio API."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import SecretStr

from core import clock
from server.app import create_app
from server.local_server import serve_in_process
from server.runtime import Runtime
from tests.calls import overridden
from tests.conftest import API_HEADERS
from tests.fakes.twilio_api import FakeTwilio

ACCOUNT = "AC" + "1" * 32


@pytest.fixture
async def dialer(runtime: Runtime) -> AsyncIterator[tuple[str, FakeTwilio]]:
    fake = FakeTwilio()
    allow = {"dial": {"allow": ["+1415", "+4930"]}}  # the numbers these tests dial
    with overridden(runtime, pipeline=allow):
        async with serve_in_process(fake.app()) as twilio_url:
            saved = runtime.settings
            runtime.settings = saved.updated(
                **{
                    "twilio_account_sid": ACCOUNT,
                    "twilio_auth_token": SecretStr("secret-token-xyz"),
                    "twilio_from_number": "+15005550006",
                    "twilio_api_base_url": twilio_url,
                    "public_host": "convene.example.ngrok.app",
                    # Calls dialled in tests stay queued (no status callbacks): no call cap.
                    "convene_max_calls": 10_000,
                }
            )
            try:
                async with serve_in_process(create_app(runtime=runtime)) as url:
                    yield url, fake
            finally:
                runtime.settings = saved


async def test_outbound_call_sends_digits_and_stream(
    dialer: tuple[str, FakeTwilio], runtime: Runtime
) -> None:
    url, fake = dialer
    async with httpx.AsyncClient(headers=API_HEADERS) as client:
        response = await client.post(
            f"{url}/calls",
            json={
                "to": "+14155550100",
                "digits": "ww123456#ww7890#",
                "series": "standup",
                "meeting_title": "Standup",
            },
        )
    assert response.status_code == 201, response.text
    body = response.json()
    [sent] = fake.requests
    assert sent["account_sid"] == ACCOUNT
    assert (sent["auth_user"], sent["auth_password"]) == (ACCOUNT, "secret-token-xyz")
    form = sent["form"]
    assert form["To"] == ["+14155550100"]
    assert form["From"] == ["+15005550006"]
    assert form["StatusCallback"] == ["https://convene.example.ngrok.app/twilio/status"]
    twiml = ET.fromstring(form["Twiml"][0])
    assert [child.tag for child in twiml] == ["Play", "Connect"]
    assert twiml.find("Play").get("digits") == "ww123456#ww7890#"  # type: ignore[union-attr]
    stream = twiml.find("./Connect/Stream")
    assert (
        stream is not None and stream.get("url") == "wss://convene.example.ngrok.app/twilio/media"
    )
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    call = await runtime.store.get_call(body["call_id"])
    assert call is not None
    # The single-use stream token Twilio hands back on `start`: minted for this call.
    token = params.pop("stream_token")
    assert token is not None
    claims = runtime.stream_tokens.verify(token)
    assert claims.call_id == body["call_id"] and claims.series == "standup"
    assert params == {
        "call_id": body["call_id"],
        "series": "standup",
        "meeting_title": "Standup",
        "meeting_date": call["meeting_date"].isoformat(),  # decided now, kept for the call
    }
    assert call["call_sid"] == body["call_sid"] and call["to_number"] == "+14155550100"
    assert call["direction"] == "outbound" and call["series"] == "standup"


async def test_twilio_error_is_a_clear_502(dialer: tuple[str, FakeTwilio]) -> None:
    url, fake = dialer
    fake.fail_with = (400, 21211, "The 'To' number +1415 is not a valid phone number.")
    async with httpx.AsyncClient(headers=API_HEADERS) as client:
        response = await client.post(f"{url}/calls", json={"to": "+1415"})
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert "21211" in detail and "not a valid phone number" in detail
    assert "secret-token-xyz" not in response.text


async def test_no_credentials_is_503_not_a_stack_trace(base_url: str) -> None:
    async with httpx.AsyncClient(headers=API_HEADERS) as client:
        response = await client.post(f"{base_url}/calls", json={"to": "+14155550100"})
    assert response.status_code == 503
    assert "TWILIO_ACCOUNT_SID" in response.json()["detail"]


async def test_bad_body_is_422_naming_the_field(base_url: str) -> None:
    async with httpx.AsyncClient(headers=API_HEADERS) as client:
        response = await client.post(
            f"{base_url}/calls", json={"to": "call me maybe", "digits": "12;rm"}
        )
    assert response.status_code == 422
    fields = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert ("body", "to") in fields and ("body", "digits") in fields


@pytest.mark.dates
async def test_a_dialled_call_keeps_the_date_decided_when_it_was_placed(
    dialer: tuple[str, FakeTwilio], runtime: Runtime, override: Callable[..., Runtime]
) -> None:
    url, _ = dialer
    override(pipeline={"series": {"berlin": {"call": {"timezone": "Europe/Berlin"}}}})
    # 23:30 UTC on Sunday 28 February 2027 is already Monday 1 March in Berlin.
    with clock.clock_at(dt.datetime(2027, 2, 28, 23, 30, tzinfo=dt.UTC)):
        async with httpx.AsyncClient(headers=API_HEADERS) as client:
            undated = await client.post(f"{url}/calls", json={"to": "+4930555", "series": "berlin"})
            dated = await client.post(
                f"{url}/calls",
                json={"to": "+4930555", "series": "berlin", "meeting_date": "2027-02-26"},
            )
    assert undated.status_code == dated.status_code == 201, (undated.text, dated.text)
    first = await runtime.store.get_call(undated.json()["call_id"])
    second = await runtime.store.get_call(dated.json()["call_id"])
    assert first is not None and second is not None
    assert (first["meeting_date"], first["time_zone"]) == (dt.date(2027, 3, 1), "Europe/Berlin")
    assert second["meeting_date"] == dt.date(2027, 2, 26)
