"""Commitment extraction by an LLM (Anthropic Messages API, or any OpenAI-compatible Chat
Completions server: vLLM, Ollama, OpenAI), with an offline fallback.

`LLMExtractor` keeps a rolling window of the last few utterances, like the deterministic
extractor, and sends it to the model with one tool, `record_commitments`, that the model is forced
to call: its input is the structured answer (owner, action, due date, kind, quote, confidence).
Only commitments made in the *new* lines are asked for; earlier lines are context, and anything
already reported for this meeting is dropped, so overlapping windows never report twice.

`provider` picks the API: `anthropic` (Messages API, a forced `tool_use`) or `openai-compatible`
(`POST /chat/completions` through the `openai` SDK, the same schema as a forced function tool,
its `arguments` JSON validated alike). The system prompt, the request text, the retries, the
fallback and the spool are the same for both.

Failures are explicit. The SDK's own retries are off; 429, 529, other 5xx, timeouts and
connection errors are retried here with exponential backoff and jitter (a `retry-after` header
is honoured, capped). When every attempt fails, or the reply is not a valid tool call, the
deterministic extractor answers for that window meanwhile and the window is written to a small
SQLite spool, so `retry_pending()` can send it again later: nothing is lost.

The API key comes from the constructor or the environment (`ANTHROPIC_API_KEY`;
`OPENAI_API_KEY`, optional for a local server), never from YAML, and is never logged or put in
an exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import json
import logging
import os
import random
import re
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import anthropic
import openai
from anthropic.types import Message, ToolChoiceToolParam, ToolParam
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionNamedToolChoiceParam,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from core import clock
from core.errors import ConfigError
from core.prompts import load_yaml_model
from domain.extraction import Commitment, DeterministicExtractor, Kind, Utterance

log = logging.getLogger(__name__)

API_KEY_ENV = "ANTHROPIC_API_KEY"
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
#: Sent as the bearer token when an OpenAI-compatible server needs no key (vLLM, Ollama).
OPENAI_NO_KEY = "not-needed"
Provider = Literal["anthropic", "openai-compatible"]
PROVIDERS: tuple[Provider, ...] = ("anthropic", "openai-compatible")
#: What either SDK raises for a failed request (status, connection, timeout).
API_ERRORS: tuple[type[Exception], ...] = (anthropic.AnthropicError, openai.OpenAIError)
TOOL_NAME = "record_commitments"

# --------------------------------------------------------------------------- prompt file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExampleCommitment(_Strict):
    """One expected tool item in a worked example."""

    owner: str | None
    action: str = Field(min_length=1)
    due: dt.date | None
    kind: Kind = "commitment"
    quote: str = Field(min_length=1)


class ExtractionExample(_Strict):
    """A worked example: transcript lines, meeting date and the exact expected output."""

    lines: list[str] = Field(min_length=1)
    date: dt.date
    output: list[ExampleCommitment]


class ExtractionPrompt(_Strict):
    """`prompts/extraction.yaml`: model settings, system prompt and worked examples."""

    model: str = Field("claude-sonnet-4-5", min_length=1)
    max_tokens: int = Field(1024, ge=64, le=8192)
    # None: not sent. SDK 2.x (API version 2026-10-21) has no `temperature` argument; a value
    # set here goes in the request body as an extra field, for models that still accept it.
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    timeout_secs: float = Field(20.0, gt=0.0, le=600.0)
    max_retries: int = Field(3, ge=0, le=10)
    system: str = Field(min_length=1)
    examples: list[ExtractionExample] = Field(default_factory=list)

    def system_text(self) -> str:
        """The system prompt with the worked examples appended."""
        if not self.examples:
            return self.system
        parts = [
            self.system.rstrip(),
            "",
            "Worked examples (every line in them is new; confidence is left out of them, "
            "but always give it):",
        ]
        for number, example in enumerate(self.examples, start=1):
            parts.append(f"<example {number}>")
            parts.append(f"Meeting date: {_date_label(example.date)}")
            parts.extend(example.lines)
            output = [item.model_dump(mode="json") for item in example.output]
            parts.append(f"{TOOL_NAME} input: {json.dumps({'commitments': output})}")
            parts.append(f"</example {number}>")
        return "\n".join(parts)


def load_extraction_prompt(path: Path) -> ExtractionPrompt:
    """Load `prompts/extraction.yaml`; ConfigError names the file, key path and reason."""
    return load_yaml_model(path, ExtractionPrompt)


# --------------------------------------------------------------------------- the tool

_DUE_SCHEMA = {
    "type": ["string", "null"],
    "pattern": r"^\d{4}-\d{2}-\d{2}$",
    "description": "YYYY-MM-DD resolved against the meeting date, or null.",
}
# The schema the model is given is strict (every field, nothing else); parsing its reply is
# lenient (extra keys ignored, a missing owner or due is null).
_STRICT_SCHEMA = ConfigDict(
    json_schema_extra={"additionalProperties": False},
    json_schema_serialization_defaults_required=True,
)


class _ToolItem(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, **_STRICT_SCHEMA)

    owner: str | None = Field(None, description="First name of who will do it; null when unclear.")
    action: str = Field(
        min_length=1, description="Short imperative phrase, e.g. 'send the deck to legal'."
    )
    due: Annotated[dt.date | None, WithJsonSchema(_DUE_SCHEMA)] = None
    kind: Kind
    quote: str = Field(min_length=1, description="The words from the transcript, verbatim.")
    confidence: float = Field(ge=0.0, le=1.0)

    @field_validator("due", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise ValueError("due must be YYYY-MM-DD or null")
        return dt.date.fromisoformat(value.strip())


class _ToolInput(BaseModel):
    model_config = ConfigDict(extra="ignore", **_STRICT_SCHEMA)

    commitments: list[_ToolItem] = Field(
        description="Everything found in the new lines; an empty list when nothing is."
    )


def _tool_schema(model: type[BaseModel]) -> dict[str, Any]:
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


COMMITMENTS_SCHEMA: dict[str, Any] = _tool_schema(_ToolInput)

TOOL: ToolParam = {
    "name": TOOL_NAME,
    "description": "Record the commitments, status updates and cancellations heard in the new "
    "lines of the meeting transcript window.",
    "input_schema": COMMITMENTS_SCHEMA,
}
TOOL_CHOICE: ToolChoiceToolParam = {"type": "tool", "name": TOOL_NAME}
#: The same tool for a Chat Completions server: a function whose parameters are the schema.
OPENAI_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": TOOL["description"],
        "parameters": COMMITMENTS_SCHEMA,
    },
}
OPENAI_TOOL_CHOICE: ChatCompletionNamedToolChoiceParam = {
    "type": "function",
    "function": {"name": TOOL_NAME},
}


class BadOutput(Exception):
    """The model answered, but not with a valid `record_commitments` call."""


def parse_tool_reply(message: Message, *, bot_names: Iterable[str] = ()) -> list[Commitment]:
    """Commitments from the reply's `record_commitments` call, or BadOutput."""
    if message.stop_reason == "max_tokens":
        raise BadOutput("reply cut off at max_tokens")
    blocks = [b for b in message.content if b.type == "tool_use" and b.name == TOOL_NAME]
    if not blocks:
        kinds = ", ".join(b.type for b in message.content) or "nothing"
        raise BadOutput(f"no {TOOL_NAME} call in the reply (got {kinds})")
    return _tool_commitments(blocks[0].input, bot_names)


