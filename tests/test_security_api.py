"""The REST API against strangers: every attack of issue 13's HTTP half tried and refused, and
the happy paths with a token. Real app on a loopback port, real Postgres and Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from pydantic import SecretStr
from typer.testing import CliRunner

from memory import keys
from memory.access import AccessStore
from memory.models import CallCreated, CommitmentRecord, SegmentRecord
from memory.spool import Spool
from server.app import create_app
from server.cli import app as cli_app
from server.erase import purge_expired
from server.guard import live_calls
from server.local_server import serve_in_process
from server.runtime import Runtime
from server.simulate import request_twiml, wait_completed
from server.simulator import TwilioStreamClient, new_sid, stream_url_from_twiml
from tests.calls import overridden
from tests.conftest import API_HEADERS as API
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, make_settings
from tests.fakes.twilio_api import FakeTwilio

ACCOUNT = "AC" + "2" * 32
TWILIO_SECRET = "twilio-secret-for-security-tests"
MEETING_DAY = dt.date(2026, 11, 17)
REPO = Path(__file__).resolve().parent.parent


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_token(
    runtime: Runtime, *scopes: str, series: list[str] | None = None, name: str = "test"
) -> str:
    token, _ = await AccessStore(runtime.store.pool).create_token(
        name=name, scopes=list(scopes), series=series
    )
    return token


async def make_call(runtime: Runtime, series: str | None, *, status: str = "completed") -> str:
    return await runtime.store.create_call(
        CallCreated(
            call_id=str(uuid.uuid4()),
            direction="outbound",
            status=status,
            series_key=series,
            to_number="+14155550100",
            meeting_date=MEETING_DAY,
            time_zone="UTC",
        )
    )


def security(runtime: Runtime, **changes: Any) -> dict[str, Any]:
    """`overridden(runtime, settings=...)` for fields of the security sub-model."""
    fields = type(runtime.settings.security).model_fields
    return {str(fields[name].validation_alias).lower(): value for name, value in changes.items()}


async def capped_one_above(runtime: Runtime) -> dict[str, Any]:
    """Settings that let exactly one more call start: the cap one above the calls counted now.
    Unstarted calls count for a day here (the stream tokens' life), so none of the session's
    earlier calls ages out of the count while the test runs."""
    settings = {"convene_stream_token_ttl_secs": 86_400.0}
    with overridden(runtime, settings=settings):
        live = await live_calls(AccessStore(runtime.store.pool), runtime.settings)
    return {**settings, **security(runtime, max_concurrent_calls=live + 1)}


@pytest.fixture
async def twilio(runtime: Runtime) -> AsyncIterator[tuple[str, FakeTwilio]]:
    """The app with Twilio configured against a loopback fake; +1415 may be dialled by every
    series, +44 by the series `london` only."""
    fake = FakeTwilio()
    pipeline = {"dial": {"allow": ["+1415"]}, "series": {"london": {"dial": {"allow": ["+44"]}}}}
    async with serve_in_process(fake.app()) as twilio_url:
        settings = {
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": SecretStr(TWILIO_SECRET),
            "twilio_from_number": "+15005550006",
            "twilio_api_base_url": twilio_url,
            "public_host": "convene.example.ngrok.app",
            # Dialled calls stay queued here (no status callbacks): no cap but where tested.
            **security(runtime, max_concurrent_calls=10_000),
        }
        with overridden(runtime, pipeline=pipeline, settings=settings):
            async with serve_in_process(create_app(runtime=runtime)) as url:
                yield url, fake


# --- who may call ---------------------------------------------------------------------------


async def test_anonymous_requests_are_refused_on_every_api_route(
    base_url: str, runtime: Runtime
) -> None:
    call_id = await make_call(runtime, "anon-series")
    async with httpx.AsyncClient(base_url=base_url) as client:
        responses = [
            await client.get(f"/calls/{call_id}"),
            await client.get(f"/calls/{call_id}/commitments"),
            await client.get(f"/calls/{call_id}/replies"),
            await client.get("/series/anon-series/tasks"),
            await client.post("/calls", json={"to": "+14155550100"}),
            await client.delete(f"/calls/{call_id}"),
            await client.delete("/series/anon-series"),
            await client.get("/audit"),
        ]
    assert [r.status_code for r in responses] == [401] * len(responses)
    assert all(r.headers["www-authenticate"] == "Bearer" for r in responses)
    assert await runtime.store.get_call(call_id) is not None  # nothing was deleted


async def test_a_forged_token_is_refused(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for forged in ("cvn_" + "A" * 43, "not-a-token", "a.b.c"):
            response = await client.get("/series/x/tasks", headers=bearer(forged))
            assert response.status_code == 401, forged


async def test_a_revoked_token_is_refused(base_url: str, runtime: Runtime) -> None:
    token = await make_token(runtime, "read", name="soon-revoked")
    await make_call(runtime, "revoked-series")
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token)) as client:
        assert (await client.get("/series/revoked-series/tasks")).status_code == 200
        [row] = [r for r in await AccessStore(runtime.store.pool).list_tokens()
                 if r.name == "soon-revoked"]  # fmt: skip
        await AccessStore(runtime.store.pool).revoke_token(str(row.id))
        assert (await client.get("/series/revoked-series/tasks")).status_code == 401


async def test_tokens_are_stored_only_as_hashes(runtime: Runtime) -> None:
    token = await make_token(runtime, "read", name="hashed")
    rows = await runtime.store.pool.fetch("SELECT * FROM api_tokens WHERE name = 'hashed'")
    assert rows and all(token not in json.dumps(dict(r), default=str) for r in rows)


async def test_a_read_token_cannot_dial_or_delete(base_url: str, runtime: Runtime) -> None:
    token = await make_token(runtime, "read")
    call_id = await make_call(runtime, "scoped-series")
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token)) as client:
        dial = await client.post("/calls", json={"to": "+14155550100", "series": "x"})
        delete = await client.delete(f"/calls/{call_id}")
        audit = await client.get("/audit")
        read = await client.get(f"/calls/{call_id}")
    assert (dial.status_code, delete.status_code, audit.status_code) == (403, 403, 403)
    assert "dial" in dial.json()["detail"] and "write" in delete.json()["detail"]
    assert read.status_code == 200
    assert await runtime.store.get_call(call_id) is not None


async def test_a_series_token_sees_its_series_only_and_404_for_the_rest(
    base_url: str, runtime: Runtime
) -> None:
    mine = await make_call(runtime, "team-a")
    theirs = await make_call(runtime, "team-b")
    no_series = await make_call(runtime, None)
    token = await make_token(runtime, "read", "write", series=["team-a"])
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token)) as client:
        assert (await client.get(f"/calls/{mine}")).status_code == 200
        assert (await client.get("/series/team-a/tasks")).status_code == 200
        other = await client.get(f"/calls/{theirs}")
        missing = await client.get(f"/calls/{uuid.uuid4()}")
        for path in (f"/calls/{theirs}/commitments", f"/calls/{theirs}/replies"):
            assert (await client.get(path)).status_code == 404
        assert (await client.get(f"/calls/{no_series}")).status_code == 404
        # The same answer whether the series exists or not: existence does not leak.
        assert (await client.get("/series/team-b/tasks")).status_code == 404
        assert (await client.get("/series/no-such-series/tasks")).status_code == 404
        assert (await client.delete(f"/calls/{theirs}")).status_code == 404
        assert (await client.delete("/series/team-b")).status_code == 404
    assert other.status_code == missing.status_code == 404
    assert await runtime.store.get_call(theirs) is not None


# --- JWTs from an identity provider ---------------------------------------------------------


@pytest.fixture
async def idp(runtime: Runtime) -> AsyncIterator[Any]:
    """A loopback identity provider: its JWKS URL serves one RSA public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = FastAPI()

    @jwks.get("/.well-known/jwks.json")
    async def keys_endpoint() -> dict[str, Any]:
        return {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    async with serve_in_process(jwks) as url:
        changes = security(
            runtime,
            jwks_url=f"{url}/.well-known/jwks.json",
            jwt_issuer="https://idp.example",
            jwt_audience="convene",
        )
        with overridden(runtime, settings=changes):

            def sign(claims: dict[str, Any], signer: Any = key) -> str:
                now = int(time.time())
                body = {
                    "iss": "https://idp.example",
                    "aud": "convene",
                    "sub": "alice@example.com",
                    "iat": now,
                    "exp": now + 300,
                    **claims,
                }
                return jwt.encode(body, signer, algorithm="RS256", headers={"kid": "k1"})

            yield sign


async def test_a_jwt_from_the_identity_provider_maps_scopes_and_series(
    base_url: str, runtime: Runtime, idp: Any
) -> None:
    await make_call(runtime, "jwt-team")
    await make_call(runtime, "jwt-other")
    token = idp({"scope": "convene:read", "convene_series": ["jwt-team"]})
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token)) as client:
        assert (await client.get("/series/jwt-team/tasks")).status_code == 200
        assert (await client.get("/series/jwt-other/tasks")).status_code == 404
        assert (await client.post("/calls", json={"to": "+14155550100"})).status_code == 403
    entries = await AccessStore(runtime.store.pool).audit_entries(limit=20)
    assert any(
        e["actor"] == "jwt:alice@example.com" and e["target"] == "series:jwt-team/tasks"
        for e in entries
    )


