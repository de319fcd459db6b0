"""Who may use the API (tokens, stored hashed), what they did (the audit log), and deleting a
call or a series with everything derived from it."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from memory.tracking import Conn

TOKEN_PREFIX = "cvn_"
SCOPES = ("read", "write", "dial", "admin")


def hash_token(token: str) -> str:
    """A token's digest as stored: tokens are 256 random bits, so one SHA-256 is enough."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    series: tuple[str, ...] | None  # None: every series
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "series": list(self.series) if self.series is not None else None,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _token_row(row: asyncpg.Record) -> TokenRow:
    return TokenRow(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=tuple(row["scopes"]),
        series=tuple(row["series"]) if row["series"] is not None else None,
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


_TOKEN_COLUMNS = "id, name, prefix, scopes, series, created_at, last_used_at, revoked_at"


@dataclass(frozen=True)
class Deleted:
    """What a deletion removed from Postgres: the calls, and the series (if one went)."""

    call_ids: tuple[str, ...]
    series: tuple[str, ...]


class AccessStore:
    """Tokens, audit log and deletions over the shared pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # --- tokens ------------------------------------------------------------------------

    async def create_token(
        self, *, name: str, scopes: list[str], series: list[str] | None, token: str | None = None
    ) -> tuple[str, TokenRow]:
        """A new token: returns it (shown once, never stored) and its row."""
        token = token or new_token()
        row = await self.pool.fetchrow(
            "INSERT INTO api_tokens(name, token_hash, prefix, scopes, series)"
            f" VALUES ($1, $2, $3, $4, $5) RETURNING {_TOKEN_COLUMNS}",
            name,
            hash_token(token),
            token[:10],
            sorted(set(scopes)),
            sorted(set(series)) if series is not None else None,
        )
        assert row is not None
        return token, _token_row(row)

    async def find_token(self, token: str) -> TokenRow | None:
        """The live (not revoked) token with this value; marks it used."""
        row = await self.pool.fetchrow(
            "UPDATE api_tokens SET last_used_at = now()"
            " WHERE token_hash = $1 AND revoked_at IS NULL"
            f" RETURNING {_TOKEN_COLUMNS}",
            hash_token(token),
        )
        return _token_row(row) if row is not None else None

    async def list_tokens(self) -> list[TokenRow]:
        rows = await self.pool.fetch(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY id")
        return [_token_row(r) for r in rows]

    async def live_tokens(self) -> int:
        value = await self.pool.fetchval("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")
        return int(value or 0)

    async def revoke_token(self, ident: str) -> list[TokenRow]:
        """Revoke the live token with this id or name (every one of that name)."""
        by_id = int(ident) if ident.isdigit() else None
        rows = await self.pool.fetch(
            "UPDATE api_tokens SET revoked_at = now()"
            " WHERE revoked_at IS NULL AND (id = $1 OR name = $2)"
            f" RETURNING {_TOKEN_COLUMNS}",
            by_id,
            ident,
        )
        return [_token_row(r) for r in rows]

    # --- audit log ---------------------------------------------------------------------

    async def audit(self, *, actor: str, action: str, target: str, client: str | None) -> None:
        await self.pool.execute(
            "INSERT INTO audit_log(actor, action, target, client) VALUES ($1, $2, $3, $4)",
            actor,
            action,
            target,
            client,
        )

    async def audit_entries(self, *, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT id, at, actor, action, target, client FROM audit_log ORDER BY id DESC LIMIT $1",
            limit,
        )
        return [{**dict(r), "at": r["at"].isoformat()} for r in rows]

    # --- ownership, counts -------------------------------------------------------------

    async def call_series(self, call_id: str) -> tuple[bool, str | None]:
        """(exists, its series key) of a call."""
        try:
            key = uuid.UUID(call_id)
        except ValueError:
            return False, None
        row = await self.pool.fetchrow(
            "SELECT s.key FROM calls c LEFT JOIN series s ON s.id = c.series_id WHERE c.id = $1",
            key,
        )
        if row is None:
            return False, None
        return True, row["key"]

    async def live_calls(
        self, *, within: dt.timedelta, unstarted_within: dt.timedelta | None = None
    ) -> int:
        """Calls not yet over: created within `within` (older ones are past any call's end),
        or, for a call whose stream has not started, within `unstarted_within` (past its
        stream token's life it never streams: a caller who hung up while it rang)."""
        value = await self.pool.fetchval(
            "SELECT count(*) FROM calls WHERE completed_at IS NULL"
            " AND status IN ('queued', 'initiated', 'ringing', 'answered', 'in-progress')"
            " AND created_at > now() - CASE WHEN stream_sid IS NULL"
            " THEN LEAST($1::interval, $2::interval) ELSE $1::interval END",
            within,
            unstarted_within or within,
        )
        return int(value or 0)

    # --- deletion ----------------------------------------------------------------------

    async def delete_calls(self, call_ids: list[str]) -> Deleted:
        """Delete these calls and everything derived from them: transcript, replies, events,
        commitments, embeddings, the tasks they created and the task history they wrote."""
        keys = [uuid.UUID(c) for c in call_ids]
        async with self.pool.acquire() as conn, conn.transaction():
            await _delete_calls(conn, keys)
        return Deleted(call_ids=tuple(str(k) for k in keys), series=())

    async def delete_series(self, series_key: str) -> Deleted | None:
        """Delete a series, its calls and everything derived from them; None if unknown."""
        async with self.pool.acquire() as conn, conn.transaction():
            series_id = await conn.fetchval("SELECT id FROM series WHERE key = $1", series_key)
            if series_id is None:
                return None
            keys = [
                r["id"]
                for r in await conn.fetch("SELECT id FROM calls WHERE series_id = $1", series_id)
            ]
            await _delete_calls(conn, keys)
            await conn.execute(
                "DELETE FROM task_history WHERE task_id IN"
                " (SELECT id FROM tasks WHERE series_id = $1)",
                series_id,
            )
            await conn.execute(
                "UPDATE commitments SET task_id = NULL WHERE task_id IN"
                " (SELECT id FROM tasks WHERE series_id = $1)",
                series_id,
            )
            await conn.execute("DELETE FROM tasks WHERE series_id = $1", series_id)
            await conn.execute("DELETE FROM people WHERE series_id = $1", series_id)
            await conn.execute("DELETE FROM memory_embeddings WHERE series_id = $1", series_id)
            await conn.execute("DELETE FROM meetings WHERE series_id = $1", series_id)
            await conn.execute("DELETE FROM series WHERE id = $1", series_id)
        return Deleted(call_ids=tuple(str(k) for k in keys), series=(series_key,))

    async def expired_calls(self, *, days: int) -> list[str]:
        """Calls created more than `days` days ago (retention)."""
        rows = await self.pool.fetch(
            "SELECT id FROM calls WHERE created_at < now() - make_interval(days => $1)", days
        )
        return [str(r["id"]) for r in rows]


async def _delete_calls(conn: Conn, keys: list[uuid.UUID]) -> None:
    if not keys:
        return
    tasks = "SELECT id FROM tasks WHERE source_call_id = ANY($1::uuid[])"
    await conn.execute(
        f"DELETE FROM task_history WHERE call_id = ANY($1::uuid[]) OR task_id IN ({tasks})", keys
    )
    await conn.execute(f"UPDATE commitments SET task_id = NULL WHERE task_id IN ({tasks})", keys)
    await conn.execute(f"DELETE FROM tasks WHERE id IN ({tasks})", keys)
    for table in (
        "commitments",
        "transcript_segments",
        "replies",
        "call_events",
        "memory_embeddings",
    ):
        await conn.execute(f"DELETE FROM {table} WHERE call_id = ANY($1::uuid[])", keys)  # noqa: S608
    await conn.execute("DELETE FROM calls WHERE id = ANY($1::uuid[])", keys)
