"""Commitment extraction by an LLM (Anthropic Messages API, or any OpenAI-compatible Chat
Completions server: vLLM, Ollama, OpenAI), with an offline fallback.

`LLMExtractor` keeps a rolling window of the last few utterances, like the deterministic
extractor, and asks the model (through `domain/llm.py`) to call one tool, `record_commitments`
(`domain/llm_extraction_tool.py`), whose input is the structured answer (owner, action, due
date, kind, quote, confidence). Only commitments made in the *new* lines are asked for
(`domain/llm_extraction_prompt.py` renders the window); earlier lines are context, and anything
already reported for this meeting is dropped (`domain/llm_dedup.py`), so overlapping windows
never report twice.

Failures are explicit. Transient API errors are retried by the client's one retry policy. When
every attempt fails, or the reply is not a valid tool call, the deterministic extractor answers
for that window meanwhile and the window is written to the durable spool
(`domain/llm_pending.py`), so `retry_pending()` can send it again later: nothing is lost.

The API key comes from the constructor or the environment (`ANTHROPIC_API_KEY`;
`OPENAI_API_KEY`, optional for a local server), never from YAML, and is never logged or put in
an exception message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core import clock
from core.errors import ConfigError
from domain.extraction import Commitment, DeterministicExtractor, Utterance
from domain.extraction_gate import window_may_hold_commitment
from domain.llm import (
    FAILURES,
    OPENAI_NO_KEY,
    BadOutput,
    LlmClient,
    Provider,
    RequestCounts,
    Sleep,
    api_key,
    describe_failure,
)
from domain.llm_dedup import Seen, in_new_lines
from domain.llm_extraction_prompt import ExtractionPrompt, load_extraction_prompt, render_window
from domain.llm_extraction_tool import COMMITMENTS_TOOL, to_commitments
from domain.llm_pending import PendingSpool, PendingWindow

log = logging.getLogger(__name__)

_KEY_NEEDED = {"needed_by": "LLM extraction needs", "prompt_file": "extraction.yaml"}


@dataclass
class ExtractionStats(RequestCounts):
    """Counters, logged with every failure.

    calls: API requests sent (retries included); retries: requests that were retries;
    failures: windows whose every attempt failed; fallbacks: windows answered by the offline
    rules; queued: windows written to the spool; recovered: spooled windows later extracted;
    gated_out: windows the gate kept from the model (the rules answered them);
    deferred: windows the rules answered because the model was behind the call (queued, and
    re-read by the model later); by_rules: windows the gate passed whose new lines the rules
    read with certainty (rules_too), so the model was not asked.
    """

    failures: int = 0
    fallbacks: int = 0
    queued: int = 0
    recovered: int = 0
    spool_errors: int = 0
    gated_out: int = 0
    deferred: int = 0
    by_rules: int = 0


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
        timeout_secs: float | None = None,
        temperature: float | None = None,
        gate: bool = False,
        rules_too: bool = False,
        max_backlog: int | None = None,
    ) -> None:
        """`context` (e.g. call_id, series) is kept with spooled windows for the retry.

        `provider` picks the API; `model` overrides the prompt file's `model` (None: keep it);
        `timeout_secs` the prompt file's `timeout_secs` (a local model on a busy CPU is slower)
        and `temperature` its `temperature` (None: the file's).
        With `gate`, the model reads only windows whose new lines may hold a commitment
        (`domain.extraction_gate`); the rules answer the others. With `rules_too`, the rules
        read each window first: when they find something in its new lines their answer stands
        and the model is not asked; the model reads what they missed. A small local model adds
        recall on messy talk; the tidy forms the rules are sure of are answered at once. `max_backlog`: see `feed`
        (None: the model reads every window however far behind it is).
        """
        window = fallback.window if window is None else window
        if window < 1 or batch_lines < 1:
            raise ConfigError("LLMExtractor: window and batch_lines must be at least 1")
        self.prompt = prompt
        self.fallback = fallback
        self.bot_names = fallback.bot_names if bot_names is None else bot_names
        self.stats = ExtractionStats()
        self.llm = LlmClient.for_prompt(
            prompt
            if timeout_secs is None
            else prompt.model_copy(update={"timeout_secs": timeout_secs}),
            provider=provider,
            model=model,
            api_key=_key(provider, api_key),
            base_url=base_url,
            backoff=(backoff_base_secs, backoff_max_secs, retry_after_cap_secs),
            counts=self.stats,
            label="LLM extraction",
            logger=log,
            sleep=sleep,
        )
        self.context: dict[str, str] = dict(context or {})
        self._fed = 0  # utterances fed: the call's segment number of the latest one
        self.spool = PendingSpool(spool_path)
        self._window: deque[Utterance] = deque(maxlen=window)
        self._batch_lines = batch_lines
        self._seen = Seen()
        self._retry_lock = asyncio.Lock()
        self._fallback_lock = asyncio.Lock()  # DeterministicExtractor.extract is stateful
        self._system = prompt.system
        self._examples = prompt.example_turns()
        self._temperature = prompt.temperature if temperature is None else temperature
        self.gate = gate
        self.rules_too = rules_too
        self.max_backlog = max_backlog

    @property
    def provider(self) -> Provider:
        return self.llm.provider

    @property
    def model(self) -> str:
        return self.llm.model

    def __repr__(self) -> str:
        return (
            f"LLMExtractor(provider={self.provider!r}, model={self.model!r}, "
            f"spool={self.spool.path})"
        )

    async def aclose(self) -> None:
        """Close the HTTP client and the spool."""
        await self.llm.aclose()
        await asyncio.to_thread(self.spool.close)

    async def __aenter__(self) -> LLMExtractor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ----------------------------------------------------------------- public API

    async def feed(
        self,
        utterance: Utterance,
        *,
        meeting_date: dt.date,
        next_meeting: dt.date | None = None,
        backlog: int = 0,
    ) -> list[Commitment]:
        """Add one final utterance; return the commitments it makes (never one twice).

        `next_meeting` (the series' next meeting, when known) dates "for the next meeting".
        `backlog`: utterances of the call still waiting behind this one. Above `max_backlog`
        the model is behind the talk: the rules answer this window now and it is queued, so the
        model re-reads it later (`retry_pending`), and nothing is lost."""
        self._window.append(utterance)
        self._fed += 1
        if not utterance.text.strip():
            return []
        lines = list(self._window)
        dates = _Dates(meeting_date, next_meeting)
        if self.gate and not window_may_hold_commitment(lines, new_from=len(lines) - 1):
            found = await self._by_rules(lines, len(lines) - 1, dates)
        elif self.max_backlog is not None and backlog > self.max_backlog:
            found = await self._defer(lines, len(lines) - 1, dates, backlog)
        else:
            found = await self._extract_window(lines, len(lines) - 1, dates)
        return self._seen.fresh(found)

    async def extract(
        self,
        utterances: Sequence[Utterance],
        *,
        meeting_date: dt.date,
        next_meeting: dt.date | None = None,
    ) -> list[Commitment]:
        """A whole transcript, in chunks of `batch_lines` with `window - 1` lines of context.

        With the gate, a chunk is a run of lines the gate passes (each line judged with the
        lines before it, as `feed` would); the lines between runs are read by the rules."""
        items = list(utterances)
        context = (self._window.maxlen or 1) - 1
        dates = _Dates(meeting_date, next_meeting)
        seen = Seen()
        found: list[Commitment] = []
        for start, end, ask in self._chunks(items, context):
            first = max(0, start - context)
            chunk = items[first:end]
            read = self._extract_window if ask else self._by_rules
            found.extend(seen.fresh(await read(chunk, start - first, dates)))
        return found

    def _chunks(self, items: list[Utterance], context: int) -> list[tuple[int, int, bool]]:
        """(start, end, ask the model) spans covering `items`, each at most `batch_lines`."""
        if not self.gate:
            return [
                (start, min(start + self._batch_lines, len(items)), True)
                for start in range(0, len(items), self._batch_lines)
            ]
        passed = [
            window_may_hold_commitment(items[max(0, i - context) : i + 1], new_from=min(i, context))
            for i in range(len(items))
        ]
        # A short closed gap between two open runs goes with them: one request, not two.
        gap_start: int | None = None
        judged = list(passed)
        for index, flag in enumerate(judged):
            if not flag and gap_start is None and index > 0 and judged[index - 1]:
                gap_start = index
            elif flag and gap_start is not None:
                if index - gap_start < context:
                    passed[gap_start:index] = [True] * (index - gap_start)
                gap_start = None
        spans: list[tuple[int, int, bool]] = []
        for index, flag in enumerate(passed):
            if spans and spans[-1][2] == flag and index - spans[-1][0] < self._batch_lines:
                spans[-1] = (spans[-1][0], index + 1, flag)
            else:
                spans.append((index, index + 1, flag))
        return spans

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
                found = await self._ask(
                    item.utterances,
                    item.new_from,
                    item.meeting_date,
                    _date_or_none(item.context.get("next_meeting")),
                )
            except FAILURES as exc:
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

    async def warm_up(self) -> bool:
        """Ask once about a line that holds nothing, so that a local server has the system
        prompt in its cache before the first real window; nothing is returned, spooled or
        counted as a failure. True when the model answered."""
        probe = [Utterance(speaker=None, text="Good morning, everyone.")]
        try:
            await self._ask(probe, 0, clock.now().date())
        except FAILURES as exc:
            log.warning("LLM extraction: warm-up failed (%s)", describe_failure(exc))
            return False
        return True

    async def pending(self) -> list[PendingWindow]:
        """What is waiting in the spool, oldest first."""
        return await asyncio.to_thread(self.spool.load)

    # ----------------------------------------------------------------- internals

    async def _extract_window(
        self, lines: list[Utterance], new_from: int, dates: _Dates
    ) -> list[Commitment]:
        rules: list[Commitment] = []
        if self.rules_too:
            # The rules first: what they are sure of stands at once (a status update said just
            # before a question is in the answer), and the model reads what they missed.
            rules = await self._rules(lines, new_from, dates)
            if rules:
                self.stats.by_rules += 1
                return rules
        try:
            return await self._ask(lines, new_from, dates.meeting, dates.next_meeting)
        except FAILURES as exc:
            return await self._fall_back(lines, new_from, dates, describe_failure(exc))

    async def _defer(
        self, lines: list[Utterance], new_from: int, dates: _Dates, backlog: int
    ) -> list[Commitment]:
        """The model is behind the call: the rules answer now, the window waits in the spool."""
        self.stats.deferred += 1
        await self._queue(lines, new_from, dates, f"behind the call ({backlog} waiting)")
        log.info(
            "LLM extraction: %d utterances waiting, the rules answer this window; the model "
            "reads it later [%s]",
            backlog,
            self.stats,
        )
        return await self._rules(lines, new_from, dates)

    async def _by_rules(
        self, lines: list[Utterance], new_from: int, dates: _Dates
    ) -> list[Commitment]:
        """A window the gate kept from the model: the rules' answer for its new lines."""
        self.stats.gated_out += 1
        return await self._rules(lines, new_from, dates)

    async def _rules(
        self, lines: list[Utterance], new_from: int, dates: _Dates
    ) -> list[Commitment]:
        async with self._fallback_lock:
            found = await asyncio.to_thread(
                self.fallback.extract,
                lines,
                meeting_date=dates.meeting,
                next_meeting=dates.next_meeting,
            )
        return [item for item in found if in_new_lines(item, lines, new_from)]

    async def _ask(
        self,
        lines: Sequence[Utterance],
        new_from: int,
        meeting_date: dt.date,
        next_meeting: dt.date | None = None,
    ) -> list[Commitment]:
        """One window through the API (retried per the policy); raises the last failure."""
        text = render_window(
            lines,
            new_from=new_from,
            meeting_date=meeting_date,
            bot_names=self.bot_names,
            next_meeting=next_meeting,
        )
        reply = await self.llm.ask_tool(
            COMMITMENTS_TOOL,
            system=self._system,
            user=text,
            max_tokens=self.prompt.max_tokens,
            temperature=self._temperature,
            examples=self._examples,
        )
        return to_commitments(
            reply,
            bot_names=self.bot_names,
            lines=lines,
            meeting_date=meeting_date,
            next_meeting=next_meeting,
        )

    async def _fall_back(
        self, lines: list[Utterance], new_from: int, dates: _Dates, reason: str
    ) -> list[Commitment]:
        self.stats.failures += 1
        await self._queue(lines, new_from, dates, reason)
        async with self._fallback_lock:
            found = await asyncio.to_thread(
                self.fallback.extract,
                lines,
                meeting_date=dates.meeting,
                next_meeting=dates.next_meeting,
            )
        self.stats.fallbacks += 1
        log.warning(
            "LLM extraction failed (%s): offline rules answer for this window [%s]",
            reason,
            self.stats,
        )
        return [item for item in found if in_new_lines(item, lines, new_from)]

    async def _queue(
        self, lines: list[Utterance], new_from: int, dates: _Dates, reason: str
    ) -> None:
        context = {**self.context, "seq": str(self._fed - 1)}
        if dates.next_meeting is not None:
            context["next_meeting"] = dates.next_meeting.isoformat()
        try:
            await asyncio.to_thread(
                self.spool.add,
                lines,
                new_from=new_from,
                meeting_date=dates.meeting,
                error=reason,
                context=context,
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


@dataclass(frozen=True)
class _Dates:
    """The meeting's date and the series' next meeting (None: its cadence is unknown)."""

    meeting: dt.date
    next_meeting: dt.date | None


def _date_or_none(raw: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _key(provider: Provider, explicit: str | None) -> str:
    return api_key(provider, explicit, **_KEY_NEEDED)


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
    timeout_secs: float | None = None,
    temperature: float | None = None,
    gate: bool = False,
    rules_too: bool = False,
    max_backlog: int | None = None,
) -> LLMExtractor:
    """An LLMExtractor from `prompts/extraction.yaml`; ConfigError when the file or key is bad.

    The window size and the bot's names are the fallback's, so both extractors see alike.
    `provider` picks the API (for `openai-compatible`, `api_key` may be None: a local server;
    `base_url` None: the SDK's default); `model` None keeps the prompt file's `model`;
    `gate` puts the cheap gate (`domain.extraction_gate`) in front of the model.
    """
    _key(provider, api_key)  # fail before reading anything else
    return LLMExtractor(
        prompt=load_extraction_prompt(prompt_path),
        spool_path=spool_path,
        fallback=fallback,
        api_key=api_key,
        base_url=base_url,
        context=context,
        provider=provider,
        model=model,
        timeout_secs=timeout_secs,
        temperature=temperature,
        gate=gate,
        rules_too=rules_too,
        max_backlog=max_backlog,
    )


#: How long a local model may take to read the extraction prompt the first time (a busy CPU).
WARM_UP_TIMEOUT_SECS = 600.0


async def warm_up_server(
    *, prompt_path: Path, spool_path: Path, base_url: str, model: str, temperature: float | None
) -> bool:
    """Have an OpenAI-compatible local server read the extraction prompt once (it keeps it in
    its prompt cache), with a timeout long enough for a cold start on a busy CPU."""
    warm = build_llm_extractor(
        prompt_path=prompt_path,
        spool_path=spool_path,
        fallback=DeterministicExtractor(),
        api_key=OPENAI_NO_KEY,
        base_url=base_url,
        provider="openai-compatible",
        model=model,
        timeout_secs=WARM_UP_TIMEOUT_SECS,
        temperature=temperature,
    )
    async with warm:
        return await warm.warm_up()
