"""Ask it out loud: the spoken question is answered by voice on the call, from memory."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from bot.models import shared_whisper_model
from processors.reply_tracker import mark_name
from processors.report import split_sentences
from server.audio import to_twilio_ulaw
from server.runtime import Runtime
from server.simulate import wait_completed
from server.simulator import StreamResult, TwilioStreamClient
from tests.calls import answered_stream, contains_close_to, simulate_meeting
from tests.conftest import API_HEADERS
from tests.speech import wer, write_meeting

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

SERIES = "ops-weekly"
SILENCE = b"\xff" * 160  # 20 ms of mu-law silence
FRAME_MS = 20
# One output chunk either way: a chunk in flight when the reply was cut.
TOLERANCE_MS = 60
WEEK_1 = [
    "Tom, can you get the demo environment ready by Friday?",
    "Yes, I will have the demo environment ready by Friday.",
    "Priya is going to update the pricing page next week.",
]
WEEK_2 = [
    "Quick update, the demo environment is ready.",
    "Convene, give me a progress report.",
]


def transcribe(runtime: Runtime, wav: Path) -> str:
    audio, rate = sf.read(wav, dtype="float32")
    assert rate == 8000
    import soxr

    model = shared_whisper_model(runtime.whisper_model_name, device="cpu", compute_type="int8")
    segments, _ = model.transcribe(soxr.resample(audio, 8000, 16000), language="en")
    return " ".join(s.text for s in segments)


async def test_progress_report_is_spoken_back(
    base_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    first = await simulate_meeting(
        write_meeting(tmp_path / "w1.wav", WEEK_1),
        base_url=base_url,
        series=SERIES,
        meeting_date=dt.date(2026, 11, 17),
        speed=0,
    )
    reply_wav = tmp_path / "reply.wav"
    result = await simulate_meeting(
        write_meeting(tmp_path / "w2.wav", WEEK_2),
        base_url=base_url,
        series=SERIES,
        meeting_date=dt.date(2026, 11, 24),
        speed=0,
        record_path=reply_wav,
        expect_answer=True,
    )
    [reply] = result["replies"]
    assert reply["intent"] == "progress_report"
    answer = reply["answer"]
    # The report names what memory holds; heard words are judged by a WER bound, not spelling.
    assert contains_close_to(answer, "the demo environment ready")
    assert contains_close_to(answer, "update the pricing page")
    assert "done since last time" in answer.lower()  # the template's words, not ASR
    assert reply["t_first_audio_ms"] is not None and reply["audio_ms"] > 1000
    # What went out on the socket is the answer, as speech.
    audio, _ = sf.read(reply_wav, dtype="float32")
    assert len(audio) / 8000 > 2.0 and float(np.abs(audio).max()) > 0.05
    heard = transcribe(runtime, reply_wav)
    assert wer(answer, heard) <= 0.35, (answer, heard)
    # Nobody addressed the bot in week 1: it stayed silent.
    assert first["replies"] == []


async def test_what_we_decided_today_names_a_promise_made_moments_earlier_in_this_call(
    base_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    """The follow-up needs this call's last utterances. They are held by the pipeline (the
    extractor's window turns the request and its acceptance into one promise) and the lookup
    waits until that promise is in Postgres: no second copy of them anywhere is read."""
    result = await simulate_meeting(
        write_meeting(
            tmp_path / "today.wav",
            [
                "Priya, can you send the budget to finance by Thursday?",
                "Yes, I will send the budget to finance by Thursday.",
                "Convene, what did we decide today?",
            ],
        ),
        base_url=base_url,
        series="finance-sync",
        meeting_date=dt.date(2026, 11, 24),
        speed=0,
        expect_answer=True,
    )
    [reply] = result["replies"]
    assert reply["intent"] == "today"
    assert reply["answer"].startswith("So far today:"), reply  # the template's words, not ASR
    assert contains_close_to(reply["answer"], "send the budget to finance")
    assert "Thursday the 26th" in reply["answer"]  # from the resolved date, not from ASR


def _ulaw(path: Path, turns: list[str]) -> bytes:
    return to_twilio_ulaw(write_meeting(path, turns, pause_secs=0.2, lead_secs=0))


async def _listen_until(client: TwilioStreamClient, runtime: Runtime, received: int) -> None:
    """Stay on the line (silence, in real time) until `received` bytes of reply audio came."""
    try:
        async with asyncio.timeout(30):
            while len(client.result.received_media) < received:
                await client.stream_audio(SILENCE, speed=1)
    except TimeoutError:
        heard = await runtime.store.find_call(call_sid=client.result.call_sid)
        segments = await runtime.store.get_segments(heard) if heard else []
        raise AssertionError(f"the bot never answered; it heard {segments}") from None


async def _reply_of(base_url: str, runtime: Runtime, result: StreamResult) -> dict[str, Any]:
    """The call's one reply, once the call is stored as completed."""
    call_id = await runtime.store.find_call(call_sid=result.call_sid)
    assert call_id is not None
    async with httpx.AsyncClient(timeout=30, headers=API_HEADERS) as http:
        call = await wait_completed(http, base_url, call_id, 60)
    assert call["status"] == "completed"
    [reply] = await runtime.store.get_replies(call_id)
    return dict(reply)


