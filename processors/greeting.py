"""Greets a known inbound caller: "Welcome back, Priya. You have two open: ...".

When the call's number belongs to a person of the series (`POST /people`), it asks for their
items as if they had asked "what does Priya have open?": an `AddressedFrame` with intent
`greeting` goes down the same path as any question (memory lookup, the report's
`caller_greeting` templates, the voice, the reply record). Only the caller's own open items
are said. Who is calling is looked up in a task; nothing waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pipecat.frames.frames import Frame, StartFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.frames import AddressedFrame

log = logging.getLogger(__name__)


class CallerGreeting(FrameProcessor):  # type: ignore[misc]
    """At the start of a call, asks for the known caller's items (see module doc)."""

    def __init__(self, *, caller: Callable[[], Coroutine[Any, Any, str | None]]) -> None:
        super().__init__()
        self._caller = caller

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.create_task(self._greet(), "caller-greeting")

    async def _greet(self) -> None:
        try:
            person = await self._caller()
        except Exception as exc:  # memory away: no greeting, the call goes on
            log.warning("greeting: could not look up the caller (%s)", type(exc).__name__)
            return
        if person is None:
            return
        log.info("greeting a known caller")
        await self.push_frame(
            AddressedFrame(
                intent="greeting", question="", person=person, topic=None, seq=-1, end_ms=0
            )
        )
