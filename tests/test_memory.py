"""Commitments become tasks that live across meetings of a series."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from memory import keys
from server.runtime import Runtime
from tests.calls import contains_close_to, find_task, simulate_meeting
from tests.conftest import API_HEADERS
from tests.speech import write_meeting

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

SERIES = "product-weekly"
WEEK_1 = [
    "Good morning everyone, this is the product weekly.",
    "Tom, can you get the demo environment ready by Friday?",
    "Yes, I will have the demo environment ready by Friday.",
    "I will send the security review to legal by Thursday.",
    "Priya is going to update the pricing page next week.",
]
WEEK_2 = [
    "Quick update, the demo environment is ready.",
    "The security review is not done yet, I will send it to legal by Wednesday.",
]


async def test_two_meetings_track_tasks_across_the_series(
    base_url: str, runtime: Runtime, home: Path, tmp_path: Path
) -> None:
    week1 = write_meeting(tmp_path / "week1.wav", WEEK_1)
    week2 = write_meeting(tmp_path / "week2.wav", WEEK_2)
    first = await simulate_meeting(
        week1,
        base_url=base_url,
        series=SERIES,
        meeting_date=dt.date(2026, 11, 17),
        speed=0,
    )
    promises = [c for c in first["commitments"] if c["kind"] == "commitment"]
    assert len(promises) >= 3, json.dumps(first)
    async with httpx.AsyncClient(headers=API_HEADERS) as client:
        before = (await client.get(f"{base_url}/series/{SERIES}/tasks")).json()["tasks"]
    assert len(before) == 3 and all(t["status"] == "open" for t in before)

    second = await simulate_meeting(
        week2,
        base_url=base_url,
        series=SERIES,
        meeting_date=dt.date(2026, 11, 24),
        speed=0,
    )
    assert {c["kind"] for c in second["commitments"]} >= {"status_done", "commitment"}
    async with httpx.AsyncClient(headers=API_HEADERS) as client:
        after = (await client.get(f"{base_url}/series/{SERIES}/tasks?status=all")).json()["tasks"]
    assert len(after) == 3, after  # updated in place, none duplicated
    # Found as the tracker finds them (its matcher), not by the words Whisper happened to hear.
    demo = find_task(after, "get the demo environment ready", owner="Tom")
    review = find_task(after, "send the security review to legal")
    pricing = find_task(after, "update the pricing page", owner="Priya")
    assert len({demo["id"], review["id"], pricing["id"]}) == 3
    assert demo["status"] == "done"
    assert [h["change"] for h in demo["history"]][-1] == "done"
    assert demo["history"][-1]["meeting_date"] == "2026-11-24"
    assert review["status"] == "open" and review["due"] == "2026-11-25"
    redated = review["history"][-1]
    assert redated["change"] == "redated"
    assert (redated["from_due"], redated["to_due"]) == ("2026-11-19", "2026-11-25")
    assert contains_close_to(redated["quote"], "is not done yet")
    assert pricing["status"] == "open" and pricing["owner"] == "Priya"

    # The commitments of a call are also served per call and published to Redis.
    async with httpx.AsyncClient(headers=API_HEADERS) as client:
        per_call = (await client.get(f"{base_url}/calls/{second['call_id']}/commitments")).json()
    assert len(per_call["commitments"]) == len(second["commitments"])
    stream = await runtime.redis.xrange(keys.COMMITMENTS_STREAM)
    assert sum(1 for _, f in stream if f["call_id"] == second["call_id"]) == len(
        second["commitments"]
    )
    # Redis holds the outward streams only: no per-call or per-series copies of memory that
    # nothing reads (Postgres is the memory).
    assert [k async for k in runtime.redis.scan_iter("convene:call:*")] == []
    assert [k async for k in runtime.redis.scan_iter("convene:series:*")] == []
    # Memory's typed read is the record the JSON shows, dates as dates.
    typed = {t.id: t for t in await runtime.store.tasks(SERIES, history=True)}
    assert [t.as_json() for t in typed.values()] == after
    assert typed[review["id"]].due == dt.date(2026, 11, 25)
    assert typed[review["id"]].history[-1].from_due == dt.date(2026, 11, 19)
    assert typed[demo["id"]].updated_in == dt.date(2026, 11, 24)
    # Each call ends with a summary: on the call, embedded for recall.
    summaries = [await runtime.store.get_call(c["call_id"]) for c in (first, second)]
    assert all(c is not None and c["summary"] for c in summaries)
    call = summaries[1]
    assert call is not None and call["summary"].startswith("Meeting of Tuesday 24 November 2026")
    assert "Done:" in call["summary"] and "Promised:" in call["summary"]
    # Long-term memory: every segment, commitment and summary has an embedding for recall.
    count = await runtime.store.pool.fetchval(
        "SELECT count(*) FROM memory_embeddings e JOIN series s ON s.id = e.series_id WHERE s.key = $1",
        SERIES,
    )
    assert count == len(first["transcript"]) + len(second["transcript"]) + len(
        first["commitments"]
    ) + len(second["commitments"]) + len(summaries)
    nearest = await runtime.store.pool.fetchval(
        "SELECT text FROM memory_embeddings ORDER BY embedding <=> $1 LIMIT 1",
        runtime.store.embedder.embed_one("who is updating the pricing page?"),
    )
    assert contains_close_to(nearest, "update the pricing page")

    # `convene tasks --json` reads the same Postgres from outside the process.
    env = {**os.environ, "CONVENE_HOME": str(home), "DATABASE_URL": runtime.embedded_postgres.uri}  # type: ignore[union-attr]
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "server.cli",
            "tasks",
            "--series",
            SERIES,
            "--status",
            "all",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    listed = json.loads(out.stdout)
    assert [t["status"] for t in listed["tasks"]] == [t["status"] for t in after]
    assert set(listed["tasks"][0]) >= {"id", "owner", "action", "due", "status", "history"}
