"""The call's clock at the socket: where a question's voice ended, when a reply chunk went out."""

from __future__ import annotations

import numpy as np

from processors.socket_clock import MAX_VAD_HANGOVER_MS, SocketClock
from server.audio import float_to_pcm16, pcm16_to_ulaw

FRAME = 160  # 20 ms of 8 kHz mu-law
SILENCE = b"\xff" * FRAME


def tone(frames: int, level: float = 0.3) -> list[bytes]:
    t = np.arange(frames * FRAME) / 8000
    ulaw = pcm16_to_ulaw(float_to_pcm16(level * np.sin(2 * np.pi * 300 * t)))
    return [ulaw[i : i + FRAME] for i in range(0, len(ulaw), FRAME)]


def fed(*runs: list[bytes]) -> SocketClock:
    clock = SocketClock()
    for run in runs:
        for frame in run:
            clock.inbound(frame)
    return clock


def test_a_turn_ends_at_its_last_voiced_frame_not_at_the_vads_stop() -> None:
    # 1 s of quiet line, 0.5 s of speech, then quiet: the VAD says it stopped 140 ms later.
    clock = fed([SILENCE] * 50, tone(25), [SILENCE] * 40)
    assert clock.received_ms == 2300
    assert clock.voice_end(1640) == 1500
    # An earlier utterance is not this turn's end: its own last voiced frame is.
    clock = fed(tone(10), [SILENCE] * 20, tone(10), [SILENCE] * 20)
    assert clock.voice_end(950) == 800
    assert clock.voice_end(340) == 200


def test_without_a_voiced_end_before_it_the_vads_end_stands() -> None:
    # Spoken below the voiced level: nothing voiced at all.
    assert fed([SILENCE] * 20, tone(25, level=0.005), [SILENCE] * 20).voice_end(1000) == 1000
    # A noisy line: energy all along, the VAD judged where speech stopped.
    assert fed(tone(100)).voice_end(1500) == 1500
    # The last voiced audio is long before the VAD's end: not this turn's.
    clock = fed(tone(10), [SILENCE] * 100)
    assert clock.voice_end(200 + MAX_VAD_HANGOVER_MS + 100) == 200 + MAX_VAD_HANGOVER_MS + 100


def test_a_chunk_is_timed_at_its_write_and_writes_are_taken_in_order() -> None:
    clock = fed([SILENCE] * 10)
    first, second, third = b"\x01\x00" * 320, b"\x02\x00" * 320, b"\x03\x00" * 320
    clock.audio_written(first)
    clock.inbound(SILENCE)
    clock.audio_written(second)
    clock.inbound(SILENCE)
    clock.audio_written(third)
    # The clock at each write: the audio read by then, plus at most one frame since it was read.
    at_second = clock.written_at(second)
    assert at_second is not None and 220 <= at_second <= 240
    # `first` was written before `second`: forgotten with it (its frame never came by).
    assert clock.written_at(first) is None
    # A copy of the chunk (same bytes) is the same chunk.
    at_third = clock.written_at(bytes(bytearray(third)))
    assert at_third is not None and 240 <= at_third <= 260
    assert clock.written_at(third) is None


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_far_end_plays_what_was_sent_in_real_time_and_clear_drops_the_rest() -> None:
    now = FakeTime()
    clock = SocketClock(monotonic=now)
    assert clock.ahead_ms() == 0 and clock.unplayed_ms(since_ms=0) == 0
    # Half a second sent at once: all of it is queued at the far end.
    for n in range(10):
        clock.audio_written(bytes([n, 0]) * 320, 40)
    assert round(clock.ahead_ms()) == 400
    now.now += 0.15
    assert round(clock.ahead_ms()) == 250
    # A chunk written now plays after what is queued.
    clock.audio_written(b"\x0b\x00" * 320, 40)
    assert round(clock.ahead_ms()) == 290
    # Once it has all played, a chunk plays from when it is written, not from the past.
    now.now += 1.0
    assert round(clock.ahead_ms()) == 0
    clock.audio_written(b"\x0c\x00" * 320, 40)
    assert round(clock.ahead_ms()) == 40
    # Before a `clear`, what was sent and not played is what the far end holds now.
    now.now += 0.01
    assert round(clock.unplayed_ms(since_ms=0)) == 30
    # `clear` drops it: that is what never played, even once more audio is written.
    clock.cleared()
    assert round(clock.ahead_ms()) == 0
    assert round(clock.unplayed_ms(since_ms=0)) == 30
    clock.audio_written(b"\x0d\x00" * 320, 40)
    assert round(clock.ahead_ms()) == 40
    assert round(clock.unplayed_ms(since_ms=0)) == 30
    # Audio first written after that `clear` was not cut by it.
    clock.inbound(SILENCE)
    assert round(clock.unplayed_ms(since_ms=clock.now_ms())) == 40
