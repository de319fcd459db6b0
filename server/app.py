"""The FastAPI app: the dialer, Twilio's webhooks and media socket, and the REST API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.settings import Settings, get_settings
from server import routes_calls, routes_metrics, routes_people, routes_twilio
from server.erase import retention_loop
from server.guard import BodyLimit, HangUps, HostCheck, SecurityHeaders, trusted_hosts
from server.runtime import Runtime

log = logging.getLogger(__name__)

INSECURE_BANNER = (
    "INSECURE: the REST API answers anyone, without a token (--insecure-dev / "
    "CONVENE_INSECURE_DEV). Development only: never on a public address."
)


def _safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:300]


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field and why, without echoing what was sent (a passcode, 3 kB of
    junk, a lone surrogate that could not even be encoded back)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [_safe(str(part)) if isinstance(part, str) else part for part in e["loc"]],
            "msg": _safe(str(e["msg"])),
            "type": e["type"],
        }
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


def create_app(*, settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. With `runtime` given, the caller owns it (tests, `simulate`)."""
    config = runtime.settings if runtime is not None else (settings or get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if runtime is None:
            owned = await Runtime.start(config)
        rt = runtime or owned
        assert rt is not None
        app.state.runtime = rt
        app.state.hang_ups = HangUps()
        if rt.settings.security.insecure_dev:
            log.warning(INSECURE_BANNER)
        retention = asyncio.create_task(retention_loop(rt), name="convene-retention")
        try:
            yield
        finally:
            retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retention
            await app.state.hang_ups.close()
            if owned is not None:
                await owned.close()

    docs = config.security.api_docs
    app = FastAPI(
        title="Convene",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.add_exception_handler(RequestValidationError, validation_error)
    app.include_router(routes_calls.router)
    app.include_router(routes_people.router)
    app.include_router(routes_twilio.router)
    app.include_router(routes_metrics.router)

    def body_limit() -> int:
        current: Runtime | None = getattr(app.state, "runtime", None)
        return (current.settings if current else config).security.max_body_bytes

    # Outermost first: Host checked, then the body bounded, before any route reads it.
    app.add_middleware(BodyLimit, limit=body_limit)
    app.add_middleware(
        HostCheck,
        allowed_hosts=trusted_hosts(config.twilio.public_host, config.security.extra_hosts),
    )
    app.add_middleware(SecurityHeaders)
    return app