def parse_chat_tool_reply(
    completion: ChatCompletion, *, bot_names: Iterable[str] = ()
) -> list[Commitment]:
    """Commitments from a Chat Completion's `record_commitments` function call, or BadOutput.

    The function's `arguments` (a JSON string) are validated exactly as Anthropic's tool input.
    """
    if not completion.choices:
        raise BadOutput("no choices in the reply")
    choice = completion.choices[0]
    if choice.finish_reason == "length":
        raise BadOutput("reply cut off at max_tokens")
    message = choice.message
    calls = [
        call
        for call in message.tool_calls or []
        if call.type == "function" and call.function.name == TOOL_NAME
    ]
    if not calls:
        kinds = ", ".join(
            [call.type for call in message.tool_calls or []]
            + (["text"] if message.content else [])
            + (["refusal"] if message.refusal else [])
        )
        raise BadOutput(f"no {TOOL_NAME} call in the reply (got {kinds or 'nothing'})")
    try:
        arguments = json.loads(calls[0].function.arguments or "null")
    except ValueError:
        raise BadOutput(f"{TOOL_NAME} arguments are not valid JSON") from None
    return _tool_commitments(arguments, bot_names)


def _tool_commitments(raw: object, bot_names: Iterable[str]) -> list[Commitment]:
    try:
        parsed = _ToolInput.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise BadOutput(f"invalid {TOOL_NAME} input: {problems}") from None
    bots = {name.casefold() for name in bot_names}
    return [_to_commitment(item, bots) for item in parsed.commitments]


