"""Run the app with uvicorn inside this process, on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from memory.access import AccessStore
from server.runtime import Runtime


@contextlib.asynccontextmanager
async def serve_in_process(app: FastAPI, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` until the block exits; yields its base URL (http://127.0.0.1:PORT)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws_max_size=16 * 1024 * 1024)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raise a start-up failure
                raise RuntimeError("the in-process server stopped during start-up")
            await asyncio.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@contextlib.asynccontextmanager
async def minted_token(runtime: Runtime, *, name: str) -> AsyncIterator[str]:
    """A read-only API token for this block (`convene demo`, `convene simulate` on their own
    loopback server), revoked when it exits."""
    access = AccessStore(runtime.store.pool)
    token, row = await access.create_token(name=name, scopes=["read"], series=None)
    try:
        yield token
    finally:
        await access.revoke_token(str(row.id))
