"""`GET /metrics`: the process's Prometheus metrics (core/metrics.py; README: Metrics).

It takes a `read` token that sees every series (the counts cover every series' calls), unless
CONVENE_METRICS_PUBLIC=1 opens it to anyone, for a Prometheus that scrapes the pods directly.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, SecurityScopes

from core import metrics
from domain.llm_pending import PendingSpool
from server.auth import Principal, authenticate, bearer
from server.deps import RuntimeDep
from server.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter()


async def metrics_reader(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    """Anyone with CONVENE_METRICS_PUBLIC; otherwise a `read` token of every series."""
    if runtime.settings.security.metrics_public:
        return None
    principal = await authenticate(request, SecurityScopes(["read"]), runtime, credentials)
    if principal.series is not None:
        raise HTTPException(
            status_code=403, detail="metrics cover every series: this token sees only some"
        )
    return principal


def _backlogs(runtime: Runtime) -> tuple[int | None, int | None]:
    """(spooled writes, LLM windows waiting), each None when its file cannot be read
    (blocking: SQLite)."""
    found: list[int | None] = []
    pending = PendingSpool(runtime.settings.llm_spool_path)
    for count in (runtime.spool.count, pending.count):
        try:
            found.append(count())
        except (sqlite3.Error, OSError) as exc:
            log.warning("metrics: a spool is unreadable (%s)", type(exc).__name__)
            found.append(None)
    pending.close()
    return found[0], found[1]


@router.get("/metrics", response_class=Response)
async def get_metrics(
    runtime: RuntimeDep, _caller: Annotated[Principal | None, Depends(metrics_reader)]
) -> Response:
    """Prometheus' text format; the state gauges are read now."""
    metrics.ACTIVE_CALLS.set(len(runtime.active_calls))
    metrics.WRITES_HELD.set(runtime.writer.held)
    metrics.STT_WAITING.set(runtime.stt_queue.waiting)
    spooled, windows = await asyncio.to_thread(_backlogs, runtime)
    if spooled is not None:
        metrics.SPOOL_DEPTH.set(spooled)
    if windows is not None:
        metrics.EXTRACTION_BACKLOG.set(windows)
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
