"""Hands each final transcript segment of a call to the async writer. Never waits on storage."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipecat.frames.frames import Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from memory.models import SegmentRecord, WriteOp
from processors.frames import TranscriptSegmentFrame

log = logging.getLogger(__name__)


class TranscriptRecorder(FrameProcessor):  # type: ignore[misc]
    """Numbers a call's segments and submits them to `submit` (a non-blocking writer hook)."""

    def __init__(
        self,
        *,
        call_id: str,
        submit: Callable[[WriteOp], None],
        on_segment: Callable[[SegmentRecord], None] | None = None,
    ) -> None:
        super().__init__()
        self._call_id = call_id
        self._submit = submit
        self._on_segment = on_segment
        self._seq = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptSegmentFrame):
            record = SegmentRecord(
                call_id=self._call_id,
                seq=self._seq,
                start_ms=frame.start_ms,
                end_ms=frame.end_ms,
                text=frame.text,
                confidence=frame.confidence,
                speaker=frame.speaker,
                person=frame.person,
            )
            frame.seq = record.seq
            self._seq += 1
            self._submit(record)
            if self._on_segment is not None:
                self._on_segment(record)
            log.info(
                "call %s segment %d [%d-%d ms]",
                self._call_id,
                record.seq,
                record.start_ms,
                record.end_ms,
            )
        await self.push_frame(frame, direction)
