"""The one durable queue: ordered, crash-safe, in a SQLite file under CONVENE_HOME.

Two rooms keep work in it that cannot be done now: `memory/spool.py` (writes Postgres could not
take yet) and `domain/llm_pending.py` (transcript windows the LLM failed on). Each item is a
`kind` and a JSON payload, with how often it was tried and its last error. An item refused for
good is set aside (kept in its own table, never handed out again) so the ones behind it pass.

Files written before this queue existed (the writer's `ops`/`failed_ops` tables, the LLM
spool's `pending` table) are adopted when opened: `migrate` moves their rows in, ids kept, in
the same transaction that creates the tables, so an upgrade loses nothing.

Blocking: call through `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import clock

#: Where the items wait, and where those refused for good are kept.
ITEMS = "spool_items"
FAILED = "spool_failed"

_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {ITEMS} (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT, created TEXT NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {FAILED} (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
    " payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL,"
    " created TEXT NOT NULL, failed_at TEXT NOT NULL)",
)

#: Adopts an older file's tables: runs inside the opening transaction, after the schema.
Migration = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class SpoolItem:
    """One queued item. `payload` is the JSON value it was put with."""

    id: int
    kind: str
    payload: Any  # JSON
    attempts: int
    last_error: str | None
    created: str


def now_text() -> str:
    """The `created` stamp of a new item: the app clock's instant, to the second."""
    return clock.now().isoformat(timespec="seconds")


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    """For migrations: whether an older file has table `name`."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


class SqliteSpool:
    """Items in the order they were put, oldest first; one connection, one lock."""

    def __init__(self, path: Path, *, migrate: Migration | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # A busy timeout: other processes (and other spools in this one) share the file.
        self._db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._transaction(immediate=True):
                for statement in _SCHEMA:
                    self._db.execute(statement)
                if migrate is not None:
                    migrate(self._db)
        except BaseException:
            self._db.close()
            raise

    @contextlib.contextmanager
    def _transaction(self, *, immediate: bool = False) -> Iterator[None]:
        """BEGIN .. COMMIT, rolled back on any error (a full disk) so the next one can begin."""
        self._db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise

    def put(
        self, items: Sequence[tuple[str, object]], *, attempts: int = 0, error: str | None = None
    ) -> list[int]:
        """Append `(kind, payload)` items, all or none; their ids, in order."""
        created = now_text()
        ids: list[int] = []
        with self._lock, self._transaction():
            for kind, payload in items:
                cursor = self._db.execute(
                    f"INSERT INTO {ITEMS}(kind, payload, attempts, last_error, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (kind, json.dumps(payload), attempts, error, created),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def peek(self, limit: int | None = None) -> list[SpoolItem]:
        """The oldest `limit` items (all when None), left in the queue."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, kind, payload, attempts, last_error, created FROM {ITEMS}"
                " ORDER BY id LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [
            SpoolItem(
                id=int(row_id),
                kind=str(kind),
                payload=json.loads(payload),
                attempts=int(attempts),
                last_error=last_error,
                created=str(created),
            )
            for row_id, kind, payload, attempts, last_error, created in rows
        ]

    def delete(self, item_id: int) -> None:
        with self._lock:
            self._db.execute(f"DELETE FROM {ITEMS} WHERE id = ?", (item_id,))

    def delete_through(self, last_id: int) -> None:
        """Remove every item up to and including `last_id` (done, in order)."""
        with self._lock:
            self._db.execute(f"DELETE FROM {ITEMS} WHERE id <= ?", (last_id,))

    def bump(self, item_id: int, error: str) -> None:
        """One more failed attempt at an item, which stays queued."""
        with self._lock:
            self._db.execute(
                f"UPDATE {ITEMS} SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, item_id),
            )

    def set_aside(self, item_id: int, error: str) -> None:
        """Move an item refused for good out of the queue (kept, never handed out again)."""
        with self._lock, self._transaction():
            self._db.execute(
                f"INSERT INTO {FAILED}(id, kind, payload, attempts, error, created, failed_at)"
                f" SELECT id, kind, payload, attempts, ?, created, ? FROM {ITEMS} WHERE id = ?",
                (error, now_text(), item_id),
            )
            self._db.execute(f"DELETE FROM {ITEMS} WHERE id = ?", (item_id,))

    def discard_matching(self, fields: Sequence[str], values: Sequence[str]) -> int:
        """Drop queued and set-aside items whose JSON payload has one of `values` at one of
        the top-level `fields` (a deletion); how many were dropped."""
        removed = 0
        with self._lock, self._transaction():
            for table in (ITEMS, FAILED):
                for field in fields:
                    for value in values:
                        cursor = self._db.execute(
                            f"DELETE FROM {table} WHERE json_extract(payload, ?) = ?",  # noqa: S608
                            (f"$.{field}", value),
                        )
                        removed += cursor.rowcount
        return removed

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute(f"SELECT count(*) FROM {ITEMS}").fetchone()
        return int(n)

    def failed_count(self) -> int:
        with self._lock:
            (n,) = self._db.execute(f"SELECT count(*) FROM {FAILED}").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()
