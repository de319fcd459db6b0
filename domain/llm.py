"""The one LLM client layer: extraction and reports both ask their model through `LlmClient`.

`LlmClient` builds the official SDK client of the configured provider once: `anthropic`
(Messages API) or `openai-compatible` (Chat Completions through the `openai` SDK: vLLM, Ollama,
OpenAI). It asks two kinds of question:

- `ask_tool`: a structured answer. The tool's input schema is the reply model's own
  `model_json_schema()` (nested models inlined, no titles); the model is forced to call it
  (Anthropic `tool_use`, an OpenAI function call) and its input is validated by that model.
- `ask_text`: plain text, with what else the reply held (for an error message).

A reply that is not what was asked for (cut off at `max_tokens`, no tool call, invalid input)
raises `BadOutput`; it is never retried in-call.

One retry policy, by `tenacity` (the SDKs' own retries are off, so nothing retries twice): 429,
408, 5xx (529 overloaded included), timeouts and connection errors are retried with exponential
backoff and jitter; a `retry-after` header is honoured, capped. `calls` and `retries` are counted
on the caller's stats object, and every retry is logged with them.

The API key comes from the caller or the environment (`ANTHROPIC_API_KEY`; `OPENAI_API_KEY`,
optional for a local server), never from YAML, and is never logged or put in an exception
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

import anthropic
import openai
from anthropic.types import Message, MessageParam, TextBlock, ToolChoiceToolParam, ToolParam
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionNamedToolChoiceParam,
)
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from core import clock
from core.errors import ConfigError
from core.prompts import LlmProvider

log = logging.getLogger(__name__)

Provider = LlmProvider
PROVIDERS: tuple[Provider, ...] = ("anthropic", "openai-compatible")
API_KEY_ENV = "ANTHROPIC_API_KEY"
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
#: Sent as the bearer token when an OpenAI-compatible server needs no key (vLLM, Ollama).
OPENAI_NO_KEY = "not-needed"
#: What either SDK raises for a failed request (status, connection, timeout).
API_ERRORS: tuple[type[Exception], ...] = (anthropic.AnthropicError, openai.OpenAIError)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class BadOutput(Exception):
    """The model answered, but not with what was asked for."""


#: What asking through `LlmClient` raises once the retries are spent: a failed request or a
#: reply that is not what was asked for.
FAILURES: tuple[type[Exception], ...] = (*API_ERRORS, BadOutput)


# --------------------------------------------------------------------------- keys and model


def api_key(provider: Provider, explicit: str | None, *, needed_by: str, prompt_file: str) -> str:
    """The key to send: given, else from the environment; ConfigError when Anthropic has none.

    An OpenAI-compatible local server (vLLM, Ollama) takes no key, but the SDK insists on one:
    then `OPENAI_NO_KEY` is sent.
    """
    if provider == "anthropic":
        key = (explicit or os.environ.get(API_KEY_ENV, "")).strip()
        if not key:
            raise ConfigError(
                f"{needed_by} an Anthropic API key: set {API_KEY_ENV} (it is never read "
                f"from prompts/{prompt_file})"
            )
        return key
    return (explicit or os.environ.get(OPENAI_API_KEY_ENV, "")).strip() or OPENAI_NO_KEY


def resolve_model(override: str | None, from_prompt: str, provider: Provider) -> str:
    """`llm.model` when set, else the prompt file's `model`."""
    model = (override or "").strip() or from_prompt
    if provider == "openai-compatible" and not override and model.startswith("claude-"):
        log.warning(
            "llm.provider is openai-compatible but no llm.model is set: sending the prompt "
            "file's model %r, which such a server may not serve",
            model,
        )
    return model


# --------------------------------------------------------------------------- failures