async def test_expired_forged_or_foreign_jwts_are_refused(
    base_url: str, runtime: Runtime, idp: Any
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = {
        "expired": idp({"scope": "read", "exp": int(time.time()) - 60}),
        "signed by another key": idp({"scope": "read"}, signer=stranger),
        "other audience": idp({"scope": "read", "aud": "someone-else"}),
        "other issuer": idp({"scope": "read", "iss": "https://evil.example"}),
        "unsigned": jwt.encode({"sub": "x", "scope": "read", "exp": 2**31}, None, "none"),
    }
    async with httpx.AsyncClient(base_url=base_url) as client:
        for why, token in refused.items():
            response = await client.get("/series/jwt-team/tasks", headers=bearer(token))
            assert response.status_code == 401, why


# --- toll fraud -----------------------------------------------------------------------------


async def test_premium_and_unlisted_numbers_are_not_dialled(
    twilio: tuple[str, FakeTwilio], runtime: Runtime
) -> None:
    url, fake = twilio
    token = await make_token(runtime, "dial")
    async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as client:
        for number in ("+19005550100", "+2693001234", "+447012345678", "+8823456789"):
            response = await client.post("/calls", json={"to": number, "series": "premium"})
            assert response.status_code == 403, (number, response.text)
            assert "allow-list" in response.json()["detail"]
        # +44 is allowed for the series `london` only.
        london = await client.post("/calls", json={"to": "+442071234567", "series": "london"})
        listed = await client.post("/calls", json={"to": "+14155550100", "series": "premium"})
    assert london.status_code == listed.status_code == 201, (london.text, listed.text)
    assert [r["form"]["To"] for r in fake.requests] == [["+442071234567"], ["+14155550100"]]


async def test_digits_are_checked_and_never_stored_or_returned(
    twilio: tuple[str, FakeTwilio], runtime: Runtime
) -> None:
    url, fake = twilio
    token = await make_token(runtime, "dial", "read")
    async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as client:
        for digits in ("12;rm", "1" * 65, "ww12W34", "１２３"):
            bad = await client.post(
                "/calls", json={"to": "+14155550100", "digits": digits, "series": "digits"}
            )
            assert bad.status_code == 422, digits
            assert ("body", "digits") in {tuple(e["loc"]) for e in bad.json()["detail"]}
        unnamed = await client.post(
            "/calls", json={"to": "+14155550100", "digits": "ww123456#ww7890#"}
        )
        assert unnamed.status_code == 422 and "series" in unnamed.json()["detail"]
        made = await client.post(
            "/calls",
            json={"to": "+14155550100", "digits": "ww123456#ww7890#", "series": "standup"},
        )
        assert made.status_code == 201, made.text
        call_id = made.json()["call_id"]
        shown = await client.get(f"/calls/{call_id}")
    assert shown.status_code == 200
    # Either group of digits standing on its own, not inside a run of hex or digits (a call
    # SID's hex once held "7890" by chance).
    leak = re.compile(r"(?<![0-9a-fA-F])(123456|7890|1234567890)(?![0-9a-fA-F])")
    assert not leak.search(shown.text), shown.text
    assert shown.json()["series"] == "standup"
    stored = await runtime.store.pool.fetch(
        "SELECT c.*, s.key FROM calls c LEFT JOIN series s ON s.id = c.series_id WHERE c.id = $1",
        uuid.UUID(call_id),
    )
    stored_text = json.dumps([dict(r) for r in stored], default=str)
    assert not leak.search(stored_text), stored_text
    # Only Twilio gets them, in the TwiML it plays.
    assert "ww123456#ww7890#" in fake.requests[-1]["form"]["Twiml"][0]


async def test_dialling_is_rate_limited_per_token(
    twilio: tuple[str, FakeTwilio], runtime: Runtime
) -> None:
    url, fake = twilio
    token = await make_token(runtime, "dial")
    with overridden(runtime, settings=security(runtime, rate_limit_dial="2/hour")):
        async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as client:
            codes = [
                (await client.post("/calls", json={"to": "+14155550100", "series": "rl"}))
                for _ in range(4)
            ]
    assert [r.status_code for r in codes] == [201, 201, 429, 429]
    assert int(codes[2].headers["retry-after"]) >= 1
    assert len(fake.requests) == 2


async def test_requests_are_rate_limited_per_token_and_per_address(
    base_url: str, runtime: Runtime
) -> None:
    await make_call(runtime, "rl-reads")
    token = await make_token(runtime, "read")
    with overridden(runtime, settings=security(runtime, rate_limit_token="3/minute")):
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(token)) as client:
            codes = [(await client.get("/series/rl-reads/tasks")).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    # Per address: counted before the token is even looked at (guessing is throttled too).
    with overridden(runtime, settings=security(runtime, rate_limit_ip="4/minute")):
        async with httpx.AsyncClient(base_url=base_url) as client:
            codes = [
                (
                    await client.get("/series/rl-reads/tasks", headers=bearer(f"cvn_guess{i}"))
                ).status_code
                for i in range(6)
            ]
    assert codes == [401, 401, 401, 401, 429, 429]


async def test_concurrent_calls_are_capped(
    twilio: tuple[str, FakeTwilio], runtime: Runtime
) -> None:
    url, fake = twilio
    token = await make_token(runtime, "dial")
    with overridden(runtime, settings=await capped_one_above(runtime)):
        async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as client:
            first = await client.post("/calls", json={"to": "+14155550100", "series": "cap"})
            second = await client.post("/calls", json={"to": "+14155550100", "series": "cap"})
    assert first.status_code == 201, first.text
    # Past the cap the server is busy (503 with when to retry), not the token rate-limited (429).
    assert second.status_code == 503 and "at most" in second.json()["detail"]
    assert int(second.headers["retry-after"]) >= 1
    assert len(fake.requests) == 1


async def test_a_dialled_call_is_hung_up_at_its_time_limit(
    twilio: tuple[str, FakeTwilio], runtime: Runtime
) -> None:
    url, fake = twilio
    token = await make_token(runtime, "dial")
    with overridden(runtime, settings=security(runtime, max_call_minutes=0.01)):
        async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as client:
            made = await client.post("/calls", json={"to": "+14155550100", "series": "long"})
        assert made.status_code == 201, made.text
        await asyncio.wait_for(fake.updated.wait(), timeout=30)
    [update] = fake.updates
    assert update == {"call_sid": made.json()["call_sid"], "form": {"Status": "completed"}}
    assert fake.requests[0]["form"]["TimeLimit"] == ["1"]  # Twilio's own limit too


@pytest.fixture
async def answering(runtime: Runtime) -> AsyncIterator[FakeTwilio]:
    """The session's app answering inbound calls (`/twilio/voice`, signed with the test auth
    token, streams to its own loopback address) with Twilio's REST API at a loopback fake, so
    it can hang calls up."""
    fake = FakeTwilio()
    async with serve_in_process(fake.app()) as twilio_url:
        settings = {"twilio_account_sid": TEST_ACCOUNT_SID, "twilio_api_base_url": twilio_url}
        with overridden(runtime, settings=settings):
            yield fake


async def voice_answer(base_url: str, call_sid: str, series: str) -> str:
    """The TwiML `/twilio/voice` answers for a new inbound call, signed as Twilio signs it."""
    async with httpx.AsyncClient(timeout=30) as http:
        return await request_twiml(
            http,
            base_url,
            series=series,
            meeting_date=MEETING_DAY,
            auth_token=TEST_AUTH_TOKEN,
            call_sid=call_sid,
        )


SILENCE = b"\xff" * 160  # 20 ms of mu-law silence


async def test_inbound_calls_count_against_the_concurrent_call_cap(
    base_url: str, runtime: Runtime, answering: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    """Past CONVENE_MAX_CALLS an answered call hears a refusal and is hung up: no stream, no
    token, no record. Twilio retrying the webhook of a call already answered is not a new
    call."""
    first, second = new_sid("CA"), new_sid("CA")
    with overridden(runtime, settings=await capped_one_above(runtime)):
        answered = await voice_answer(base_url, first, "inbound-cap")
        calls_before = await runtime.store.pool.fetchval("SELECT count(*) FROM calls")
        refused = await voice_answer(base_url, second, "inbound-cap")
        retried = await voice_answer(base_url, first, "inbound-cap")
    assert "<Stream" in answered and "stream_token" in answered
    assert "<Stream" in retried  # the same call again, not one more
    assert "<Say>" in refused and "<Hangup />" in refused
    assert "<Stream" not in refused and "stream_token" not in refused
    assert await runtime.store.find_call(call_sid=second) is None
    assert await runtime.store.pool.fetchval("SELECT count(*) FROM calls") == calls_before
    assert any(
        "refused call" in r.getMessage() and second in r.getMessage() for r in caplog.records
    )
    assert not answering.updates  # refused by TwiML: nothing to hang up


async def test_a_call_that_never_streamed_stops_counting_once_its_token_expired(
    runtime: Runtime,
) -> None:
    """A caller who hung up while the call rang leaves it `ringing` (no status callback on an
    inbound number): it holds a place under the cap only while its stream token could still
    open a stream; a call that streams counts until the time limit."""
    access = AccessStore(runtime.store.pool)
    window = {"within": dt.timedelta(days=3), "unstarted_within": dt.timedelta(days=1)}
    before = await access.live_calls(**window)
    rang = await make_call(runtime, "cap-age", status="ringing")
    streams = await make_call(runtime, "cap-age", status="ringing")
    await runtime.store.start_stream(
        call_id=streams, stream_sid=new_sid("MZ"), call_sid=None, meeting_title=None
    )
    assert await access.live_calls(**window) == before + 2
    await runtime.store.pool.execute(
        "UPDATE calls SET created_at = now() - interval '2 days' WHERE id = ANY($1::uuid[])",
        [uuid.UUID(rang), uuid.UUID(streams)],
    )
    assert await access.live_calls(**window) == before + 1  # the one that streams


async def test_while_postgres_is_away_inbound_calls_count_against_this_process(
    tmp_path: Path,
) -> None:
    """Postgres away: a call is still answered (its record spooled), but only while this
    process runs fewer than CONVENE_MAX_CALLS calls."""
    settings = make_settings(
        tmp_path / "home", database_url=None, redis_url=None, convene_max_calls=1
    )
    rt = await Runtime.start(settings, load_whisper=False)
    try:
        assert rt.embedded_postgres is not None
        async with serve_in_process(create_app(runtime=rt)) as url:
            await asyncio.to_thread(rt.embedded_postgres.interrupt)
            streaming = str(uuid.uuid4())
            rt.active_calls.add(streaming)  # one call streaming here already
            refused = await voice_answer(url, new_sid("CA"), "while-down")
            with overridden(rt, settings={"convene_max_calls": 2}):
                answered = await voice_answer(url, new_sid("CA"), "while-down")
            rt.active_calls.discard(streaming)
            await asyncio.to_thread(rt.embedded_postgres.restart)
    finally:
        await rt.close()
    assert "<Hangup />" in refused and "<Stream" not in refused
    assert "<Stream" in answered and "stream_token" in answered


async def test_an_answered_call_is_hung_up_at_its_time_limit_and_says_so(
    base_url: str, runtime: Runtime, answering: FakeTwilio
) -> None:
    """An inbound call past CONVENE_MAX_CALL_MINUTES is hung up through Twilio's REST API, as
    a dialled one is; Twilio then stops the stream, and the call ends `time-limit`."""
    call_sid = new_sid("CA")
    with overridden(runtime, settings=security(runtime, max_call_minutes=0.01)):
        url, params = stream_url_from_twiml(await voice_answer(base_url, call_sid, "long-in"))
        async with TwilioStreamClient(url, custom_parameters=params, call_sid=call_sid) as client:
            await client.send_connected()
            await client.send_start()
            await client.stream_audio(SILENCE * 10, speed=0)
            await asyncio.wait_for(answering.updated.wait(), timeout=30)
            # What Twilio does once the call is hung up: the stream's `stop`.
            await client.send_stop()
            await client.wait_closed(60)
    assert answering.updates == [{"call_sid": call_sid, "form": {"Status": "completed"}}]
    async with httpx.AsyncClient(timeout=30, headers=API) as http:
        stored = await wait_completed(http, base_url, params["call_id"], 60)
    assert (stored["status"], stored["ended_by"]) == ("completed", "time-limit")


async def test_a_dialled_calls_stream_must_carry_the_callsid_twilio_gave_it(
    twilio: tuple[str, FakeTwilio], runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Once calls.create returned the CallSid, the call's stream token opens a stream only
    with that CallSid: another one is refused (1008), stores nothing and leaves the token to
    the call's real stream."""
    url, fake = twilio
    token = await make_token(runtime, "dial")
    async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as client:
        made = await client.post("/calls", json={"to": "+14155550100", "series": "bound"})
    assert made.status_code == 201, made.text
    call_id, call_sid = made.json()["call_id"], made.json()["call_sid"]
    _, params = stream_url_from_twiml(fake.requests[-1]["form"]["Twiml"][0])
    media = url.replace("http", "ws") + "/twilio/media"
    for stranger in (new_sid("CA"), None):
        async with TwilioStreamClient(media, custom_parameters=params) as client:
            await client.send_connected()
            await client.send_start(callSid=stranger)
            await client.wait_closed(15)
        assert client.close_code == 1008, (client.close_code, client.close_reason)
    stored = await runtime.store.get_call(call_id)
    assert stored is not None and stored["stream_sid"] is None and stored["started_at"] is None
    refusals = [r.getMessage() for r in caplog.records if "stream refused" in r.getMessage()]
    assert len(refusals) == 2 and all("CallSid" in line for line in refusals), refusals
    async with TwilioStreamClient(media, custom_parameters=params, call_sid=call_sid) as client:
        await client.send_connected()
        await client.send_start()
        await client.stream_audio(SILENCE * 10, speed=0)
        await client.send_stop()
        await client.wait_closed(60)
    async with httpx.AsyncClient(timeout=30, headers=API) as http:
        stored = await wait_completed(http, url, call_id, 60)
    assert (stored["status"], stored["ended_by"]) == ("completed", None)
    assert stored["stream_sid"] is not None


# --- bodies, keys, hosts --------------------------------------------------------------------


async def test_an_oversized_body_is_refused_before_it_is_parsed(base_url: str) -> None:
    big = {"to": "+14155550100", "series": "x", "meeting_title": "A" * 200_000}
    async with httpx.AsyncClient(base_url=base_url) as client:
        declared = await client.post("/calls", json=big)  # Content-Length says so
        # Twilio's webhook too: refused before its form is read or its signature checked.
        webhook = await client.post("/twilio/voice", data={"Body": "B" * 200_000})
    assert declared.status_code == webhook.status_code == 413
    assert "larger than" in declared.json()["detail"]
    # Chunked, with no length: counted as it comes, answered 413 while the sender still sends.
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /calls HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(30):  # 120 kB, never finished
            writer.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


@pytest.mark.parametrize(
    "key",
    ["nul\x00key", "lone\ud800surrogate", "k" * 3000, "a/b", "line\nbreak", " lead", ""],
    ids=["nul", "surrogate", "3kB", "slash", "newline", "leading-space", "empty"],
)
async def test_odd_series_keys_are_a_clear_422_in_the_body(
    key: str, twilio: tuple[str, FakeTwilio], runtime: Runtime
) -> None:
    url, fake = twilio
    token = await make_token(runtime, "dial")
    raw = json.dumps({"to": "+14155550100", "series": key})  # \ud800 escaped as JSON allows
    async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as client:
        response = await client.post(
            "/calls", content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert ("body", "series") in {tuple(e["loc"]) for e in response.json()["detail"]}
    assert not fake.requests


@pytest.mark.parametrize(
    "path",
    ["nul%00key", "lone%ED%A0%80surrogate", "k" * 3000, "line%0Abreak", "%20lead"],
    ids=["nul", "surrogate", "3kB", "newline", "leading-space"],
)
async def test_odd_series_keys_are_a_clear_422_in_the_path(base_url: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for method in ("GET", "DELETE"):
            suffix = "/tasks" if method == "GET" else ""
            response = await client.request(
                method, f"{base_url}/series/{path}{suffix}", headers=API
            )
            assert response.status_code == 422, (method, response.text[:200])
            assert response.json()["detail"][0]["loc"] == ["path", "key"]


async def test_a_foreign_host_header_is_refused(runtime: Runtime) -> None:
    with overridden(runtime, settings={"public_host": "convene.example.ngrok.app"}):
        async with (
            serve_in_process(create_app(runtime=runtime)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            rebound = await client.get("/series/x/tasks", headers={**API, "Host": "evil.example"})
            public = await client.get(
                "/calls/00000000-0000-0000-0000-000000000000",
                headers={**API, "Host": "convene.example.ngrok.app"},
            )
            local = await client.get("/calls/00000000-0000-0000-0000-000000000000", headers=API)
            # Orchestrators probe the pod's own address: the probes answer any Host.
            probe = await client.get("/health", headers={"Host": "10.1.2.3:8000"})
    assert rebound.status_code == 400
    assert public.status_code == local.status_code == 404  # served (no such call)
    assert probe.status_code == 200


async def test_responses_carry_security_headers(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


async def test_api_docs_are_served_only_when_enabled(base_url: str, runtime: Runtime) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        hidden = [(await client.get(p)).status_code for p in ("/docs", "/redoc", "/openapi.json")]
    assert hidden == [404, 404, 404]
    with overridden(runtime, settings=security(runtime, api_docs=True)):
        async with (
            serve_in_process(create_app(runtime=runtime)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            docs = await client.get("/docs")
            spec = (await client.get("/openapi.json")).json()
    assert docs.status_code == 200
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/calls"]["post"]["security"] == [{"bearer": ["dial"]}]
    assert spec["paths"]["/calls/{call_id}"]["delete"]["security"] == [{"bearer": ["write"]}]
    assert "security" not in spec["paths"]["/health"]["get"]


# --- deleting, retention, audit -------------------------------------------------------------


async def _call_with_memory(runtime: Runtime, series: str) -> str:
    """A call with a transcript, a commitment (so a task), and their copies in Redis."""
    call_id = await make_call(runtime, series)
    await runtime.store.start_stream(
        call_id=call_id,
        stream_sid="MZ" + uuid.uuid4().hex,
        call_sid=None,
        meeting_title=None,
    )
    runtime.writer.submit(SegmentRecord(call_id, 0, 0, 2000, "I will send the report."))
    runtime.writer.submit(
        CommitmentRecord(
            call_id=call_id,
            seq=0,
            ordinal=0,
            kind="commitment",
            owner="Tom",
            action="send the report",
            due=None,
            quote="I will send the report.",
            confidence=0.9,
            series=series,
        )
    )
    assert await runtime.writer.flush(30)
    return call_id


async def _rows(runtime: Runtime, call_id: str) -> dict[str, int]:
    key = uuid.UUID(call_id)
    counts = {}
    for table in ("transcript_segments", "commitments", "memory_embeddings", "calls"):
        column = "id" if table == "calls" else "call_id"
        counts[table] = await runtime.store.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE {column} = $1",  # noqa: S608
            key,
        )
    counts["tasks"] = await runtime.store.pool.fetchval(
        "SELECT count(*) FROM tasks WHERE source_call_id = $1", key
    )
    return counts


async def _in_redis(runtime: Runtime, call_id: str, series: str) -> dict[str, int]:
    streams = {}
    for stream in (keys.SEGMENTS_STREAM, keys.COMMITMENTS_STREAM):
        entries = await runtime.redis.xrange(stream)
        streams[stream] = sum(1 for _, f in entries if f.get("call_id") == call_id)
    commitments = await runtime.redis.xrange(keys.COMMITMENTS_STREAM)
    streams["series"] = sum(1 for _, f in commitments if f.get("series") == series)
    return streams


async def test_delete_call_removes_it_everywhere_and_is_audited(
    base_url: str, runtime: Runtime
) -> None:
    call_id = await _call_with_memory(runtime, "to-forget")
    kept = await _call_with_memory(runtime, "to-keep")
    assert all(await _rows(runtime, call_id))  # there is something to delete
    assert all((await _in_redis(runtime, call_id, "to-forget")).values())
    token = await make_token(runtime, "read", "write", name="deleter")
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token)) as client:
        assert (await client.get(f"/calls/{call_id}")).status_code == 200
        deleted = await client.delete(f"/calls/{call_id}")
        again = await client.get(f"/calls/{call_id}")
    assert deleted.status_code == 200 and again.status_code == 404
    assert set((await _rows(runtime, call_id)).values()) == {0}
    assert set((await _in_redis(runtime, call_id, "to-forget")).values()) == {0}
    assert all(await _rows(runtime, kept))  # another call is untouched
    entries = await AccessStore(runtime.store.pool).audit_entries(limit=50)
    mine = [(e["action"], e["target"]) for e in entries if e["actor"].startswith("token:deleter#")]
    assert ("read", f"call:{call_id}") in mine and ("delete", f"call:{call_id}") in mine
    assert all(e["client"] == "127.0.0.1" for e in entries if e["actor"].startswith("token:del"))


async def test_every_read_is_audited_and_listed_to_admins(base_url: str, runtime: Runtime) -> None:
    """Who read which call, transcript, commitments, replies or series' tasks, and when: one
    audit row per read, listed by `GET /audit` to an admin token only."""
    call_id = await _call_with_memory(runtime, "audited-reads")
    reader = await make_token(runtime, "read", name="auditee")
    admin = await make_token(runtime, "admin", name="auditor")
    since = dt.datetime.now(dt.UTC)
    reads = [
        f"/calls/{call_id}",
        f"/calls/{call_id}/commitments",
        f"/calls/{call_id}/replies",
        "/series/audited-reads/tasks",
    ]
    async with httpx.AsyncClient(base_url=base_url) as client:
        for path in reads:
            assert (await client.get(path, headers=bearer(reader))).status_code == 200, path
        missing = await client.get(f"/calls/{uuid.uuid4()}", headers=bearer(reader))
        denied = await client.get("/audit", headers=bearer(reader))
        listed = await client.get("/audit", params={"limit": 50}, headers=bearer(admin))
    assert missing.status_code == 404 and denied.status_code == 403
    assert listed.status_code == 200
    [row] = [r for r in await AccessStore(runtime.store.pool).list_tokens() if r.name == "auditee"]
    mine = [e for e in listed.json()["entries"] if e["actor"] == f"token:auditee#{row.id}"]
    assert sorted((e["action"], e["target"]) for e in mine) == sorted(
        [
            ("read", f"call:{call_id}"),
            ("read", f"call:{call_id}/commitments"),
            ("read", f"call:{call_id}/replies"),
            ("read", "series:audited-reads/tasks"),
        ]
    )  # the 404 read nothing, so it is not among them
    assert all(dt.datetime.fromisoformat(e["at"]) >= since for e in mine)
    assert all(e["client"] == "127.0.0.1" for e in mine)


async def test_delete_series_removes_its_calls_tasks_and_memory(
    base_url: str, runtime: Runtime
) -> None:
    first = await _call_with_memory(runtime, "series-to-forget")
    second = await _call_with_memory(runtime, "series-to-forget")
    async with httpx.AsyncClient(base_url=base_url, headers=API) as client:
        before = await client.get("/series/series-to-forget/tasks")
        assert before.status_code == 200 and before.json()["tasks"]
        deleted = await client.delete("/series/series-to-forget")
        after = await client.get("/series/series-to-forget/tasks")
    assert deleted.status_code == 200 and deleted.json()["calls"] == 2
    assert after.status_code == 404
    for call_id in (first, second):
        assert set((await _rows(runtime, call_id)).values()) == {0}
    for stream in (keys.SEGMENTS_STREAM, keys.COMMITMENTS_STREAM):
        left = await runtime.redis.xrange(stream)
        assert not [f for _, f in left if f.get("call_id") in (first, second)]
        assert not [f for _, f in left if f.get("series") == "series-to-forget"]
    assert (
        await runtime.store.pool.fetchval(
            "SELECT count(*) FROM series WHERE key = 'series-to-forget'"
        )
        == 0
    )


async def test_deleting_drops_spooled_copies(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    try:
        doomed, kept = str(uuid.uuid4()), str(uuid.uuid4())
        await spool.append(
            [
                SegmentRecord(doomed, 0, 0, 1000, "secret words"),
                SegmentRecord(kept, 0, 0, 1000, "other words"),
                CallCreated(doomed, "inbound", "ringing", MEETING_DAY, "UTC", series_key="s"),
            ]
        )
        assert await spool.discard([doomed], []) == 2
        assert [op.call_id for _, op in await spool.peek(10)] == [kept]
    finally:
        spool.close()


async def test_retention_purges_old_calls(runtime: Runtime) -> None:
    old = await _call_with_memory(runtime, "retained")
    recent = await make_call(runtime, "retained")
    await runtime.store.pool.execute(
        "UPDATE calls SET created_at = now() - interval '40 days' WHERE id = $1", uuid.UUID(old)
    )
    with overridden(runtime, pipeline={"retention": {"days": 30}}):
        purged = await purge_expired(runtime)
    assert old in purged and recent not in purged
    assert set((await _rows(runtime, old)).values()) == {0}
    assert await runtime.store.get_call(recent) is not None
    entries = await AccessStore(runtime.store.pool).audit_entries(limit=200)
    assert ("retention", "purge", f"call:{old}") in {
        (e["actor"], e["action"], e["target"]) for e in entries
    }


# --- the CLI, serving, logs -----------------------------------------------------------------


async def test_token_cli_creates_lists_and_revokes(base_url: str, runtime: Runtime) -> None:
    assert runtime.embedded_postgres is not None or os.environ.get("DATABASE_URL")
    dsn = os.environ.get("DATABASE_URL") or runtime.embedded_postgres.uri  # type: ignore[union-attr]
    env = {"DATABASE_URL": dsn, "CONVENE_HOME": str(runtime.settings.convene_home)}
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(cli_app, list(args), env=env)

    made = await asyncio.to_thread(
        cli, "token", "create", "--name", "ci-bot", "--scopes", "read,write",
        "--series", "cli-team", "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    token = created["token"]
    assert token.startswith("cvn_") and created["series"] == ["cli-team"]
    await make_call(runtime, "cli-team")
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token)) as client:
        assert (await client.get("/series/cli-team/tasks")).status_code == 200
        listed = await asyncio.to_thread(cli, "token", "list", "--json")
        assert listed.exit_code == 0 and token not in listed.stdout
        assert created["id"] in [t["id"] for t in json.loads(listed.stdout)["tokens"]]
        revoked = await asyncio.to_thread(cli, "token", "revoke", str(created["id"]))
        assert revoked.exit_code == 0, revoked.output
        assert (await client.get("/series/cli-team/tasks")).status_code == 401
    bad = await asyncio.to_thread(cli, "token", "create", "--name", "x", "--scopes", "root")
    assert bad.exit_code == 2 and "expected some of" in bad.output


def test_serve_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CONVENE_HOME": str(tmp_path / "home"),
        "TWILIO_AUTH_TOKEN": "x",
        "CONVENE_PROMPTS_DIR": str(REPO / "prompts"),
    }
    for name in ("DATABASE_URL", "REDIS_URL", "CONVENE_BOOTSTRAP_TOKEN", "CONVENE_JWKS_URL"):
        env.pop(name, None)
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert "refusing to serve on 0.0.0.0" in out.stderr and "--insecure-dev" in out.stderr


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


async def test_logs_never_hold_a_token_or_passcode(
    twilio: tuple[str, FakeTwilio], runtime: Runtime, all_logs: pytest.LogCaptureFixture
) -> None:
    url, _ = twilio
    token = await make_token(runtime, "dial", "read")
    async with httpx.AsyncClient(base_url=url) as client:
        made = await client.post(
            "/calls",
            json={"to": "+14155550100", "digits": "ww918273#ww6450#", "series": "logged"},
            headers=bearer(token),
        )
        await client.get(f"/calls/{made.json()['call_id']}", headers=bearer(token))
        await client.get("/series/logged/tasks", headers=bearer(token + "x"))  # refused
        await client.get("/series/logged/tasks", headers=API)
    assert made.status_code == 201
    # What was captured: the Twilio SDK's request log and the clients' request lines.
    assert any(r.name.startswith("twilio") for r in all_logs.records)
    assert any("/calls" in r.getMessage() for r in all_logs.records)
    text = all_logs.text + " ".join(str(r.args) for r in all_logs.records)
    for secret in (token, "918273", "6450", TWILIO_SECRET, API["Authorization"][7:]):
        assert secret not in text
