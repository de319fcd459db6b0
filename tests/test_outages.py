"""Outages of the servers and the disk under a running Convene: supervised, reported, survived.

Real parts only: the embedded Redis is killed with SIGKILL, the embedded Postgres is frozen
with SIGSTOP, and the disk is a size-limited tmpfs mounted as CONVENE_HOME and really filled
(this needs root, as CI has; elsewhere the full-disk test is skipped, never under CI=true).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from pydantic import SecretStr

from bot.models import resolve_whisper_model
from core.settings import REPO_ROOT
from domain.extraction import DeterministicExtractor, Utterance
from domain.llm_extraction import build_llm_extractor
from domain.llm_pending import PendingSpool
from memory.models import CallEnded, CommitmentRecord, SegmentRecord, WriteOp
from memory.writer import StoreWriter
from server.app import create_app
from server.audio import to_twilio_ulaw
from server.local_server import serve_in_process
from server.runtime import RETRIED_SEQ_BASE, Runtime
from server.simulate import request_twiml
from server.simulator import simulate_stream, stream_url_from_twiml
from tests.conftest import MEETING_TURNS, TEST_AUTH_TOKEN, make_settings
from tests.fakes.anthropic_api import FakeAnthropic, commitments, overloaded
from tests.speech import wer


@pytest.fixture
async def bare_runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime with its own embedded servers (no Whisper: these calls carry no audio)."""
    settings = make_settings(
        tmp_path / "home", database_url=None, redis_url=None, convene_supervise_secs=0.2
    )
    rt = await Runtime.start(settings, load_whisper=False)
    try:
        yield rt
    finally:
        await rt.close()


async def _ready(http: httpx.AsyncClient, url: str) -> tuple[int, dict[str, Any]]:
    response = await http.get(f"{url}/ready", timeout=30)
    return response.status_code, response.json()


async def _wait_ready(
    http: httpx.AsyncClient, url: str, *, want: int, timeout: float
) -> dict[str, Any]:
    """Poll the real endpoint until it answers `want` (a deadline, not a measurement)."""
    deadline = time.monotonic() + timeout
    while True:
        code, body = await _ready(http, url)
        if code == want:
            return body
        assert time.monotonic() < deadline, f"/ready still {code}: {body}"
        await asyncio.sleep(0.1)