def retry_after_secs(headers: Mapping[str, str], *, now: dt.datetime | None = None) -> float | None:
    """Seconds a response asks the client to wait (`retry-after-ms` / `retry-after`), if any."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        with contextlib.suppress(ValueError):
            return max(0.0, float(raw_ms) / 1000.0)
    raw = headers.get("retry-after")
    if not raw:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(raw))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(raw)
        current = now or clock.now()
        return max(0.0, (when - current).total_seconds())
    return None


def is_retryable(exc: BaseException) -> bool:
    """429, 408, 5xx (529 overloaded included), timeouts and connection errors (either SDK)."""
    if isinstance(exc, (anthropic.APIConnectionError, openai.APIConnectionError)):
        return True  # APITimeoutError is one
    if isinstance(exc, (anthropic.APIStatusError, openai.APIStatusError)):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def describe_failure(exc: BaseException) -> str:
    """A short, secret-free description of why an attempt failed."""
    if isinstance(exc, (anthropic.APITimeoutError, openai.APITimeoutError)):
        return "timeout"
    if isinstance(exc, (anthropic.APIConnectionError, openai.APIConnectionError)):
        return "connection error"
    if isinstance(exc, (anthropic.APIStatusError, openai.APIStatusError)):
        error_type = _error_type(exc.body)
        return f"HTTP {exc.status_code}" + (f" {error_type}" if error_type else "")
    if isinstance(exc, BadOutput):
        return f"bad output: {exc}"
    return type(exc).__name__


def _error_type(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            return str(error["type"])
    return None


# --------------------------------------------------------------------------- the retry policy


class _wait_retry_after(wait_base):  # noqa: N801  (tenacity's naming)
    """What the server asked for (`retry-after`), capped; else the backoff."""

    def __init__(self, cap_secs: float, backoff: wait_base) -> None:
        self.cap_secs = cap_secs
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, (anthropic.APIStatusError, openai.APIStatusError)):
            asked = retry_after_secs(exc.response.headers)
            if asked is not None:
                return min(asked, self.cap_secs)
        return float(self.backoff(retry_state))


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried. Delays in seconds.

    Retry n (1-based) waits half its ceiling plus a random share of the other half, the
    ceiling doubling from `backoff_base_secs` up to `backoff_max_secs`; a server's
    `retry-after` instead, capped at `retry_after_cap_secs`.
    """

    max_retries: int = 3
    backoff_base_secs: float = 0.5
    backoff_max_secs: float = 8.0
    retry_after_cap_secs: float = 30.0

    def wait(self) -> wait_base:
        half = {"multiplier": self.backoff_base_secs / 2, "max": self.backoff_max_secs / 2}
        backoff = wait_exponential(**half) + wait_random_exponential(**half)
        return _wait_retry_after(self.retry_after_cap_secs, backoff)


class Counts(Protocol):
    """The caller's stats: requests sent (retries included), and how many were retries."""

    calls: int
    retries: int


@dataclass
class RequestCounts:
    """`Counts` as a dataclass for the callers' stats to extend; `str` lists every counter."""

    calls: int = 0
    retries: int = 0

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in vars(self).items())


class ModelPrompt(Protocol):
    """A prompt file's model settings (`prompts/extraction.yaml`, `prompts/report_llm.yaml`)."""

    @property
    def model(self) -> str: ...

    @property
    def timeout_secs(self) -> float: ...

    @property
    def max_retries(self) -> int: ...


# --------------------------------------------------------------------------- structured output