async def test_barge_in_clears_and_stops_the_reply(
    base_url: str, runtime: Runtime, override: Callable[..., Runtime], tmp_path: Path
) -> None:
    override(pipeline={"call": {"audio_lead_secs": 0.5}})
    question = _ulaw(tmp_path / "q.wav", ["Convene, what can you do?"])
    interruption = _ulaw(tmp_path / "i.wav", ["Sorry, wait a moment, let me stop you there."])
    async with answered_stream(base_url, series="barge") as client:
        await client.send_connected()
        await client.send_start()
        # A second of room tone first, as on a real bridge before anyone speaks.
        await client.stream_audio(SILENCE * 50 + question, speed=0)
        # Listen in real time until the bot has been talking for a second, then talk over it.
        await _listen_until(client, runtime, 8000)
        await client.stream_audio(interruption + SILENCE * 75, speed=1)
        await client.send_stop()
        await client.wait_closed(timeout=90)
        result = client.result
    assert result.received_clears >= 1
    reply = await _reply_of(base_url, runtime, result)
    assert reply["intent"] == "unknown"
    assert reply["interrupted"] is True and reply["hung_up"] is False
    # What is stored is what went out on the socket, as the caller measured it: the start of
    # the answer only (nothing was sent after the `clear`), not the whole synthesised answer.
    assert result.media_before_stop == len(result.received_media)
    got_ms = len(result.received_media) / 8
    assert got_ms >= 1000
    assert abs(reply["audio_ms"] - got_ms) <= TOLERANCE_MS, (reply, got_ms)
    assert reply["t_first_audio_ms"] >= reply["t_question_end_ms"]
    # `clear` came at once: nothing but a chunk in flight was sent after it.
    assert got_ms - result.received_ms_at_clear[0] <= TOLERANCE_MS, result.received_ms_at_clear
    # Sent is not played: the audio sent ahead (the lead) that the caller's end still held
    # when `clear` came was dropped, and the reply says what the caller heard.
    assert result.unplayed_at_clear_ms[0] >= 300, result.unplayed_at_clear_ms
    assert reply["audio_played_ms"] <= reply["audio_ms"] - 300, reply
    _assert_played_as_heard(reply, result, lead_ms=500)
    # The interruption itself is still part of the transcript.
    call_id = await runtime.store.find_call(call_sid=result.call_sid)
    assert call_id is not None
    texts = " ".join(s["text"] for s in await runtime.store.get_segments(call_id))
    assert contains_close_to(texts, "let me stop you there")


