"""Memory lookup: for a question addressed to the bot, gather the facts that answer it.

Asks memory's typed reads, in a task, and pushes a `MemoryFactsFrame`: the series' tasks (the
structured layer), the date of its previous meeting, and for a recall question what was said
closest in meaning (the long-term layer: this series' and this call's segments and summaries).
It runs no SQL and embeds nothing itself. The frame path never waits on the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from pipecat.frames.frames import CancelFrame, EndFrame, Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from domain.report_text import Facts, TaskFact
from memory.store import Store
from processors.frames import AddressedFrame, MemoryFactsFrame

log = logging.getLogger(__name__)
RECALL_LIMIT = 3
RECALL_MAX_DISTANCE = 0.6


async def gather_facts(
    store: Store,
    *,
    series: str | None,
    meeting_date: dt.date,
    call_id: str | None,
    ask: AddressedFrame,
) -> Facts:
    """Facts for one question, from memory (tasks, the previous meeting, recall)."""
    tasks: list[TaskFact] = []
    previous: dt.date | None = None
    if series:
        tasks = [
            TaskFact(
                owner=t.owner,
                action=t.action,
                due=t.due,
                status=t.status,
                created_on=t.created_in,
                updated_on=t.updated_in,
            )
            for t in await store.tasks(series)
        ]
        previous = await store.previous_meeting(series, before=meeting_date)
    recalled: list[str] = []
    if ask.intent == "recall" and ask.topic:
        recalled = await store.recall(
            ask.topic,
            series_key=series,
            call_id=call_id,
            limit=RECALL_LIMIT,
            max_distance=RECALL_MAX_DISTANCE,
        )
    return Facts(
        intent=ask.intent,
        meeting_date=meeting_date,
        series=series,
        tasks=tasks,
        previous_meeting=previous,
        person=ask.person,
        topic=ask.topic,
        recalled=recalled,
    )


class MemoryLookup(FrameProcessor):  # type: ignore[misc]
    """Turns each `AddressedFrame` into a `MemoryFactsFrame`, querying memory in a task."""

    def __init__(
        self,
        *,
        store: Store,
        series: str | None,
        meeting_date: dt.date,
        call_id: str | None,
        settle: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        super().__init__()
        self._settle = settle
        self._store = store
        self._series = series
        self._meeting_date = meeting_date
        self._call_id = call_id
        self._pending: set[asyncio.Task[None]] = set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, AddressedFrame):
            await self.push_frame(frame, direction)
            task = self.create_task(self._lookup(frame))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        elif isinstance(frame, EndFrame):
            # A question asked just before the end still gets its answer (and is recorded).
            for task in list(self._pending):
                await task
            await self.push_frame(frame, direction)
        elif isinstance(frame, CancelFrame):
            for task in list(self._pending):
                await self.cancel_task(task)
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _lookup(self, ask: AddressedFrame) -> None:
        try:
            if self._settle is not None:
                # What was said just before the question (a status update) is in memory first.
                await self._settle()
            facts = await gather_facts(
                self._store,
                series=self._series,
                meeting_date=self._meeting_date,
                call_id=self._call_id,
                ask=ask,
            )
        except Exception as exc:
            await self.push_error(f"memory lookup failed: {exc}", exception=exc)
            return
        await self.push_frame(MemoryFactsFrame(ask=ask, facts=facts))
