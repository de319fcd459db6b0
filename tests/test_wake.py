"""The addressing gate: addressed vs not, misheard names, the name in passing, intents."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InputAudioRawFrame,
)
from pipecat.tests.utils import run_test

from processors.frames import AddressedFrame, TranscriptSegmentFrame
from processors.wake import WakeGate, WakeMatcher

MATCHER = WakeMatcher("Convene", ["Convein", "Convenee", "Conveen", "come in"])

ADDRESSED = [
    ("Convene, give me a progress report.", "progress_report", None),
    ("Hey Convene, what's the status?", "progress_report", None),
    ("Convein, what is Tom working on?", "person_tasks", "Tom"),
    ("Convenee what's Priya's tasks", "person_tasks", "Priya"),
    ("Conveen, what did we decide today?", "today", None),
    ("OK come in, what did we say about the pricing page?", "recall", None),
    ("What's open, Convene?", "progress_report", None),
    ("Convene, stop.", "stop", None),
    ("Convene that's all thanks", "stop", None),
    ("Konvene, give us a quick recap please", "progress_report", None),
]
NOT_ADDRESSED = [
    "I told Convene's team about the outage.",
    "The convenient thing is that the demo works.",
    "Give me a progress report by Friday.",
    "We should convene again next week to discuss it.",
    "Tom, what are you working on?",
    "",
    "Can you come in on Saturday?",
]


@pytest.mark.parametrize(("text", "intent", "person"), ADDRESSED)
def test_addressed(text: str, intent: str, person: str | None) -> None:
    found = MATCHER.match(text)
    assert found is not None, text
    assert found.intent == intent
    assert found.person == person


@pytest.mark.parametrize("text", NOT_ADDRESSED)
def test_not_addressed(text: str) -> None:
    assert MATCHER.match(text) is None


def test_recall_topic_and_follow_up_without_name() -> None:
    found = MATCHER.match("Convene, what did we say about the security review?")
    assert found is not None and found.topic == "the security review"
    assert MATCHER.match("And what is Ken working on?") is None
    follow = MATCHER.match("And what is Ken working on?", follow_up=True)
    assert follow is not None and follow.person == "Ken"
    assert MATCHER.match("yeah I agree with that", follow_up=True) is None


def _heard(ms: int) -> InputAudioRawFrame:
    """`ms` of 16 kHz mono caller audio: it advances the call's audio clock."""
    return InputAudioRawFrame(audio=b"\x00\x00" * 16 * ms, sample_rate=16000, num_channels=1)


def _said(text: str, start_ms: int) -> TranscriptSegmentFrame:
    return TranscriptSegmentFrame(text=text, start_ms=start_ms, end_ms=start_ms + 1500, seq=1)


async def test_the_follow_up_window_runs_on_the_calls_audio_clock() -> None:
    """After the bot spoke, an unnamed follow-up counts within `follow_up_secs` of the end of
    its speech, as measured in the call's audio, however fast that audio was streamed."""
    gate = WakeGate(MATCHER, follow_up_secs=8.0)
    frames = [
        _heard(10_000),
        BotStartedSpeakingFrame(),
        BotStoppedSpeakingFrame(),  # the bot's reply ended at ~10 s of the call's audio
        _said("And what is Ken working on?", start_ms=15_000),  # 5 s later: a follow-up
        _heard(20_000),
        _said("And what is Tom working on?", start_ms=30_000),  # 20 s later: just talk
    ]
    down, _ = await run_test(gate, frames_to_send=frames)
    asked = [f for f in down if isinstance(f, AddressedFrame)]
    assert [(a.intent, a.person) for a in asked] == [("person_tasks", "Ken")]
