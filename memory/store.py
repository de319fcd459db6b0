"""Postgres access for the call path. One pool per process, created once and injected."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

from core import clock
from core.errors import StorageUnavailable
from memory.embeddings import Embedder, shared_embedder
from memory.migrate import migrate
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
    TaskChange,
    TaskState,
    VoiceprintLearned,
    WriteOp,
)
from memory.people import (
    PeopleStore,
    apply_speaker_bound,
    apply_voiceprint,
    person_in_call_series,
)
from memory.tracking import Conn, apply_commitment

CALL_SID_MISMATCH = "the stream's CallSid is not the call's"
TIME_LIMIT = "time-limit"  # ended_by of a call hung up at CONVENE_MAX_CALL_MINUTES


class StreamNotAttached(Exception):
    """A stream that may not attach to the call it names (the reason, for the log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StreamAttached:
    """What the call record says about a stream just attached to it."""

    meeting_date: dt.date
    series_key: str | None


@dataclass(frozen=True)
class CallState:
    """A call as a webhook needs to see it."""

    call_id: str
    streaming: bool
    over: bool
    meeting_date: dt.date | None


# What asyncpg raises when the server is away or the connection broke.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.ConnectionFailureError,
    TimeoutError,
)


# Postgres is away (down, frozen, unreachable): what a caller may answer without it.
STORE_DOWN: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, StorageUnavailable)

# SQLSTATE classes that mean "the server cannot take writes now" (retry later), as opposed
# to "this write is wrong" (22 data, 23 integrity, 42 syntax/undefined...): connection (08),
# transaction rollback (40), insufficient resources such as a full disk (53), operator
# intervention such as a shutdown (57), system/I/O errors (58).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57", "58")


def is_transient(exc: BaseException) -> bool:
    """True when a write failed because of the server's state, not because of the write."""
    if isinstance(exc, (*CONNECTION_ERRORS, StorageUnavailable)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] in _TRANSIENT_SQLSTATE_CLASSES
    return False


async def _init_connection(conn: asyncpg.Connection) -> None:
    await register_vector(conn)


