"""Which calls are streaming, and in which process: a small SQLite file in CONVENE_HOME.

A call is journaled when its stream starts and removed when it ends. A process killed
mid-call (kill -9, OOM, power) leaves its rows behind; the next start on the same CONVENE_HOME
finds rows whose process is gone and closes those calls (status `interrupted`, ended_by
`crash`). Journal trouble (a full disk) is logged and never fails a call.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from memory.procs import ProcessId

log = logging.getLogger(__name__)


class CallJournal:
    """Shared by every process on one CONVENE_HOME (SQLite, WAL)."""

    def __init__(self, path: Path, owner: ProcessId | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.owner = owner or ProcessId.current()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # call start/end only: keep it quick
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS open_calls (call_id TEXT PRIMARY KEY,"
            " pid INTEGER NOT NULL, pid_started REAL NOT NULL,"
            " opened_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )

    def opened(self, call_id: str) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO open_calls(call_id, pid, pid_started) VALUES (?, ?, ?)",
                    (call_id, self.owner.pid, self.owner.started),
                )
        except sqlite3.Error as exc:
            log.error(
                "call journal: could not record call %s as open (%s: %s); a crash now would "
                "leave it in-progress",
                call_id,
                type(exc).__name__,
                exc,
            )

    def closed(self, call_id: str) -> None:
        try:
            with self._lock:
                self._db.execute("DELETE FROM open_calls WHERE call_id = ?", (call_id,))
        except sqlite3.Error as exc:
            log.error(
                "call journal: could not clear call %s (%s: %s)", call_id, type(exc).__name__, exc
            )

    def orphans(self) -> list[tuple[str, ProcessId]]:
        """Calls journaled by processes that are gone (never this one or a live one)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT call_id, pid, pid_started FROM open_calls ORDER BY opened_at"
            ).fetchall()
        found = []
        for call_id, pid, started in rows:
            owner = ProcessId(int(pid), float(started))
            if not self.owner.same(owner) and not owner.alive():
                found.append((str(call_id), owner))
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ActiveCalls:
    """The calls this process is streaming now (a set), written through to the journal."""

    def __init__(self, journal: CallJournal | None = None) -> None:
        self._journal = journal
        self._ids: set[str] = set()

    def add(self, call_id: str) -> None:
        self._ids.add(call_id)
        if self._journal is not None:
            self._journal.opened(call_id)

    def discard(self, call_id: str) -> None:
        self._ids.discard(call_id)
        if self._journal is not None:
            self._journal.closed(call_id)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(set(self._ids))

    def __len__(self) -> int:
        return len(self._ids)