async def test_hang_up_before_any_audio_stores_a_silent_reply(
    base_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    """The caller asks and hangs up 100 ms later: the reply is recorded, as never heard."""
    question = _ulaw(tmp_path / "q.wav", ["Convene, what can you do?"])
    async with answered_stream(base_url, series="hangup") as client:
        await client.send_connected()
        await client.send_start()
        # Unpaced: `stop` reaches the server before it has even heard the end of the turn.
        await client.stream_audio(SILENCE * 50 + question + SILENCE * 5, speed=0)
        await client.send_stop()
        await client.wait_closed(timeout=90)
        result = client.result
    assert result.media_before_stop == 0
    assert len(result.received_media) == 0  # and nothing was said to nobody after it
    reply = await _reply_of(base_url, runtime, result)
    assert reply["intent"] == "unknown" and reply["answer"]
    assert reply["hung_up"] is True and reply["interrupted"] is True
    assert reply["audio_ms"] == 0 and reply["audio_played_ms"] == 0
    assert reply["t_first_audio_ms"] is None  # no latency: nothing was sent


async def test_hang_up_mid_reply_stores_what_was_sent(
    base_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    question = _ulaw(tmp_path / "q.wav", ["Convene, what can you do?"])
    async with answered_stream(base_url, series="hangup") as client:
        await client.send_connected()
        await client.send_start()
        await client.stream_audio(SILENCE * 50 + question + SILENCE * 50, speed=0)
        await _listen_until(client, runtime, 4480)  # ~0.56 s of the reply
        await client.send_stop()
        await client.wait_closed(timeout=90)
        result = client.result
    assert result.media_before_stop is not None
    before_ms = result.media_before_stop / 8
    got_ms = len(result.received_media) / 8
    reply = await _reply_of(base_url, runtime, result)
    assert reply["hung_up"] is True and reply["interrupted"] is True
    # At least what the caller got before hanging up was sent, and no more than what it got
    # until the socket closed: the bot stopped talking when the caller hung up.
    assert before_ms - TOLERANCE_MS <= reply["audio_ms"] <= got_ms + TOLERANCE_MS, (
        reply,
        before_ms,
        got_ms,
    )
    assert got_ms - before_ms < 1000, (before_ms, got_ms)
    assert reply["t_first_audio_ms"] >= reply["t_question_end_ms"]
    # Heard: what came before the hang-up less what was still queued to play at it.
    _assert_played_as_heard(reply, result, lead_ms=500)


async def test_a_reply_stores_the_latency_the_caller_hears(
    base_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    """The stored times are the caller's, read at the socket: the question ends at the last
    voiced frame the client sent, the first audio is the voiced frame it then got first."""
    question = _ulaw(tmp_path / "q.wav", ["Convene, what can you do?"])
    async with answered_stream(base_url, series="ear") as client:
        await client.send_connected()
        await client.send_start()
        await client.stream_audio(SILENCE * 50 + question, speed=1)
        asked, asked_ms = client.result.last_voiced_sent_at, client.result.last_voiced_sent_ms
        assert asked is not None and asked_ms is not None
        answered = await client.keep_line(
            lambda: client.first_voiced_after(asked) is not None, max_secs=60
        )
        assert answered, "the bot never answered"
        await client.hold(1.0)  # the reply plays out and its marks come back
        await client.send_stop()
        await client.wait_closed(timeout=90)
        result = client.result
    heard = client.first_voiced_after(asked)
    assert heard is not None
    reply = await _reply_of(base_url, runtime, result)
    assert reply["interrupted"] is False and reply["audio_played_ms"] == reply["audio_ms"]
    # The question ended with the last voiced frame the client sent (the VAD, ~0.1 s later,
    # is not the end).
    assert abs(reply["t_question_end_ms"] - asked_ms) <= FRAME_MS, (reply, asked_ms)
    # The first voiced chunk was written before the client got it, with at most the frames
    # in flight between (the server's clock runs at most one frame past the audio it read).
    first_ms = reply["t_first_audio_ms"]
    assert heard.sent_ms - 2 * FRAME_MS <= first_ms <= heard.sent_ms + FRAME_MS, (reply, heard)
    # So the stored latency is the one the client measured, within a frame or two.
    measured_ms = (heard.at - asked) * 1000
    stored_ms = first_ms - reply["t_question_end_ms"]
    assert abs(stored_ms - measured_ms) <= 2 * FRAME_MS, (stored_ms, measured_ms)


def _assert_played_as_heard(reply: dict[str, Any], result: StreamResult, *, lead_ms: int) -> None:
    """The reply's `audio_played_ms` against what the client played: never more (but for a
    chunk in flight), and short of it by no more than what the lead left queued: it is what
    was sent less what the caller's end held when the reply was cut, which the `clear` (or
    `stop`) takes a moment more to reach, playing on meanwhile."""
    played, sent = reply["audio_played_ms"], reply["audio_ms"]
    assert played <= result.played_ms + TOLERANCE_MS, (reply, result)
    assert played >= sent - lead_ms - TOLERANCE_MS, (reply, result)


def _last_mark(runtime: Runtime, answer: str) -> str:
    """The mark after the last part of `answer` as the reply is spoken (processors/report.py)."""
    tts = runtime.prompts.pipeline.tts
    parts = split_sentences(
        answer, max_chars=tts.max_sentence_chars, first_chars=tts.first_chunk_chars
    )
    return mark_name(0, len(parts))


@pytest.mark.parametrize("lead_secs", [0.0, 0.5])
async def test_reply_audio_goes_out_ahead_of_real_time_by_the_lead(
    base_url: str,
    runtime: Runtime,
    override: Callable[..., Runtime],
    tmp_path: Path,
    lead_secs: float,
) -> None:
    """When the reply's first part has played (its mark comes back), the caller's end already
    holds about the lead of what follows: audio goes out ahead of real time by the lead; with
    0, one chunk at a time, at real time."""
    override(pipeline={"call": {"audio_lead_secs": lead_secs}})
    question = _ulaw(tmp_path / "q.wav", ["Convene, what can you do?"])
    assert _last_mark(runtime, runtime.prompts.report.unknown) != mark_name(0, 1)  # 2+ parts
    async with answered_stream(base_url, series="lead") as client:
        await client.send_connected()
        await client.send_start()
        await client.stream_audio(SILENCE * 50 + question, speed=0)
        echoed = await client.keep_line(lambda: bool(client.result.echoed_marks), max_secs=60)
        assert echoed, "no part of the reply ever played"
        await client.hold(1.0)  # the rest plays out
        await client.send_stop()
        await client.wait_closed(timeout=90)
        result = client.result
    first = result.echoed_marks[0]
    assert first.name == mark_name(0, 1) and not first.cleared, result.echoed_marks
    # Audio received by the time the first part had played, beyond that part.
    ahead_ms = first.echoed_ms - first.received_ms
    lead_ms = lead_secs * 1000
    assert lead_ms - 100 <= ahead_ms <= lead_ms + 100, (ahead_ms, lead_secs)
    # In Twilio's 20 ms frames or larger.
    assert result.received_ms / len(result.ahead_at_arrival_ms) >= FRAME_MS
    reply = await _reply_of(base_url, runtime, result)
    assert reply["interrupted"] is False and reply["audio_played_ms"] == reply["audio_ms"]


async def test_barge_in_while_the_reply_sent_ahead_still_plays_clears_it(
    base_url: str, runtime: Runtime, override: Callable[..., Runtime], tmp_path: Path
) -> None:
    """All of the reply has been sent (Pipecat's bot has stopped speaking) but the caller's end
    still plays the lead: talking over it still stops it."""
    override(pipeline={"call": {"audio_lead_secs": 1.5}})
    question = _ulaw(tmp_path / "q.wav", ["Convene, what can you do?"])
    interruption = _ulaw(tmp_path / "i.wav", ["Sorry, wait a moment, let me stop you there."])
    last = _last_mark(runtime, runtime.prompts.report.unknown)
    async with answered_stream(base_url, series="barge-tail") as client:
        await client.send_connected()
        await client.send_start()
        await client.stream_audio(SILENCE * 50 + question, speed=0)
        # The last mark follows the reply's last audio: all of it has been sent.
        sent = await client.keep_line(lambda: last in client.result.received_marks, max_secs=60)
        assert sent, "the reply was never sent in full"
        sent_ms = client.result.received_ms
        await client.stream_audio(interruption + SILENCE * 75, speed=1)
        await client.send_stop()
        await client.wait_closed(timeout=90)
        result = client.result
    assert result.received_clears >= 1
    assert result.received_ms == sent_ms  # nothing more was sent
    assert result.unplayed_at_clear_ms[0] > 0, result.unplayed_at_clear_ms
    reply = await _reply_of(base_url, runtime, result)
    assert reply["interrupted"] is True and reply["hung_up"] is False
    assert reply["audio_played_ms"] < reply["audio_ms"], reply
    _assert_played_as_heard(reply, result, lead_ms=1500)
