"""Writes Postgres could not take yet, waiting in the durable queue (`core/spool.py`) in
CONVENE_HOME, in order; writes Postgres refused for good are set aside there, kept."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from core.spool import FAILED, ITEMS, SqliteSpool, table_exists
from memory.models import (
    CallCreated,
    CallEnded,
    CommitmentRecord,
    ReplyRecord,
    SegmentRecord,
    SpeakerBound,
    SpeakersMerged,
    StreamStarted,
    SummaryRecord,
    VoiceprintLearned,
    WriteOp,
)

_KINDS: dict[
    str,
    type[SegmentRecord]
    | type[CommitmentRecord]
    | type[ReplyRecord]
    | type[SummaryRecord]
    | type[SpeakersMerged]
    | type[SpeakerBound]
    | type[VoiceprintLearned]
    | type[CallEnded]
    | type[CallCreated]
    | type[StreamStarted],
] = {
    "segment": SegmentRecord,
    "commitment": CommitmentRecord,
    "reply": ReplyRecord,
    "summary": SummaryRecord,
    "speakers_merged": SpeakersMerged,
    "speaker_bound": SpeakerBound,
    "voiceprint_learned": VoiceprintLearned,
    "call_ended": CallEnded,
    "call_created": CallCreated,
    "stream_started": StreamStarted,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}


def _kind(op: WriteOp) -> str:
    return _NAMES[type(op)]


def adopt_writer_tables(conn: sqlite3.Connection) -> None:
    """A spool file from before the shared queue: its `ops` (waiting, ids and order kept) and
    `failed_ops` (set aside) move into the queue's tables."""
    if table_exists(conn, "ops"):
        conn.execute(
            f"INSERT INTO {ITEMS}(id, kind, payload, attempts, last_error, created)"
            " SELECT id, kind, payload, 0, NULL, CURRENT_TIMESTAMP FROM ops ORDER BY id"
        )
        conn.execute("DROP TABLE ops")
    if table_exists(conn, "failed_ops"):
        conn.execute(
            f"INSERT INTO {FAILED}(id, kind, payload, attempts, error, created, failed_at)"
            " SELECT id, kind, payload, 0, error, failed_at, failed_at FROM failed_ops"
        )
        conn.execute("DROP TABLE failed_ops")


class Spool:
    """Append-only, ordered, crash-safe queue of write operations."""

    def __init__(self, path: Path) -> None:
        self._queue = SqliteSpool(path, migrate=adopt_writer_tables)
        self.path = path

    async def append(self, ops: list[WriteOp]) -> None:
        await asyncio.to_thread(self._queue.put, [(_kind(op), op.as_json()) for op in ops])

    async def peek(self, limit: int) -> list[tuple[int, WriteOp]]:
        items = await asyncio.to_thread(self._queue.peek, limit)
        return [(item.id, _KINDS[item.kind].from_json(item.payload)) for item in items]

    async def delete_through(self, last_id: int) -> None:
        await asyncio.to_thread(self._queue.delete_through, last_id)

    async def quarantine(self, row_id: int, error: str) -> None:
        """Set one write aside (Postgres refuses it for good), so later ones can pass."""
        await asyncio.to_thread(self._queue.set_aside, row_id, error)

    def count(self) -> int:
        return self._queue.count()

    def failed_count(self) -> int:
        return self._queue.failed_count()

    def _discard(self, call_ids: list[str], series: list[str]) -> int:
        """Drop waiting and set-aside writes of these calls or series (a deletion)."""
        return self._queue.discard_matching(["call_id"], call_ids) + (
            self._queue.discard_matching(["series_key", "series"], series)
        )

    async def discard(self, call_ids: list[str], series: list[str]) -> int:
        return await asyncio.to_thread(self._discard, call_ids, series)

    def close(self) -> None:
        self._queue.close()