def _to_commitment(item: _ToolItem, bots: set[str]) -> Commitment:
    owner = item.owner or None
    if owner is not None and owner.casefold() in bots:
        owner = None  # the bot is never an owner
    return Commitment(
        owner=owner,
        action=item.action,
        due=item.due,
        quote=item.quote,
        confidence=item.confidence,
        kind=item.kind,
    )


# --------------------------------------------------------------------------- the request


def _date_label(day: dt.date) -> str:
    return f"{day.isoformat()} ({day.strftime('%A')})"


def _line(utterance: Utterance) -> str:
    speaker = (utterance.speaker or "").strip() or "(unknown)"
    return f"{speaker}: {' '.join(utterance.text.split())}"


def _span(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"


def render_window(
    lines: Sequence[Utterance], *, new_from: int, meeting_date: dt.date, bot_names: Sequence[str]
) -> str:
    """The user message: meeting date, bot names and the numbered window, new lines marked."""
    count = len(lines)
    if new_from <= 0:
        scope = f"All {count} lines are new."
    else:
        scope = (
            f"{_span(1, new_from).capitalize()}: context you have already seen. Record only "
            f"what is made, accepted, finished or cancelled in the new {_span(new_from + 1, count)}."
        )
    header = [
        f"Meeting date: {_date_label(meeting_date)}",
        f"The meeting bot (never an owner): {', '.join(bot_names) or 'none'}",
        f"Transcript window, oldest first. {scope}",
    ]
    body = [
        f"{number}. [{'new' if number > new_from else 'context'}] {_line(u)}"
        for number, u in enumerate(lines, start=1)
    ]
    footer = [f"Call {TOOL_NAME} once, with an empty list if there is nothing to record."]
    return "\n".join([*header, "", *body, "", *footer])


# --------------------------------------------------------------------------- retries


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


@dataclass(frozen=True)
class RetryPolicy:
    """How failed attempts are retried. Delays in seconds."""

    max_retries: int = 3
    backoff_base_secs: float = 0.5
    backoff_max_secs: float = 8.0
    retry_after_cap_secs: float = 30.0

    def delay(self, retry: int, exc: BaseException) -> float:
        """Wait before retry number `retry` (1-based): retry-after if sent, else backoff+jitter."""
        if isinstance(exc, (anthropic.APIStatusError, openai.APIStatusError)):
            asked = retry_after_secs(exc.response.headers)
            if asked is not None:
                return min(asked, self.retry_after_cap_secs)
        ceiling = min(self.backoff_max_secs, self.backoff_base_secs * 2.0 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter, not crypto


@dataclass
class ExtractionStats:
    """Counters, logged with every failure.

    calls: API requests sent (retries included); retries: requests that were retries;
    failures: windows whose every attempt failed; fallbacks: windows answered by the offline
    rules; queued: windows written to the spool; recovered: spooled windows later extracted.
    """

    calls: int = 0
    retries: int = 0
    failures: int = 0
    fallbacks: int = 0
    queued: int = 0
    recovered: int = 0
    spool_errors: int = 0

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in vars(self).items())


# --------------------------------------------------------------------------- the spool

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    meeting_date TEXT NOT NULL,
    utterances TEXT NOT NULL,
    new_from INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    created TEXT NOT NULL,
    last_error TEXT,
    context TEXT NOT NULL DEFAULT '{}'
)
"""


@dataclass(frozen=True)
class PendingWindow:
    """A window whose extraction failed, waiting in the spool."""

    id: int
    meeting_date: dt.date
    utterances: list[Utterance]
    new_from: int
    attempts: int
    created: str
    context: dict[str, str] = field(default_factory=dict)  # e.g. call_id, series, seq


class PendingSpool:
    """Failed windows in a SQLite file, oldest first. Blocking: call through asyncio.to_thread."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute(_SCHEMA)
        return conn

    def add(
        self,
        lines: Sequence[Utterance],
        *,
        new_from: int,
        meeting_date: dt.date,
        error: str,
        context: Mapping[str, str] | None = None,
    ) -> int:
        payload = json.dumps([{"speaker": u.speaker, "text": u.text} for u in lines])
        created = clock.now().isoformat(timespec="seconds")
        with contextlib.closing(self._connect()) as conn, conn:
            cursor = conn.execute(
                "INSERT INTO pending (meeting_date, utterances, new_from, attempts, created, "
                "last_error, context) VALUES (?, ?, ?, 1, ?, ?, ?)",
                (
                    meeting_date.isoformat(),
                    payload,
                    new_from,
                    created,
                    error,
                    json.dumps(dict(context or {})),
                ),
            )
            return int(cursor.lastrowid or 0)

    def load(self) -> list[PendingWindow]:
        with contextlib.closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT id, meeting_date, utterances, new_from, attempts, created, context "
                "FROM pending ORDER BY id"
            ).fetchall()
        return [_pending_row(row) for row in rows]

    def remove(self, item_id: int) -> None:
        with contextlib.closing(self._connect()) as conn, conn:
            conn.execute("DELETE FROM pending WHERE id = ?", (item_id,))

    def bump(self, item_id: int, error: str) -> None:
        with contextlib.closing(self._connect()) as conn, conn:
            conn.execute(
                "UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, item_id),
            )


