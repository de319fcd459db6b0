"""Marks where a caller's turn starts and stops, for Pipecat's turn tracking (tracing only).

Pipecat's `TurnTrackingObserver` (and so its `TurnTraceObserver`, one `turn` span per turn)
starts a turn on a `UserStartedSpeakingFrame`, which a Pipecat pipeline gets from its user-turn
processor; ours has none (the VAD's own frames drive the STT, the wake gate and barge-in). At
the very end of the pipeline, after everything that acts on speech, this processor adds a
`UserStartedSpeakingFrame` / `UserStoppedSpeakingFrame` after each VAD start / stop: the frames
go on to the pipeline's end only, where the observers see them and nothing else acts on them.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    Frame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class UserTurnMarks(FrameProcessor):  # type: ignore[misc]
    """Last in the pipeline: the VAD's speech start and stop, as Pipecat's user-turn frames."""

    def __init__(self) -> None:
        super().__init__()
        self.marked = 0  # user turns started

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self.marked += 1
            await self.push_frame(UserStartedSpeakingFrame())
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self.push_frame(UserStoppedSpeakingFrame())
