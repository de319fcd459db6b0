"""Media streams and Twilio webhooks attacked as a stranger would: each attack refused.

A stream opens only with the single-use token that `/twilio/voice` (or `POST /calls`) put in
the TwiML of a call this server created; everything else is closed with policy violation
(1008), stores nothing and is logged once. Sockets cannot be held open without a `start` or
broken by one bad message; status callbacks and voice webhooks cannot be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from server.runtime import Runtime
from server.simulate import wait_completed
from server.simulator import StreamClosed, TwilioStreamClient
from server.stream_tokens import TOKEN_PARAMETER, StreamTokens
from tests.calls import answer_call
from tests.conftest import API_HEADERS, TEST_AUTH_TOKEN
from tests.test_webhooks import signed

SILENCE = b"\xff" * 160  # 20 ms of mu-law silence
POLICY_VIOLATION = 1008


class Answered:
    """A call answered by /twilio/voice: the stream URL, its parameters, its CallSid."""

    def __init__(self, url: str, params: dict[str, str], call_sid: str) -> None:
        self.url, self.params, self.call_sid = url, params, call_sid

    @property
    def call_id(self) -> str:
        return self.params["call_id"]

    @property
    def token(self) -> str:
        return self.params[TOKEN_PARAMETER]

    def client(self, **kwargs: Any) -> TwilioStreamClient:
        params = kwargs.pop("custom_parameters", self.params)
        call_sid = kwargs.pop("call_sid", self.call_sid)
        return TwilioStreamClient(self.url, custom_parameters=params, call_sid=call_sid, **kwargs)


@pytest.fixture
def tokens_seen() -> list[str]:
    return []


@pytest.fixture
def answer(base_url: str, tokens_seen: list[str]) -> Callable[..., Any]:
    async def answer(*, series: str = "sec-room", call_sid: str | None = None) -> Answered:
        url, params, sid = await answer_call(
            base_url, series=series, meeting_date=dt.date(2026, 12, 1), call_sid=call_sid
        )
        tokens_seen.append(params[TOKEN_PARAMETER])
        return Answered(url, params, sid)

    return answer


@pytest.fixture(autouse=True)
def no_secret_in_logs(
    caplog: pytest.LogCaptureFixture, tokens_seen: list[str]
) -> Iterator[pytest.LogCaptureFixture]:
    """Every test here: no stream token and no Twilio auth token in any log record."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    # The server's records (not the simulated Twilio's own wire log, which carries them).
    text = "\n".join(r.getMessage() for r in caplog.records if r.name != "websockets.client")
    for secret in [*tokens_seen, TEST_AUTH_TOKEN]:
        assert secret not in text
        assert secret[-43:] not in text  # nor the token's MAC alone


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "server.routes_twilio" and "twilio stream refused" in r.getMessage()
    ]


async def refused(client: TwilioStreamClient, **start: Any) -> TwilioStreamClient:
    """Connect, say `start`, and expect the server to close with policy violation."""
    async with client:
        with contextlib.suppress(StreamClosed):  # refused at the handshake: before these
            await client.send_connected()
            await client.send_start(**start)
        await client.wait_closed(15)
    assert client.close_code == POLICY_VIOLATION, (client.close_code, client.close_reason)
    return client


async def untouched(runtime: Runtime, call_id: str) -> None:
    call = await runtime.store.get_call(call_id)
    assert call is not None
    assert call["stream_sid"] is None and call["started_at"] is None, call
    assert call["transcript"] == []


async def start_streaming(client: TwilioStreamClient, frames: int = 0) -> None:
    """`connected`, `start`, then `frames` 20 ms frames of silence."""
    await client.send_connected()
    await client.send_start()
    if frames:
        await client.stream_audio(SILENCE * frames, speed=0)


async def hang_up(client: TwilioStreamClient) -> None:
    """`stop`, and the server's close."""
    await client.send_stop()
    await client.wait_closed(60)


async def attached(runtime: Runtime, call_id: str) -> None:
    """Until the call's stream is attached (its streamSid stored)."""
    while True:
        stored = await runtime.store.get_call(call_id)
        if stored and stored["stream_sid"]:
            return
        await asyncio.sleep(0.05)


async def run_silent_call(client: TwilioStreamClient, frames: int = 25) -> None:
    async with client:
        await start_streaming(client, frames)
        await hang_up(client)


async def completed(base_url: str, call_id: str) -> dict[str, Any]:
    """The call once it is over, read back through the REST API (with a token, as it needs)."""
    async with httpx.AsyncClient(timeout=30, headers=API_HEADERS) as http:
        return await wait_completed(http, base_url, call_id, 60)