def _pending_row(row: tuple[Any, ...]) -> PendingWindow:
    item_id, day, payload, new_from, attempts, created, context = row
    lines = [Utterance(speaker=u["speaker"], text=u["text"]) for u in json.loads(payload)]
    return PendingWindow(
        id=int(item_id),
        meeting_date=dt.date.fromisoformat(day),
        utterances=lines,
        new_from=int(new_from),
        attempts=int(attempts),
        created=str(created),
        context={str(k): str(v) for k, v in json.loads(context or "{}").items()},
    )


# --------------------------------------------------------------------------- dedup


def _norm(text: str | None) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", (text or "").casefold()).split())


class _Seen:
    """What was already reported: same kind+owner with the same action, or the same quote."""

    def __init__(self) -> None:
        self._actions: set[tuple[str, str, str]] = set()
        self._quotes: set[tuple[str, str, str]] = set()

    def fresh(self, found: Iterable[Commitment]) -> list[Commitment]:
        """Drop what was reported by an earlier call; remember the rest."""
        earlier_quotes = set(self._quotes)
        kept: list[Commitment] = []
        for item in found:
            action_key = (item.kind, _norm(item.owner), _norm(item.action))
            quote_key = (item.kind, _norm(item.owner), _norm(item.quote))
            if action_key in self._actions or quote_key in earlier_quotes:
                continue
            self._actions.add(action_key)
            self._quotes.add(quote_key)
            kept.append(item)
        return kept