async def test_killed_embedded_redis_is_restarted_and_ready_again(
    bare_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    rt = bare_runtime
    embedded = rt.embedded_redis
    assert embedded is not None
    async with serve_in_process(create_app(runtime=rt)) as url, httpx.AsyncClient() as http:
        await _wait_ready(http, url, want=200, timeout=30)
        old = embedded.server_pid()
        assert old is not None
        proc = psutil.Process(old)
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        body = await _wait_ready(http, url, want=200, timeout=30)
        assert body["redis"] == "ok"
        new = embedded.server_pid()
        assert new is not None and new != old
        assert embedded.restarts >= 1
        # The app's own client works against the new server (same socket).
        await rt.redis.set("convene:test:after-restart", "1", ex=60)
        assert await rt.redis.get("convene:test:after-restart") == "1"
    assert "embedded Redis restarted" in caplog.text


@contextlib.contextmanager
def _frozen(pids: list[int]) -> Iterator[None]:
    procs = [psutil.Process(pid) for pid in pids]
    for proc in procs:
        proc.suspend()
    try:
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.resume()


async def test_ready_answers_while_postgres_is_frozen(bare_runtime: Runtime) -> None:
    rt = bare_runtime
    pg = rt.embedded_postgres
    assert pg is not None
    postmaster = pg.postmaster_pid()
    assert postmaster is not None
    tree = [postmaster, *(c.pid for c in psutil.Process(postmaster).children(recursive=True))]
    async with serve_in_process(create_app(runtime=rt)) as url, httpx.AsyncClient() as http:
        await _wait_ready(http, url, want=200, timeout=30)
        with _frozen(tree):
            # Answered (not hung: the client gives up after 30 s), and red.
            code, body = await _ready(http, url)
            assert code == 503
            assert body["postgres"].startswith("Postgres unreachable")
            assert body["redis"] == "ok"
            # Frozen is not dead: the supervisor leaves it alone.
            assert pg.postmaster_pid() == postmaster
        await _wait_ready(http, url, want=200, timeout=30)
    assert pg.restarts == 0


# --- a full disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI"):
            raise  # CI runs as root: a size-limited disk must be possible there
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {exc}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte (ENOSPC)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (1024 * 1024, 4096, 512):
            block = b"\0" * chunk
            while True:
                try:
                    fh.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return filler


async def _stored_segments(rt: Runtime, call_id: str) -> list[tuple[int, str]]:
    with contextlib.suppress(Exception):  # Postgres itself may be down on the full disk
        rows = await rt.store.pool.fetch(
            "SELECT seq, text FROM transcript_segments WHERE call_id = $1 ORDER BY seq",
            uuid.UUID(call_id),
            timeout=5,
        )
        return [(r["seq"], r["text"]) for r in rows]
    return []


async def test_full_disk_mid_call_is_reported_and_nothing_is_lost(
    tmp_path: Path, home: Path, meeting_wav: Path
) -> None:
    """The issue's case. Postgres may still fit a few rows in pages it holds (then the writer
    sees no error) or refuse them (DiskFullError: then they wait); either way /ready is red
    while the disk is full and every segment is stored once space returns."""
    # Whisper's model lives off the small disk (shared with the session's runtime).
    model = await asyncio.to_thread(resolve_whisper_model, "packaged:base", home / "models")
    with _tmpfs(tmp_path / "disk", 256) as disk:
        settings = make_settings(
            disk / "home",
            database_url=None,
            redis_url=None,
            convene_whisper_model=model,
            convene_writer_max_retry_secs=1.0,
            convene_supervise_secs=0.5,
            convene_min_free_mb=16,
        )
        rt = await Runtime.start(settings)
        try:
            await _full_disk_call(rt, disk, meeting_wav)
        finally:
            await rt.close()


async def _full_disk_call(rt: Runtime, disk: Path, meeting_wav: Path) -> None:
    ulaw = to_twilio_ulaw(meeting_wav)
    audio_sent = asyncio.Event()

    def progress(fraction: float) -> None:
        if fraction >= 1.0:
            audio_sent.set()

    async with serve_in_process(create_app(runtime=rt)) as url, httpx.AsyncClient() as http:
        await _wait_ready(http, url, want=200, timeout=30)
        twiml = await request_twiml(
            http,
            url,
            series="full-disk",
            meeting_date=None,
            auth_token=TEST_AUTH_TOKEN,
            call_sid=(call_sid := "CA" + secrets.token_hex(16)),
        )
        stream_url, params = stream_url_from_twiml(twiml)
        call_id = params["call_id"]
        streaming = asyncio.create_task(
            simulate_stream(
                stream_url,
                ulaw,
                custom_parameters=params,
                call_sid=call_sid,
                speed=1.5,
                close_timeout=180,
                on_progress=progress,
            )
        )
        # The first segment is in Postgres: now the disk fills up, mid-call.
        deadline = time.monotonic() + 120
        while not await _stored_segments(rt, call_id):
            assert not streaming.done(), streaming
            assert time.monotonic() < deadline, "no segment stored"
            await asyncio.sleep(0.05)
        filler = await asyncio.to_thread(_fill, disk)
        red = await _wait_ready(http, url, want=503, timeout=60)
        assert red["disk"] != "ok"
        # The rest of the meeting is heard while the disk is full.
        await asyncio.wait_for(audio_sent.wait(), 120)
        await asyncio.to_thread(filler.unlink)
        # Space is back: the writer resumes by itself and everything lands.
        green = await _wait_ready(http, url, want=200, timeout=120)
        assert green["writer"] == "ok"
        await streaming
        deadline = time.monotonic() + 120
        while True:
            call = await rt.store.get_call(call_id)
            if call is not None and call["status"] == "completed":
                break
            assert time.monotonic() < deadline, f"call not completed: {call}"
            await asyncio.sleep(0.2)
        await rt.writer.drained(60)
        stored = await _stored_segments(rt, call_id)
        assert [seq for seq, _ in stored] == list(range(len(stored)))
        assert wer(" ".join(MEETING_TURNS), " ".join(text for _, text in stored)) <= 0.15
        assert await rt.store.get_commitments(call_id)
        assert rt.writer.dropped_total == 0


async def _wait_writer(
    http: httpx.AsyncClient, url: str, ok: bool, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, body = await _ready(http, url)
        if (body["writer"] == "ok") == ok:
            return body
        assert time.monotonic() < deadline, f"/ready writer: {body}"
        await asyncio.sleep(0.1)


async def test_writes_wait_in_memory_while_postgres_is_down_and_the_disk_full(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither Postgres nor the spool takes writes: they wait in memory (bounded), /ready says
    so, and they land by themselves once there is room again."""
    caplog.set_level(logging.WARNING)
    model = await asyncio.to_thread(resolve_whisper_model, "packaged:base", home / "models")
    with _tmpfs(tmp_path / "disk", 128) as disk:
        settings = make_settings(
            disk / "home",
            database_url=None,
            redis_url=None,
            convene_whisper_model=model,
            convene_writer_max_retry_secs=0.5,
            convene_min_free_mb=16,
        )
        rt = await Runtime.start(settings, load_whisper=False)
        try:
            await _writes_on_a_full_disk(rt, disk, caplog)
        finally:
            await rt.close()


async def _new_call(rt: Runtime) -> str:
    call_id = str(uuid.uuid4())
    await rt.store.pool.execute(
        "INSERT INTO calls(id, direction, status) VALUES ($1, 'stream', 'in-progress')",
        uuid.UUID(call_id),
    )
    return call_id


def _segments(call_id: str, n: int) -> list[SegmentRecord]:
    return [
        SegmentRecord(call_id, seq, seq * 1000, seq * 1000 + 900, f"segment number {seq}")
        for seq in range(n)
    ]


async def _writes_on_a_full_disk(rt: Runtime, disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    pg = rt.embedded_postgres
    assert pg is not None
    call_id, bounded_id = await _new_call(rt), await _new_call(rt)
    async with serve_in_process(create_app(runtime=rt)) as url, httpx.AsyncClient() as http:
        await asyncio.to_thread(pg.interrupt)
        filler = await asyncio.to_thread(_fill, disk)
        ops: list[WriteOp] = [*_segments(call_id, 30), CallEnded(call_id)]
        for op in ops:
            rt.writer.submit(op)
        red = await _wait_writer(http, url, ok=False)
        assert red["status"] == "unavailable"
        assert red["writer"].startswith("degraded")
        assert int(red["held_writes"]) == len(ops)
        assert "cannot store writes" in caplog.text
        # Past its bound a writer drops the oldest (a call's end marker last) and says so.
        bounded = StoreWriter(
            rt.store, None, rt.spool, batch_size=10, retry_secs=0.1, max_retry_secs=0.5, max_held=20
        )
        bounded.start()
        later: list[WriteOp] = [CallEnded(bounded_id), *_segments(bounded_id, 24)]
        for op in later:
            bounded.submit(op)
        assert bounded.held == 20 and bounded.dropped_total == 5
        assert "dropped the oldest" in caplog.text

        await asyncio.to_thread(filler.unlink)
        # Room again: the spool takes what memory held (Postgres is still down).
        body = await _wait_writer(http, url, ok=True)
        assert body["postgres"] != "ok"
        await rt.writer.flush(30)
        await bounded.close(30)
        assert rt.writer.held == 0 and bounded.held == 0
        assert rt.spool.count() == len(ops) + 20
        await asyncio.to_thread(pg.restart)
        await rt.writer.drained(60)
        await _wait_ready(http, url, want=200, timeout=60)
    rows = await rt.store.pool.fetch(
        "SELECT seq FROM transcript_segments WHERE call_id = $1 ORDER BY seq", uuid.UUID(call_id)
    )
    assert [r["seq"] for r in rows] == list(range(30))
    call = await rt.store.get_call(call_id)
    assert call is not None and call["status"] == "completed"
    kept = await rt.store.pool.fetch(
        "SELECT seq FROM transcript_segments WHERE call_id = $1 ORDER BY seq",
        uuid.UUID(bounded_id),
    )
    assert [r["seq"] for r in kept] == list(range(5, 24))
    bounded_call = await rt.store.get_call(bounded_id)
    assert bounded_call is not None and bounded_call["status"] == "completed"


# --- a call while Postgres is down ------------------------------------------------------------


async def test_call_arriving_while_postgres_is_down_is_answered_and_lands_later(
    tmp_path: Path, home: Path, meeting_wav: Path
) -> None:
    model = await asyncio.to_thread(resolve_whisper_model, "packaged:base", home / "models")
    settings = make_settings(
        tmp_path / "home", database_url=None, redis_url=None, convene_whisper_model=model
    )
    rt = await Runtime.start(settings)
    try:
        pg = rt.embedded_postgres
        assert pg is not None
        call_sid = "CA" + secrets.token_hex(16)
        async with serve_in_process(create_app(runtime=rt)) as url, httpx.AsyncClient() as http:
            await asyncio.to_thread(pg.interrupt)
            # Answered (request_twiml raises unless it is a 200 with TwiML), not refused.
            twiml = await request_twiml(
                http,
                url,
                series="while-down",
                meeting_date=None,
                auth_token=TEST_AUTH_TOKEN,
                call_sid=call_sid,
            )
            stream_url, params = stream_url_from_twiml(twiml)
            call_id = params["call_id"]
            await simulate_stream(
                stream_url,
                to_twilio_ulaw(meeting_wav),
                custom_parameters=params,
                call_sid=call_sid,
                speed=0,
                close_timeout=120,
            )
            assert await rt.writer.flush(30) is False  # all of it waits in the spool
            code, body = await _ready(http, url)
            assert code == 503 and body["postgres"] != "ok"
            assert int(body["spooled_writes"]) >= 4  # the call, its start, segments, its end
            await asyncio.to_thread(pg.restart)
            await rt.writer.drained(60)
        call = await rt.store.get_call(call_id)
        assert call is not None
        assert call["status"] == "completed"
        assert call["direction"] == "inbound" and call["call_sid"] == call_sid
        assert call["series"] == "while-down"
        assert call["meeting_date"].isoformat() == params["meeting_date"]
        assert call["started_at"] is not None and call["ended_by"] is None
        text = " ".join(s["text"] for s in call["transcript"])
        assert wer(" ".join(MEETING_TURNS), text) <= 0.15
        assert await rt.store.get_commitments(call_id)
        assert rt.spool.failed_count() == 0
    finally:
        await rt.close()


async def test_a_write_postgres_refuses_for_good_is_set_aside(
    bare_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an outage (a segment of a call Postgres does not know): logged and kept aside in
    the spool, and the writes behind it still land."""
    caplog.set_level(logging.WARNING)
    rt = bare_runtime
    call_id = await _new_call(rt)
    unknown = str(uuid.uuid4())
    rt.writer.submit(SegmentRecord(unknown, 0, 0, 900, "a call nobody created"))
    for op in _segments(call_id, 3):
        rt.writer.submit(op)
    await rt.writer.drained(60)
    rows = await rt.store.pool.fetch(
        "SELECT seq FROM transcript_segments WHERE call_id = $1 ORDER BY seq", uuid.UUID(call_id)
    )
    assert [r["seq"] for r in rows] == [0, 1, 2]
    assert rt.spool.failed_count() == 1 and rt.writer.failed_total == 1
    assert f"SegmentRecord of call {unknown}" in caplog.text
    assert rt.writer.health() == "ok"


# --- the LLM's spooled windows -----------------------------------------------------------------


async def test_spooled_llm_windows_are_retried_by_the_runtime_with_backoff(tmp_path: Path) -> None:
    """A window the LLM failed on wakes the runtime's retry loop (no tick): it asks again,
    backs off while the API still fails (each request counted at the fake), and merges the
    answer into the call once the API is back."""
    key = "sk-ant-test-" + "5" * 24
    fake = FakeAnthropic(api_key=key)
    prompts = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", prompts)
    for name, edit in (
        ("pipeline.yaml", lambda raw: raw["extraction"].update(backend="anthropic")),
        ("extraction.yaml", lambda raw: raw.update(max_retries=0)),  # one request per round
    ):
        raw = yaml.safe_load((prompts / name).read_text())
        edit(raw)
        (prompts / name).write_text(yaml.safe_dump(raw))
    async with serve_in_process(fake.app()) as url:
        settings = make_settings(
            tmp_path / "home",
            database_url=None,
            redis_url=None,
            convene_prompts_dir=prompts,
            anthropic_api_key=SecretStr(key),
            anthropic_base_url=url,
            convene_llm_retry_secs=600,  # the cap: a 600 s tick would miss the safety net
        )
        rt = await Runtime.start(settings, load_whisper=False)
        try:
            call_id = await _new_call(rt)
            merged: list[CommitmentRecord] = []
            landed = asyncio.Event()
            submit = rt.writer.submit

            def watching_submit(op: WriteOp) -> None:
                submit(op)
                if isinstance(op, CommitmentRecord):
                    merged.append(op)
                    landed.set()

            rt.writer.submit = watching_submit  # type: ignore[method-assign]
            promise = "I'll book the venue for the offsite by Friday."
            fake.default = commitments(
                {
                    "owner": "Tom",
                    "action": "book the venue for the offsite",
                    "due": "2025-03-07",
                    "kind": "commitment",
                    "quote": promise,
                    "confidence": 0.9,
                }
            )
            # The call's own try, then the runtime's first two rounds, fail.
            fake.push(overloaded(), overloaded(), overloaded())
            extractor = build_llm_extractor(
                prompt_path=prompts / "extraction.yaml",
                spool_path=settings.llm_spool_path,
                fallback=DeterministicExtractor(),
                api_key=key,
                base_url=url,
                context={"call_id": call_id, "series": ""},
            )
            try:
                await extractor.feed(Utterance("Tom", promise), meeting_date=dt.date(2025, 3, 5))
            finally:
                await extractor.aclose()
            assert extractor.stats.queued == 1

            await asyncio.wait_for(landed.wait(), 120)  # a safety net: it ends on the event

            sent = fake.requests
            assert len(sent) == 4  # the call's try, two failed rounds, the one that worked
            assert all(promise in r.body["messages"][-1]["content"] for r in sent)
            # Backoff between the runtime's rounds: 1 s, then doubled.
            assert sent[2].at - sent[1].at >= 1.0 and sent[3].at - sent[2].at >= 2.0
            [record] = merged
            assert record.call_id == call_id and record.seq >= RETRIED_SEQ_BASE
            assert await rt.writer.flush(30)
            stored = await rt.store.get_commitments(call_id)
            assert [c["seq"] >= RETRIED_SEQ_BASE for c in stored] == [True]
            spool = PendingSpool(settings.llm_spool_path)
            try:
                assert spool.load() == []
            finally:
                spool.close()
        finally:
            await rt.close()
