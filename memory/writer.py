"""The async writer: the pipeline hands it records and never waits on storage.

Records are held in memory and written to Postgres in batches by one background task. When
Postgres is slow or down, batches go to the durable SQLite spool and are replayed, in order,
once it answers again. Each written segment is also published to the Redis Stream
`convene:segments` (best effort: Postgres is the record).

No storage error stops the writer. When neither Postgres nor the spool takes a batch (a full
disk), it stays in memory and is retried with backoff (`tenacity`: from `retry_secs`, doubling
up to `max_retry_secs`) until one does; meanwhile `health()` says so (and `/ready` with it).
The spool's replay backs off alike while Postgres is away. What is held in memory is bounded
(`max_held` writes): past that the oldest are dropped, logged and counted, a call's own record
(created, started, ended) last. A write Postgres refuses for good (not an outage) is set aside
in the spool (`core/spool.py`'s `spool_failed` table), logged, so the writes behind it still
pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never, wait_exponential

from memory import keys
from memory.models import (
    CallCreated,
    CallEnded,
    CommitmentRecord,
    SegmentRecord,
    StreamStarted,
    WriteOp,
)
from memory.spool import Spool
from memory.store import Store, is_transient

log = logging.getLogger(__name__)

_SPOOL_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
_POISON_ATTEMPTS = 3  # a spooled batch refused this often, not for an outage, is split
_PUBLISH_TIMEOUT_SECS = 5.0
_CALL_RECORDS = (CallCreated, StreamStarted, CallEnded)


class _Again(Exception):
    """Nothing took the batch now (it is kept): try again after the backoff."""


def _describe(exc: BaseException) -> str:
    """An error's kind and first line: for logs and /ready (no payloads, no secrets)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


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
        max_retry_secs: float = 30.0,
        max_held: int = 20_000,
    ) -> None:
        self._store = store
        self._redis = redis
        self._spool = spool
        self._batch_size = batch_size
        self._retry_secs = retry_secs
        self._max_retry_secs = max(max_retry_secs, retry_secs)
        self._max_held = max(max_held, batch_size)
        self._pending: deque[WriteOp] = deque()  # submitted, not yet in Postgres or spool
        self._inflight = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._drain_ended = asyncio.Event()  # set each time a replay of the spool ends
        self._refused = 0  # times in a row Postgres refused the spool's oldest batch for good
        self._spool_rows = 0  # the spool's size as last seen by this writer
        self.spooled_total = 0
        self.dropped_total = 0
        self.failed_total = 0
        self.spool_error: str | None = None  # set while the spool cannot be written
        self.store_error: str | None = None  # set while Postgres refuses writes
        self.degraded_since: float | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="convene-writer")
        with contextlib.suppress(*_SPOOL_ERRORS):
            self._spool_rows = self._spool.count()
        if self._spool_rows:
            self._kick_drain()

    def submit(self, op: WriteOp) -> None:
        """Queue one write; never blocks and never raises for storage trouble."""
        self._pending.append(op)
        if len(self._pending) + self._inflight > self._max_held:
            self._drop_one()
        self._idle.clear()
        self._wake.set()

    def _drop_one(self) -> None:
        """Over the bound: drop the oldest held write; a call's own record (created, started,
        ended) only when nothing else is left to drop."""
        victim_at = next(
            (i for i, op in enumerate(self._pending) if not isinstance(op, _CALL_RECORDS)), 0
        )
        victim = self._pending[victim_at]
        del self._pending[victim_at]
        self.dropped_total += 1
        if self.dropped_total == 1 or self.dropped_total % 100 == 0:
            log.error(
                "writer: storage unavailable and %d writes held in memory (the bound): "
                "dropped the oldest (%s of call %s); %d dropped so far",
                self._max_held,
                type(victim).__name__,
                victim.call_id,
                self.dropped_total,
            )

    @property
    def held(self) -> int:
        """Writes in memory: not yet in Postgres or the spool."""
        return len(self._pending) + self._inflight

    @property
    def backlog(self) -> int:
        """Writes not yet in Postgres: held in memory plus spooled."""
        return self.held + self._spool_rows

    def health(self) -> str:
        """'ok', or why writes are not reaching Postgres or the spool now."""
        if self.spool_error is None:
            return "ok"
        store = f"Postgres: {self.store_error}; " if self.store_error else ""
        return (
            f"degraded: {store}spool: {self.spool_error}; {self.held} writes held in memory"
            f" (bound {self._max_held}), retrying"
        )

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted write is in Postgres or durably spooled.

        Returns True when nothing is left in the spool either (all in Postgres).
        """
        async with asyncio.timeout(timeout):
            await self._idle.wait()
        return await self._spool_count() == 0

    async def drained(self, timeout: float) -> None:
        """Wait until the spool is empty too (Postgres has everything)."""
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                self._drain_ended.clear()
                if await self._spool_count() == 0:
                    return
                self._kick_drain()
                await self._drain_ended.wait()  # it ends once the spool is empty: look again

    async def close(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout)
        if self.held:
            log.error("writer: closing with %d writes not stored (storage unavailable)", self.held)
        for task in (self._task, self._drain_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._drain_task = None

    async def _spool_count(self) -> int:
        try:
            self._spool_rows = await asyncio.to_thread(self._spool.count)
        except _SPOOL_ERRORS as exc:
            log.warning("writer: spool unreadable (%s)", _describe(exc))
        return self._spool_rows

    # --- the write loop ------------------------------------------------------------------

    def _backoff(self) -> AsyncRetrying:
        """Retry on `_Again` until it works: `retry_secs`, doubling up to `max_retry_secs`."""
        return AsyncRetrying(
            retry=retry_if_exception_type(_Again),
            wait=wait_exponential(
                multiplier=self._retry_secs, min=self._retry_secs, max=self._max_retry_secs
            ),
            stop=stop_never,
            reraise=True,
        )

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._backoff()(self._place_next)

    async def _place_next(self) -> None:
        """The next batch to Postgres or the spool; `_Again` when neither took it (it is back
        at the front, in order; new writes keep arriving in _pending meanwhile, within the
        bound)."""
        batch = [self._pending.popleft() for _ in range(min(self._batch_size, len(self._pending)))]
        self._inflight = len(batch)
        try:
            placed = await self._place(batch)
        except Exception as exc:  # the writer must outlive any bug in one batch
            log.exception("writer: unexpected error; batch kept for a retry")
            self.spool_error = self.spool_error or _describe(exc)
            placed = False
        finally:
            self._inflight = 0
        if not placed:
            self._pending.extendleft(reversed(batch))
            while len(self._pending) > self._max_held:
                self._drop_one()
            raise _Again

    async def _place(self, batch: list[WriteOp]) -> bool:
        """Postgres, else the spool; False when neither took the batch (kept in memory)."""
        if await self._spool_count() == 0:
            try:
                await self._store.apply(batch)
            except Exception as exc:
                self._store_failed(exc, len(batch))
            else:
                self._store_ok()
                self._spool_ok()
                await self._publish(batch)
                return True
        # Postgres refused it, or older writes wait in the spool: queue behind them, in order.
        try:
            await self._spool.append(batch)
        except _SPOOL_ERRORS as exc:
            self._spool_failed(exc)
            return False
        self._spool_rows += len(batch)
        self.spooled_total += len(batch)
        self._spool_ok()
        self._kick_drain()
        return True

    # --- state changes, logged once each -------------------------------------------------

    def _store_failed(self, exc: BaseException, n: int) -> None:
        first = self.store_error is None
        self.store_error = _describe(exc)
        if not is_transient(exc):
            log.error("writer: Postgres refused %d writes (%s); spooling them", n, self.store_error)
        elif first:
            log.warning(
                "writer: Postgres unavailable (%s); spooling %d writes", self.store_error, n
            )

    def _store_ok(self) -> None:
        if self.store_error is not None:
            log.warning("writer: Postgres takes writes again")
        self.store_error = None

    def _spool_failed(self, exc: BaseException) -> None:
        if self.spool_error is None:
            self.degraded_since = time.monotonic()
            log.error(
                "writer: cannot store writes (Postgres: %s; spool: %s); holding %d in memory "
                "(bound %d) and retrying with backoff",
                self.store_error or "not tried",
                _describe(exc),
                self.held,
                self._max_held,
            )
        self.spool_error = _describe(exc)

    def _spool_ok(self) -> None:
        if self.spool_error is not None:
            took = time.monotonic() - (self.degraded_since or time.monotonic())
            log.warning("writer: storing writes again after %.1fs", took)
        self.spool_error = None
        self.degraded_since = None

    # --- replaying the spool ---------------------------------------------------------------

    def _kick_drain(self) -> None:
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.create_task(self._drain(), name="convene-spool-drain")
            self._drain_task.add_done_callback(lambda _: self._drain_ended.set())

    async def _drain(self) -> None:
        """Replay the spool, oldest first, batch by batch, until it is empty."""
        self._refused = 0
        while await self._backoff()(self._replay_next):
            pass

    async def _replay_next(self) -> bool:
        """Replay the oldest spooled batch: False when the spool is empty; `_Again` when it
        cannot now (the spool unreadable, Postgres away)."""
        try:
            rows = await self._spool.peek(self._batch_size)
        except _SPOOL_ERRORS as exc:
            log.warning("writer: spool unreadable (%s); retrying", _describe(exc))
            raise _Again from exc
        if not rows:
            self._spool_rows = 0
            return False
        ops = [op for _, op in rows]
        try:
            await self._store.apply(ops)
        except Exception as exc:
            self._store_failed(exc, len(ops))
            if not is_transient(exc):
                self._refused += 1
                if self._refused >= _POISON_ATTEMPTS:
                    await self._set_aside(rows)
                    self._refused = 0
                    return True
            raise _Again from exc
        self._store_ok()
        self._refused = 0
        try:
            await self._spool.delete_through(rows[-1][0])
        except _SPOOL_ERRORS as exc:
            # Replay is idempotent: the batch is applied again next time, no harm.
            log.warning("writer: could not trim the spool (%s); retrying", _describe(exc))
            raise _Again from exc
        self._spool_rows = max(0, self._spool_rows - len(rows))
        log.info("writer: replayed %d spooled writes", len(ops))
        await self._publish(ops)
        return True

    async def _set_aside(self, rows: list[tuple[int, WriteOp]]) -> None:
        """Apply a refused batch one write at a time; set aside those refused alone."""
        for row_id, op in rows:
            try:
                await self._store.apply([op])
            except Exception as exc:
                if is_transient(exc):
                    return  # an outage after all: the drain loop retries
                await self._spool.quarantine(row_id, _describe(exc))
                self.failed_total += 1
                log.error(
                    "writer: Postgres refused a %s of call %s for good (%s); set aside in the "
                    "spool's spool_failed table",
                    type(op).__name__,
                    op.call_id,
                    _describe(exc),
                )
            else:
                await self._spool.delete_through(row_id)
                await self._publish([op])

    async def _publish(self, ops: Sequence[WriteOp]) -> None:
        """Redis: the segment and commitment streams, for consumers outside this process.

        Only what Postgres has just committed, best effort (a failed publish is logged, not
        retried): the streams are a feed, never read back as memory (Postgres is the record).
        """
        if self._redis is None:
            return
        segments = [op for op in ops if isinstance(op, SegmentRecord)]
        commitments = [op for op in ops if isinstance(op, CommitmentRecord)]
        if not segments and not commitments:
            return
        try:
            async with (
                asyncio.timeout(_PUBLISH_TIMEOUT_SECS),
                self._redis.pipeline(transaction=False) as pipe,
            ):
                for item in commitments:
                    pipe.xadd(
                        keys.COMMITMENTS_STREAM,
                        {
                            "call_id": item.call_id,
                            "series": item.series or "",
                            "commitment": json.dumps(item.as_json()),
                        },
                        maxlen=keys.STREAM_MAXLEN,
                        approximate=True,
                    )
                for seg in segments:
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
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("writer: Redis stream publish failed (%s)", type(exc).__name__)
