"""The async writer: the pipeline hands it records and never waits on storage.

Records are queued in memory and written to Postgres in batches by one background task. When
Postgres is slow or down, batches go to the durable SQLite spool and are replayed, in order,
once it answers again. Each written segment is also published to the Redis Stream
`convene:segments` (best effort: Postgres is the record).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.errors import StorageUnavailable
from memory import keys
from memory.models import CommitmentRecord, SegmentRecord, SummaryRecord, WriteOp
from memory.spool import Spool
from memory.store import CONNECTION_ERRORS, Store

log = logging.getLogger(__name__)

_STORE_DOWN: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, StorageUnavailable)


class StoreWriter:
    """One per process, shared by every call."""

    def __init__(
        self,
        store: Store,
        redis: aioredis.Redis | None,
        spool: Spool,
        *,
        batch_size: int = 50,
        retry_secs: float = 2.0,
    ) -> None:
        self._store = store
        self._redis = redis
        self._spool = spool
        self._batch_size = batch_size
        self._retry_secs = retry_secs
        self._queue: asyncio.Queue[WriteOp] = asyncio.Queue()
        self._unfinished = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self.spooled_total = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="convene-writer")
        if self._spool.count():
            self._kick_drain()

    def submit(self, op: WriteOp) -> None:
        """Queue one write; never blocks and never raises for storage trouble."""
        self._unfinished += 1
        self._idle.clear()
        self._queue.put_nowait(op)

    @property
    def backlog(self) -> int:
        """Writes not yet in Postgres: queued in memory plus spooled."""
        return self._unfinished + self._spool.count()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted write is in Postgres or durably spooled.

        Returns True when nothing is left in the spool either (all in Postgres).
        """
        async with asyncio.timeout(timeout):
            await self._idle.wait()
        return self._spool.count() == 0

    async def drained(self, timeout: float) -> None:
        """Wait until the spool is empty too (Postgres has everything)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()
            while self._spool.count():
                self._kick_drain()
                await asyncio.sleep(0.05)

    async def close(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout)
        for task in (self._task, self._drain_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._drain_task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:  # the writer must outlive any bug in one batch
                log.exception("writer: unexpected error; batch spooled")
                await self._spool_batch(batch)
            self._unfinished -= len(batch)
            if self._unfinished == 0:
                self._idle.set()

    async def _write(self, batch: list[WriteOp]) -> None:
        if self._spool.count():
            # Older writes are waiting: keep order by queueing behind them.
            await self._spool_batch(batch)
            return
        try:
            await self._store.apply(batch)
        except _STORE_DOWN as exc:
            log.warning(
                "writer: Postgres unavailable (%s); spooling %d writes",
                type(exc).__name__,
                len(batch),
            )
            await self._spool_batch(batch)
            return
        await self._publish(batch)

    async def _spool_batch(self, batch: list[WriteOp]) -> None:
        await self._spool.append(batch)
        self.spooled_total += len(batch)
        self._kick_drain()

    def _kick_drain(self) -> None:
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.create_task(self._drain(), name="convene-spool-drain")

    async def _drain(self) -> None:
        while True:
            rows = await self._spool.peek(self._batch_size)
            if not rows:
                return
            ops = [op for _, op in rows]
            try:
                await self._store.apply(ops)
            except _STORE_DOWN:
                await asyncio.sleep(self._retry_secs)
                continue
            await self._spool.delete_through(rows[-1][0])
            log.info("writer: replayed %d spooled writes", len(ops))
            await self._publish(ops)

    async def _publish(self, ops: Sequence[WriteOp]) -> None:
        """Redis: the segment and commitment streams, working and short-term memory."""
        if self._redis is None:
            return
        segments = [op for op in ops if isinstance(op, SegmentRecord)]
        commitments = [op for op in ops if isinstance(op, CommitmentRecord)]
        summaries = [op for op in ops if isinstance(op, SummaryRecord) and op.series]
        if not segments and not commitments and not summaries:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for item in commitments:
                    payload = json.dumps(item.as_json())
                    pipe.xadd(
                        keys.COMMITMENTS_STREAM,
                        {
                            "call_id": item.call_id,
                            "series": item.series or "",
                            "commitment": payload,
                        },
                        maxlen=keys.STREAM_MAXLEN,
                        approximate=True,
                    )
                    if item.series:
                        recent = keys.series_recent(item.series)
                        pipe.lpush(recent, payload)
                        pipe.ltrim(recent, 0, keys.SERIES_RECENT_SIZE - 1)
                        pipe.expire(recent, keys.SERIES_TTL_SECS)
                for summary in summaries:
                    key = keys.series_summaries(summary.series or "")
                    pipe.lpush(key, json.dumps(summary.as_json()))
                    pipe.ltrim(key, 0, keys.SERIES_SUMMARIES_SIZE - 1)
                    pipe.expire(key, keys.SERIES_TTL_SECS)
                for seg in segments:
                    window = keys.call_window(seg.call_id)
                    pipe.rpush(window, json.dumps(seg.as_json()))
                    pipe.ltrim(window, -keys.WINDOW_SIZE, -1)
                    pipe.expire(window, keys.CALL_TTL_SECS)
                    pipe.xadd(
                        keys.SEGMENTS_STREAM,
                        {
                            "call_id": seg.call_id,
                            "seq": seg.seq,
                            "start_ms": seg.start_ms,
                            "end_ms": seg.end_ms,
                            "text": seg.text,
                        },
                        maxlen=keys.STREAM_MAXLEN,
                        approximate=True,
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("writer: Redis stream publish failed (%s)", type(exc).__name__)