class Store:
    """Typed queries over the call-path tables."""

    def __init__(self, pool: asyncpg.Pool, embedder: Embedder | None = None) -> None:
        self.pool = pool
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = shared_embedder()
        return self._embedder

    @classmethod
    async def open(cls, dsn: str, *, run_migrations: bool = True) -> Store:
        try:
            if run_migrations:
                conn = await asyncpg.connect(dsn, timeout=10)
                try:
                    await migrate(conn)
                finally:
                    await conn.close()
            pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=5, timeout=5, command_timeout=10, init=_init_connection
            )
        except CONNECTION_ERRORS as exc:
            raise StorageUnavailable(f"Postgres unreachable: {type(exc).__name__}: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    async def ping(self) -> None:
        try:
            await self.pool.fetchval("SELECT 1", timeout=2)
        except CONNECTION_ERRORS as exc:
            raise StorageUnavailable(f"Postgres unreachable: {type(exc).__name__}") from exc

    # --- series, meetings, calls -------------------------------------------------------

    @property
    def people(self) -> PeopleStore:
        """The people of series: voiceprints, callers' numbers, `/people`."""
        return PeopleStore(self.pool)

    async def upsert_series(self, key: str, *, name: str | None = None) -> int:
        row = await self.pool.fetchrow(
            "INSERT INTO series(key, name) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET name = COALESCE(EXCLUDED.name, series.name)"
            " RETURNING id",
            key,
            name,
        )
        assert row is not None
        return int(row["id"])

    async def create_call(self, call: CallCreated) -> str:
        """A new call, with the meeting date it keeps for its whole life; returns its id."""
        async with self.pool.acquire() as conn:
            await _insert_call(conn, call, replay=False)
        return call.call_id

    async def call_meeting_date(self, call_id: str) -> dt.date | None:
        """The meeting date decided when the call was created."""
        value: dt.date | None = await self.pool.fetchval(
            "SELECT meeting_date FROM calls WHERE id = $1", uuid.UUID(call_id)
        )
        return value

    async def set_call_sid(self, call_id: str, call_sid: str, *, status: str) -> None:
        await self.pool.execute(
            "UPDATE calls SET call_sid = $2, status = $3 WHERE id = $1",
            uuid.UUID(call_id),
            call_sid,
            status,
        )

    async def set_status(self, call_id: str, status: str) -> None:
        await self.pool.execute(
            "UPDATE calls SET status = $2 WHERE id = $1", uuid.UUID(call_id), status
        )

    async def find_call(
        self, *, call_id: str | None = None, call_sid: str | None = None
    ) -> str | None:
        if call_id:
            try:
                key = uuid.UUID(call_id)
            except ValueError:
                return None
            value = await self.pool.fetchval("SELECT id FROM calls WHERE id = $1", key)
        elif call_sid:
            value = await self.pool.fetchval("SELECT id FROM calls WHERE call_sid = $1", call_sid)
        else:
            return None
        return str(value) if value is not None else None

    async def start_stream(
        self,
        *,
        call_id: str,
        stream_sid: str,
        call_sid: str | None,
        meeting_title: str | None,
        token_nonce: str | None = None,
        token_expires_at: dt.datetime | None = None,
    ) -> StreamAttached:
        """Attach a stream to its call: claim the stream token's nonce (once), mark the call as
        streaming and attach it to the meeting of its series on the date stored when it was
        created. Raises StreamNotAttached for an unknown call, a call already streaming or
        over, or a token used before."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT call_sid, stream_sid, completed_at FROM calls WHERE id = $1 FOR UPDATE",
                uuid.UUID(call_id),
            )
            if row is None:
                raise StreamNotAttached("unknown call")
            if row["completed_at"] is not None:
                raise StreamNotAttached("the call is over")
            if row["stream_sid"] is not None:
                raise StreamNotAttached("the call is already streaming")
            if row["call_sid"] and call_sid != row["call_sid"]:
                # Bound once Twilio named the call (its webhook, or calls.create for a call
                # we dialled): a `start` must carry that CallSid, not another one, nor none.
                raise StreamNotAttached(CALL_SID_MISMATCH)
            if token_nonce is not None:
                claimed = await conn.fetchval(
                    "INSERT INTO stream_token_uses(nonce, call_id, expires_at)"
                    " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING nonce",
                    token_nonce,
                    uuid.UUID(call_id),
                    token_expires_at or clock.now(),
                )
                if claimed is None:
                    raise StreamNotAttached("reused stream token")
                await conn.execute(
                    "DELETE FROM stream_token_uses WHERE expires_at < now() - interval '1 day'"
                )
            return await _start_stream(
                conn,
                call_id=call_id,
                stream_sid=stream_sid,
                call_sid=call_sid,
                series_key=None,
                meeting_title=meeting_title,
                started_at=None,
            )

    async def end_unstarted_call(
        self,
        *,
        call_id: str,
        token_nonce: str,
        token_expires_at: dt.datetime,
        ended_by: str,
        call_sid: str | None = None,
    ) -> bool:
        """End, as failed, a call whose stream was refused at its `start` (so it does not stay
        `ringing`): claims the stream token like `start_stream`, and touches only a call that
        has no stream and is not over. True when it ended the call. Raises StreamNotAttached
        (and claims nothing) when the `start`'s CallSid is not the call's."""
        async with self.pool.acquire() as conn, conn.transaction():
            bound = await conn.fetchval(
                "SELECT call_sid FROM calls WHERE id = $1 FOR UPDATE", uuid.UUID(call_id)
            )
            if bound and call_sid != bound:
                raise StreamNotAttached(CALL_SID_MISMATCH)
            claimed = await conn.fetchval(
                "INSERT INTO stream_token_uses(nonce, call_id, expires_at)"
                " SELECT $1, id, $3 FROM calls WHERE id = $2"
                " ON CONFLICT DO NOTHING RETURNING nonce",
                token_nonce,
                uuid.UUID(call_id),
                token_expires_at,
            )
            if claimed is None:
                return False
            ended = await conn.fetchval(
                "UPDATE calls SET status = 'failed', ended_at = now(), completed_at = now(),"
                " ended_by = $2 WHERE id = $1 AND stream_sid IS NULL AND completed_at IS NULL"
                " RETURNING id",
                uuid.UUID(call_id),
                ended_by,
            )
        return ended is not None

    async def mark_time_limited(self, call_sid: str) -> bool | None:
        """Say (`ended_by` 'time-limit') that the call Twilio knows by this CallSid is being
        hung up at its time limit; its own end keeps that. True when it was marked, False
        when the call is over already, None when no call has this CallSid (yet)."""
        row = await self.pool.fetchrow(
            "UPDATE calls SET ended_by = CASE WHEN completed_at IS NULL THEN $2"
            " ELSE ended_by END WHERE call_sid = $1 RETURNING completed_at IS NULL AS open",
            call_sid,
            TIME_LIMIT,
        )
        return None if row is None else bool(row["open"])

    async def unmark_time_limited(self, call_sid: str) -> None:
        """The hang-up failed: the call goes on, and will end for its own reasons."""
        await self.pool.execute(
            "UPDATE calls SET ended_by = NULL"
            " WHERE call_sid = $1 AND completed_at IS NULL AND ended_by = $2",
            call_sid,
            TIME_LIMIT,
        )

    async def call_by_sid(self, call_sid: str) -> CallState | None:
        """The call Twilio knows by this CallSid: its id and whether it streams or is over."""
        row = await self.pool.fetchrow(
            "SELECT id, stream_sid, completed_at, meeting_date FROM calls WHERE call_sid = $1",
            call_sid,
        )
        if row is None:
            return None
        return CallState(
            call_id=str(row["id"]),
            streaming=row["stream_sid"] is not None,
            over=row["completed_at"] is not None,
            meeting_date=row["meeting_date"],
        )

    async def record_status(
        self, *, call_sid: str, status: str, payload: dict[str, Any]
    ) -> tuple[str | None, bool]:
        """Record a Twilio status callback once per (CallSid, status, SequenceNumber).

        Returns our call id (if the call is known) and whether the callback was new: a replay
        changes nothing, and a callback older (by SequenceNumber) than one already recorded
        for the call is kept as an event without moving the call's status back."""
        raw_seq = payload.get("SequenceNumber", "")
        sequence = int(raw_seq) if raw_seq.isdigit() and len(raw_seq) <= 9 else None
        async with self.pool.acquire() as conn, conn.transaction():
            call_id = await conn.fetchval("SELECT id FROM calls WHERE call_sid = $1", call_sid)
            inserted = await conn.fetchval(
                "INSERT INTO call_events(call_id, call_sid, kind, status, payload,"
                " sequence_number) VALUES ($1, $2, 'status', $3, $4::jsonb, $5)"
                " ON CONFLICT (call_sid, status, COALESCE(sequence_number, -1))"
                " WHERE kind = 'status' AND NOT replayed DO NOTHING RETURNING id",
                call_id,
                call_sid,
                status,
                _json(payload),
                sequence,
            )
            if inserted is None:
                return (str(call_id) if call_id is not None else None), False
            newer = None
            if sequence is not None:
                newer = await conn.fetchval(
                    "SELECT 1 FROM call_events WHERE call_sid = $1 AND kind = 'status'"
                    " AND sequence_number > $2 LIMIT 1",
                    call_sid,
                    sequence,
                )
            if call_id is not None and newer is None:
                # A stream's own completion wins over Twilio's view of the phone leg.
                await conn.execute(
                    "UPDATE calls SET status = $2 WHERE id = $1 AND completed_at IS NULL",
                    call_id,
                    status,
                )
        return (str(call_id) if call_id is not None else None), True

    # --- writes from the pipeline (through memory.writer) -----------------------------

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        """Apply a batch of pipeline writes in one transaction; idempotent (replay-safe)."""
        segments = [op for op in ops if isinstance(op, SegmentRecord)]
        commitments = [op for op in ops if isinstance(op, CommitmentRecord)]
        texts = [s.text for s in segments]
        for c in commitments:
            texts += [c.action, c.quote]
        summaries = [op for op in ops if isinstance(op, SummaryRecord)]
        texts += [s.text for s in summaries]
        vectors = await asyncio.to_thread(self.embedder.embed, texts) if texts else None
        async with self.pool.acquire(timeout=10) as conn, conn.transaction():
            # Calls accepted while Postgres was away: their rows before anything of theirs.
            for op in ops:
                if isinstance(op, CallCreated):
                    await _insert_call(conn, op)
                elif isinstance(op, StreamStarted):
                    await _start_stream(
                        conn,
                        call_id=op.call_id,
                        stream_sid=op.stream_sid,
                        call_sid=op.call_sid,
                        series_key=op.series_key,
                        meeting_title=op.meeting_title,
                        started_at=op.started_at,
                    )
            if segments:
                person_ids: dict[tuple[str, str | None], int | None] = {
                    (s.call_id, s.person): await person_in_call_series(conn, s.call_id, s.person)
                    for s in segments
                    if s.person
                }
                await conn.executemany(
                    "INSERT INTO transcript_segments"
                    "(call_id, seq, start_ms, end_ms, text, confidence, speaker, person, person_id)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    " ON CONFLICT (call_id, seq) DO NOTHING",
                    [
                        (
                            uuid.UUID(s.call_id),
                            s.seq,
                            s.start_ms,
                            s.end_ms,
                            s.text,
                            s.confidence,
                            s.speaker,
                            s.person,
                            person_ids.get((s.call_id, s.person)),
                        )
                        for s in segments
                    ],
                )
                assert vectors is not None
                await conn.executemany(
                    "INSERT INTO memory_embeddings(series_id, call_id, kind, ref, text, embedding)"
                    " SELECT c.series_id, c.id, 'segment', $2, $3, $4 FROM calls c WHERE c.id = $1"
                    " ON CONFLICT (kind, ref) DO NOTHING",
                    [
                        (uuid.UUID(s.call_id), f"{s.call_id}:{s.seq}", s.text, vectors[i])
                        for i, s in enumerate(segments)
                    ],
                )
            # Vectors are laid out: segments, then (action, quote) per commitment, then summaries.
            at = len(segments)
            summary_at = len(segments) + 2 * len(commitments)
            for op in ops:
                if isinstance(op, CommitmentRecord):
                    assert vectors is not None
                    await apply_commitment(
                        conn, op, action_vec=vectors[at], quote_vec=vectors[at + 1]
                    )
                    at += 2
                elif isinstance(op, SummaryRecord):
                    assert vectors is not None
                    await conn.execute(
                        "UPDATE calls SET summary = $2 WHERE id = $1",
                        uuid.UUID(op.call_id),
                        op.text,
                    )
                    await conn.execute(
                        "INSERT INTO memory_embeddings(series_id, call_id, kind, ref, text, embedding)"
                        " SELECT c.series_id, c.id, 'summary', $2, $3, $4 FROM calls c WHERE c.id = $1"
                        " ON CONFLICT (kind, ref) DO NOTHING",
                        uuid.UUID(op.call_id),
                        op.call_id,
                        op.text,
                        vectors[summary_at],
                    )
                    summary_at += 1
                elif isinstance(op, SpeakersMerged):
                    # After the segments of its batch: they may carry the label that went.
                    await conn.execute(
                        "UPDATE transcript_segments SET speaker = $3"
                        " WHERE call_id = $1 AND speaker = $2",
                        uuid.UUID(op.call_id),
                        op.gone,
                        op.kept,
                    )
                elif isinstance(op, SpeakerBound):
                    await apply_speaker_bound(conn, op)
                elif isinstance(op, VoiceprintLearned):
                    await apply_voiceprint(conn, op)
                elif isinstance(op, ReplyRecord):
                    await conn.execute(
                        "INSERT INTO replies(call_id, ordinal, intent, question, answer,"
                        " t_question_end_ms, t_first_audio_ms, audio_ms, interrupted, hung_up,"
                        " audio_played_ms)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                        " ON CONFLICT (call_id, ordinal) DO NOTHING",
                        uuid.UUID(op.call_id),
                        op.ordinal,
                        op.intent,
                        op.question,
                        op.answer,
                        op.t_question_end_ms,
                        op.t_first_audio_ms,
                        op.audio_ms,
                        op.interrupted,
                        op.hung_up,
                        op.audio_played_ms,
                    )
                elif isinstance(op, CallEnded):
                    # An end recorded for someone else (ended_by: a crash) only closes open calls.
                    # The call's own end (`stop`) of a call hung up at its time limit keeps
                    # saying so.
                    await conn.execute(
                        "UPDATE calls SET status = $2, ended_at = COALESCE(ended_at, $3),"
                        " completed_at = now(), ended_by = CASE WHEN $4::text IS NULL"
                        " AND completed_at IS NULL AND ended_by = $5 THEN $5 ELSE $4 END"
                        " WHERE id = $1 AND ($4::text IS NULL OR completed_at IS NULL)",
                        uuid.UUID(op.call_id),
                        op.status,
                        op.ended_at,
                        op.ended_by,
                        TIME_LIMIT,
                    )

    # --- reads ------------------------------------------------------------------------

    async def get_call(self, call_id: str) -> dict[str, Any] | None:
        try:
            key = uuid.UUID(call_id)
        except ValueError:
            return None
        row = await self.pool.fetchrow(
            "SELECT c.id, c.direction, c.status, c.call_sid, c.stream_sid, c.from_number,"
            " c.to_number, c.created_at, c.started_at, c.ended_at, c.completed_at, c.summary,"
            " c.ended_by,"
            " s.key AS series, COALESCE(m.meeting_date, c.meeting_date) AS meeting_date,"
            " c.time_zone, m.title AS meeting_title"
            " FROM calls c LEFT JOIN series s ON s.id = c.series_id"
            " LEFT JOIN meetings m ON m.id = c.meeting_id WHERE c.id = $1",
            key,
        )
        if row is None:
            return None
        call = dict(row)
        call["id"] = str(call["id"])
        call["transcript"] = await self.get_segments(call_id)
        return call

    async def get_replies(self, call_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT intent, question, answer, t_question_end_ms, t_first_audio_ms, audio_ms,"
            " interrupted, hung_up, audio_played_ms FROM replies WHERE call_id = $1"
            " ORDER BY ordinal",
            uuid.UUID(call_id),
        )
        return [dict(r) for r in rows]

    async def get_commitments(self, call_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT seq, kind, owner, action, due, quote, confidence, task_id FROM commitments"
            " WHERE call_id = $1 ORDER BY seq, ordinal",
            uuid.UUID(call_id),
        )
        return [
            {
                **dict(r),
                "due": r["due"].isoformat() if r["due"] else None,
                "confidence": round(float(r["confidence"]), 3),
            }
            for r in rows
        ]

    async def tasks(
        self, series_key: str, *, status: str = "all", history: bool = False
    ) -> list[TaskState]:
        """The series' tasks (none for an unknown series), oldest first; with `history`, each
        with its changes, oldest first."""
        rows = await self.pool.fetch(
            "SELECT t.id, t.owner, t.action, t.due, t.status, mc.meeting_date AS created_in,"
            " mu.meeting_date AS updated_in FROM tasks t JOIN series s ON s.id = t.series_id"
            " LEFT JOIN meetings mc ON mc.id = t.meeting_created_id"
            " LEFT JOIN meetings mu ON mu.id = t.meeting_updated_id"
            " WHERE s.key = $1 AND ($2 = 'all' OR t.status = $2) ORDER BY t.id",
            series_key,
            status,
        )
        changes: dict[int, list[TaskChange]] = {}
        if history and rows:
            for h in await self.pool.fetch(
                "SELECT h.task_id, h.change, h.from_status, h.to_status, h.from_due, h.to_due,"
                " h.quote, h.call_id, h.seq, m.meeting_date, h.created_at FROM task_history h"
                " JOIN tasks t ON t.id = h.task_id JOIN series s ON s.id = t.series_id"
                " LEFT JOIN meetings m ON m.id = h.meeting_id WHERE s.key = $1 ORDER BY h.id",
                series_key,
            ):
                changes.setdefault(h["task_id"], []).append(
                    TaskChange(
                        change=h["change"],
                        from_status=h["from_status"],
                        to_status=h["to_status"],
                        from_due=h["from_due"],
                        to_due=h["to_due"],
                        quote=h["quote"],
                        call_id=str(h["call_id"]) if h["call_id"] else None,
                        seq=h["seq"],
                        meeting_date=h["meeting_date"],
                        at=h["created_at"],
                    )
                )
        return [TaskState(**dict(r), history=tuple(changes.get(r["id"], ()))) for r in rows]

    async def previous_meeting(self, series_key: str, *, before: dt.date) -> dt.date | None:
        """The date of the series' last meeting before `before`."""
        value: dt.date | None = await self.pool.fetchval(
            "SELECT max(m.meeting_date) FROM meetings m JOIN series s ON s.id = m.series_id"
            " WHERE s.key = $1 AND m.meeting_date < $2",
            series_key,
            before,
        )
        return value

    async def recall(
        self,
        topic: str,
        *,
        series_key: str | None,
        call_id: str | None,
        limit: int = 3,
        max_distance: float = 0.6,
    ) -> list[str]:
        """What was said (segments, call summaries) in the series or this call closest in
        meaning to `topic` (pgvector cosine distance), nearest first."""
        vector = await asyncio.to_thread(self.embedder.embed_one, topic)
        rows = await self.pool.fetch(
            "SELECT e.text, e.embedding <=> $1 AS distance FROM memory_embeddings e"
            " LEFT JOIN series s ON s.id = e.series_id"
            " WHERE (s.key = $2 OR e.call_id = $3) AND e.kind IN ('segment', 'summary')"
            " ORDER BY e.embedding <=> $1 LIMIT $4",
            vector,
            series_key,
            uuid.UUID(call_id) if call_id else None,
            limit,
        )
        return [str(r["text"]) for r in rows if r["distance"] <= max_distance]

    async def list_tasks(
        self, series_key: str, *, status: str = "all"
    ) -> list[dict[str, Any]] | None:
        """The series' tasks with their history as JSON (the REST API's and `convene tasks
        --json`'s shape); None when the series does not exist. Typed: `tasks(history=True)`."""
        if await self.pool.fetchval("SELECT id FROM series WHERE key = $1", series_key) is None:
            return None
        return [t.as_json() for t in await self.tasks(series_key, status=status, history=True)]

    async def get_segments(self, call_id: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT seq, start_ms, end_ms, text, confidence, speaker, person"
            " FROM transcript_segments"
            " WHERE call_id = $1 ORDER BY seq",
            uuid.UUID(call_id),
        )
        return [dict(r) for r in rows]


async def _insert_call(conn: Conn, op: CallCreated, *, replay: bool = True) -> None:
    """A call record. A `replay` (from the spool) is safe to repeat: a call already there is
    left as it is; a new call must not collide (a duplicate CallSid is an error)."""
    series_id = None
    if op.series_key:
        series_id = await conn.fetchval(
            "INSERT INTO series(key) VALUES ($1)"
            " ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
            op.series_key,
        )
    await conn.execute(
        "INSERT INTO calls(id, direction, status, call_sid, from_number, to_number, series_id,"
        " meeting_date, time_zone, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        + (" ON CONFLICT DO NOTHING" if replay else ""),
        uuid.UUID(op.call_id),
        op.direction,
        op.status,
        op.call_sid,
        op.from_number,
        op.to_number,
        series_id,
        op.meeting_date,
        op.time_zone,
        op.created_at,
    )


async def _start_stream(
    conn: Conn,
    *,
    call_id: str,
    stream_sid: str,
    call_sid: str | None,
    series_key: str | None,
    meeting_title: str | None,
    started_at: dt.datetime | None,
) -> StreamAttached:
    """`Store.start_stream` in a transaction of the caller's (also replayed from the spool)."""
    row = await conn.fetchrow(
        "SELECT series_id, meeting_date FROM calls WHERE id = $1", uuid.UUID(call_id)
    )
    if row is None or row["meeting_date"] is None:
        raise ValueError(f"call {call_id} has no meeting date")
    series_id: int | None = row["series_id"]
    meeting_date: dt.date = row["meeting_date"]
    if series_key:
        series_id = await conn.fetchval(
            "INSERT INTO series(key) VALUES ($1)"
            " ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING id",
            series_key,
        )
    meeting_id: int | None = None
    if series_id is not None:
        meeting_id = await conn.fetchval(
            "SELECT id FROM meetings WHERE series_id = $1 AND meeting_date = $2"
            " ORDER BY id LIMIT 1",
            series_id,
            meeting_date,
        )
        if meeting_id is None:
            meeting_id = await conn.fetchval(
                "INSERT INTO meetings(series_id, title, meeting_date)"
                " VALUES ($1, $2, $3) RETURNING id",
                series_id,
                meeting_title,
                meeting_date,
            )
    await conn.execute(
        "UPDATE calls SET status = 'in-progress', stream_sid = $2,"
        " call_sid = COALESCE(call_sid, $3), series_id = $4, meeting_id = $5,"
        " started_at = COALESCE($6, now()) WHERE id = $1",
        uuid.UUID(call_id),
        stream_sid,
        call_sid,
        series_id,
        meeting_id,
        started_at,
    )
    series = await conn.fetchval("SELECT key FROM series WHERE id = $1", series_id)
    return StreamAttached(meeting_date=meeting_date, series_key=series)


def _json(payload: dict[str, Any]) -> str:
    import json

    return json.dumps(payload, default=str)
