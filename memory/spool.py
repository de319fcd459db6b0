"""A durable local spool (SQLite in CONVENE_HOME) for writes Postgres could not take yet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from memory.models import (
    CallCreated,
    CallEnded,
    CommitmentRecord,
    ReplyRecord,
    SegmentRecord,
    StreamStarted,
    SummaryRecord,
    WriteOp,
)

_KINDS: dict[
    str,
    type[SegmentRecord]
    | type[CommitmentRecord]
    | type[ReplyRecord]
    | type[SummaryRecord]
    | type[CallEnded]
    | type[CallCreated]
    | type[StreamStarted],
] = {
    "segment": SegmentRecord,
    "commitment": CommitmentRecord,
    "reply": ReplyRecord,
    "summary": SummaryRecord,
    "call_ended": CallEnded,
    "call_created": CallCreated,
    "stream_started": StreamStarted,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}


def _kind(op: WriteOp) -> str:
    return _NAMES[type(op)]


class Spool:
    """Append-only, ordered, crash-safe queue of write operations."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ops (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " kind TEXT NOT NULL, payload TEXT NOT NULL)"
        )
        # Writes Postgres refused for a reason other than an outage (kept, never replayed).
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS failed_ops (id INTEGER PRIMARY KEY,"
            " kind TEXT NOT NULL, payload TEXT NOT NULL, error TEXT NOT NULL,"
            " failed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )

    def _append(self, ops: list[WriteOp]) -> None:
        rows = [(_kind(op), json.dumps(op.as_json())) for op in ops]
        with self._lock, self._transaction():
            self._db.executemany("INSERT INTO ops(kind, payload) VALUES (?, ?)", rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN .. COMMIT, rolled back on any error (a full disk) so the next one can begin."""
        self._db.execute("BEGIN")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise

    def _quarantine(self, row_id: int, error: str) -> None:
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO failed_ops(id, kind, payload, error)"
                " SELECT id, kind, payload, ? FROM ops WHERE id = ?",
                (error, row_id),
            )
            self._db.execute("DELETE FROM ops WHERE id = ?", (row_id,))

    def failed_count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM failed_ops").fetchone()
        return int(n)

    def _peek(self, limit: int) -> list[tuple[int, WriteOp]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, payload FROM ops ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [
            (row_id, _KINDS[kind].from_json(json.loads(payload))) for row_id, kind, payload in rows
        ]

    def _delete_through(self, last_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM ops WHERE id <= ?", (last_id,))

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM ops").fetchone()
        return int(n)

    async def append(self, ops: list[WriteOp]) -> None:
        await asyncio.to_thread(self._append, ops)

    async def peek(self, limit: int) -> list[tuple[int, WriteOp]]:
        return await asyncio.to_thread(self._peek, limit)

    async def delete_through(self, last_id: int) -> None:
        await asyncio.to_thread(self._delete_through, last_id)

    async def quarantine(self, row_id: int, error: str) -> None:
        """Set one write aside (Postgres refuses it for good), so later ones can pass."""
        await asyncio.to_thread(self._quarantine, row_id, error)

    def _discard(self, call_ids: list[str], series: list[str]) -> int:
        """Drop waiting and set-aside writes of these calls or series (a deletion)."""
        removed = 0
        with self._lock, self._transaction():
            for table in ("ops", "failed_ops"):
                for column, values in (("$.call_id", call_ids), ("$.series_key", series),
                                       ("$.series", series)):  # fmt: skip
                    for value in values:
                        cursor = self._db.execute(
                            f"DELETE FROM {table} WHERE json_extract(payload, ?) = ?",  # noqa: S608
                            (column, value),
                        )
                        removed += cursor.rowcount
        return removed

    async def discard(self, call_ids: list[str], series: list[str]) -> int:
        return await asyncio.to_thread(self._discard, call_ids, series)

    def close(self) -> None:
        with self._lock:
            self._db.close()
