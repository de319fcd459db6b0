"""People of a series: who spoke (segments' person), their voiceprints and callers' numbers.

A person belongs to one series (the `people` table, unique by name in it); a phone number keys
at most one person per series. Voiceprints are the mean voice of a person's segments over the
calls they were recognised in, folded call by call (each call's voice weighs at most
`CALL_WEIGHT_SECS`), so one long monologue cannot pin it. The same number in several series
is one human: `person` lists their tasks across those series.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeAlias

import asyncpg
import numpy as np
import numpy.typing as npt
from asyncpg.pool import PoolConnectionProxy

from memory.models import SpeakerBound, VoiceprintLearned

Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
CALL_WEIGHT_SECS = 60.0
MAX_SECS = 600.0


async def person_in_call_series(
    conn: Conn, call_id: str, name: str, *, phone: str | None = None
) -> int | None:
    """The id of `name` in the call's series (created if new; given a `phone`, the person
    gets it unless they have one or another person of the series has it). None for a call
    without a series: people live in series."""
    person_id: int | None = await conn.fetchval(
        "INSERT INTO people(series_id, name) SELECT c.series_id, $2 FROM calls c"
        " WHERE c.id = $1 AND c.series_id IS NOT NULL"
        " ON CONFLICT (series_id, lower(name)) DO UPDATE SET name = people.name RETURNING id",
        uuid.UUID(call_id),
        name,
    )
    if person_id is not None and phone:
        await conn.execute(
            "UPDATE people p SET phone = $2 WHERE p.id = $1 AND p.phone IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM people o WHERE o.series_id = p.series_id AND o.phone = $2)",
            person_id,
            phone,
        )
    return person_id


async def apply_speaker_bound(conn: Conn, op: SpeakerBound) -> None:
    """The label's segments in the call say who spoke (or no longer say it)."""
    person_id = (
        await person_in_call_series(conn, op.call_id, op.person, phone=op.phone)
        if op.person
        else None
    )
    await conn.execute(
        "UPDATE transcript_segments SET person = $3, person_id = $4"
        " WHERE call_id = $1 AND speaker = $2",
        uuid.UUID(op.call_id),
        op.label,
        op.person,
        person_id,
    )
    if op.person is None:
        return
    # Promises this voice made before anyone knew who it was: now theirs, and their tasks.
    tasks = await conn.fetch(
        "UPDATE commitments SET owner = $3 WHERE call_id = $1 AND speaker = $2"
        " AND owner IS NULL RETURNING task_id",
        uuid.UUID(op.call_id),
        op.label,
        op.person,
    )
    task_ids = [r["task_id"] for r in tasks if r["task_id"] is not None]
    if task_ids:
        await conn.execute(
            "UPDATE tasks SET owner = $2, owner_id = $3, updated_at = now()"
            " WHERE id = ANY($1::bigint[]) AND owner IS NULL",
            task_ids,
            op.person,
            person_id,
        )


async def apply_voiceprint(conn: Conn, op: VoiceprintLearned) -> None:
    """Fold a call's voice of a person into their voiceprint in the call's series."""
    person_id = await person_in_call_series(conn, op.call_id, op.person)
    if person_id is None:
        return
    voice = np.asarray(op.voice, dtype=np.float32)
    weight = min(op.secs, CALL_WEIGHT_SECS)
    row = await conn.fetchrow(
        "SELECT embedding, secs FROM voiceprints WHERE person_id = $1 FOR UPDATE", person_id
    )
    secs = weight
    calls = 1
    if row is not None:
        old = _vector(row["embedding"])
        if old is not None and old.shape == voice.shape:
            old_weight = min(float(row["secs"]), MAX_SECS)
            voice = old * old_weight + voice * weight
            secs = min(old_weight + weight, MAX_SECS)
            calls = 0  # counted by the UPDATE below
    norm = float(np.linalg.norm(voice))
    if norm > 0:
        voice = voice / norm
    await conn.execute(
        "INSERT INTO voiceprints(person_id, embedding, secs) VALUES ($1, $2, $3)"
        " ON CONFLICT (person_id) DO UPDATE SET embedding = EXCLUDED.embedding,"
        " secs = EXCLUDED.secs, calls = voiceprints.calls + 1 - $4, updated_at = now()",
        person_id,
        voice,
        secs,
        calls,
    )


_PERSON = (
    "SELECT p.id, p.name, p.phone, s.key AS series, p.created_at,"
    " EXISTS (SELECT 1 FROM voiceprints v WHERE v.person_id = p.id) AS voiceprint,"
    " (SELECT count(*) FROM tasks t WHERE t.owner_id = p.id AND t.status = 'open')"
    " AS open_tasks FROM people p JOIN series s ON s.id = p.series_id"
)


