"""The commitment processor in a real Pipecat pipeline."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable

import pytest
from pipecat.frames.frames import InputAudioRawFrame
from pipecat.tests.utils import run_test

from domain.extraction import Commitment, DeterministicExtractor, Utterance
from memory.models import CommitmentRecord, WriteOp
from processors.commitments import CommitmentExtractor
from processors.frames import CommitmentFrame, TranscriptSegmentFrame

pytestmark = pytest.mark.dates  # resolves dates: re-run on other days by .ci/run

MEETING = dt.date(2026, 11, 24)


def segment(seq: int, text: str) -> TranscriptSegmentFrame:
    return TranscriptSegmentFrame(text=text, start_ms=seq * 1000, end_ms=seq * 1000 + 900, seq=seq)


def audio() -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=b"\x01\x02" * 160, sample_rate=16000, num_channels=1)


async def test_transcripts_in_commitment_frames_out_audio_untouched() -> None:
    written: list[WriteOp] = []
    processor = CommitmentExtractor(
        call_id="00000000-0000-0000-0000-000000000001",
        series="s",
        meeting_date=MEETING,
        extractor=DeterministicExtractor(),
        submit=written.append,
    )
    sent_audio = audio()
    down, _ = await run_test(
        processor,
        frames_to_send=[
            sent_audio,
            segment(0, "Tom, can you get the demo ready by Wednesday?"),
            segment(1, "Yes, I'll have it ready."),
            segment(2, "Last week I fixed the login bug."),
            audio(),
        ],
    )
    found = [f for f in down if isinstance(f, CommitmentFrame)]
    assert [(f.owner, f.due, f.seq) for f in found] == [("Tom", dt.date(2026, 11, 25), 1)]
    assert "demo" in found[0].action
    assert down[0] is sent_audio  # passed through, same object, first
    assert sum(isinstance(f, TranscriptSegmentFrame) for f in down) == 3
    [record] = written
    assert isinstance(record, CommitmentRecord) and record.seq == 1 and record.series == "s"


class SlowExtractor:
    """An extractor that takes 300 ms per utterance (an LLM, say)."""

    def __init__(self) -> None:
        self.inner = DeterministicExtractor()

    def feed(
        self, utterance: Utterance, *, meeting_date: dt.date, next_meeting: dt.date | None = None
    ) -> list[Commitment]:
        time.sleep(0.3)
        return self.inner.feed(utterance, meeting_date=meeting_date, next_meeting=next_meeting)


async def test_slow_extraction_never_delays_frames() -> None:
    written: list[WriteOp] = []
    processor = CommitmentExtractor(
        call_id="00000000-0000-0000-0000-000000000002",
        series=None,
        meeting_date=MEETING,
        extractor=SlowExtractor(),
        submit=written.append,
    )
    frames = [segment(i, f"I will send report number {i} by Friday.") for i in range(3)]
    late_audio = audio()
    down, _ = await run_test(processor, frames_to_send=[*frames, late_audio])
    # Audio sent after the transcripts overtakes the slow extraction ...
    first_commitment = next(i for i, f in enumerate(down) if isinstance(f, CommitmentFrame))
    assert down.index(late_audio) < first_commitment
    # ... and the end of the call still waits for it, so nothing is lost.
    assert len(written) == 3
    assert sum(isinstance(f, CommitmentFrame) for f in down) == 3


async def _next_meeting_due(
    lookup: Callable[[], Awaitable[dt.date | None]],
) -> list[tuple[str | None, dt.date | None]]:
    processor = CommitmentExtractor(
        call_id="00000000-0000-0000-0000-000000000003",
        series="weekly",
        meeting_date=MEETING,
        extractor=DeterministicExtractor(),
        submit=lambda record: None,
        next_meeting=lookup,
    )
    down, _ = await run_test(
        processor, frames_to_send=[segment(0, "Ken will bring the mock-ups to the next meeting.")]
    )
    return [(f.owner, f.due) for f in down if isinstance(f, CommitmentFrame)]


async def test_the_next_meeting_is_dated_by_the_series_lookup() -> None:
    async def weekly() -> dt.date | None:
        return MEETING + dt.timedelta(days=7)

    assert await _next_meeting_due(weekly) == [("Ken", dt.date(2026, 12, 1))]


async def test_a_failing_or_stuck_lookup_leaves_the_next_meeting_undated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken() -> dt.date | None:
        raise ConnectionError("memory is down")

    async def stuck() -> dt.date | None:
        await asyncio.Event().wait()
        return None

    monkeypatch.setattr("processors.commitments.NEXT_MEETING_LOOKUP_SECS", 0.05)
    assert await _next_meeting_due(broken) == [("Ken", None)]
    assert await _next_meeting_due(stuck) == [("Ken", None)]