def _in_new_lines(item: Commitment, lines: Sequence[Utterance], new_from: int) -> bool:
    """False only when the quote comes from the context lines and not from the new ones.

    A quote may join a request and its acceptance ("Tom, can you ...? / Sure"): any part of it
    found in a new line counts.
    """
    parts = [p for p in (_norm(part) for part in item.quote.split(" / ")) if p]
    new = [_norm(u.text) for u in lines[new_from:]]
    old = [_norm(u.text) for u in lines[:new_from]]
    if not parts or any(p in text for p in parts for text in new):
        return True
    return not any(p in text for p in parts for text in old)


# --------------------------------------------------------------------------- the extractor

Sleep = Callable[[float], Awaitable[None]]


class LLMExtractor:
    """Streaming commitment extraction by an LLM; one instance per meeting.

    `feed` holds the last `window` utterances (as the deterministic extractor does) and returns
    only what is new. `extract` runs a whole transcript. Neither raises on an LLM failure: the
    fallback answers and the window is spooled for `retry_pending`.
    """

    def __init__(
        self,
        *,
        prompt: ExtractionPrompt,
        spool_path: Path,
        fallback: DeterministicExtractor,
        api_key: str | None = None,
        base_url: str | None = None,
        window: int | None = None,
        bot_names: tuple[str, ...] | None = None,
        batch_lines: int = 40,
        backoff_base_secs: float = 0.5,
        backoff_max_secs: float = 8.0,
        retry_after_cap_secs: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        context: Mapping[str, str] | None = None,
        provider: Provider = "anthropic",
        model: str | None = None,
    ) -> None:
        """`context` (e.g. call_id, series) is kept with spooled windows for the retry.

        `provider` picks the API; `model` overrides the prompt file's `model` (None: keep it).
        """
        if provider not in PROVIDERS:
            raise ConfigError(f"LLMExtractor: unknown provider {provider!r}")
        key = _api_key(api_key) if provider == "anthropic" else openai_key(api_key)
        window = fallback.window if window is None else window
        if window < 1 or batch_lines < 1:
            raise ConfigError("LLMExtractor: window and batch_lines must be at least 1")
        self.provider: Provider = provider
        self.model = resolve_model(model, prompt.model, provider)
        self.prompt = prompt
        self.fallback = fallback
        self.bot_names = fallback.bot_names if bot_names is None else bot_names
        self.policy = RetryPolicy(
            max_retries=prompt.max_retries,
            backoff_base_secs=backoff_base_secs,
            backoff_max_secs=backoff_max_secs,
            retry_after_cap_secs=retry_after_cap_secs,
        )
        self.stats = ExtractionStats()
        self.context: dict[str, str] = dict(context or {})
        self._fed = 0  # utterances fed: the call's segment number of the latest one
        self.spool = PendingSpool(spool_path)
        self._window: deque[Utterance] = deque(maxlen=window)
        self._batch_lines = batch_lines
        self._seen = _Seen()
        self._retry_lock = asyncio.Lock()
        self._fallback_lock = asyncio.Lock()  # DeterministicExtractor.extract is stateful
        self._sleep = sleep
        self._system = prompt.system_text()
        self._extra_body: dict[str, object] | None = (
            None if prompt.temperature is None else {"temperature": prompt.temperature}
        )
        self._client: anthropic.AsyncAnthropic | openai.AsyncOpenAI
        if provider == "anthropic":
            self._client = anthropic.AsyncAnthropic(
                api_key=key, base_url=base_url, max_retries=0, timeout=prompt.timeout_secs
            )
        else:
            self._client = openai.AsyncOpenAI(
                api_key=key, base_url=base_url, max_retries=0, timeout=prompt.timeout_secs
            )

    def __repr__(self) -> str:
        return (
            f"LLMExtractor(provider={self.provider!r}, model={self.model!r}, "
            f"spool={self.spool.path})"
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def __aenter__(self) -> LLMExtractor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- public API

    async def feed(self, utterance: Utterance, *, meeting_date: dt.date) -> list[Commitment]:
        """Add one final utterance; return the commitments it makes (never one twice)."""
        self._window.append(utterance)
        self._fed += 1
        if not utterance.text.strip():
            return []
        lines = list(self._window)
        found = await self._extract_window(lines, len(lines) - 1, meeting_date)
        return self._seen.fresh(found)

    async def extract(
        self, utterances: Sequence[Utterance], *, meeting_date: dt.date
    ) -> list[Commitment]:
        """A whole transcript, in chunks of `batch_lines` with `window - 1` lines of context."""
        items = list(utterances)
        context = (self._window.maxlen or 1) - 1
        seen = _Seen()
        found: list[Commitment] = []
        for start in range(0, len(items), self._batch_lines):
            first = max(0, start - context)
            chunk = items[first : start + self._batch_lines]
            found.extend(seen.fresh(await self._extract_window(chunk, start - first, meeting_date)))
        return found

    async def retry_pending(self) -> list[tuple[list[Utterance], list[Commitment]]]:
        """Send spooled windows again, oldest first; each success is removed and returned.

        Stops at the first transport failure (the API is still down); a window whose reply is
        still invalid stays queued with its attempts bumped, and the next one is tried.
        """
        async with self._retry_lock:  # two overlapping calls must not send a window twice
            return [(item.utterances, found) for item, found in await self._retry_spooled()]

    async def retry_pending_windows(self) -> list[tuple[PendingWindow, list[Commitment]]]:
        """Like `retry_pending`, with each window's spooled context (call, series)."""
        async with self._retry_lock:
            return await self._retry_spooled()

    async def _retry_spooled(self) -> list[tuple[PendingWindow, list[Commitment]]]:
        done: list[tuple[PendingWindow, list[Commitment]]] = []
        for item in await asyncio.to_thread(self.spool.load):
            try:
                found = await self._ask(item.utterances, item.new_from, item.meeting_date)
            except (anthropic.AnthropicError, openai.OpenAIError, BadOutput) as exc:
                reason = describe_failure(exc)
                await asyncio.to_thread(self.spool.bump, item.id, reason)
                log.warning(
                    "LLM extraction: spooled window %d still fails (%s; attempt %d) [%s]",
                    item.id,
                    reason,
                    item.attempts + 1,
                    self.stats,
                )
                if isinstance(exc, BadOutput):
                    continue
                break
            await asyncio.to_thread(self.spool.remove, item.id)
            self.stats.recovered += 1
            log.info("LLM extraction: spooled window %d recovered [%s]", item.id, self.stats)
            done.append((item, found))
        return done

    async def pending(self) -> list[PendingWindow]:
        """What is waiting in the spool, oldest first."""
        return await asyncio.to_thread(self.spool.load)

    # ----------------------------------------------------------------- internals

    async def _extract_window(
        self, lines: list[Utterance], new_from: int, meeting_date: dt.date
    ) -> list[Commitment]:
        try:
            return await self._ask(lines, new_from, meeting_date)
        except (anthropic.AnthropicError, openai.OpenAIError, BadOutput) as exc:
            return await self._fall_back(lines, new_from, meeting_date, describe_failure(exc))

    async def _ask(
        self, lines: Sequence[Utterance], new_from: int, meeting_date: dt.date
    ) -> list[Commitment]:
        """One window through the API, retrying transient failures; raises the last failure."""
        text = render_window(
            lines, new_from=new_from, meeting_date=meeting_date, bot_names=self.bot_names
        )
        retry = 0
        while True:
            self.stats.calls += 1
            try:
                if isinstance(self._client, openai.AsyncOpenAI):
                    completion = await self._create_chat(self._client, text)
                    return parse_chat_tool_reply(completion, bot_names=self.bot_names)
                message = await self._create(self._client, text)
                return parse_tool_reply(message, bot_names=self.bot_names)
            except API_ERRORS as exc:
                if not is_retryable(exc) or retry >= self.policy.max_retries:
                    raise
                retry += 1
                await self._wait(retry, exc)

    async def _create(self, client: anthropic.AsyncAnthropic, text: str) -> Message:
        return await client.messages.create(
            model=self.model,
            max_tokens=self.prompt.max_tokens,
            system=self._system,
            messages=[{"role": "user", "content": text}],
            tools=[TOOL],
            tool_choice=TOOL_CHOICE,
            extra_body=self._extra_body,
        )

    async def _create_chat(self, client: openai.AsyncOpenAI, text: str) -> ChatCompletion:
        temperature = self.prompt.temperature
        return await client.chat.completions.create(
            model=self.model,
            max_tokens=self.prompt.max_tokens,
            messages=[
                {"role": "system", "content": self._system},
                {"role": "user", "content": text},
            ],
            tools=[OPENAI_TOOL],
            tool_choice=OPENAI_TOOL_CHOICE,
            temperature=openai.omit if temperature is None else temperature,
        )

    async def _wait(self, retry: int, exc: BaseException) -> None:
        delay = self.policy.delay(retry, exc)
        self.stats.retries += 1
        log.warning(
            "LLM extraction: %s; retry %d/%d in %.2fs [%s]",
            describe_failure(exc),
            retry,
            self.policy.max_retries,
            delay,
            self.stats,
        )
        await self._sleep(delay)

    async def _fall_back(
        self, lines: list[Utterance], new_from: int, meeting_date: dt.date, reason: str
    ) -> list[Commitment]:
        self.stats.failures += 1
        await self._queue(lines, new_from, meeting_date, reason)
        async with self._fallback_lock:
            found = await asyncio.to_thread(self.fallback.extract, lines, meeting_date=meeting_date)
        self.stats.fallbacks += 1
        log.warning(
            "LLM extraction failed (%s): offline rules answer for this window [%s]",
            reason,
            self.stats,
        )
        return [item for item in found if _in_new_lines(item, lines, new_from)]

    async def _queue(
        self, lines: list[Utterance], new_from: int, meeting_date: dt.date, reason: str
    ) -> None:
        try:
            await asyncio.to_thread(
                self.spool.add,
                lines,
                new_from=new_from,
                meeting_date=meeting_date,
                error=reason,
                context={**self.context, "seq": str(self._fed - 1)},
            )
        except (sqlite3.Error, OSError) as exc:
            self.stats.spool_errors += 1
            log.error(
                "LLM extraction: window NOT queued, spool %s failed: %s [%s]",
                self.spool.path,
                exc,
                self.stats,
            )
            return
        self.stats.queued += 1


def _api_key(explicit: str | None) -> str:
    key = explicit or os.environ.get(API_KEY_ENV, "")
    if not key.strip():
        raise ConfigError(
            f"LLM extraction needs an Anthropic API key: set {API_KEY_ENV} (it is never read "
            "from prompts/extraction.yaml)"
        )
    return key.strip()


def openai_key(explicit: str | None) -> str:
    """The key for an OpenAI-compatible server: given, `OPENAI_API_KEY`, else a placeholder.

    Local servers (vLLM, Ollama) take no key, but the SDK insists on one.
    """
    key = (explicit or os.environ.get(OPENAI_API_KEY_ENV, "")).strip()
    return key or OPENAI_NO_KEY


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


def build_llm_extractor(
    *,
    prompt_path: Path,
    spool_path: Path,
    fallback: DeterministicExtractor,
    api_key: str | None = None,
    base_url: str | None = None,
    context: Mapping[str, str] | None = None,
    provider: Provider = "anthropic",
    model: str | None = None,
) -> LLMExtractor:
    """An LLMExtractor from `prompts/extraction.yaml`; ConfigError when the file or key is bad.

    The window size and the bot's names are the fallback's, so both extractors see alike.
    `provider` picks the API (for `openai-compatible`, `api_key` may be None: a local server;
    `base_url` None: the SDK's default); `model` None keeps the prompt file's `model`.
    """
    if provider == "anthropic":
        _api_key(api_key)  # fail before reading anything else
    prompt = load_extraction_prompt(prompt_path)
    return LLMExtractor(
        prompt=prompt,
        spool_path=spool_path,
        fallback=fallback,
        api_key=api_key,
        base_url=base_url,
        context=context,
        provider=provider,
        model=model,
    )
