"""The one durable queue (`core/spool.py`) under both spools, and files written before it.

An upgrade must lose nothing: a writer spool file with the old `ops`/`failed_ops` tables and an
LLM spool file with the old `pending` table are built here with the exact SQL the old code ran,
then opened by today's spools, which hand out the same items, same ids, same order.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from pathlib import Path

from core.spool import SqliteSpool
from domain.extraction import Utterance
from domain.llm_pending import PendingSpool, watch
from memory.models import CallEnded, SegmentRecord
from memory.spool import Spool

CALL = "0b9d7c1e-52a4-4c4e-9f0e-6b1f3c2d9a10"


def test_queue_keeps_order_attempts_and_sets_aside(tmp_path: Path) -> None:
    queue = SqliteSpool(tmp_path / "q.sqlite3")
    try:
        ids = queue.put([("a", {"n": 1}), ("b", [2]), ("a", "three")])
        assert ids == sorted(ids) and len(set(ids)) == 3
        queue.bump(ids[1], "HTTP 529")
        queue.set_aside(ids[0], "refused for good")
        items = queue.peek()
        assert [(i.kind, i.payload, i.attempts, i.last_error) for i in items] == [
            ("b", [2], 1, "HTTP 529"),
            ("a", "three", 0, None),
        ]
        assert queue.count() == 2 and queue.failed_count() == 1
        queue.delete_through(ids[2])
        assert queue.peek() == [] and queue.put([("c", None)])[0] > ids[2]
    finally:
        queue.close()


def _old_writer_spool(path: Path) -> list[SegmentRecord | CallEnded]:
    """A spool file exactly as `memory/spool.py` wrote it before the shared queue."""
    ops: list[SegmentRecord | CallEnded] = [
        SegmentRecord(CALL, 0, 0, 900, "first words"),
        SegmentRecord(CALL, 1, 1000, 1900, "second words"),
        CallEnded(CALL),
    ]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS ops (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " kind TEXT NOT NULL, payload TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS failed_ops (id INTEGER PRIMARY KEY,"
        " kind TEXT NOT NULL, payload TEXT NOT NULL, error TEXT NOT NULL,"
        " failed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    kinds = {SegmentRecord: "segment", CallEnded: "call_ended"}
    for op in [SegmentRecord(CALL, 9, 0, 1, "set aside"), *ops]:
        db.execute(
            "INSERT INTO ops(kind, payload) VALUES (?, ?)",
            (kinds[type(op)], json.dumps(op.as_json())),
        )
    db.execute(
        "INSERT INTO failed_ops(id, kind, payload, error) SELECT id, kind, payload, 'refused'"
        " FROM ops WHERE id = 1"
    )
    db.execute("DELETE FROM ops WHERE id = 1")
    db.close()
    return ops


async def test_a_writer_spool_from_before_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    ops = _old_writer_spool(path)

    spool = Spool(path)
    try:
        rows = await spool.peek(10)
        assert [op for _, op in rows] == ops
        assert [row_id for row_id, _ in rows] == [2, 3, 4]  # ids kept
        assert spool.count() == 3 and spool.failed_count() == 1
        await spool.append([SegmentRecord(CALL, 2, 2000, 2900, "after the upgrade")])
        later = await spool.peek(10)
        assert later[-1][0] == 5 and later[-1][1] == SegmentRecord(
            CALL, 2, 2000, 2900, "after the upgrade"
        )
    finally:
        spool.close()
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "ops" not in tables and "failed_ops" not in tables
    reopened = Spool(path)  # and opening it again changes nothing
    try:
        assert reopened.count() == 4 and reopened.failed_count() == 1
    finally:
        reopened.close()


def old_llm_spool(path: Path, windows: list[tuple[list[Utterance], int, dict[str, str]]]) -> None:
    """An LLM spool file exactly as `PendingSpool` wrote it before the shared queue."""
    conn = sqlite3.connect(path)
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS pending (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            meeting_date TEXT NOT NULL,
            utterances TEXT NOT NULL,
            new_from INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 1,
            created TEXT NOT NULL,
            last_error TEXT,
            context TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    with conn:
        for lines, attempts, context in windows:
            conn.execute(
                "INSERT INTO pending (meeting_date, utterances, new_from, attempts, created, "
                "last_error, context) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    "2025-03-05",
                    json.dumps([{"speaker": u.speaker, "text": u.text} for u in lines]),
                    len(lines) - 1,
                    attempts,
                    "2025-03-05T10:00:00+00:00",
                    "HTTP 529 overloaded_error",
                    json.dumps(context),
                ),
            )
    conn.close()


def test_an_llm_spool_from_before_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "llm-spool.sqlite3"
    first = [Utterance("Alice", "I'll draft the agenda.")]
    second = [*first, Utterance("Bob", "I'll book the venue.")]
    old_llm_spool(path, [(first, 1, {"call_id": CALL, "seq": "0"}), (second, 3, {})])

    spool = PendingSpool(path)
    try:
        [one, two] = spool.load()
        assert (one.id, one.utterances, one.new_from, one.attempts) == (1, first, 0, 1)
        assert one.context == {"call_id": CALL, "seq": "0"}
        assert one.meeting_date == dt.date(2025, 3, 5)
        assert one.created == "2025-03-05T10:00:00+00:00"
        assert (two.id, two.utterances, two.new_from, two.attempts) == (2, second, 1, 3)
        spool.bump(2, "timeout")
        spool.remove(1)
        new_id = spool.add(first, new_from=0, meeting_date=dt.date(2025, 3, 6), error="timeout")
        assert new_id == 3
        assert [(w.id, w.attempts) for w in spool.load()] == [(2, 4), (3, 1)]
    finally:
        spool.close()


def _queue_one(path: Path) -> None:
    spool = PendingSpool(path)
    try:
        spool.add([Utterance("A", "x")], new_from=0, meeting_date=dt.date.min, error="e")
    finally:
        spool.close()


def test_queueing_a_window_tells_who_watches_that_spool(tmp_path: Path) -> None:
    path, other = tmp_path / "watched.sqlite3", tmp_path / "other.sqlite3"
    told = threading.Event()
    unwatch = watch(path, told.set)
    try:
        _queue_one(other)
        assert not told.is_set()
        _queue_one(path)
        assert told.is_set()
    finally:
        unwatch()
    told.clear()
    _queue_one(path)
    assert not told.is_set()
