"""The structured memory layer: commitments become tasks that live across a series' meetings.

A new commitment that matches an open task of the same series (compatible owner, similar action
by embedding and by words) updates it instead of duplicating it; a status update closes the
matching task; a cancellation cancels it. Every change keeps its history with the quote, call
and segment that caused it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import numpy as np
import numpy.typing as npt
from asyncpg.pool import PoolConnectionProxy
from rapidfuzz import fuzz

from core.english import SCHEDULE_WORDS, STOP_WORDS
from memory.models import CommitmentRecord

Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
MATCH_THRESHOLD = 0.55
SOUND_ALIKE_RATIO = 0.66
SOUND_ALIKE_CREDIT = 0.7
_STOP = STOP_WORDS | SCHEDULE_WORDS
_WORD = re.compile(r"[a-z0-9']+")


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


@dataclass(frozen=True)
class TaskRow:
    id: int
    owner: str | None
    action: str
    due: Any
    status: str
    embedding: npt.NDArray[np.float32] | None


def owners_compatible(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a.strip().lower() == b.strip().lower()


def match_score(
    record: CommitmentRecord,
    action_vec: npt.NDArray[np.float32],
    quote_vec: npt.NDArray[np.float32],
    task: TaskRow,
) -> float:
    """0..1: how likely `record` talks about `task` (cosine of embeddings + word overlap)."""
    if not owners_compatible(record.owner, task.owner):
        return 0.0
    cosine = 0.0
    if task.embedding is not None:
        cosine = float(max(action_vec @ task.embedding, quote_vec @ task.embedding))
    task_words = content_words(task.action)
    heard = content_words(record.action) | content_words(record.quote)
    found = sum(word_credit(word, heard) for word in task_words)
    overlap = found / len(task_words) if task_words else 0.0
    return 0.6 * cosine + 0.4 * overlap


def word_credit(word: str, heard: set[str]) -> float:
    """1 for the word itself; SOUND_ALIKE_CREDIT for a word the STT may have heard instead.

    Last week's transcript can carry a mishearing ("get the Dumbo environment ready") that this
    week's update does not ("the demo environment is ready"): same first letter, most letters
    in order (rapidfuzz's ratio, 2 * longest common subsequence / total letters, at least
    SOUND_ALIKE_RATIO), both at least 4 letters.
    """
    if word in heard:
        return 1.0
    if len(word) < 4:
        return 0.0
    for other in heard:
        if (
            len(other) >= 4
            and other[0] == word[0]
            and fuzz.ratio(word, other) >= 100 * SOUND_ALIKE_RATIO
        ):
            return SOUND_ALIKE_CREDIT
    return 0.0


def best_match(
    record: CommitmentRecord,
    action_vec: npt.NDArray[np.float32],
    quote_vec: npt.NDArray[np.float32],
    tasks: list[TaskRow],
) -> TaskRow | None:
    scored = [(match_score(record, action_vec, quote_vec, t), t) for t in tasks]
    scored = [(s, t) for s, t in scored if s >= MATCH_THRESHOLD]
    if not scored:
        return None
    return max(scored, key=lambda pair: pair[0])[1]


def _vector(value: Any) -> npt.NDArray[np.float32] | None:
    if value is None:
        return None
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)


async def _open_tasks(conn: Conn, series_id: int) -> list[TaskRow]:
    rows = await conn.fetch(
        "SELECT id, owner, action, due, status, embedding FROM tasks"
        " WHERE series_id = $1 AND status = 'open' ORDER BY id",
        series_id,
    )
    return [
        TaskRow(
            id=r["id"],
            owner=r["owner"],
            action=r["action"],
            due=r["due"],
            status=r["status"],
            embedding=_vector(r["embedding"]),
        )
        for r in rows
    ]


async def _person(conn: Conn, series_id: int, name: str | None) -> int | None:
    if not name:
        return None
    person_id: int = await conn.fetchval(
        "INSERT INTO people(series_id, name) VALUES ($1, $2)"
        " ON CONFLICT (series_id, lower(name)) DO UPDATE SET name = people.name RETURNING id",
        series_id,
        name,
    )
    return person_id


async def _history(
    conn: Conn,
    *,
    task_id: int,
    change: str,
    from_status: str | None,
    to_status: str,
    from_due: Any,
    to_due: Any,
    record: CommitmentRecord,
    meeting_id: int | None,
) -> None:
    await conn.execute(
        "INSERT INTO task_history(task_id, change, from_status, to_status, from_due, to_due,"
        " quote, call_id, seq, meeting_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        task_id,
        change,
        from_status,
        to_status,
        from_due,
        to_due,
        record.quote,
        uuid.UUID(record.call_id),
        record.seq,
        meeting_id,
    )


async def apply_commitment(
    conn: Conn,
    record: CommitmentRecord,
    *,
    action_vec: npt.NDArray[np.float32],
    quote_vec: npt.NDArray[np.float32],
) -> int | None:
    """Record `record` and update the series' tasks; returns the task it touched, if any.

    Idempotent: a commitment already recorded (a replay from the spool) changes nothing.
    """
    call = await conn.fetchrow(
        "SELECT series_id, meeting_id FROM calls WHERE id = $1", uuid.UUID(record.call_id)
    )
    inserted = await conn.fetchval(
        "INSERT INTO commitments(call_id, seq, ordinal, kind, owner, action, due, quote, confidence,"
        " speaker) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (call_id, seq, ordinal) DO NOTHING RETURNING id",
        uuid.UUID(record.call_id),
        record.seq,
        record.ordinal,
        record.kind,
        record.owner,
        record.action,
        record.due,
        record.quote,
        record.confidence,
        record.speaker,
    )
    if inserted is None or call is None or call["series_id"] is None:
        return None
    series_id: int = call["series_id"]
    meeting_id: int | None = call["meeting_id"]
    task = best_match(record, action_vec, quote_vec, await _open_tasks(conn, series_id))
    task_id: int | None = None
    if record.kind == "commitment":
        if task is None:
            owner_id = await _person(conn, series_id, record.owner)
            task_id = await conn.fetchval(
                "INSERT INTO tasks(series_id, owner_id, owner, action, due, source_call_id,"
                " source_seq, meeting_created_id, meeting_updated_id, embedding)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
                series_id,
                owner_id,
                record.owner,
                record.action,
                record.due,
                uuid.UUID(record.call_id),
                record.seq,
                meeting_id,
                action_vec,
            )
            assert task_id is not None
            await _history(
                conn,
                task_id=task_id,
                change="created",
                from_status=None,
                to_status="open",
                from_due=None,
                to_due=record.due,
                record=record,
                meeting_id=meeting_id,
            )
        else:
            task_id = task.id
            redated = record.due is not None and record.due != task.due
            await conn.execute(
                "UPDATE tasks SET due = COALESCE($2, due), owner = COALESCE(owner, $3),"
                " meeting_updated_id = $4, updated_at = now() WHERE id = $1",
                task.id,
                record.due,
                record.owner,
                meeting_id,
            )
            await _history(
                conn,
                task_id=task.id,
                change="redated" if redated else "restated",
                from_status=task.status,
                to_status=task.status,
                from_due=task.due,
                to_due=record.due if redated else task.due,
                record=record,
                meeting_id=meeting_id,
            )
    elif task is not None:
        status = "done" if record.kind == "status_done" else "cancelled"
        task_id = task.id
        await conn.execute(
            "UPDATE tasks SET status = $2, meeting_updated_id = $3, updated_at = now() WHERE id = $1",
            task.id,
            status,
            meeting_id,
        )
        await _history(
            conn,
            task_id=task.id,
            change=status,
            from_status=task.status,
            to_status=status,
            from_due=task.due,
            to_due=task.due,
            record=record,
            meeting_id=meeting_id,
        )
    if task_id is not None:
        await conn.execute("UPDATE commitments SET task_id = $2 WHERE id = $1", inserted, task_id)
    await conn.execute(
        "INSERT INTO memory_embeddings(series_id, call_id, kind, ref, text, embedding)"
        " VALUES ($1, $2, 'commitment', $3, $4, $5) ON CONFLICT (kind, ref) DO NOTHING",
        series_id,
        uuid.UUID(record.call_id),
        f"{record.call_id}:{record.seq}:{record.ordinal}",
        record.quote,
        quote_vec,
    )
    return task_id
