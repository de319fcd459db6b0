"""The process's queue in front of Whisper (core/stt_queue.py): short work first, a bound that
drops only speculations, cancelled waiters' jobs never run.

Real faster-whisper (the packaged base model) on Piper speech; the order is read from the
events the jobs record, never from how long anything took. The worker is held at the start of
its first job (a gate the test opens) only so that every later job is queued before it frees:
which one it takes next is then the queue's decision alone.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import soxr

from core.stt_queue import Dropped, Lane, TranscriptionQueue
from processors.piper_voice import synthesize
from processors.whisper_stt import transcribe_local
from server.runtime import Runtime
from tests.speech import wer

RATE = 16000
MONOLOGUE = (
    "I went through the supplier contracts this morning and the shipping terms changed in "
    "March, so the warehouse numbers in the quarterly report are off by about two weeks."
)
QUESTION = "Convene, what is Tom working on?"


class Settings:
    language = "en"
    hotwords = None
    initial_prompt = "Convene meeting."
    no_speech_prob = 0.6


def pcm(text: str) -> bytes:
    audio, rate = synthesize(text)
    samples = soxr.resample(audio.astype(np.float32) / 32768.0, rate, RATE)
    silence = np.zeros(RATE // 2, dtype=np.float32)
    joined = np.concatenate([silence, samples, silence])
    return (np.clip(joined, -1, 1) * 32767).astype(np.int16).tobytes()


class Recorder:
    """Jobs that transcribe for real and say, in order, when each started and finished."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.first_started = threading.Event()
        self.gate = threading.Event()

    def job(self, name: str, audio: bytes, *, hold: bool = False) -> Callable[[], str]:
        def run() -> str:
            with self.lock:
                self.events.append(f"start {name}")
            if hold:
                self.first_started.set()
                self.gate.wait()
            text, _ = transcribe_local(self.model, audio, Settings())
            with self.lock:
                self.events.append(f"end {name}")
            return text

        return run

    def started(self) -> list[str]:
        return [e.removeprefix("start ") for e in self.events if e.startswith("start ")]


@pytest.fixture(scope="module")
def monologue() -> bytes:
    return pcm(MONOLOGUE)


@pytest.fixture(scope="module")
def question() -> bytes:
    return pcm(QUESTION)


async def test_a_short_turn_runs_before_long_turns_queued_earlier(
    runtime: Runtime, monologue: bytes, question: bytes
) -> None:
    queue = TranscriptionQueue(workers=1, max_queue=8)
    rec = Recorder(runtime.call_deps().whisper_model)
    try:
        busy = queue.run(rec.job("long-1", monologue, hold=True), lane=Lane.AFTER)
        busy_task = asyncio.ensure_future(busy)
        await asyncio.to_thread(rec.first_started.wait)
        # The worker is on call 1's long turn; calls 2 and 3 queue long turns, then call 4's
        # question and call 5's speculation come.
        long2 = asyncio.ensure_future(queue.run(rec.job("long-2", monologue), lane=Lane.AFTER))
        long3 = asyncio.ensure_future(queue.run(rec.job("long-3", monologue), lane=Lane.AFTER))
        ask = asyncio.ensure_future(queue.run(rec.job("question", question), lane=Lane.FIRST))
        guess = asyncio.ensure_future(
            queue.run(rec.job("speculation", question), lane=Lane.FIRST, droppable=True)
        )
        await asyncio.sleep(0)
        assert queue.waiting == 4 and queue.running == 1
        rec.gate.set()
        texts = await asyncio.gather(busy_task, long2, long3, ask, guess)
    finally:
        rec.gate.set()
        queue.close()
    # The question (and the speculation after it) ran before the long turns queued before
    # them; the long turns kept their own order.
    assert rec.started() == ["long-1", "question", "speculation", "long-2", "long-3"]
    # One at a time: each ended before the next started.
    assert rec.events == [e for name in rec.started() for e in (f"start {name}", f"end {name}")]
    # And they are real transcriptions of what was said.
    assert wer(QUESTION, texts[3]) <= 0.2 and texts[3] == texts[4]
    assert all(wer(MONOLOGUE, t) <= 0.2 for t in texts[:3])


async def test_past_the_bound_speculations_are_dropped_and_record_turns_wait(
    runtime: Runtime, monologue: bytes, question: bytes
) -> None:
    queue = TranscriptionQueue(workers=1, max_queue=2)
    rec = Recorder(runtime.call_deps().whisper_model)
    try:
        first = asyncio.ensure_future(
            queue.run(rec.job("long-1", monologue, hold=True), lane=Lane.AFTER)
        )
        await asyncio.to_thread(rec.first_started.wait)
        early = asyncio.ensure_future(
            queue.run(rec.job("speculation-1", question), lane=Lane.FIRST, droppable=True)
        )
        long2 = asyncio.ensure_future(queue.run(rec.job("long-2", monologue), lane=Lane.AFTER))
        await asyncio.sleep(0)
        assert queue.waiting == 2
        # Full: a new speculation is refused at the door...
        with pytest.raises(Dropped):
            queue.submit(rec.job("speculation-2", question), lane=Lane.FIRST, droppable=True)
        # ...and a record turn takes the waiting speculation's place instead of being refused.
        long3 = asyncio.ensure_future(queue.run(rec.job("long-3", monologue), lane=Lane.AFTER))
        short = asyncio.ensure_future(queue.run(rec.job("question", question), lane=Lane.FIRST))
        await asyncio.sleep(0)
        assert queue.waiting == 3  # past the bound: record turns wait, none is lost
        rec.gate.set()
        with pytest.raises(Dropped):
            await early
        texts = await asyncio.gather(first, long2, long3, short)
    finally:
        rec.gate.set()
        queue.close()
    assert queue.dropped == 2
    assert rec.started() == ["long-1", "question", "long-2", "long-3"]
    assert all(wer(MONOLOGUE, t) <= 0.2 for t in texts[:3])
    assert wer(QUESTION, texts[3]) <= 0.2


async def test_a_job_whose_waiter_went_away_does_not_run(
    runtime: Runtime, monologue: bytes, question: bytes
) -> None:
    queue = TranscriptionQueue(workers=1, max_queue=4)
    rec = Recorder(runtime.call_deps().whisper_model)
    try:
        first = asyncio.ensure_future(
            queue.run(rec.job("long-1", monologue, hold=True), lane=Lane.AFTER)
        )
        await asyncio.to_thread(rec.first_started.wait)
        gone = asyncio.ensure_future(queue.run(rec.job("hung-up", question), lane=Lane.FIRST))
        kept = asyncio.ensure_future(queue.run(rec.job("question", question), lane=Lane.FIRST))
        await asyncio.sleep(0)
        gone.cancel()  # the call ended while its turn waited
        rec.gate.set()
        await asyncio.gather(first, kept)
    finally:
        rec.gate.set()
        queue.close()
    assert gone.cancelled()
    assert rec.started() == ["long-1", "question"]
