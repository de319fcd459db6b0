"""The call path end to end: Media Streams over a real websocket -> Pipecat -> Postgres/Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import httpx
import pytest

from memory import keys
from server.audio import to_twilio_ulaw
from server.runtime import Runtime
from server.simulate import wait_completed
from tests.calls import answered_stream, contains_close_to, simulate_meeting
from tests.conftest import API_HEADERS, MEETING_TURNS
from tests.speech import wer, words, write_meeting

OTHER_TURNS = [
    "Hello, this is the infrastructure review for the database cluster.",
    "We need to upgrade the storage servers before the holidays.",
]

# Every meeting a test simulates has an explicit date (never the server's today).
MEETING_DATE = dt.date(2026, 11, 24)


def joined(result: dict[str, object]) -> str:
    return " ".join(seg["text"] for seg in result["transcript"])  # type: ignore[attr-defined, index]


async def test_simulated_call_stores_transcript(
    base_url: str, runtime: Runtime, meeting_wav: Path
) -> None:
    result = await simulate_meeting(
        meeting_wav,
        base_url=base_url,
        series="weekly-planning",
        meeting_date=dt.date(2026, 11, 24),
        speed=0,
    )
    assert set(result) >= {"call_id", "series", "transcript", "commitments", "replies"}
    assert result["series"] == "weekly-planning"
    assert result["replies"] == []
    # "I will send the security review to the legal team by Friday." (Friday the 27th)
    [promise] = [c for c in result["commitments"] if c["kind"] == "commitment"]
    assert contains_close_to(promise["action"], "send the security review")
    assert promise["due"] == "2026-11-27"
    assert wer(" ".join(MEETING_TURNS), joined(result)) <= 0.15

    # The rows are really in Postgres, in order, with sane timings.
    rows = await runtime.store.pool.fetch(
        "SELECT seq, start_ms, end_ms, text, confidence FROM transcript_segments"
        " WHERE call_id = $1 ORDER BY seq",
        __import__("uuid").UUID(result["call_id"]),
    )
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    assert len(rows) >= 2
    assert all(r["start_ms"] < r["end_ms"] for r in rows)
    assert all(a["end_ms"] <= b["start_ms"] for a, b in zip(rows, rows[1:], strict=False))
    assert all(0 < r["confidence"] <= 1 for r in rows)
    call = await runtime.store.get_call(str(result["call_id"]))
    assert call is not None
    assert call["status"] == "completed" and call["completed_at"] is not None
    assert call["meeting_date"] == dt.date(2026, 11, 24)

    # Each final segment was also published to the Redis stream.
    entries = await runtime.redis.xrange(keys.SEGMENTS_STREAM)
    mine = [fields for _, fields in entries if fields["call_id"] == result["call_id"]]
    assert [m["text"] for m in mine] == [r["text"] for r in rows]


async def test_two_calls_at_once_get_separate_pipelines(
    base_url: str, meeting_wav: Path, tmp_path: Path
) -> None:
    other_wav = write_meeting(tmp_path / "other.wav", OTHER_TURNS)
    first, second = await asyncio.gather(
        simulate_meeting(
            meeting_wav, base_url=base_url, series="a", speed=4, meeting_date=MEETING_DATE
        ),
        simulate_meeting(
            other_wav, base_url=base_url, series="b", speed=4, meeting_date=MEETING_DATE
        ),
    )
    assert first["call_id"] != second["call_id"]
    assert (first["series"], second["series"]) == ("a", "b")
    assert wer(" ".join(MEETING_TURNS), joined(first)) <= 0.15
    assert wer(" ".join(OTHER_TURNS), joined(second)) <= 0.15
    # Nothing of one call leaked into the other.
    assert "holidays" not in words(joined(first))
    assert "legal" not in words(joined(second))


@pytest.mark.parametrize("speed", [1.0])
async def test_real_time_pacing_still_transcribes(
    base_url: str, tmp_path: Path, speed: float
) -> None:
    wav = write_meeting(tmp_path / "short.wav", ["Please write the release notes today."])
    result = await simulate_meeting(wav, base_url=base_url, speed=speed, meeting_date=MEETING_DATE)
    assert wer("Please write the release notes today.", joined(result)) <= 0.15


async def test_calls_complete_when_the_stt_has_heard_the_last_frame(
    base_url: str, runtime: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`stop` right after the last words, unpaced (audio still queued on the server): in each of
    20 calls the end waits for the STT to consume the last received frame, an event, never a
    timeout, and the last words are in the transcript."""
    caplog.set_level(logging.INFO, logger="bot.call")
    turns = ["Please write the release notes today.", "We shipped the new billing page."]
    audio = [
        to_twilio_ulaw(write_meeting(tmp_path / f"{i}.wav", [t], pause_secs=0.2, lead_secs=0.5))
        for i, t in enumerate(turns)
    ]
    delays: list[float] = []
    async with httpx.AsyncClient(timeout=30, headers=API_HEADERS) as http:
        for i in range(20):
            async with answered_stream(base_url, series="ends") as client:
                await client.send_connected()
                await client.send_start()
                await client.stream_audio(audio[i % 2], speed=0)
                await client.send_stop()
                await client.wait_closed(timeout=60)
            call_id = await runtime.store.find_call(call_sid=client.result.call_sid)
            assert call_id is not None
            call = await wait_completed(http, base_url, call_id, 60)
            assert call["status"] == "completed"
            drains = [
                r.args[2]
                for r in caplog.records
                if "drained" in r.msg and isinstance(r.args, tuple) and r.args[0] == call_id
            ]
            assert drains == ["event"], (i, drains)
            last_words = " ".join(words(turns[i % 2])[-3:])
            assert contains_close_to(joined(call), last_words), (i, call["transcript"])
            stored = await runtime.store.get_call(call_id)
            assert stored is not None
            # `ended_at` is when `stop` came; `completed_at` when all of the call was stored.
            delays.append((stored["completed_at"] - stored["ended_at"]).total_seconds())
    assert all(d >= 0 for d in delays), delays
    logging.getLogger(__name__).info("completed after stop (s): %s", sorted(delays))
