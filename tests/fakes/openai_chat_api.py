"""A loopback server speaking the OpenAI Chat Completions API (`POST /v1/chat/completions`).

What vLLM, Ollama and OpenAI itself serve, for tests of `llm.provider: openai-compatible`. It
checks the request like the real API (`model` and `messages` required, every tool a
`{"type": "function", "function": {...}}`, a named `tool_choice` must name one of them), checks
`Authorization: Bearer` when it has a key (a local server without one takes anything), records
every request body, and answers from a per-test script: a function call (`ToolCallReply`, whose
`arguments` go out as a JSON *string*, as the real API sends them), plain content (`TextReply`),
or an error in the real envelope `{"error": {"message", "type", "param", "code"}}`
(`ErrorReply`: 429 with retry-after, 500, 503), each optionally after a delay.

A 401's message repeats the key it was given (the real API repeats a masked one), so a test
catches code that logs or re-raises an SDK error's message.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

TOOL_NAME = "record_commitments"


@dataclass(frozen=True)
class ToolCallReply:
    """Answer with one function tool call; `arguments` is any JSON (dumped) or a raw string."""

    arguments: Any
    name: str = TOOL_NAME
    delay_secs: float = 0.0
    # What OpenAI sends for a forced (named) tool_choice; vLLM and Ollama send "tool_calls".
    finish_reason: str = "stop"


@dataclass(frozen=True)
class TextReply:
    """Answer with plain assistant content (no tool call)."""

    text: str
    delay_secs: float = 0.0
    finish_reason: str = "stop"


@dataclass(frozen=True)
class ErrorReply:
    """Answer with an HTTP error in the API's envelope."""

    status: int
    error_type: str
    message: str
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_secs: float = 0.0


Reply = ToolCallReply | TextReply | ErrorReply


def commitments(*items: dict[str, Any]) -> ToolCallReply:
    """A well-formed `record_commitments` call."""
    return ToolCallReply({"commitments": list(items)})


def rate_limited(retry_after: str | None = None) -> ErrorReply:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return ErrorReply(
        429,
        "requests",
        "Rate limit reached for requests per min (RPM). Please try again later.",
        "rate_limit_exceeded",
        headers,
    )


def server_error() -> ErrorReply:
    return ErrorReply(500, "server_error", "The server had an error while processing your request.")


def unavailable(retry_after: str | None = None) -> ErrorReply:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return ErrorReply(
        503,
        "server_error",
        "The engine is currently overloaded, please try again later.",
        None,
        headers,
    )


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """`then` (by default an empty tool call) after `seconds`: longer than a client timeout."""
    reply = then or commitments()
    if isinstance(reply, ToolCallReply):
        return ToolCallReply(reply.arguments, reply.name, seconds, reply.finish_reason)
    if isinstance(reply, TextReply):
        return TextReply(reply.text, seconds, reply.finish_reason)
    return ErrorReply(
        reply.status, reply.error_type, reply.message, reply.code, reply.headers, seconds
    )


@dataclass
class Recorded:
    """One request as the fake saw it (the key itself is not kept)."""

    body: dict[str, Any]
    auth: str  # "bearer" or "none"
    at: float  # time.monotonic() on arrival


@dataclass
class FakeOpenAIChat:
    """The programmable fake. `script` is consumed in order; `default` answers when it is empty.

    `api_key` None: any (or no) bearer token is accepted, as by a local vLLM or Ollama.
    """

    api_key: str | None = "sk-proj-test-" + "0" * 24
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

        @api.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> Response:
            presented, how = _presented_key(request)
            if self.api_key is not None and presented != self.api_key:
                shown = presented or "(none)"
                return _error(
                    401,
                    "invalid_request_error",
                    f"Incorrect API key provided: {shown}.",
                    "invalid_api_key",
                )
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "invalid_request_error", "We could not parse the JSON body.")
            problem = _invalid(body)
            if problem is not None:
                return _error(400, "invalid_request_error", problem)
            self.requests.append(Recorded(body, how, time.monotonic()))
            reply = self.next_reply()
            if reply.delay_secs and await _wait_or_disconnect(request, reply.delay_secs):
                return Response(status_code=499)
            if isinstance(reply, ErrorReply):
                return _error(
                    reply.status, reply.error_type, reply.message, reply.code, reply.headers
                )
            return JSONResponse(_completion(body, reply), headers={"x-request-id": _id("req_")})

        return api


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _error(
    status: int,
    error_type: str,
    message: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}},
        status_code=status,
        headers={"x-request-id": _id("req_"), **(headers or {})},
    )


def _presented_key(request: Request) -> tuple[str | None, str]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token, "bearer"
    return None, "none"


def _invalid(body: Any) -> str | None:
    """Why the real API would refuse this body with a 400, or None."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    for key in ("model", "messages"):
        if key not in body:
            return f"Missing required parameter: '{key}'."
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "Invalid 'messages': empty array. Expected an array with minimum length 1."
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        ):
            return f"Invalid value for 'messages[{index}].role'."
    if body.get("stream"):
        return "This fake does not stream."
    names: list[str] = []
    for index, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            return f"Invalid value for 'tools[{index}].type': expected 'function'."
        if not isinstance(function.get("name"), str):
            return f"Missing required parameter: 'tools[{index}].function.name'."
        names.append(function["name"])
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") != "function" or name not in names:
            return f"Invalid value for 'tool_choice': no function named {name!r} in 'tools'."
    return None


async def _wait_or_disconnect(request: Request, seconds: float) -> bool:
    """Sleep `seconds`; True if the client went away first (it timed out)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    return False


def _message(reply: ToolCallReply | TextReply) -> dict[str, Any]:
    if isinstance(reply, TextReply):
        return {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    arguments = reply.arguments if isinstance(reply.arguments, str) else json.dumps(reply.arguments)
    return {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "tool_calls": [
            {
                "id": _id("call_"),
                "type": "function",
                "function": {"name": reply.name, "arguments": arguments},
            }
        ],
    }


def _completion(body: dict[str, Any], reply: ToolCallReply | TextReply) -> dict[str, Any]:
    message = _message(reply)
    prompt_tokens = max(1, len(json.dumps(body)) // 4)
    completion_tokens = max(1, len(json.dumps(message)) // 4)
    return {
        "id": _id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_" + secrets.token_hex(5),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
