"""Transcript windows the LLM failed on, waiting in the durable queue (`core/spool.py`) for a
retry, oldest first. Blocking: call through `asyncio.to_thread`."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.spool import ITEMS, SpoolItem, SqliteSpool, table_exists
from domain.extraction import Utterance

KIND = "window"

# Who is told when a window is queued, by spool file (the process's retry loop).
_watchers: dict[Path, list[Callable[[], object]]] = {}
_watchers_lock = threading.Lock()


def watch(path: Path, queued: Callable[[], object]) -> Callable[[], None]:
    """Call `queued()` each time a window is queued in the spool at `path`, from the thread
    that queued it (so it must be thread-safe, e.g. `loop.call_soon_threadsafe`). Returns the
    function that stops it."""
    key = path.resolve()
    with _watchers_lock:
        _watchers.setdefault(key, []).append(queued)

    def unwatch() -> None:
        with _watchers_lock:
            callbacks = _watchers.get(key, [])
            if queued in callbacks:
                callbacks.remove(queued)
            if not callbacks:
                _watchers.pop(key, None)

    return unwatch


def _notify(path: Path) -> None:
    with _watchers_lock:
        callbacks = list(_watchers.get(path.resolve(), ()))
    for queued in callbacks:
        queued()


@dataclass(frozen=True)
class PendingWindow:
    """A window whose extraction failed, waiting in the spool."""

    id: int
    meeting_date: dt.date
    utterances: list[Utterance]
    new_from: int
    attempts: int
    created: str
    context: dict[str, str] = field(default_factory=dict)  # e.g. call_id, series, seq


def _payload(
    lines: Sequence[Utterance], new_from: int, meeting_date: dt.date, context: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "meeting_date": meeting_date.isoformat(),
        "utterances": [{"speaker": u.speaker, "text": u.text} for u in lines],
        "new_from": new_from,
        "context": dict(context),
    }


def adopt_pending_table(conn: sqlite3.Connection) -> None:
    """An LLM spool file from before the shared queue: its `pending` windows (ids, attempts,
    errors and order kept) move into the queue's table."""
    if not table_exists(conn, "pending"):
        return
    rows = conn.execute(
        "SELECT id, meeting_date, utterances, new_from, attempts, created, last_error, context"
        " FROM pending ORDER BY id"
    ).fetchall()
    for item_id, day, lines, new_from, attempts, created, error, context in rows:
        payload = {
            "meeting_date": day,
            "utterances": json.loads(lines),
            "new_from": int(new_from),
            "context": json.loads(context or "{}"),
        }
        conn.execute(
            f"INSERT INTO {ITEMS}(id, kind, payload, attempts, last_error, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, KIND, json.dumps(payload), attempts, error, created),
        )
    conn.execute("DROP TABLE pending")


def _window(item: SpoolItem) -> PendingWindow:
    data = item.payload
    return PendingWindow(
        id=item.id,
        meeting_date=dt.date.fromisoformat(data["meeting_date"]),
        utterances=[Utterance(speaker=u["speaker"], text=u["text"]) for u in data["utterances"]],
        new_from=int(data["new_from"]),
        attempts=item.attempts,
        created=item.created,
        context={str(k): str(v) for k, v in data.get("context", {}).items()},
    )


class PendingSpool:
    """Failed windows in a SQLite file, oldest first. The file is opened on first use, so a
    full disk fails the queueing of a window (reported by the caller), not the call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._opened: SqliteSpool | None = None
        self._lock = threading.Lock()

    @property
    def _queue(self) -> SqliteSpool:
        with self._lock:
            if self._opened is None:
                self._opened = SqliteSpool(self.path, migrate=adopt_pending_table)
            return self._opened

    def add(
        self,
        lines: Sequence[Utterance],
        *,
        new_from: int,
        meeting_date: dt.date,
        error: str,
        context: Mapping[str, str] | None = None,
    ) -> int:
        """Queue a window after its first failed attempt; its id."""
        payload = _payload(lines, new_from, meeting_date, context or {})
        [item_id] = self._queue.put([(KIND, payload)], attempts=1, error=error)
        _notify(self.path)
        return item_id

    def load(self) -> list[PendingWindow]:
        return [_window(item) for item in self._queue.peek() if item.kind == KIND]

    def count(self) -> int:
        """Windows waiting (0 when the spool file was never made: nothing ever failed)."""
        if self._opened is None and not self.path.exists():
            return 0
        return self._queue.count()

    def remove(self, item_id: int) -> None:
        self._queue.delete(item_id)

    def bump(self, item_id: int, error: str) -> None:
        self._queue.bump(item_id, error)

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._opened.close()
                self._opened = None
