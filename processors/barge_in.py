"""Barge-in: when someone starts speaking over the bot, the bot stops (Twilio gets `clear`)."""

from __future__ import annotations

import logging

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

log = logging.getLogger(__name__)


class BargeIn(FrameProcessor):  # type: ignore[misc]
    """Interrupts the bot's speech on user speech; every frame passes on unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self._bot_speaking = False
        self.interruptions = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        await self.push_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame) and self._bot_speaking:
            self.interruptions += 1
            self._bot_speaking = False
            log.info("barge-in: caller spoke over the bot; interrupting")
            await self.broadcast_interruption()  # type: ignore[no-untyped-call]