def tool_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model.model_json_schema()` as a tool's input: nested models inlined, no titles."""
    schema = model.model_json_schema(mode="serialization")
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(value) for value in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
        return {k: inline(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}

    result: dict[str, Any] = inline(schema)
    return result


class Tool(Generic[M]):
    """A tool the model is made to call; its input is a `reply` (schema and validation)."""

    def __init__(self, name: str, description: str, reply: type[M]) -> None:
        self.name = name
        self.description = description
        self.reply = reply
        self.schema = tool_schema(reply)
        self.anthropic: ToolParam = {
            "name": name,
            "description": description,
            "input_schema": self.schema,
        }
        self.anthropic_choice: ToolChoiceToolParam = {"type": "tool", "name": name}
        self.openai: ChatCompletionFunctionToolParam = {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": self.schema},
        }
        self.openai_choice: ChatCompletionNamedToolChoiceParam = {
            "type": "function",
            "function": {"name": name},
        }

    def parse(self, raw: object) -> M:
        """The tool input, validated; BadOutput naming each problem."""
        try:
            return self.reply.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors(include_url=False)
            )
            raise BadOutput(f"invalid {self.name} input: {problems}") from None

    def from_message(self, message: Message) -> M:
        """The input of a Messages reply's call to this tool."""
        if message.stop_reason == "max_tokens":
            raise BadOutput("reply cut off at max_tokens")
        blocks = [b for b in message.content if b.type == "tool_use" and b.name == self.name]
        if not blocks:
            kinds = ", ".join(b.type for b in message.content) or "nothing"
            raise BadOutput(f"no {self.name} call in the reply (got {kinds})")
        return self.parse(blocks[0].input)

    def from_completion(self, completion: ChatCompletion) -> M:
        """The arguments of a Chat Completion's call to this function (a JSON string)."""
        message = _first_choice(completion).message
        calls = [
            call
            for call in message.tool_calls or []
            if call.type == "function" and call.function.name == self.name
        ]
        if not calls:
            kinds = ", ".join(
                [call.type for call in message.tool_calls or []]
                + (["text"] if message.content else [])
                + (["refusal"] if message.refusal else [])
            )
            raise BadOutput(f"no {self.name} call in the reply (got {kinds or 'nothing'})")
        try:
            arguments = json.loads(calls[0].function.arguments or "null")
        except ValueError:
            raise BadOutput(f"{self.name} arguments are not valid JSON") from None
        return self.parse(arguments)


def _first_choice(completion: ChatCompletion) -> Any:
    if not completion.choices:
        raise BadOutput("no choices in the reply")
    choice = completion.choices[0]
    if choice.finish_reason == "length":
        raise BadOutput("reply cut off at max_tokens")
    return choice


@dataclass(frozen=True)
class TextAnswer:
    """A reply's text, and what the reply held (`text`, `tool_use`, `refusal`, ...)."""

    text: str
    kinds: str


def message_text(message: Message) -> TextAnswer:
    """The text of a Messages reply; BadOutput when it was cut off."""
    if message.stop_reason == "max_tokens":
        raise BadOutput("reply cut off at max_tokens")
    text = "\n".join(b.text for b in message.content if isinstance(b, TextBlock))
    return TextAnswer(text, ", ".join(b.type for b in message.content) or "nothing")


def completion_text(completion: ChatCompletion) -> TextAnswer:
    """The text of a Chat Completion's first choice; BadOutput when cut off or empty."""
    message = _first_choice(completion).message
    kinds = ", ".join(
        (["text"] if message.content else [])
        + [call.type for call in message.tool_calls or []]
        + (["refusal"] if message.refusal else [])
    )
    return TextAnswer(message.content or "", kinds or "nothing")


# --------------------------------------------------------------------------- the client


class LlmClient:
    """One provider's SDK client, built once, with the retry policy around every request."""

    def __init__(
        self,
        *,
        provider: Provider,
        api_key: str,
        base_url: str | None,
        model: str,
        timeout_secs: float,
        policy: RetryPolicy,
        counts: Counts,
        label: str,
        logger: logging.Logger = log,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`label` and `logger` name the caller in retry logs ("LLM extraction")."""
        if provider not in PROVIDERS:
            raise ConfigError(f"{label}: unknown provider {provider!r}")
        self.provider: Provider = provider
        self.model = model
        self.policy = policy
        self.counts = counts
        self._label = label
        self._log = logger
        self._sleep = sleep
        self._sdk: anthropic.AsyncAnthropic | openai.AsyncOpenAI
        if provider == "anthropic":
            self._sdk = anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_secs
            )
        else:
            self._sdk = openai.AsyncOpenAI(
                api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_secs
            )

    @classmethod
    def for_prompt(
        cls,
        prompt: ModelPrompt,
        *,
        provider: Provider,
        model: str | None,
        api_key: str,
        base_url: str | None,
        backoff: tuple[float, float, float],
        counts: Counts,
        label: str,
        logger: logging.Logger = log,
        sleep: Sleep = asyncio.sleep,
    ) -> LlmClient:
        """The client a prompt file's model settings ask for (extraction's, reports').

        `model` overrides the file's (`resolve_model`); the file's `timeout_secs` bounds each
        request and its `max_retries` go with `backoff`: `RetryPolicy`'s `backoff_base_secs`,
        `backoff_max_secs` and `retry_after_cap_secs`.
        """
        return cls(
            provider=provider,
            api_key=api_key,
            base_url=base_url,
            model=resolve_model(model, prompt.model, provider),
            timeout_secs=prompt.timeout_secs,
            policy=RetryPolicy(prompt.max_retries, *backoff),
            counts=counts,
            label=label,
            logger=logger,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"LlmClient(provider={self.provider!r}, model={self.model!r})"

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._sdk.close()

    async def ask_tool(
        self,
        tool: Tool[M],
        *,
        system: str,
        user: str,
        max_tokens: int,
        temperature: float | None = None,
        examples: Sequence[tuple[str, str]] = (),
    ) -> M:
        """The model's call to `tool`, validated; retried per the policy, else the last error.

        `temperature` None is not sent. The Anthropic SDK 2.x has no `temperature` argument
        (API version 2026-10-21): a value goes in the request body, for models that take it.
        `examples`: (user message, answer) turns shown before `user`, the answer as text.
        """

        async def once() -> M:
            reply = await self._create(
                system=system,
                user=user,
                max_tokens=max_tokens,
                tool=tool,
                temperature=temperature,
                examples=examples,
            )
            if isinstance(reply, ChatCompletion):
                return tool.from_completion(reply)
            return tool.from_message(reply)

        return await self._retrying(once)

    async def ask_text(self, *, system: str, user: str, max_tokens: int) -> TextAnswer:
        """The model's text answer; retried per the policy, else the last error."""

        async def once() -> TextAnswer:
            reply = await self._create(system=system, user=user, max_tokens=max_tokens)
            if isinstance(reply, ChatCompletion):
                return completion_text(reply)
            return message_text(reply)

        return await self._retrying(once)

    async def _create(
        self,
        *,
        system: str,
        user: str,
        max_tokens: int,
        tool: Tool[Any] | None = None,
        temperature: float | None = None,
        examples: Sequence[tuple[str, str]] = (),
    ) -> ChatCompletion | Message:
        """One request, not retried: a Chat Completion or a Messages reply, by the provider.

        With `tool` the model is made to call it; None sends no tools. `temperature` None is
        not sent (for Anthropic a value goes in the request body).
        """
        turns: list[tuple[Literal["user", "assistant"], str]] = []
        for shown, answer in examples:
            turns += [("user", shown), ("assistant", answer)]
        turns.append(("user", user))
        if isinstance(self._sdk, openai.AsyncOpenAI):
            chat: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}]
            for role, content in turns:
                if role == "user":
                    chat.append({"role": "user", "content": content})
                else:
                    chat.append({"role": "assistant", "content": content})
            return await self._sdk.chat.completions.create(
                model=self.model,
                max_tokens=max_tokens,
                messages=chat,
                tools=openai.omit if tool is None else [tool.openai],
                tool_choice=openai.omit if tool is None else tool.openai_choice,
                temperature=openai.omit if temperature is None else temperature,
            )
        said: list[MessageParam] = []
        for role, text in turns:
            if role == "user":
                said.append({"role": "user", "content": text})
            else:
                said.append({"role": "assistant", "content": text})
        return await self._sdk.messages.create(
            model=self.model,
            max_tokens=max_tokens,
            system=system,
            messages=said,
            tools=anthropic.omit if tool is None else [tool.anthropic],
            tool_choice=anthropic.omit if tool is None else tool.anthropic_choice,
            extra_body=None if temperature is None else {"temperature": temperature},
        )

    async def _retrying(self, once: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.max_retries + 1),
            wait=self.policy.wait(),
            retry=retry_if_exception(is_retryable),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )

        async def counted() -> T:
            self.counts.calls += 1
            return await once()

        return await retrying(counted)

    def _before_sleep(self, state: RetryCallState) -> None:
        self.counts.retries += 1
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        self._log.warning(
            "%s: %s; retry %d/%d in %.2fs [%s]",
            self._label,
            describe_failure(exc) if exc is not None else "failed",
            state.attempt_number,
            self.policy.max_retries,
            state.upcoming_sleep,
            self.counts,
        )