def _person_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "series": row["series"],
        "phone": row["phone"],
        "voiceprint": row["voiceprint"],
        "open_tasks": row["open_tasks"],
        "created_at": row["created_at"].isoformat(),
    }


class PeopleStore:
    """Reads and edits of the people of series (the REST API's `/people`, a call's start)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def voiceprints(self, series_key: str) -> list[tuple[str, npt.NDArray[np.float32]]]:
        """(name, voiceprint) of each person of the series who has one."""
        rows = await self._pool.fetch(
            "SELECT p.name, v.embedding FROM voiceprints v JOIN people p ON p.id = v.person_id"
            " JOIN series s ON s.id = p.series_id WHERE s.key = $1 ORDER BY p.id",
            series_key,
        )
        found = []
        for r in rows:
            vector = _vector(r["embedding"])
            if vector is not None:
                found.append((str(r["name"]), vector))
        return found

    async def names(self, series_key: str) -> list[str]:
        """The names of the series' people."""
        rows = await self._pool.fetch(
            "SELECT p.name FROM people p JOIN series s ON s.id = p.series_id"
            " WHERE s.key = $1 ORDER BY p.id",
            series_key,
        )
        return [str(r["name"]) for r in rows]

    async def caller(self, call_id: str) -> tuple[str, str] | None:
        """(name, number) of the person whose number placed this inbound call, in its series."""
        row = await self._pool.fetchrow(
            "SELECT p.name, p.phone FROM calls c JOIN people p ON p.series_id = c.series_id"
            " AND p.phone = c.from_number WHERE c.id = $1 AND c.direction = 'inbound'",
            uuid.UUID(call_id),
        )
        return (str(row["name"]), str(row["phone"])) if row is not None else None

    async def inbound_number(self, call_id: str) -> str | None:
        """The number an inbound call came from (None for a dialled call)."""
        value: str | None = await self._pool.fetchval(
            "SELECT from_number FROM calls WHERE id = $1 AND direction = 'inbound'",
            uuid.UUID(call_id),
        )
        return value

    async def in_series(self, *, series: list[str] | None) -> list[dict[str, Any]]:
        """Everyone known (in `series` only, when given), by series then name."""
        rows = await self._pool.fetch(
            _PERSON
            + " WHERE ($1::text[] IS NULL OR s.key = ANY($1)) ORDER BY s.key, lower(p.name)",
            series,
        )
        return [_person_json(r) for r in rows]

    async def get(self, person_id: int) -> dict[str, Any] | None:
        """One person with their tasks: those they own in their series and, when their number is
        known, in every series where a person has the same number (the same human)."""
        row = await self._pool.fetchrow(_PERSON + " WHERE p.id = $1", person_id)
        if row is None:
            return None
        tasks = await self._pool.fetch(
            "SELECT t.id, s.key AS series, t.owner, t.action, t.due, t.status"
            " FROM tasks t JOIN people p ON p.id = t.owner_id JOIN series s ON s.id = t.series_id"
            " WHERE p.id = $1 OR ($2::text IS NOT NULL AND p.phone = $2)"
            " ORDER BY s.key, t.id",
            person_id,
            row["phone"],
        )
        return {
            **_person_json(row),
            "tasks": [
                {**dict(t), "due": t["due"].isoformat() if t["due"] else None} for t in tasks
            ],
        }

    async def series_of(self, person_id: int) -> str | None:
        value: str | None = await self._pool.fetchval(
            "SELECT s.key FROM people p JOIN series s ON s.id = p.series_id WHERE p.id = $1",
            person_id,
        )
        return value

    async def add(self, *, series_key: str, name: str, phone: str | None) -> int:
        """A person of the series (e.g. a caller's number, so they are greeted by name); the
        series is created if new. Raises asyncpg's UniqueViolationError when another person of
        the series has that number."""
        person_id: int = await self._pool.fetchval(
            "WITH s AS (INSERT INTO series(key) VALUES ($1) ON CONFLICT (key) DO UPDATE"
            " SET key = series.key RETURNING id)"
            " INSERT INTO people(series_id, name, phone) SELECT s.id, $2, $3 FROM s"
            " ON CONFLICT (series_id, lower(name)) DO UPDATE SET phone = COALESCE($3, people.phone)"
            " RETURNING id",
            series_key,
            name,
            phone,
        )
        return person_id

    async def delete(self, person_id: int) -> bool:
        """Forget a person: their record, number and voiceprint (segments and tasks stay, no
        longer linked to them)."""
        result: str = await self._pool.execute("DELETE FROM people WHERE id = $1", person_id)
        return result.endswith(" 1")


def _vector(value: Any) -> npt.NDArray[np.float32] | None:
    if value is None:
        return None
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)
