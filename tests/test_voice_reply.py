"""Ask it out loud: the spoken question is answered by voice on the call, from memory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import soundfile as sf

from bot.models import shared_whisper_model
from server.runtime import Runtime
from tests.calls import contains_close_to, simulate_meeting
from tests.speech import wer, write_meeting

SERIES = "ops-weekly"
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


async def test_barge_in_clears_and_stops_the_reply(
    base_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    import asyncio

    from server.audio import to_twilio_ulaw
    from server.simulator import TwilioStreamClient

    question = to_twilio_ulaw(
        write_meeting(
            tmp_path / "q.wav", ["Convene, what can you do?"], pause_secs=0.2, lead_secs=0
        )
    )
    interruption = to_twilio_ulaw(
        write_meeting(
            tmp_path / "i.wav",
            ["Sorry, wait a moment, let me stop you there."],
            pause_secs=0.2,
            lead_secs=0,
        )
    )
    silence = b"\xff" * 160
    ws_url = base_url.replace("http", "ws") + "/twilio/media"
    async with TwilioStreamClient(ws_url, custom_parameters={"series": "barge"}) as client:
        await client.send_connected()
        await client.send_start()
        # A second of room tone first, as on a real bridge before anyone speaks.
        await client.stream_audio(silence * 50 + question, speed=0)
        # Listen in real time until the bot has been talking for a second.
        try:
            async with asyncio.timeout(30):
                while len(client.result.received_media) < 8000:
                    await client.stream_audio(silence, speed=1)
        except TimeoutError:
            heard = await runtime.store.find_call(call_sid=client.result.call_sid)
            segments = await runtime.store.get_segments(heard) if heard else []
            raise AssertionError(f"the bot never answered; it heard {segments}") from None
        await client.stream_audio(interruption + silence * 75, speed=1)
        await client.send_stop()
        await client.wait_closed(timeout=90)
        result = client.result
    assert result.received_clears >= 1
    call_id = await runtime.store.find_call(call_sid=result.call_sid)
    assert call_id is not None
    replies = await runtime.store.get_replies(call_id)
    first = replies[0]
    assert first["intent"] == "unknown" and first["interrupted"] is True
    # Only the start of the synthesised answer reached the caller: the rest was cut.
    played_secs = len(result.received_media) / 8000
    assert first["audio_ms"] > 4000
    assert played_secs < 0.6 * first["audio_ms"] / 1000, (played_secs, first["audio_ms"])
    # The interruption itself is still part of the transcript.
    texts = " ".join(s["text"] for s in await runtime.store.get_segments(call_id))
    assert contains_close_to(texts, "let me stop you there")
