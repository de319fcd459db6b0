"""A loopback server speaking Anthropic's Messages API (`POST /v1/messages`), for tests.

It checks the API key (the `x-api-key` header, or `Authorization: Bearer`, which is what the
anthropic SDK 2.x sends) and the `anthropic-version` header like the real API, records every
request body, and answers from a per-test script: a tool call (`ToolReply`), plain text
(`TextReply`), or an error with the real error envelope (`ErrorReply`: 429 with retry-after,
529 overloaded, 500), each optionally after a delay. `"stream": true` requests get the real
server-sent-event sequence (message_start, content_block_start, content_block_delta with
input_json_delta / text_delta, content_block_stop, message_delta, message_stop).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

API_VERSION = "2023-06-01"
TOOL_NAME = "record_commitments"


@dataclass(frozen=True)
class ToolReply:
    """Answer with one tool_use block whose input is `input` (any JSON, valid or not)."""

    input: Any
    name: str = TOOL_NAME
    delay_secs: float = 0.0
    stop_reason: str = "tool_use"


@dataclass(frozen=True)
class TextReply:
    """Answer with one text block (no tool call)."""

    text: str
    delay_secs: float = 0.0


@dataclass(frozen=True)
class ErrorReply:
    """Answer with an HTTP error in the API's envelope."""

    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    delay_secs: float = 0.0


Reply = ToolReply | TextReply | ErrorReply


def commitments(*items: dict[str, Any]) -> ToolReply:
    """A well-formed `record_commitments` reply."""
    return ToolReply({"commitments": list(items)})


def rate_limited(retry_after: str | None = None) -> ErrorReply:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return ErrorReply(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        headers,
    )


def overloaded() -> ErrorReply:
    return ErrorReply(529, "overloaded_error", "Overloaded")


def server_error() -> ErrorReply:
    return ErrorReply(500, "api_error", "Internal server error")


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """`then` (by default an empty tool reply) after `seconds`: longer than a client timeout."""
    reply = then or commitments()
    if isinstance(reply, ToolReply):
        return ToolReply(reply.input, reply.name, seconds, reply.stop_reason)
    if isinstance(reply, TextReply):
        return TextReply(reply.text, seconds)
    return ErrorReply(reply.status, reply.error_type, reply.message, reply.headers, seconds)


@dataclass
class Recorded:
    """One request as the fake saw it (the API key is not kept)."""

    body: dict[str, Any]
    anthropic_version: str | None
    auth: str  # how the key came: "x-api-key" or "bearer"
    at: float  # time.monotonic() on arrival


@dataclass
class FakeAnthropic:
    """The programmable fake. `script` is consumed in order; `default` answers when it is empty."""

    api_key: str = "sk-ant-test-" + "0" * 24
    script: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=commitments)
    requests: list[Recorded] = field(default_factory=list)

    def push(self, *replies: Reply) -> None:
        self.script.extend(replies)

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.default = commitments()

    def next_reply(self) -> Reply:
        return self.script.popleft() if self.script else self.default

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.post("/v1/messages")
        async def messages(request: Request) -> Response:
            refused = _check_headers(request, self.api_key)
            if refused is not None:
                return refused
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "invalid_request_error", "request body is not valid JSON")
            missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
            if missing:
                return _error(400, "invalid_request_error", f"{missing[0]}: Field required")
            self.requests.append(
                Recorded(
                    body,
                    request.headers.get("anthropic-version"),
                    _presented_key(request)[1],
                    time.monotonic(),
                )
            )
            reply = self.next_reply()
            if reply.delay_secs and await _wait_or_disconnect(request, reply.delay_secs):
                return Response(status_code=499)
            if isinstance(reply, ErrorReply):
                return _error(reply.status, reply.error_type, reply.message, reply.headers)
            if body.get("stream"):
                return StreamingResponse(
                    _sse(body, reply),
                    media_type="text/event-stream",
                    headers={"request-id": _id("req_")},
                )
            return JSONResponse(_message(body, reply), headers={"request-id": _id("req_")})

        return api


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _error(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"type": "error", "error": {"type": error_type, "message": message}},
        status_code=status,
        headers={"request-id": _id("req_"), **(headers or {})},
    )


def _presented_key(request: Request) -> tuple[str | None, str]:
    """The key and how it came: `x-api-key`, or `Authorization: Bearer` (what SDK 2.x sends)."""
    if "x-api-key" in request.headers:
        return request.headers["x-api-key"], "x-api-key"
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token, "bearer"
    return None, "none"


def _check_headers(request: Request, api_key: str) -> JSONResponse | None:
    presented, _ = _presented_key(request)
    if presented is None:
        return _error(401, "authentication_error", "x-api-key header is required")
    if presented != api_key:
        return _error(401, "authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return _error(400, "invalid_request_error", "anthropic-version: header is required")
    return None


async def _wait_or_disconnect(request: Request, seconds: float) -> bool:
    """Sleep `seconds`; True if the client went away first (it timed out)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    return False


def _usage(body: dict[str, Any], output: str) -> dict[str, int]:
    return {
        "input_tokens": max(1, len(json.dumps(body)) // 4),
        "output_tokens": max(1, len(output) // 4),
    }


def _block(reply: ToolReply | TextReply) -> dict[str, Any]:
    if isinstance(reply, ToolReply):
        return {"type": "tool_use", "id": _id("toolu_"), "name": reply.name, "input": reply.input}
    return {"type": "text", "text": reply.text}


def _stop_reason(reply: ToolReply | TextReply) -> str:
    return reply.stop_reason if isinstance(reply, ToolReply) else "end_turn"


def _message(body: dict[str, Any], reply: ToolReply | TextReply) -> dict[str, Any]:
    block = _block(reply)
    return {
        "id": _id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [block],
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": _usage(body, json.dumps(block)),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def _chunks(text: str, size: int = 16) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


async def _sse(body: dict[str, Any], reply: ToolReply | TextReply) -> AsyncIterator[bytes]:
    message = _message(body, reply)
    block = message["content"][0]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    yield _event("message_start", {"message": start})
    if block["type"] == "tool_use":
        empty = {**block, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": c}
            for c in _chunks(json.dumps(block["input"]))
        ]
    else:
        empty = {**block, "text": ""}
        deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"])]
    yield _event("content_block_start", {"index": 0, "content_block": empty})
    yield _event("ping", {})
    for delta in deltas:
        yield _event("content_block_delta", {"index": 0, "delta": delta})
        await asyncio.sleep(0)
    yield _event("content_block_stop", {"index": 0})
    yield _event(
        "message_delta",
        {
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        },
    )
    yield _event("message_stop", {})
