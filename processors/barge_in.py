"""Barge-in: when someone starts speaking over the bot, the bot stops (Twilio gets `clear`).

The bot is speaking from Pipecat's `BotStartedSpeakingFrame` to its `BotStoppedSpeakingFrame`,
and also while the caller's end still plays audio sent ahead of real time (`call.audio_lead_secs`:
the output transport is done with a sentence up to the lead before the caller has heard it).
"""

from __future__ import annotations

import logging

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    VADUserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.socket_clock import SocketClock

log = logging.getLogger(__name__)


class BargeIn(FrameProcessor):  # type: ignore[misc]
    """Interrupts the bot's speech on user speech; every frame passes on unchanged."""

    def __init__(self, *, clock: SocketClock | None = None) -> None:
        super().__init__()
        self._clock = clock  # the far end's playout (audio sent ahead, not yet played)
        self._bot_speaking = False
        self.interruptions = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        await self.push_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame) and self._speaking():
            self.interruptions += 1
            self._bot_speaking = False
            log.info("barge-in: caller spoke over the bot; interrupting")
            await self.broadcast_interruption()  # type: ignore[no-untyped-call]

    def _speaking(self) -> bool:
        return self._bot_speaking or (self._clock is not None and self._clock.ahead_ms() > 0)
