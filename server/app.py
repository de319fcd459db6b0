"""The FastAPI app: the dialer, Twilio's webhooks and media socket, and the REST API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.settings import Settings, get_settings
from server import routes_calls, routes_twilio
from server.runtime import Runtime


def create_app(*, settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. With `runtime` given, the caller owns it (tests, `simulate`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        owned = await Runtime.start(settings or get_settings())
        app.state.runtime = owned
        try:
            yield
        finally:
            await owned.close()

    app = FastAPI(title="Convene", version="0.1.0", lifespan=lifespan)
    app.include_router(routes_calls.router)
    app.include_router(routes_twilio.router)
    return app
