"""Knows when the STT has consumed a given inbound audio frame: the event a call's end waits on.

Sits right after the STT. Every STT service passes the call's audio on once it has taken it
(`audio_passthrough`), so the frames reaching this probe are the ones the STT has consumed.
Inbound audio frames are numbered in the order they are received (Pipecat's frame ids), so
`wait_for(frame_id)` returns once that frame, or a later one, has come through.
"""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class HeardProbe(FrameProcessor):  # type: ignore[misc]
    """Passes every frame on; notes the last inbound audio frame that came through."""

    def __init__(self) -> None:
        super().__init__()
        self.last_id: int | None = None
        self._target: int | None = None
        self._reached = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.last_id = frame.id
            if self._target is not None and frame.id >= self._target:
                self._reached.set()
        await self.push_frame(frame, direction)

    def heard(self, frame_id: int) -> bool:
        return self.last_id is not None and self.last_id >= frame_id

    async def wait_for(self, frame_id: int) -> None:
        """Return once the audio frame `frame_id` (or a later one) has passed the STT."""
        if self.heard(frame_id):
            return
        self._target = frame_id if self._target is None else min(self._target, frame_id)
        self._reached.clear()
        while not self.heard(frame_id):
            await self._reached.wait()
            self._reached.clear()
