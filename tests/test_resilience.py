"""Bad input and storage outages: logged, skipped or spooled; the call and its data survive."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.audio import to_twilio_ulaw
from server.local_server import serve_in_process
from server.runtime import Runtime
from server.simulate import request_twiml
from server.simulator import simulate_stream, stream_url_from_twiml
from tests.calls import answered_stream
from tests.conftest import MEETING_TURNS, TEST_AUTH_TOKEN, make_settings
from tests.speech import wer


async def _segments(runtime: Runtime, call_id: str) -> list[str]:
    rows = await runtime.store.pool.fetch(
        "SELECT text FROM transcript_segments WHERE call_id = $1 ORDER BY seq", uuid.UUID(call_id)
    )
    return [r["text"] for r in rows]


async def test_malformed_media_stream_input_is_skipped(
    base_url: str, runtime: Runtime, meeting_wav: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ulaw = to_twilio_ulaw(meeting_wav)
    half = (len(ulaw) // 2) // 160 * 160
    async with answered_stream(base_url, series="chaos") as client:
        await client.send_raw("this is not json {")
        await client.send_media(ulaw[:160])  # media before start
        await client.send_connected()
        await client.send_start()
        await client.send_raw(json.dumps({"event": "bogus", "streamSid": "MZ0"}))
        await client.stream_audio(ulaw[:half], speed=0)
        await client.send_raw(
            json.dumps({"event": "media", "media": {"payload": "@@not-base64@@"}})
        )
        big = base64.b64encode(b"\xff" * 100_000).decode()
        await client.send_raw(json.dumps({"event": "media", "media": {"payload": big}}))
        await client.send_raw(b"\x00\x01binary-garbage")
        await client.send_raw(json.dumps(["an", "array"]))
        await client.stream_audio(ulaw[half:] + b"\xff" * 8000, speed=0)
        await client.send_stop()
        await client.wait_closed(timeout=90)
        call_sid = client.result.call_sid
    call_id = await runtime.store.find_call(call_sid=call_sid)
    assert call_id is not None
    await runtime.writer.flush(10)
    text = " ".join(await _segments(runtime, call_id))
    assert wer(" ".join(MEETING_TURNS), text) <= 0.15
    warnings = " ".join(r.getMessage() for r in caplog.records)
    for expected in (
        "non-JSON",
        "`media` before `start`",
        "unknown event `bogus`",
        "invalid base64",
        "oversized message",
        "without an event",
    ):
        assert expected in warnings, expected
    call = await runtime.store.get_call(call_id)
    assert call is not None and call["status"] == "completed"


async def test_socket_closed_without_stop_still_completes(
    base_url: str, runtime: Runtime, meeting_wav: Path
) -> None:
    ulaw = to_twilio_ulaw(meeting_wav)
    async with answered_stream(base_url) as client:
        await client.send_connected()
        await client.send_start()
        await client.stream_audio(ulaw + b"\xff" * 8000, speed=0)
        call_sid = client.result.call_sid
    # The caller hung up without `stop`: the call still ends cleanly with every segment.
    call_id = None
    for _ in range(600):
        call_id = await runtime.store.find_call(call_sid=call_sid)
        call = await runtime.store.get_call(call_id) if call_id else None
        if call and call["completed_at"]:
            break
        await asyncio.sleep(0.1)
    assert call_id is not None
    assert wer(" ".join(MEETING_TURNS), " ".join(await _segments(runtime, call_id))) <= 0.15


@pytest.fixture
async def own_runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    if __import__("os").environ.get("DATABASE_URL"):
        pytest.skip("outage drill needs the embedded Postgres it can stop")
    rt = await Runtime.start(make_settings(tmp_path / "home"))
    try:
        yield rt
    finally:
        await rt.close()


async def test_postgres_outage_mid_call_spools_and_replays(
    own_runtime: Runtime, meeting_wav: Path
) -> None:
    rt = own_runtime
    pg = rt.embedded_postgres
    assert pg is not None
    ulaw = to_twilio_ulaw(meeting_wav)
    async with serve_in_process(create_app(runtime=rt)) as url, httpx.AsyncClient() as http:
        call_sid = "CA" + secrets.token_hex(16)
        twiml = await request_twiml(
            http,
            url,
            series="outage",
            meeting_date=None,
            auth_token=TEST_AUTH_TOKEN,
            call_sid=call_sid,
        )
        stream_url, params = stream_url_from_twiml(twiml)
        call_id = params["call_id"]
        streaming = asyncio.create_task(
            simulate_stream(
                stream_url,
                ulaw,
                custom_parameters=params,
                call_sid=call_sid,
                speed=3.0,
                close_timeout=120,
            )
        )
        # Wait until the first segment is in Postgres, then take Postgres away mid-call.
        for _ in range(600):
            if await _segments(rt, call_id):
                break
            await asyncio.sleep(0.05)
        assert len(await _segments(rt, call_id)) == 1
        await asyncio.to_thread(pg.interrupt)
        await streaming
        assert await rt.writer.flush(30) is False  # the rest waits in the spool
        assert rt.spool.count() >= 2  # later segments and the call's end
        assert rt.writer.spooled_total >= 2
        await asyncio.to_thread(pg.restart)
        await rt.writer.drained(60)
    texts = await _segments(rt, call_id)
    assert wer(" ".join(MEETING_TURNS), " ".join(texts)) <= 0.15
    seqs = [
        r["seq"]
        for r in await rt.store.pool.fetch(
            "SELECT seq FROM transcript_segments WHERE call_id = $1 ORDER BY seq",
            uuid.UUID(call_id),
        )
    ]
    assert seqs == list(range(len(seqs)))
    call = await rt.store.get_call(call_id)
    assert call is not None and call["status"] == "completed"
