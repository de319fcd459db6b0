"""What keeps strangers and floods out below the routes: request body limits (before any
parsing), trusted Host names, security headers, Redis-backed rate limits, call caps."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import HTTPException
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import NotConfigured, ProviderError
from core.settings import Settings
from memory.access import AccessStore
from memory.store import Store, is_transient
from server.dialer import hang_up

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class BodyTooLarge(HTTPException):
    """A request body past the limit: 413 (an HTTPException, so FastAPI's body reading passes
    it on as it is instead of calling it a parse error)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body larger than {limit} bytes")


class BodyLimit:
    """Pure ASGI: refuse a body past `limit()` bytes, from its Content-Length before reading,
    and by counting the bytes as they stream in (chunked bodies, lying lengths)."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _reject(send, 413, f"request body larger than {limit} bytes")
                return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:
            if started:
                raise
            await _reject(send, 413, str(exc.detail))


async def _reject(send: Send, status: int, detail: str) -> None:
    body = ('{"detail": "' + detail.replace('"', "'") + '"}').encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"cache-control", b"no-store"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOC_PATHS = ("/docs", "/redoc")  # Swagger UI and ReDoc load their scripts from a CDN


class SecurityHeaders:
    """Pure ASGI: the headers every HTTP response carries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = str(scope.get("path", "")).startswith(DOC_PATHS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in SECURITY_HEADERS if h[0] not in present]
                if not docs:
                    extra.append(API_CSP)
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


# Answered whatever the Host: orchestrators' probes and Prometheus' scrapes go to the pod's
# own address. The probes answer nothing a stranger could use; /metrics takes its token (or
# counts only, with CONVENE_METRICS_PUBLIC).
PROBE_PATHS = ("/health", "/ready", "/metrics")


class HostCheck:
    """Starlette's TrustedHostMiddleware (a foreign Host header: 400, against DNS rebinding),
    except for the probes and /metrics, which orchestrators and Prometheus send to the pod's
    own address."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        self.checked = TrustedHostMiddleware(app, allowed_hosts=allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        await self.checked(scope, receive, send)


def trusted_hosts(public_host: str | None, extra: list[str]) -> list[str]:
    """The Host names served: PUBLIC_HOST (Twilio's way in), loopback, CONVENE_TRUSTED_HOSTS."""
    hosts = [*LOOPBACK_HOSTS, *extra]
    if public_host:
        hosts.append(public_host.split(":")[0])
    return hosts


@dataclass(frozen=True)
class Limited:
    """A rate limit was hit: when the next request may come."""

    retry_after: int


class RateLimiter:
    """Moving-window rate limits kept in Redis (`limits`), shared by every process."""

    def __init__(self, redis: aioredis.Redis) -> None:
        storage = RedisStorage(
            "async+redis://localhost:6379",  # unused: the runtime's own pool is passed
            implementation="redispy",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            key_prefix="convene:ratelimit",
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._parsed: dict[str, list[RateLimitItem]] = {}

    def _items(self, spec: str) -> list[RateLimitItem]:
        if spec not in self._parsed:
            self._parsed[spec] = parse_many(spec)
        return self._parsed[spec]

    async def hit(self, spec: str, *identifiers: str) -> Limited | None:
        """Count one request against `spec` for `identifiers`; a `Limited` once it is over."""
        for item in self._items(spec):
            if not await self._limiter.hit(item, *identifiers):
                stats = await self._limiter.get_window_stats(item, *identifiers)
                return Limited(retry_after=max(1, int(stats.reset_time - time.time()) + 1))
        return None


REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


async def live_calls(access: AccessStore, settings: Settings) -> int:
    """The account's calls in progress, as the cap counts them: every call Postgres knows as
    not over, dialled or answered, whichever process runs it; one that has not streamed within
    its stream token's life (CONVENE_STREAM_TOKEN_TTL_SECS) never will and is not counted."""
    return await access.live_calls(
        within=dt.timedelta(minutes=settings.security.max_call_minutes),
        unstarted_within=dt.timedelta(seconds=settings.streams.token_ttl_secs),
    )


# What `POST /calls` past the cap tells the client (503's Retry-After): calls last minutes,
# so sooner would only be refused again.
CALL_CAP_RETRY_AFTER_SECS = 30


async def call_cap_refusal(
    access: AccessStore, *, in_process: int, settings: Settings
) -> str | None:
    """Why one more call may not start now, if so: CONVENE_MAX_CALLS calls in progress in this
    process (the streams it runs), or in the account (`live_calls`). Raises what Postgres
    raises."""
    cap = settings.security.max_concurrent_calls
    if in_process >= cap:
        return (
            f"{in_process} calls in progress in this process: at most {cap} at once "
            "(CONVENE_MAX_CALLS)"
        )
    live = await live_calls(access, settings)
    if live >= cap:
        return f"{live} calls in progress: at most {cap} at once (CONVENE_MAX_CALLS)"
    return None


class HangUps:
    """Calls, dialled or answered, hung up through Twilio's REST API once they last
    `max_call_minutes` (a timer per call; for dialled calls Twilio's TimeLimit is asked for
    too). Before hanging up, the call is marked `ended_by` 'time-limit' in Postgres, so its
    end says so whichever process runs its stream."""

    def __init__(self) -> None:
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, call_sid: str, after_secs: float, settings: Settings, store: Store) -> None:
        """Hang `call_sid` up in `after_secs` (once: a call already timed keeps its timer)."""
        if call_sid in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(call_sid, None)
            task = loop.create_task(self._hang_up(call_sid, settings, store))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._timers[call_sid] = loop.call_later(after_secs, fire)

    async def _hang_up(self, call_sid: str, settings: Settings, store: Store) -> None:
        marked: bool | None = None
        try:
            marked = await store.mark_time_limited(call_sid)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("call %s: time limit not recorded (Postgres unavailable)", call_sid)
        if marked is False:
            return  # over already: nothing to hang up
        try:
            await hang_up(settings, call_sid)
        except (ProviderError, NotConfigured) as exc:
            log.warning("call %s: hanging up at its time limit failed: %s", call_sid, exc)
            if marked:
                try:
                    await store.unmark_time_limited(call_sid)
                except Exception as unmark:
                    if not is_transient(unmark):
                        raise
        else:
            log.warning("call %s: hung up at its time limit", call_sid)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