# -- happy path ----------------------------------------------------------------------------------


async def test_a_call_we_answered_streams_and_keeps_its_own_series(
    base_url: str, runtime: Runtime, answer: Callable[..., Any]
) -> None:
    """The token opens the stream (the handshake signed as Twilio signs it); series, date and
    call come from the record: a `start` naming another series or date changes nothing."""
    call = await answer(series="mine")
    lying = {**call.params, "series": "victim", "meeting_date": "2020-01-01"}
    await run_silent_call(call.client(custom_parameters=lying, auth_token=TEST_AUTH_TOKEN))
    stored = await completed(base_url, call.call_id)
    assert stored["status"] == "completed" and stored["ended_by"] is None
    assert stored["series"] == "mine" and stored["meeting_date"] == "2026-12-01"
    assert stored["stream_sid"] is not None


# -- tokens ----------------------------------------------------------------------------------


async def test_no_token_is_refused_and_nothing_is_stored(
    base_url: str, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    url = base_url.replace("http", "ws") + "/twilio/media"
    calls_before = await runtime.store.pool.fetchval("SELECT count(*) FROM calls")
    client = await refused(TwilioStreamClient(url, custom_parameters={"series": "victim"}))
    assert await runtime.store.pool.fetchval("SELECT count(*) FROM calls") == calls_before
    assert await runtime.store.find_call(call_sid=client.result.call_sid) is None
    assert len(refusals(caplog)) == 1 and "no stream token" in refusals(caplog)[0]


async def test_forged_token_is_refused(
    runtime: Runtime, answer: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    call = await answer()
    version, body, mac = call.token.split(".")
    # Signed with another secret, and a real MAC over other claims: both forged.
    other = StreamTokens(b"x" * 64, ttl_secs=300).mint(
        call_id=call.call_id, series="sec-room", meeting_date=None, call_sid=call.call_sid
    )
    twisted = f"{version}.{other.split('.')[1]}.{mac}"
    for forged in (other, twisted, "v1.e30.AAAA", "garbage"):
        await refused(call.client(custom_parameters={**call.params, TOKEN_PARAMETER: forged}))
    await untouched(runtime, call.call_id)
    assert len(refusals(caplog)) == 4
    assert sum("forged stream token" in line for line in refusals(caplog)) == 3


async def test_expired_token_is_refused(
    runtime: Runtime, answer: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    call = await answer()
    ttl = runtime.settings.streams.token_ttl_secs
    expired = runtime.stream_tokens.mint(
        call_id=call.call_id,
        series="sec-room",
        meeting_date=None,
        call_sid=call.call_sid,
        issued_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=ttl + 1),
    )
    await refused(call.client(custom_parameters={**call.params, TOKEN_PARAMETER: expired}))
    await untouched(runtime, call.call_id)
    assert ["expired stream token" in line for line in refusals(caplog)] == [True]


async def test_reused_token_is_refused(
    base_url: str, runtime: Runtime, answer: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    call = await answer()
    await run_silent_call(call.client())
    await completed(base_url, call.call_id)
    first = await runtime.store.get_call(call.call_id)
    assert first is not None
    await refused(call.client())
    again = await runtime.store.get_call(call.call_id)
    assert again is not None
    assert (again["stream_sid"], again["started_at"]) == (first["stream_sid"], first["started_at"])
    assert len(refusals(caplog)) == 1 and "reused stream token" in refusals(caplog)[0]


async def test_token_of_another_call_is_refused(
    runtime: Runtime, answer: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    mine, victim = await answer(), await answer(series="victim")
    # A start naming the victim's call with my token; my token with the victim's CallSid.
    await refused(mine.client(custom_parameters={**mine.params, "call_id": victim.call_id}))
    await refused(victim.client(custom_parameters={**victim.params}, call_sid=mine.call_sid))
    await untouched(runtime, victim.call_id)
    assert len(refusals(caplog)) == 2
    assert all("of another" in line for line in refusals(caplog))


async def test_a_completed_call_cannot_be_reattached(
    base_url: str,
    runtime: Runtime,
    answer: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twilio retried the voice webhook before the stream began: two unused tokens for one
    call. Once the call is over, the second does not re-attach it."""
    first = await answer()
    second = await answer(call_sid=first.call_sid)
    assert second.call_id == first.call_id and second.token != first.token
    await run_silent_call(first.client())
    await completed(base_url, first.call_id)
    before = await runtime.store.get_call(first.call_id)
    await refused(second.client())
    after = await runtime.store.get_call(first.call_id)
    assert after is not None and before is not None
    for key in ("stream_sid", "started_at", "completed_at", "status", "series"):
        assert after[key] == before[key], key
    assert ["the call is over" in line for line in refusals(caplog)] == [True]


async def test_forged_handshake_signature_is_refused(
    runtime: Runtime, answer: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    call = await answer()
    await refused(call.client(auth_token="not-the-real-auth-token"))
    await untouched(runtime, call.call_id)
    assert len(refusals(caplog)) == 1 and "forged handshake" in refusals(caplog)[0]


# -- sockets ---------------------------------------------------------------------------------


async def test_a_socket_without_start_is_closed(
    base_url: str, override: Callable[..., Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    override(settings={"convene_stream_start_timeout_secs": 0.5})
    url = base_url.replace("http", "ws") + "/twilio/media"
    async with TwilioStreamClient(url) as client:
        await client.send_connected()
        await client.wait_closed(15)
    assert client.close_code == POLICY_VIOLATION
    assert len(refusals(caplog)) == 1 and "no valid `start`" in refusals(caplog)[0]


@pytest.mark.parametrize(
    ("start", "why", "ended_by"),
    [
        (
            {"mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}},
            "unsupported mediaFormat",
            "media-format",
        ),
        ({"streamSid": None}, "without a streamSid", "bad-start"),
    ],
)
async def test_a_start_the_call_cannot_run_on_is_refused_and_ends_the_call(
    base_url: str,
    runtime: Runtime,
    answer: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    start: dict[str, Any],
    why: str,
    ended_by: str,
) -> None:
    call = await answer()
    await refused(call.client(), **start)
    assert len(refusals(caplog)) == 1 and why in refusals(caplog)[0]
    # The call does not stay `ringing`: it is over, and says why.
    stored = await completed(base_url, call.call_id)
    assert (stored["status"], stored["ended_by"]) == ("failed", ended_by)
    assert stored["stream_sid"] is None


async def test_a_bad_start_does_not_end_a_call_that_streams(
    base_url: str, runtime: Runtime, answer: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A second, unused token of the call (the voice webhook answered twice) with a `start`
    that cannot run: refused, and the call streaming meanwhile goes on to complete."""
    first = await answer()
    second = await answer(call_sid=first.call_sid)
    async with first.client() as client:
        await start_streaming(client, 5)
        await attached(runtime, first.call_id)
        await refused(second.client(), streamSid=None)
        during = await runtime.store.get_call(first.call_id)
        assert during is not None
        assert (during["status"], during["completed_at"]) == ("in-progress", None)
        await client.stream_audio(SILENCE * 5, speed=0)
        await hang_up(client)
    stored = await completed(base_url, first.call_id)
    assert (stored["status"], stored["ended_by"]) == ("completed", None)
    assert len(refusals(caplog)) == 1


async def test_bad_messages_do_not_end_the_call_and_are_logged_once_per_kind(
    base_url: str, answer: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    call = await answer()
    deep = "[" * 30_000 + "]" * 30_000  # under the size bound: the depth check skips it
    async with call.client() as client:
        await start_streaming(client, 10)
        for _ in range(2000):
            await client.send_raw("{not json")
        await client.send_raw(deep)
        await client.send_raw(json.dumps({"event": "media", "media": {"payload": "A" * 70_000}}))
        await client.send_raw(json.dumps({"event": "dtmf", "dtmf": "5"}))
        await client.send_raw(json.dumps({"event": "dtmf", "dtmf": {"digit": ["x"]}}))
        await client.stream_audio(SILENCE * 10, speed=0)
        await hang_up(client)
    assert client.close_code != POLICY_VIOLATION
    stored = await completed(base_url, call.call_id)
    assert (stored["status"], stored["ended_by"]) == ("completed", None)
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.twilio_stream"]
    assert sum("non-JSON" in line for line in lines) == 2, lines  # the first, and the count
    assert any("2000 x non-JSON message" in line for line in lines), lines
    # Logged once each; the two bad `dtmf`s once, then counted in the summary.
    for kind, times in (("too deeply nested", 1), ("oversized message", 1), ("`dtmf`", 2)):
        assert sum(kind in line for line in lines) == times, (kind, lines)
    assert len(lines) < 10


async def test_a_message_too_large_for_the_socket_ends_the_call_as_interrupted(
    base_url: str, answer: Callable[..., Any]
) -> None:
    """Over the server's websocket limit (16 MiB) the socket itself closes: the call ends
    early and says so, never `completed`."""
    call = await answer()
    async with call.client() as client:
        await start_streaming(client, 10)
        with pytest.raises(StreamClosed):  # closed mid-send or just after
            await client.send_raw("x" * (20 * 1024 * 1024))
            await client.wait_closed(30)
            await client.send_stop()
    # websockets fails the connection from the frame's header (1009, message too big).
    assert client.close_code == 1009, (client.close_code, client.close_reason)
    stored = await completed(base_url, call.call_id)
    assert (stored["status"], stored["ended_by"]) == ("interrupted", "disconnect")


async def test_a_silent_call_ends_by_idle_timeout(
    base_url: str, answer: Callable[..., Any], override: Callable[..., Runtime]
) -> None:
    override(pipeline={"call": {"idle_timeout_secs": 1.0}})
    call = await answer()
    async with call.client() as client:
        await start_streaming(client)
        await client.wait_closed(60)  # nobody speaks: the server ends it
    stored = await completed(base_url, call.call_id)
    assert (stored["status"], stored["ended_by"]) == ("completed", "idle-timeout")


# -- webhooks --------------------------------------------------------------------------------


async def test_a_replayed_status_callback_changes_nothing(
    base_url: str, runtime: Runtime, answer: Callable[..., Any]
) -> None:
    call = await answer()
    url = f"{base_url}/twilio/status"
    ringing = {"CallSid": call.call_sid, "CallStatus": "ringing", "SequenceNumber": "0"}
    answered = {"CallSid": call.call_sid, "CallStatus": "in-progress", "SequenceNumber": "1"}
    async with httpx.AsyncClient() as http:
        for form in (ringing, answered, ringing, answered, answered):
            response = await http.post(url, data=form, headers=signed(url, form))
            assert response.status_code == 200
            assert response.json()["call_id"] == call.call_id
    events = await runtime.store.pool.fetch(
        "SELECT status, sequence_number FROM call_events WHERE call_sid = $1 ORDER BY id",
        call.call_sid,
    )
    assert [(e["status"], e["sequence_number"]) for e in events] == [
        ("ringing", 0),
        ("in-progress", 1),
    ]
    stored = await runtime.store.get_call(call.call_id)
    assert stored is not None and stored["status"] == "in-progress"  # the replay did not undo it


async def test_voice_for_a_call_already_streaming_is_refused(
    base_url: str, runtime: Runtime, answer: Callable[..., Any]
) -> None:
    call = await answer()
    url = f"{base_url}/twilio/voice"
    form = {"CallSid": call.call_sid, "From": "+15550100001", "To": "+15550100002"}
    async with call.client() as client, httpx.AsyncClient() as http:
        await start_streaming(client, 5)
        await attached(runtime, call.call_id)
        response = await http.post(url, data=form, headers=signed(url, form))
        assert response.status_code == 409
        assert TOKEN_PARAMETER not in response.text
        await hang_up(client)
    await completed(base_url, call.call_id)
    async with httpx.AsyncClient() as http:
        response = await http.post(url, data=form, headers=signed(url, form))
    assert response.status_code == 409  # and once it is over


async def test_voice_reads_no_unsigned_or_oversized_form(base_url: str) -> None:
    url = f"{base_url}/twilio/voice"
    small = {"CallSid": "CA" + "0" * 32}
    big = {**small, "Junk": "x" * (2 * 1024 * 1024)}

    async def post(form: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
        # A connection each: the server closes one whose body it refused to read.
        async with httpx.AsyncClient() as http:
            return await http.post(url, data=form, headers=headers)

    unsigned = await post(small)
    oversized_unsigned = await post(big)
    oversized = await post(big, {"X-Twilio-Signature": "AAAA"})
    assert unsigned.status_code == 403
    # The body limit answers before anything is parsed, signed or not.
    assert oversized_unsigned.status_code == 413
    assert oversized.status_code == 413


# -- the token itself ------------------------------------------------------------------------


def test_tokens_are_bound_signed_and_expire() -> None:
    clock = [dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)]
    tokens = StreamTokens(b"k" * 64, ttl_secs=60, now=lambda: clock[0])
    call_id = str(uuid.uuid4())
    token = tokens.mint(
        call_id=call_id, series="s", meeting_date=dt.date(2026, 12, 1), call_sid="CA1"
    )
    claims = tokens.verify(token)
    assert (claims.call_id, claims.series, claims.call_sid) == (call_id, "s", "CA1")
    assert claims.meeting_date == dt.date(2026, 12, 1)
    tokens.claim(claims)
    with pytest.raises(Exception, match="reused"):
        tokens.claim(claims)
    clock[0] += dt.timedelta(seconds=61)
    with pytest.raises(Exception, match="expired"):
        tokens.verify(token)
    with pytest.raises(Exception, match="forged"):
        StreamTokens(b"j" * 64, ttl_secs=60).verify(token)
