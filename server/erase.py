"""Deleting calls and series everywhere Convene keeps them: Postgres (transcripts, replies,
commitments, embeddings, tasks), Redis (the segment and commitment streams)
and the local spools; and the retention that purges old calls."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import redis.asyncio as aioredis

from domain.llm_pending import PendingSpool
from memory import keys
from memory.access import AccessStore, Deleted
from server.guard import REDIS_ERRORS
from server.runtime import Runtime

log = logging.getLogger(__name__)

RETENTION_EVERY_SECS = 3600.0


async def erase_calls(runtime: Runtime, call_ids: list[str]) -> Deleted:
    deleted = await AccessStore(runtime.store.pool).delete_calls(call_ids)
    await _erase_elsewhere(runtime, deleted)
    return deleted


async def erase_series(runtime: Runtime, series_key: str) -> Deleted | None:
    deleted = await AccessStore(runtime.store.pool).delete_series(series_key)
    if deleted is not None:
        await _erase_elsewhere(runtime, deleted)
    return deleted


async def _erase_elsewhere(runtime: Runtime, deleted: Deleted) -> None:
    calls, series = list(deleted.call_ids), list(deleted.series)
    await runtime.spool.discard(calls, series)
    spool = runtime.settings.llm_spool_path  # windows the LLM extractor failed on
    await asyncio.to_thread(_discard_llm_windows, spool, set(calls), set(series))
    try:
        await _erase_redis(runtime.redis, set(calls), series)
    except REDIS_ERRORS as exc:
        log.warning("deletion: Redis unavailable (%s); its copies expire", type(exc).__name__)


def _discard_llm_windows(path: Path, calls: set[str], series: set[str]) -> None:
    if not path.exists():
        return
    spool = PendingSpool(path)
    for window in spool.load():
        if window.context.get("call_id") in calls or window.context.get("series") in series:
            spool.remove(window.id)


async def _erase_redis(redis: aioredis.Redis, calls: set[str], series: list[str]) -> None:
    """Remove the deleted calls' and series' entries from the two Redis streams."""
    for stream in (keys.SEGMENTS_STREAM, keys.COMMITMENTS_STREAM):
        gone: list[str] = []
        for entry_id, fields in await redis.xrange(stream) or []:
            owner = (fields or {}).get("call_id")
            owner_series = (fields or {}).get("series")
            if owner in calls or (series and owner_series in series):
                gone.append(str(entry_id))
        if gone:
            await redis.xdel(stream, *gone)


async def purge_expired(runtime: Runtime) -> list[str]:
    """Delete calls older than `retention.days` (prompts/pipeline.yaml); returns their ids."""
    days = runtime.prompts.pipeline.retention.days
    if days is None:
        return []
    access = AccessStore(runtime.store.pool)
    expired = [c for c in await access.expired_calls(days=days) if c not in runtime.active_calls]
    if not expired:
        return []
    await erase_calls(runtime, expired)
    for call_id in expired:
        await access.audit(actor="retention", action="purge", target=f"call:{call_id}", client=None)
    log.info("retention: deleted %d call(s) older than %d days", len(expired), days)
    return expired


async def retention_loop(runtime: Runtime) -> None:
    """Purge at start, then once an hour (a timer: retention is about days, not events)."""
    while True:
        try:
            await purge_expired(runtime)
        except Exception:
            log.exception("retention: purge failed; next try in %.0fs", RETENTION_EVERY_SECS)
        await asyncio.sleep(RETENTION_EVERY_SECS)
